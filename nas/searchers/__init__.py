"""Searchers by name (`--searcher`): factories of Optuna samplers driven through ask/tell."""
from __future__ import annotations

from typing import Callable

import optuna

from nas.registry import Registry
from nas.searchers.epnas import EPNAS, epnas
from nas.searchers.evolution import RegularizedEvolution, evolution
from nas.searchers.optuna_search import OptunaSearcher, nsga2, open_study, random, tpe

SEARCHERS: Registry[Callable[[int], optuna.samplers.BaseSampler]] = Registry("searcher")
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
           "RegularizedEvolution", "open_study"]
