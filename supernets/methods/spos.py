"""SPOS: Single Path One-Shot with uniform sampling (Guo et al., ECCV 2020).

Each step trains one path drawn uniformly (one choice per decision) with cross-entropy. Paths
not taken get no gradient; the loop zeroes gradients to None so SGD's momentum and weight decay
leave unused choices untouched, as the official code does by setting all-zero gradients to None.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from search_spaces.base import Sampler, Supernet
from search_spaces.uniform import UniformSampler
from supernets.methods.base import TrainingMethod


class SPOS(TrainingMethod):
    name = "spos"

    def build_sampler(self) -> Sampler:
        return UniformSampler(self.space, self.seed)

    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor) -> float:
        (arch,) = self.sampler.ask(1)
        loss = F.cross_entropy(supernet(images, arch), labels,
                               label_smoothing=self.config.label_smoothing)
        loss.backward()
        return float(loss.detach())
