"""The base of the project's samplers (evolution, EPNAS): every draw comes from a generator
seeded by (seed, trial number), and all other state is read from the study's trials, so a
resumed study proposes what an uninterrupted one would and workers sharing a study share the
seed (`nas.search.loop.worker_seed`)."""
from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial

from nas.errors import ConfigError


class TrialKeyedSampler(optuna.samplers.BaseSampler):
    """Uniform draws for parameters outside the relative search space (the first trials)."""

    name = "sampler"
    seed = 0

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if not isinstance(param_distribution, CategoricalDistribution):
            raise ConfigError(f"{self.name} searches categorical decisions; {param_name} is "
                              f"{type(param_distribution).__name__}")
        rng = np.random.default_rng([self.seed, trial.number, zlib.crc32(param_name.encode())])
        return param_distribution.choices[rng.integers(len(param_distribution.choices))]
