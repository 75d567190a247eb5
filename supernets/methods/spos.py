"""SPOS: Single Path One-Shot with uniform sampling (Guo et al., ECCV 2020).

Each step trains one path drawn uniformly (one choice per decision) with cross-entropy. Paths
not taken get no gradient (the loop zeroes gradients to None), and ops the path ran on a zero
node get an all-zero one, which is set to None as the official code does: SGD's momentum and
weight decay leave both untouched.

`paths` > 1 accumulates the gradients of that many uniform paths on the same batch before one
optimiser step (the "number of paths per step" heuristic of How to Train Your Super-Net; FairNAS
uses as many paths as candidates). The loss is averaged over the paths so the learning rate
means the same for every setting.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from search_spaces.base import Architecture, Sampler, Supernet
from search_spaces.uniform import UniformSampler
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.step_context import StepContext


@dataclass(frozen=True)
class SPOSConfig(MethodConfig):
    paths: int = 1  # SPOS: one path per step

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.paths < 1:
            raise ConfigError(f"paths must be >= 1, got {self.paths}")


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
        return UniformSampler(self.space, self.seed)

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
