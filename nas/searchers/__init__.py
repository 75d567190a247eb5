"""Searchers by name (`--searcher`): factories of Optuna samplers driven through ask/tell."""
from __future__ import annotations

from typing import Callable

import optuna

from nas.registry import Registry
from nas.searchers.evolution import RegularizedEvolution, evolution
from nas.searchers.optuna_search import OptunaSearcher, open_study, random, tpe

SEARCHERS: Registry[Callable[[int], optuna.samplers.BaseSampler]] = Registry("searcher")
SEARCHERS.register(tpe)
SEARCHERS.register(random)
SEARCHERS.register(evolution)

__all__ = ["SEARCHERS", "OptunaSearcher", "RegularizedEvolution", "open_study"]
