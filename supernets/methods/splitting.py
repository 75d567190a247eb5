"""What Few-Shot NAS and GM-NAS share: a supernet that is split into sub-supernets mid-training.

Training runs as SPOS until the first split epoch; then, at each split epoch, every current
sub-supernet's region is split on one decision (`plan_split`, the methods' difference) and the
new sub-supernets start from the parent's weights and its SGD momentum (weight transfer, as
both official codes copy weights and optimiser state). After a split each step first picks a
sub-supernet uniformly, then a path uniformly inside its region, so every sub-supernet trains
for the same number of steps, as in the official codes where each trains for the same epochs.
The total number of steps is the run's, so methods compare at an equal training budget, and
the run's one learning-rate schedule continues through the splits (the official Few-Shot code
restarts a schedule per sub-supernet, which an equal budget cannot: a documented deviation).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import Sequence

import torch

from nas.errors import ConfigError
from search_spaces.base import Sampler, SearchSpace, Supernet
from search_spaces.uniform import UniformSampler
from supernets.methods.base import TrainingMethod
from supernets.methods.spos import single_path_step
from supernets.partitioned import PartitionedSupernet, Region
from supernets.step_context import StepContext


class RegionSampler(UniformSampler):
    """A sub-supernet uniformly, then each decision uniformly over the region's choices.
    Its state is the uniform sampler's generator; the regions belong to the supernet."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        super().__init__(space, seed)
        self.regions: Sequence[Region] = [Region(0)]

    def ask_indices(self, n: int = 1) -> list[tuple[int, ...]]:
        return [self.regions[int(self.rng.integers(len(self.regions)))].sample_indices(self.space,
                                                                                      self.rng)
                for _ in range(n)]

    def path_weight(self, indices: Sequence[int]) -> float:
        """(1/|A|) / q(a), with q(a) = 1/R times the uniform chance inside a's region."""
        (region,) = [r for r in self.regions if r.contains(indices)]
        inside = math.prod(1 / len(region.choices(self.space, d)) for d in range(len(indices)))
        uniform = math.prod(1 / len(d.choices) for d in self.space.decisions)
        return uniform / (inside / len(self.regions))


def split_epochs(fractions: Sequence[float], epochs: int) -> list[int]:
    """The epochs (at whose start) splits happen: each fraction of the run, rounded down."""
    return [min(epochs, math.floor(f * epochs + 1e-9)) for f in fractions]


def parse_fractions(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated fractions of the run such as "
                          f"0.25,0.5; got {text!r}") from None
    if not values or any(not 0 <= v < 1 for v in values) or list(values) != sorted(values):
        raise ConfigError(f"{what} must be increasing fractions in [0, 1), got {text!r}")
    return values


def find_decision(space: SearchSpace, name: str) -> int:
    names = [d.name for d in space.decisions]
    if name not in names:
        raise ConfigError(f"{space.name} has no decision {name!r}; decisions: {', '.join(names)}")
    return names.index(name)


class SplitTraining(TrainingMethod):
    """Base of the splitting methods; subclasses say how many splits, when, and on what."""

    def build_sampler(self) -> Sampler:
        return RegionSampler(self.space, self.seed)

    def make_supernet(self) -> PartitionedSupernet:
        return PartitionedSupernet(self.space, self.capacity())

    @abstractmethod
    def capacity(self) -> int:
        """The most sub-supernets the split plan can make."""

    @abstractmethod
    def split_fractions(self) -> Sequence[float]:
        """When each round of splits happens, as fractions of the run."""

    @abstractmethod
    def plan_split(self, supernet: PartitionedSupernet, region_index: int,
                   level: int) -> tuple[int, list[list[int]]] | None:
        """The decision to split a region on and the groups of its choices; None: leave it."""

    def setup(self, model, optimizer, batches, context=None) -> None:
        super().setup(model, optimizer, batches, context)
        if not isinstance(model, PartitionedSupernet):
            raise ConfigError(f"{self.name} trains a split supernet; build it with the method's "
                              f"build_supernet()")
        self.sampler.regions = model.regions

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Make the rounds of splits due by `epoch` that the supernet has not made yet, so a
        resumed run (whose checkpoint holds the regions) does not split twice."""
        supernet = self.model
        for level, at in enumerate(split_epochs(self.split_fractions(), epochs)):
            if level < supernet.levels_done or at > epoch:
                continue
            for region_index in range(len(supernet.regions)):
                plan = self.plan_split(supernet, region_index, level)
                if plan is not None:
                    self._split(supernet, region_index, *plan)
            supernet.levels_done = level + 1
        self.sampler.regions = supernet.regions

    def _split(self, supernet: PartitionedSupernet, region_index: int, decision: int,
               groups: list[list[int]]) -> None:
        parent = supernet.parts[supernet.regions[region_index].part]
        for new_index in supernet.split(region_index, decision, groups)[1:]:
            child = supernet.parts[supernet.regions[new_index].part]
            for source, target in zip(parent.parameters(), child.parameters()):
                state = self.optimizer.state.get(source)
                if state:
                    self.optimizer.state[target] = {k: v.clone() if torch.is_tensor(v) else v
                                                    for k, v in state.items()}

    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        (arch,) = self.sampler.ask(1)
        loss = single_path_step(supernet, arch, images, labels, self.config.label_smoothing,
                                context or self.context)
        self.release_zero_gradients(supernet)
        return loss
