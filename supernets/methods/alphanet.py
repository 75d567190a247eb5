"""AlphaNet: sandwich-rule supernet training with adaptive alpha-divergence in-place distillation.

Wang, Gong, Li, Liu, Chandra, "AlphaNet: Improved Training of Supernets with Alpha-Divergence",
ICML 2021; steps as the official `train_alphanet.py` `train_epoch`. Per batch:

1. the largest subnet learns the labels (label-smoothed cross-entropy, 0.1); its logits,
   detached, become the soft targets;
2. `paths_per_step - 1` more subnets, uniformly random ones and, last, the smallest (sandwich
   rule), each learn the soft targets with the adaptive alpha-divergence (`divergence.py`);
   no labels, no averaging: every path's gradient is added to the same `.grad`;
3. gradients are clipped by VALUE to `grad_clip_value` (`clip_grad_value_`), not by norm, so
   the config's `grad_clip_norm` is unused by this method; then the loop steps the method's
   optimiser (the default weights SGD).

Omitted: the official max subnet trains with dropout 0.2 and drop-connect 0.2 (last two
stages); this platform's supernets have neither layer, so every path runs without them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from search_spaces.base import Architecture, Sampler, SearchSpace, Supernet
from search_spaces.uniform import UniformSampler
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.methods.divergence import adaptive_alpha_divergence, kl_distillation
from supernets.step_context import StepContext


@dataclass(frozen=True)
class AlphaNetConfig(MethodConfig):
    label_smoothing: float = 0.1  # `train_alphanet_models.yml` label_smoothing, largest subnet's CE
    # `num_arch_training` (YAML: 4): the largest + random ones + the smallest; the code forces >= 2.
    paths_per_step: int = 4
    sandwich_rule: bool = True  # YAML sandwich_rule: the last path is the smallest subnet
    # "alpha": the paper's adaptive alpha-divergence; "kl": plain KD, KL(p || q) (its ablation).
    distillation: Literal["alpha", "kl"] = "alpha"
    alpha_min: float = -1.0  # YAML alpha_min
    alpha_max: float = 1.0  # YAML alpha_max
    iw_clip: float = 5.0  # YAML iw_clip: importance weights clamped to [0, beta = 5]
    grad_clip_value: float = 1.0  # YAML grad_clip_value (by value); 0 turns clipping off

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.paths_per_step < 2:
            raise ConfigError(f"paths_per_step must be >= 2 (the largest subnet teaches at least "
                              f"one other), got {self.paths_per_step}")
        if self.distillation not in ("alpha", "kl"):
            raise ConfigError(f"unknown distillation {self.distillation!r}; choose alpha or kl")
        if not (math.isfinite(self.alpha_min) and math.isfinite(self.alpha_max)
                and self.alpha_min <= self.alpha_max):
            raise ConfigError(f"alpha_min <= alpha_max must hold for finite values, got "
                              f"alpha_min={self.alpha_min}, alpha_max={self.alpha_max}")
        if not (self.iw_clip > 0 and math.isfinite(self.iw_clip)):
            raise ConfigError(f"iw_clip must be a finite number > 0, got {self.iw_clip}")
        if not (self.grad_clip_value >= 0 and math.isfinite(self.grad_clip_value)):
            raise ConfigError(f"grad_clip_value must be a finite number >= 0 (0: no clipping), "
                              f"got {self.grad_clip_value}")


class AlphaNet(TrainingMethod):
    name = "alphanet"
    config_class = AlphaNetConfig
    releases_zero_gradients = False  # paths add into `.grad` as PyTorch leaves it (module doc)

    def __init__(self, space: SearchSpace, config: AlphaNetConfig | None = None,
                 seed: int = 0) -> None:
        super().__init__(space, config, seed)
        # Asked once, here: a space without them fails when the method is built, not mid-run.
        self.largest = space.largest()
        self.smallest = space.smallest() if self.config.sandwich_rule else None

    def build_sampler(self) -> Sampler:
        return UniformSampler(self.space, self.seed)  # `sample_active_subnet`: uniform

    def paths(self) -> list[Architecture]:
        """This step's paths in training order: the largest, the random ones, the smallest."""
        n = self.config.paths_per_step
        if self.smallest is None:
            return [self.largest, *self.sampler.ask(n - 1)]
        return [self.largest, *self.sampler.ask(n - 2), self.smallest]

    def distill(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to backpropagate, detached value to log) of one student against the teacher."""
        c = self.config
        if c.distillation == "kl":
            return kl_distillation(student_logits, teacher_logits)
        return adaptive_alpha_divergence(student_logits, teacher_logits, c.alpha_min,
                                         c.alpha_max, c.iw_clip)

    def backward_passes(self) -> int:
        return self.config.paths_per_step

    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        """Backward of every path into the same gradients; returns the summed logged losses
        (the largest's cross-entropy plus each student's divergence)."""
        context = context or self.context
        largest, *students = self.paths()
        logits = supernet(images, largest)  # (B, K)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        context.backward(loss)
        teacher = logits.detach()  # soft targets: no gradient flows back into the teacher
        total = loss.detach()
        for arch in students:
            surrogate, value = self.distill(supernet(images, arch), teacher)
            context.backward(surrogate)
            total = total + value.detach()
        return total

    def clip_gradients(self, parameters: Sequence[torch.Tensor], max_norm: float) -> None:
        """By value, as `train_alphanet.py` (`clip_grad_value_`); the loop's `max_norm`
        (--grad-clip-norm) is ignored."""
        if self.config.grad_clip_value > 0:
            nn.utils.clip_grad_value_([p for p in parameters if p.grad is not None],
                                      self.config.grad_clip_value)
