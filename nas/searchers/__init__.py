"""Searchers by name (`--searcher`): factories of Optuna samplers driven through ask/tell."""
from __future__ import annotations

from nas.registry import Registry
from nas.searchers.epnas import EPNAS, epnas
from nas.searchers.evolution import RegularizedEvolution, evolution
from nas.searchers.optuna_search import (OptunaSearcher, SamplerFactory, nsga2, open_study,
                                         random, tpe)

# Each takes a seed and, under --constraint, Optuna's `constraints_func` (`SamplerFactory`).
SEARCHERS: Registry[SamplerFactory] = Registry("searcher")
SEARCHERS.register(tpe)
SEARCHERS.register(random)
SEARCHERS.register(evolution)
SEARCHERS.register(epnas)
SEARCHERS.register(nsga2)

# Searchers that optimise several objectives at once (--objectives accuracy,flops, ...).
MULTI_OBJECTIVE = ("tpe", "random", "nsga2")
# Searchers whose every draw is seeded by (seed, trial number), their state read from the study:
# workers sharing a study share their seed.
TRIAL_KEYED = ("evolution", "epnas")

__all__ = ["EPNAS", "MULTI_OBJECTIVE", "SEARCHERS", "TRIAL_KEYED", "OptunaSearcher",
           "RegularizedEvolution", "SamplerFactory", "open_study"]
