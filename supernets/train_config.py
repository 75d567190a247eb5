"""What a training run is told: its budget, optimiser settings, schedule, device and precision."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from nas.errors import ConfigError
from supernets.precision import PRECISIONS


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    lr: float = 0.05               # PA&DA / SPOS-on-NB201 supernet learning rate
    momentum: float = 0.9
    nesterov: bool = True          # NB201 benchmark and Few-Shot NAS training use Nesterov
    weight_decay: float = 2.5e-4   # PA&DA NB201 supernet
    grad_clip_norm: float = 5.0    # DARTS / PA&DA clip gradient norm to 5; 0: no clipping
    warmup_epochs: int = 0         # NB201 trains without warm-up
    # How to Train Your Super-Net: the schedule matters more than most heuristics. Cosine is what
    # NB201, SPOS-on-NB201 (PA&DA), Few-Shot NAS and GM-NAS use; SPOS on ImageNet decays linearly.
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    seed: int = 0
    device: str = "auto"  # cuda when there is one (`nas.problem.resolve_device`)
    # fp32, bf16 or fp16 autocast (`supernets/precision.py`); auto: bf16/fp16 on a GPU, fp32 on CPU.
    precision: str = "auto"
    # Channels-last memory format for model and batches (faster convolutions on GPUs with
    # tensor cores); None: on for CUDA, off on CPU.
    channels_last: bool | None = None
    # torch.compile a stand-alone model's forward (`nas train --compile`); a supernet's graph
    # changes with every path, so supernet runs refuse it.
    compile: bool = False
    checkpoint_every_steps: int = 100  # also at every epoch end; 0 = only at epoch ends
    # Budgets beside `epochs` (`supernets/budget.py`): exactly `steps` optimiser steps, or as many
    # as fit in `time_budget_s` seconds (then `epochs` is the upper bound). At most one.
    steps: int | None = None
    time_budget_s: float | None = None
    # Snapshots kept along the run for ranking-versus-budget curves: "" none, "N" at N evenly
    # spaced steps (the last one the end), or steps "1000,5000".
    keep_checkpoints: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:  # also refuses nan
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.grad_clip_norm >= 0:
            raise ConfigError(f"grad_clip_norm must be >= 0 (0: no clipping), got "
                              f"{self.grad_clip_norm}")
        if self.lr_schedule not in ("cosine", "linear", "constant"):
            raise ConfigError(f"unknown lr_schedule {self.lr_schedule!r}; choose cosine, linear "
                              f"or constant")
        if not 0 <= self.warmup_epochs <= max(self.epochs, 0):
            raise ConfigError(f"warmup_epochs must lie in [0, epochs={self.epochs}], got "
                              f"{self.warmup_epochs}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.time_budget_s is not None and not (self.time_budget_s > 0
                                                   and math.isfinite(self.time_budget_s)):
            raise ConfigError(f"time_budget_s must be a number of seconds > 0, got "
                              f"{self.time_budget_s}")
        if self.steps is not None and self.time_budget_s is not None:
            raise ConfigError("give one budget: --steps or --time-budget, not both")
        kept_steps(self.keep_checkpoints, 1)  # a malformed value fails now, not mid-run
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose "
                              f"{', '.join(PRECISIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kept_steps(spec: str, total_steps: int) -> set[int]:
    """The steps (counted from 1) after which `keep_checkpoints = spec` keeps a snapshot."""
    text = spec.strip()
    if not text:
        return set()
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"keep_checkpoints is a count N or steps such as 1000,5000; got {spec!r}")
    if "," not in text:
        count = values[0]
        return {max(1, round(total_steps * i / count)) for i in range(1, count + 1)}
    return {v for v in values if v <= total_steps}
