"""Numeric precision of training steps: fp32, or mixed precision with autocast.

"bf16" runs forward passes under `torch.autocast` in bfloat16: its exponent range is fp32's,
so no loss scaling is needed (CPUs and recent GPUs have it). "fp16" autocasts to float16 and
scales the loss with a `GradScaler` (float16 gradients underflow otherwise): `backward` scales,
the loop unscales before clipping (so clipping and PA&DA's norms see true gradients) and
`step` skips the optimisers' step when a gradient overflowed, as `torch.amp` prescribes.
"auto" is bf16 on a GPU that has it, fp16 on one that does not, fp32 on a CPU (mixed precision
on most CPUs is slower than fp32). Parameters, optimiser state and checkpoints stay fp32.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch

from nas.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: str) -> str:
    """The precision `precision` means on `device` ("auto" decided, the others checked)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    is_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        if not is_cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "bf16" and is_cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16 asked for, but this GPU has no bfloat16; use fp16")
    return precision


class Precision:
    """Autocast and loss scaling of one run's steps (module docstring)."""

    def __init__(self, precision: str = "fp32", device: str = "cpu") -> None:
        self.name = resolve_precision(precision, device)
        self.device_type = torch.device(device).type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)
        self.scaler = (torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def outside_autocast(self) -> contextlib.AbstractContextManager:
        """Backward runs with autocast off (torch.amp: backward passes under autocast are not
        recommended; each op's backward already runs in its forward's dtype)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, enabled=False)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale(self, optimizers: Iterator[torch.optim.Optimizer]) -> None:
        if self.scaler is not None:
            for optimizer in optimizers:
                self.scaler.unscale_(optimizer)

    def step(self, optimizers: Iterator[torch.optim.Optimizer]) -> None:
        """Every optimiser's step (skipped by the scaler after an overflow), then the scale's
        update."""
        if self.scaler is None:
            for optimizer in optimizers:
                optimizer.step()
            return
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, **({"scaler": self.scaler.state_dict()}
                                      if self.scaler is not None else {})}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
