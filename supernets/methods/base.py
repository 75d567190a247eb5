"""The training-method strategy: what one supernet training step does, and its hooks.

The loop (`supernets/loop.py`) owns the optimiser, schedule, clipping, checkpoints and logging;
a method owns which paths are trained on a batch and with which loss. A method's `train_step`
runs forward and backward itself because methods differ in how many paths share one optimiser
step (SPOS one, the sandwich rule several, with gradients accumulated).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping

import torch

from search_spaces.base import Sampler, SearchSpace, Supernet


@dataclass(frozen=True)
class MethodConfig:
    """Base of each method's options; subclasses add fields with defaults citing their source."""

    label_smoothing: float = 0.0  # SPOS on NB201 (PA&DA baselines) trains with plain CE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingMethod(ABC):
    """A supernet training method: a sampler, a loss, and optional hooks.

    Protocol, called by the loop: `on_epoch_start(epoch, epochs)`; then per batch, after the loop
    has zeroed gradients, `train_step(supernet, images, labels, sample_ids)` which must run the
    backward pass(es) and return the scalar loss it logs; the loop then clips and steps;
    `on_epoch_end(epoch)`. `state_dict()` must hold everything needed to resume bit-identically,
also mid-epoch; `on_epoch_start` runs again for the epoch a resumed run continues, so it must
only set what follows from (epoch, epochs).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, space: SearchSpace, config: MethodConfig, seed: int) -> None:
        self.space, self.config, self.seed = space, config, seed
        self.sampler = self.build_sampler()

    @abstractmethod
    def build_sampler(self) -> Sampler: ...

    @abstractmethod
    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor) -> float: ...

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Default: nothing to schedule."""

    def on_epoch_end(self, epoch: int) -> None:
        """Default: nothing to update."""

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
