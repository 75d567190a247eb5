"""Strict-fairness path sampling (FairNAS, Chu et al., ICCV 2021, "FairNAS: Rethinking
Evaluation Fairness of Weight Sharing Neural Architecture Search", Algorithm 1).

Every decision keeps a random permutation of its candidates; path t of a cycle takes, for each
decision, the (t mod K_d)-th entry of its permutation, and the decision draws a fresh
permutation when its cycle wraps. So each candidate of a decision is trained exactly once in
every K_d consecutive paths. FairNAS takes all K paths of a cycle on one batch, accumulates
their gradients and steps once (SPOS `paths=K`); with one path a step the same fairness holds
over K consecutive steps. Decisions of different sizes cycle independently (FairNAS's spaces
have one size; ours need not).
"""
from __future__ import annotations

import math
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from nas.errors import ConfigError
from search_spaces.base import Choice, Sampler, SearchSpace


class StrictFairSampler(Sampler):
    """FairNAS strict fairness over each decision's candidates but those in `exclude`.

    `exclude` holds choice values (e.g. `("none",)`) left out of every decision that has them,
    so that K'_d candidates cycle. Seeded; the generator, the current permutations and the
    position in them are its `state_dict`, so a resumed run draws the same paths.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, exclude: Collection[Choice] = ()) -> None:
        super().__init__(space)
        self.rng = np.random.default_rng(seed)
        self.allowed = [[i for i, c in enumerate(d.choices) if c not in exclude]
                        for d in space.decisions]
        empty = [d.name for d, row in zip(space.decisions, self.allowed) if not row]
        if empty:
            raise ConfigError(f"fair sampling without {', '.join(map(str, exclude))} leaves "
                              f"decision {empty[0]!r} of {space.name} no choice")
        self.permutations: list[list[int]] = [[] for _ in self.allowed]
        self.position = 0  # paths drawn so far

    def ask_indices(self, n: int = 1) -> list[tuple[int, ...]]:
        paths = []
        for _ in range(n):
            path = []
            for d, allowed in enumerate(self.allowed):
                t = self.position % len(allowed)
                if t == 0:  # this decision's cycle wraps (or starts): a fresh permutation
                    self.permutations[d] = [allowed[int(i)]
                                            for i in self.rng.permutation(len(allowed))]
                path.append(self.permutations[d][t])
            paths.append(tuple(path))
            self.position += 1
        return paths

    def path_weight(self, indices: Sequence[int]) -> float:
        """prod_d (1/K_d) / (1/K'_d): each decision's marginal is uniform over its K'_d allowed
        candidates (1.0 without exclusions); infinite for a path with an excluded candidate."""
        if any(i not in allowed for i, allowed in zip(indices, self.allowed)):
            return math.inf
        return math.prod(len(allowed) / len(d.choices)
                         for d, allowed in zip(self.space.decisions, self.allowed))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state,
                "permutations": [list(p) for p in self.permutations], "position": self.position}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.permutations = [[int(i) for i in p] for p in state["permutations"]]
        self.position = int(state["position"])
