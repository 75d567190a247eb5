"""Regularised (aging) evolution as an Optuna sampler (Real et al., AAAI 2019).

Each new architecture is a mutant of a tournament's winner: S trials are drawn at random from
the population, the best of them is copied and one of its decisions is changed to another
choice. The population is the last P completed trials of the study, so the oldest leaves as each
new one enters ("aging"), and the sampler needs no state of its own: a resumed search, or
several workers on one study, see the population in the study itself. Until P trials have
completed, architectures are drawn uniformly (the random initial population).

Defaults are NAS-Bench-201's R-EA (AutoDL-Projects `scripts-search/algos/R-EA.sh`: population
10, sample size 3); its mutation likewise picks one decision and a choice other than the current
one. Every random draw comes from a generator seeded by (seed, trial number), so a resumed study
proposes exactly what an uninterrupted one would.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError
from nas.searchers.optuna_search import ConstraintsFunc
from nas.searchers.trial_keyed import TrialKeyedSampler

POPULATION, SAMPLE_SIZE = 10, 3  # NAS-Bench-201 R-EA.sh


class RegularizedEvolution(TrialKeyedSampler):
    """Aging evolution over categorical parameters (module doc)."""

    name = "evolution"

    def __init__(self, population: int = POPULATION, sample_size: int = SAMPLE_SIZE,
                 seed: int = 0) -> None:
        if not 1 <= sample_size <= population:
            raise ConfigError(f"evolution needs 1 <= sample size <= population, got sample "
                              f"{sample_size} from {population}")
        self.population, self.sample_size, self.seed = population, sample_size, seed

    def _population(self, study: optuna.Study) -> list[FrozenTrial]:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return sorted(done, key=lambda t: t.number)[-self.population:]

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        population = self._population(study)
        if len(population) < self.population:
            return {}  # still building the random initial population
        return {name: dist for name, dist in population[-1].distributions.items()
                if isinstance(dist, CategoricalDistribution)}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        population = self._population(study)
        rng = np.random.default_rng([self.seed, trial.number])
        contenders = [population[i] for i in
                      rng.choice(len(population), size=self.sample_size, replace=False)]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        parent = max(contenders, key=lambda t: sign * float(t.value))
        params = {name: parent.params[name] for name in search_space if name in parent.params}
        mutable = sorted(name for name, dist in search_space.items()
                         if len(dist.choices) > 1 and name in params)
        if mutable:
            name = mutable[rng.integers(len(mutable))]
            others = [c for c in search_space[name].choices if c != params[name]]
            params[name] = others[rng.integers(len(others))]
        return params


def evolution(seed: int, constraints_func: ConstraintsFunc | None = None
              ) -> optuna.samplers.BaseSampler:
    return RegularizedEvolution(seed=seed)  # constraints: rejection alone (PRUNED: no member)
