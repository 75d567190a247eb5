"""Importance sampling of paths: each decision's candidate drawn independently from its own
probabilities (PA&DA's path sampler), the smoothing of scores into such probabilities, and the
fixed weighting that draws `none` less often (`WeightedChoiceSampler`).

A sibling of `uniform.py`: where SPOS draws every candidate with 1/K, this sampler draws them
with probabilities a training method sets, and reports the weight that turns an expectation
under it back into the uniform one.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from nas.errors import ConfigError
from search_spaces.base import SearchSpace
from search_spaces.uniform import UniformSampler


def smoothed(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """tau * scores/sum(scores) + (1 - tau) * uniform; uniform when no score is positive."""
    uniform = torch.full_like(scores, 1.0 / len(scores))
    total = scores.sum()
    return tau * scores / total + (1.0 - tau) * uniform if total > 0 else uniform


class ImportanceSampler(UniformSampler):
    """Draws each decision's candidate independently from its own probabilities (uniform until
    `set_probabilities`). Seeded; probabilities join the generator state in its `state_dict`."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.set_probabilities([[1.0 / len(d.choices)] * len(d.choices) for d in space.decisions])

    def set_probabilities(self, probabilities: Sequence[Sequence[float]]) -> None:
        rows = [[float(p) for p in row] for row in probabilities]
        sizes = [len(d.choices) for d in self.space.decisions]
        is_distribution = [all(math.isfinite(x) and x >= 0 for x in r) and abs(sum(r) - 1) < 1e-6
                           for r in rows]
        if [len(r) for r in rows] != sizes or not all(is_distribution):
            raise ValueError(f"path probabilities must be one distribution per decision, of "
                             f"sizes {sizes}")
        self.probabilities = rows
        self._cumulative = [np.cumsum(r) for r in rows]

    def ask_indices(self, n: int = 1) -> list[tuple[int, ...]]:
        """n paths as one candidate index per decision (before any canonicalisation)."""
        paths = []
        for _ in range(n):
            draws = self.rng.random(len(self._cumulative))
            paths.append(tuple(min(int(np.searchsorted(c, u, side="right")), len(c) - 1)
                               for c, u in zip(self._cumulative, draws)))
        return paths

    def probability(self, indices: Sequence[int]) -> float:
        return math.prod(row[i] for row, i in zip(self.probabilities, indices))

    def path_weight(self, indices: Sequence[int]) -> float:
        """(1/|A|) / q(a) = prod_d 1 / (K_d q_d(c_d)): the ratio of uniform to sampled chance;
        infinite for a path this sampler never draws."""
        q = [row[i] for row, i in zip(self.probabilities, indices)]
        if 0.0 in q:
            return math.inf
        return math.prod(1.0 / (len(row) * p) for row, p in zip(self.probabilities, q))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "probabilities": [list(r) for r in self.probabilities]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.set_probabilities(state["probabilities"])


def none_weighted(choices: Sequence[Any], none_weight: float) -> list[float]:
    """w / (K - 1 + w) for "none", 1 / (K - 1 + w) for each other choice; uniform without none."""
    if "none" not in choices or len(choices) == 1:
        return [1.0 / len(choices)] * len(choices)
    total = len(choices) - 1 + none_weight
    return [(none_weight if c == "none" else 1.0) / total for c in choices]


class WeightedChoiceSampler(ImportanceSampler):
    """Uniform sampling with `none` down-weighted: in every decision with a choice named "none"
    (NB201's edges), P(none) = w / (K - 1 + w) and every other choice 1 / (K - 1 + w); other
    decisions stay uniform. Fixed probabilities, so `path_weight` is exact. w = 0 never draws
    `none`; w = 1 is uniform (SPOS then builds a `UniformSampler`, whose draws these are not).
    A space without `none` is refused: the option would silently change nothing.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, none_weight: float = 1.0) -> None:
        super().__init__(space, seed)
        if not 0.0 <= none_weight <= 1.0:
            raise ConfigError(f"none_weight must lie in [0, 1], got {none_weight}")
        if not any("none" in d.choices for d in space.decisions):
            raise ConfigError(f"none_weight needs a space with a 'none' choice; {space.name} "
                              f"has none")
        self.none_weight = none_weight
        self.set_probabilities([none_weighted(d.choices, none_weight) for d in space.decisions])

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The generator only: the probabilities are the option's, not learned."""
        UniformSampler.load_state_dict(self, state)
