"""The training-method strategy: what one supernet training step does, and its hooks.

The loop (`supernets/loop.py`) owns the optimiser, schedule, clipping, checkpoints and logging;
a method owns which paths are trained on a batch and with which loss. A method's `train_step`
runs forward and backward itself because methods differ in how many paths share one optimiser
step (SPOS one, the sandwich rule several, with gradients accumulated).
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Mapping

import torch
from torch import nn

from nas.errors import ConfigError
from search_spaces.base import Sampler, SearchSpace, Supernet
from supernets.loop import Batches, StepMethod


@dataclass(frozen=True)
class MethodConfig:
    """Base of each method's options; subclasses add fields with defaults citing their source.

    `bn_mode` is how BatchNorm normalises when a path is scored (How to Train Your Super-Net
    compares both): "recalibrate" (default) recomputes running statistics for the path from
    training batches first (SPOS, AlphaNet, OFA); "batch-stats" normalises every evaluation batch
    by its own statistics, as supernets built without running statistics do (PA&DA, Few-Shot
    NAS and GM-NAS on NB201). Training is identical: training always uses batch statistics.
    """

    label_smoothing: float = 0.0  # SPOS on NB201 (PA&DA baselines) trains with plain CE
    bn_mode: Literal["recalibrate", "batch-stats"] = "recalibrate"

    def __post_init__(self) -> None:
        if self.bn_mode not in ("recalibrate", "batch-stats"):
            raise ConfigError(f"unknown bn_mode {self.bn_mode!r}; choose recalibrate or batch-stats")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingMethod(StepMethod):
    """A supernet training method: a sampler, a loss, and optional hooks (see `StepMethod`).

    `train_step` runs after the loop has zeroed gradients and must run the backward pass(es)
    and return the scalar loss it logs; the loop then clips and steps. `state_dict()` must hold
    everything needed to resume bit-identically, also mid-epoch. A method whose supernet is not
    the space's plain one (split supernets) overrides `build_supernet`; evaluation, search and
    export build the supernet through the method, so they see the same structure.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, space: SearchSpace, config: MethodConfig | None = None, seed: int = 0) -> None:
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise ConfigError(f"method {self.name} takes a {self.config_class.__name__}, "
                              f"got a {type(config).__name__}")
        self.space, self.config, self.seed = space, config, seed
        self.sampler = self.build_sampler()
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.batches: Batches | None = None

    def build_supernet(self) -> Supernet:
        return self.space.build_supernet()

    @abstractmethod
    def build_sampler(self) -> Sampler: ...

    @abstractmethod
    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor) -> float: ...

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches) -> None:
        self.model, self.optimizer, self.batches = model, optimizer, batches

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
