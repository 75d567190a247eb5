"""De-isomorphic path sampling (Ning et al., "Evaluating Efficient Performance Estimators of
Neural Architectures", NeurIPS 2021, Sec. 4: "de-isomorphism sampling").

Uniform sampling over cells trains a function as often as it has spellings: on NB201 the 460
cells that compute one 1x1 conv of the input draw 460 times the share of a cell nobody else
spells. De-isomorphic sampling draws an isomorphism class uniformly instead, then one of its
members uniformly. Ning et al. (aw_nas) train the class's representative; drawing a member is
our choice: equivalent cells run different weights of the supernet, and drawing among them
spreads the class's training over all of them rather than one.

Classes are `space.isomorphism_key`'s: this platform's exact key gives 5,425 classes of NB201's
15,625 cells, where aw_nas and NB201's `Structure.to_unique_str` count 6,466 (the key's
docstring says why they differ). Keys depend only on a cell's ops, not on the skeleton, so
the class table is built once per space name (enumerating NB201 and keying every cell: ~0.6 s
on one busy CPU core, then cached for the process).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from nas.errors import ConfigError
from search_spaces.base import Sampler, SearchSpace

_CLASS_TABLES: dict[tuple[str, tuple[Any, ...]], "_ClassTable"] = {}


class _ClassTable:
    """The space's cells grouped by isomorphism key: `members[c]` is an (n_c, D) array of the
    index tuples of class c (classes in order of their first cell in `space.enumerate()`), and
    `class_of` maps an index tuple to its class."""

    def __init__(self, space: SearchSpace) -> None:
        groups: dict[str, list[tuple[int, ...]]] = {}
        ranges = [len(d.choices) for d in space.decisions]
        for indices in np.ndindex(*ranges):
            key = space.isomorphism_key(space.from_indices(indices))
            groups.setdefault(key, []).append(tuple(int(i) for i in indices))
        self.members = [np.array(group, dtype=np.int64) for group in groups.values()]
        self.sizes = np.array([len(group) for group in groups.values()], dtype=np.int64)
        self.class_of = {indices: c for c, group in enumerate(groups.values())
                         for indices in group}
        self.total = int(self.sizes.sum())


def class_table(space: SearchSpace) -> _ClassTable:
    """The space's isomorphism classes, built on first use and cached per space name."""
    if not hasattr(space, "isomorphism_key"):
        raise ConfigError(f"deiso sampling needs a space with isomorphism classes (nb201); "
                          f"{space.name} has none")
    key = (space.name, tuple((d.name, d.choices) for d in space.decisions))
    if key not in _CLASS_TABLES:
        _CLASS_TABLES[key] = _ClassTable(space)
    return _CLASS_TABLES[key]


class IsomorphismClassSampler(Sampler):
    """Draws an isomorphism class uniformly, then a member of it uniformly (module doc).
    Seeded; the generator state is its `state_dict`."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space)
        self.table = class_table(space)
        self.rng = np.random.default_rng(seed)

    @property
    def num_classes(self) -> int:
        return len(self.table.members)

    def ask_indices(self, n: int = 1) -> list[tuple[int, ...]]:
        classes = self.rng.integers(self.num_classes, size=n)
        members = self.rng.integers(self.table.sizes[classes])
        return [tuple(int(i) for i in self.table.members[c][m]) for c, m in zip(classes, members)]

    def path_weight(self, indices: Sequence[int]) -> float:
        """(1/N) / (1/(C |class|)) = C |class| / N, for N cells in C classes."""
        size = self.table.sizes[self.table.class_of[tuple(int(i) for i in indices)]]
        return self.num_classes * int(size) / self.table.total

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
