"""The continuous relaxation gradient-based methods search: mixing weights over relaxed decisions.

DARTS (Liu et al., ICLR 2019) replaces each categorical choice by a weighted mixture of its
candidates and learns the weights by gradient descent. A space that supports it names its
*relaxed decisions* (`SearchSpace.relaxed_decisions`): they need not be its own decisions. NB201's
are its six edges over all five ops; DARTS's are the 14 edges of each cell over the 8 ops with
`none` (the space's decisions are the derived cells: an input pair and two ops per node); the
weight-entangled mobilenet relaxes kernel, expand ratio and depth at the largest resolution.
`SearchSpace.derive(probabilities)` turns learned weights back into an architecture by the
space's rule (argmax per decision; DARTS's top-2-inputs rule for its cells).

A `Mixture` is what a supernet's `forward(x, mixture)` takes instead of an architecture: one
weight vector per relaxed decision, in the space's order. The method makes it each step
(softmax of DARTS's alphas, a Dirichlet draw for DrNAS), so supernets never hold architecture
parameters themselves, just as they never hold an active path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from nas.errors import ConfigError


@dataclass(frozen=True)
class Mixture:
    """Mixing weights, `weights[i]` of shape (K_i,) for relaxed decision `names[i]`."""

    names: tuple[str, ...]
    weights: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.weights):
            raise ConfigError(f"a mixture needs one weight vector per decision: "
                              f"{len(self.names)} names, {len(self.weights)} vectors")

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.weights[self.names.index(name)]
        except ValueError:
            raise KeyError(f"the mixture has no decision {name!r}") from None

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(zip(self.names, self.weights))

    def stacked(self, names: Sequence[str]) -> torch.Tensor:
        """The named decisions' weights as one (len(names), K) matrix (equal K)."""
        return torch.stack([self[name] for name in names])

    def detach(self) -> "Mixture":
        """The same weights as constants: a weights step must not train the architecture."""
        return Mixture(self.names, tuple(w.detach() for w in self.weights))

    @staticmethod
    def one_hot(decisions, chosen: Sequence[int], device: torch.device | str = "cpu") -> "Mixture":
        """The mixture that puts all weight on candidate `chosen[i]` of each decision (tests)."""
        weights = []
        for decision, index in zip(decisions, chosen):
            w = torch.zeros(len(decision.choices), device=device)
            w[index] = 1.0
            weights.append(w)
        return Mixture(tuple(d.name for d in decisions), tuple(weights))
