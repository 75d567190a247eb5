"""SPOS: Single Path One-Shot with uniform sampling (Guo et al., ECCV 2020).

Each step trains one path drawn uniformly (one choice per decision) with cross-entropy. Paths
not taken get no gradient (the loop zeroes gradients to None), and ops the path ran on a zero
node get an all-zero one, which is set to None as the official code does: SGD's momentum and
weight decay leave both untouched.

`paths` > 1 accumulates the gradients of that many uniform paths on the same batch before one
optimiser step (the "number of paths per step" heuristic of How to Train Your Super-Net; FairNAS
uses as many paths as candidates). The loss is averaged over the paths so the learning rate
means the same for every setting.

`sampling` picks which paths (`build_sampler`); each changes only the draws, never the loss:

- "uniform" (default): SPOS, every decision uniform and independent. `none_weight` w < 1
  down-weights `none` in every decision that has it (NB201's edges): P(none) = w/(K-1+w),
  each other op 1/(K-1+w); w = 0 never samples it (`WeightedChoiceSampler`). w = 1 is the
  plain `UniformSampler`, draw for draw.
- "fair": FairNAS strict fairness (Chu et al., ICCV 2021): each decision cycles through a random
  permutation of its ops, so every op is trained once in every K consecutive paths
  (`StrictFairSampler`). With `paths` = K (NB201: 5) that is FairNAS proper: K paths on one
  batch, gradients accumulated, one step. none_weight 0 leaves `none` out of the cycle.
- "deiso": de-isomorphic sampling (Ning et al., NeurIPS 2021): an isomorphism class of cells
  uniformly, then a member of it (`IsomorphismClassSampler`); nb201 only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from search_spaces.base import Architecture, Sampler, Supernet
from search_spaces.fair import StrictFairSampler
from search_spaces.importance import WeightedChoiceSampler
from search_spaces.isomorphism import IsomorphismClassSampler
from search_spaces.uniform import UniformSampler
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.step_context import StepContext


@dataclass(frozen=True)
class SPOSConfig(MethodConfig):
    paths: int = 1  # SPOS: one path per step
    # Which paths (module doc): SPOS's uniform draws, FairNAS's strict fairness, or Ning et
    # al.'s de-isomorphic classes.
    sampling: Literal["uniform", "fair", "deiso"] = "uniform"
    # Weight w of `none` against 1 for each other op: 1 is SPOS's uniform, 0 leaves none out.
    none_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.paths < 1:
            raise ConfigError(f"paths must be >= 1, got {self.paths}")
        if self.sampling not in ("uniform", "fair", "deiso"):
            raise ConfigError(f"unknown sampling {self.sampling!r}; choose uniform, fair or deiso")
        if not 0.0 <= self.none_weight <= 1.0:  # also refuses nan
            raise ConfigError(f"none_weight must lie in [0, 1], got {self.none_weight}")
        if self.sampling == "fair" and self.none_weight not in (0.0, 1.0):
            raise ConfigError(f"fair sampling permutes ops; none_weight must be 1 (all ops) or 0 "
                              f"(without none), got {self.none_weight}")
        if self.sampling == "deiso" and self.none_weight != 1.0:
            raise ConfigError(f"deiso sampling draws isomorphism classes uniformly; none_weight "
                              f"must be 1, got {self.none_weight}")


def single_path_step(supernet: Supernet, arch: Architecture, images: torch.Tensor,
                     labels: torch.Tensor, label_smoothing: float, context: StepContext,
                     paths: int = 1) -> torch.Tensor:
    """Cross-entropy of one of a step's `paths` paths, divided by their number, backward;
    returns that share of the step's loss (detached, on the device)."""
    loss = F.cross_entropy(supernet(images, arch), labels, label_smoothing=label_smoothing) / paths
    context.backward(loss)
    return loss.detach()


class SPOS(TrainingMethod):
    name = "spos"
    config_class = SPOSConfig

    def build_sampler(self) -> Sampler:
        config = self.config
        if config.sampling == "fair":
            exclude = ("none",) if config.none_weight == 0.0 else ()
            if exclude and not any("none" in d.choices for d in self.space.decisions):
                raise ConfigError(f"none_weight needs a space with a 'none' choice; "
                                  f"{self.space.name} has none")
            return StrictFairSampler(self.space, self.seed, exclude=exclude)
        if config.sampling == "deiso":
            return IsomorphismClassSampler(self.space, self.seed)
        if config.none_weight == 1.0:
            return UniformSampler(self.space, self.seed)
        return WeightedChoiceSampler(self.space, self.seed, none_weight=config.none_weight)

    def backward_passes(self) -> int:
        return self.config.paths

    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        context = context or self.context
        loss = sum(single_path_step(supernet, arch, images, labels, self.config.label_smoothing,
                                    context, self.config.paths)
                   for arch in self.sampler.ask(self.config.paths))
        self.release_zero_gradients(supernet)
        return loss
