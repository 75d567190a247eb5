"""Uniform single-path sampling (SPOS, Guo et al. 2020): each decision drawn uniformly, independently."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from search_spaces.base import Architecture, Sampler, SearchSpace


class UniformSampler(Sampler):
    """The SPOS baseline sampler. Seeded; its generator state is part of `state_dict`."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self, n: int = 1) -> list[Architecture]:
        return [self.space.sample(self.rng) for _ in range(n)]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
