"""The training loss as the loop logs it: summed on the device, read every few steps."""
from __future__ import annotations

import math

import torch

from nas.errors import TrainingError
from supernets.step_context import StepContext

LOG_EVERY_STEPS = 10  # the loss is read from the device (and checked) this often


class LossLog:
    """Losses summed on the device and read every `LOG_EVERY_STEPS` steps, before every
    checkpoint and at the end: one device-to-host read per interval, not per step. The mean over
    the interval and over processes is what is logged; a non-finite one stops the run before
    any checkpoint holds its weights."""

    def __init__(self, context: StepContext) -> None:
        self.context = context
        self.total: torch.Tensor | float = 0.0
        self.count, self.first_step = 0, 0

    def add(self, loss: torch.Tensor | float, global_step: int) -> None:
        if self.count == 0:
            self.first_step = global_step
        loss = loss.detach().float() if torch.is_tensor(loss) else loss
        self.total = self.total + loss
        self.count += 1

    def read(self, last_saved: str) -> float | None:
        """The interval's mean loss (None if empty), raising if it is not finite."""
        if self.count == 0:
            return None
        total = torch.as_tensor(self.total, dtype=torch.float64).reshape(1).cpu()
        self.context.all_reduce(total)
        mean = float(total) / (self.count * self.context.world_size)
        steps = f"global steps {self.first_step}-{self.first_step + self.count - 1}"
        self.total, self.count = 0.0, 0
        if not math.isfinite(mean):
            raise TrainingError(f"loss became {mean} within {steps}; the last checkpoint is "
                                f"{last_saved}; lower the learning rate")
        return mean
