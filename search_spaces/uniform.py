"""Uniform single-path sampling (SPOS, Guo et al. 2020): each decision drawn uniformly, independently."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from search_spaces.base import Sampler, SearchSpace


class UniformSampler(Sampler):
    """The SPOS baseline sampler. Seeded; its generator state is part of `state_dict`."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space)
        self.rng = np.random.default_rng(seed)

    def ask_indices(self, n: int = 1) -> list[tuple[int, ...]]:
        # The same draws, in the same order, as `space.sample`.
        return [tuple(int(self.rng.integers(len(d.choices))) for d in self.space.decisions)
                for _ in range(n)]

    def path_weight(self, indices: Sequence[int]) -> float:
        return 1.0

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
