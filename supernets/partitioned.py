"""A supernet split into sub-supernets, each owning a region of the space (Few-Shot NAS, GM-NAS).

A region allows, for some decisions, only a subset of their choices; the regions partition the
space, so every architecture has exactly one owner. `forward(x, arch)` and `subnet_state_dict`
route the architecture to its owner, which is why evaluation, search and export work on a split
supernet unchanged: to them it is one `Supernet`.

All sub-supernets are built up front (`capacity` of them, the most the method's split plan can
make), because the weights' optimiser is built once over fixed parameters. Until a split hands it a
region, a sub-supernet is unused: it gets no gradient, so SGD leaves it alone. The regions are
the module's extra state, saved in its state_dict, so a checkpoint restores its split.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from nas.errors import ArchitectureError, CheckpointError, ConfigError
from search_spaces.base import Architecture, SearchSpace, Supernet


def require_splittable(space: SearchSpace, decision: int) -> None:
    """Refuse a decision some architectures ignore: its canonicalised value would route them
    to a region that does not hold them (mobilenet's blocks beyond a stage's depth)."""
    if not space.is_always_active(decision):
        raise ConfigError(f"cannot split on {space.decisions[decision].name}: some "
                          f"architectures ignore it; choose a decision every architecture uses")


class Region:
    """Which sub-supernet owns it and, per constrained decision index, the allowed choice indices."""

    def __init__(self, part: int, allowed: dict[int, tuple[int, ...]] | None = None) -> None:
        self.part = part
        self.allowed = dict(allowed or {})

    def choices(self, space: SearchSpace, decision: int) -> tuple[int, ...]:
        return self.allowed.get(decision, tuple(range(len(space.decisions[decision].choices))))

    def contains(self, indices: Sequence[int]) -> bool:
        return all(indices[d] in allowed for d, allowed in self.allowed.items())

    def size(self, space: SearchSpace) -> int:
        """Number of choice combinations in the region (before any canonicalisation)."""
        return math.prod(len(self.choices(space, d)) for d in range(len(space.decisions)))

    def sample_indices(self, space: SearchSpace, rng: np.random.Generator) -> tuple[int, ...]:
        """Uniform inside the region: each decision uniform over its allowed choices."""
        return tuple(int(rng.choice(self.choices(space, d))) for d in range(len(space.decisions)))

    def sample(self, space: SearchSpace, rng: np.random.Generator) -> Architecture:
        return space.from_indices(self.sample_indices(space, rng))

    def to_state(self) -> list[Any]:
        return [self.part, [[d, list(allowed)] for d, allowed in sorted(self.allowed.items())]]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> "Region":
        part, allowed = state
        return cls(int(part), {int(d): tuple(int(i) for i in c) for d, c in allowed})


class PartitionedSupernet(Supernet):
    """`capacity` copies of the space's supernet; `regions` say which copy owns which architectures."""

    def __init__(self, space: SearchSpace, capacity: int) -> None:
        super().__init__(space)
        if capacity < 1:
            raise ConfigError(f"a split supernet needs capacity >= 1, got {capacity}")
        self.parts = nn.ModuleList(space.build_supernet() for _ in range(capacity))
        self.regions: list[Region] = [Region(0)]
        self.levels_done = 0  # how many rounds of splits have been made

    # ---- routing ----------------------------------------------------------------------------
    def owner(self, arch: Architecture) -> int:
        """Index (into `regions`) of the region that contains `arch`."""
        arch = self.space.check(arch)
        indices = [d.index(v) for d, v in zip(self.space.decisions, arch.values)]
        for i, region in enumerate(self.regions):
            if region.contains(indices):
                return i
        raise ArchitectureError(f"no sub-supernet owns {arch}; the split supernet is corrupt")

    def part_for(self, arch: Architecture) -> Supernet:
        return self.parts[self.regions[self.owner(arch)].part]

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self.part_for(arch)(x, arch)

    def subnet_state_dict(self, arch: Architecture, model: nn.Module) -> dict[str, torch.Tensor]:
        return self.part_for(arch).subnet_state_dict(arch, model)

    def candidate_ops(self) -> Iterator[nn.Module]:
        for part in self.parts:
            yield from part.candidate_ops()

    # ---- splitting --------------------------------------------------------------------------
    def split(self, region_index: int, decision: int, groups: Sequence[Sequence[int]]) -> list[int]:
        """Split a region on `decision` into one region per group of choice indices.

        The region keeps the first group; each further group gets a free sub-supernet that
        starts as a copy of the parent's weights (the weight transfer of Few-Shot NAS and
        GM-NAS). Returns the indices of the regions now covering the parent's architectures.
        """
        region = self.regions[region_index]
        require_splittable(self.space, decision)
        allowed = set(region.choices(self.space, decision))
        flat = [i for group in groups for i in group]
        if sorted(flat) != sorted(allowed) or len(groups) < 2 or any(not g for g in groups):
            raise ConfigError(f"groups {groups} do not partition the choices {sorted(allowed)} of "
                              f"{self.space.decisions[decision].name}")
        used = {r.part for r in self.regions}
        free = [p for p in range(len(self.parts)) if p not in used]
        if len(free) < len(groups) - 1:
            raise ConfigError(f"splitting needs {len(groups) - 1} free sub-supernets, "
                              f"{len(free)} are left (capacity {len(self.parts)})")
        parent = self.parts[region.part]
        result = [region_index]
        region.allowed[decision] = tuple(sorted(groups[0]))
        for group, part in zip(groups[1:], free):
            self.parts[part].load_state_dict(parent.state_dict())
            self.regions.append(Region(part, {**region.allowed, decision: tuple(sorted(group))}))
            result.append(len(self.regions) - 1)
        return result

    # ---- checkpoints ------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"regions": [r.to_state() for r in self.regions], "levels_done": self.levels_done}

    def set_extra_state(self, state: Any) -> None:
        try:
            regions = [Region.from_state(r) for r in state["regions"]]
            levels = int(state["levels_done"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"the split supernet's region table is malformed ({error})") from None
        if any(not 0 <= r.part < len(self.parts) for r in regions):
            raise CheckpointError(f"the checkpoint's regions use sub-supernets beyond capacity "
                                  f"{len(self.parts)}; was it trained with other method options?")
        self.regions, self.levels_done = regions, levels
