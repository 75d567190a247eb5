"""How long a run trains: epochs, a number of optimiser steps, or a wall-clock budget.

`--epochs E` trains E epochs; `--steps N` exactly N optimiser steps (the last epoch cut short);
`--time-budget 10m` as many steps as fit in that wall time. A time budget is turned into a
number of steps once, early: after the first `RATE_STEPS` steps of the run (or the first
epoch, if shorter) their measured rate fixes the total, never more than `--epochs` allows. From
then on the run is a steps budget: learning-rate schedules and methods' epoch milestones (PA&DA's
smoothing, Few-Shot and GM-NAS splits) are functions of steps, and a resumed run continues with
the recorded total, bit-identically. The actual training time lands close to the budget on a
steady machine, and is recorded (`elapsed_s` in every checkpoint) and reported.
"""
from __future__ import annotations

import math
import re
from typing import Any

from nas.errors import ConfigError

RATE_STEPS = 20  # steps timed before a time budget is turned into a number of steps
_UNITS = {"s": 1, "m": 60, "h": 3600}


def check_warmup(config: Any, steps_per_epoch: int) -> None:
    """Refuse a warm-up that takes the whole budget of `config` (a `TrainConfig`), upper bound
    included: the schedule would never decay."""
    upper_bound = StepBudget(steps_per_epoch, config.epochs, config.steps, None).upper_bound
    warmup_epochs = config.warmup_epochs
    warmup = warmup_epochs * steps_per_epoch
    if warmup and warmup >= upper_bound:
        raise ConfigError(f"--warmup-epochs {warmup_epochs} is {warmup} steps, the whole budget "
                          f"of {upper_bound} steps or more; warm up for fewer epochs")


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m' or plain seconds ('600') -> seconds (> 0)."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif cleaned and re.fullmatch(r"(\d+(\.\d+)?[hms])+", cleaned):
        seconds = sum(float(value) * _UNITS[unit]
                      for value, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", cleaned))
    else:
        raise ConfigError(f"a time budget looks like 90s, 10m, 1h30m or plain seconds; got "
                          f"{text!r}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(f"a time budget must be more than 0 seconds, got {text!r}")
    return seconds


class StepBudget:
    """The run's total optimiser steps, known from the start or resolved from a time budget."""

    def __init__(self, steps_per_epoch: int, epochs: int, steps: int | None,
                 time_budget_s: float | None, resolved_steps: int | None = None) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.upper_bound = steps if steps is not None else epochs * steps_per_epoch
        self.time_budget_s = time_budget_s
        # A time budget trains towards the upper bound until its rate is measured.
        self.total = resolved_steps if resolved_steps is not None else self.upper_bound
        # Nothing to measure when the upper bound allows no step at all.
        self.is_resolved = (time_budget_s is None or resolved_steps is not None
                            or self.upper_bound == 0)
        self.rate_steps = min(RATE_STEPS, steps_per_epoch)

    @property
    def epochs(self) -> int:
        """Epochs the run touches (the last may be cut short)."""
        return math.ceil(self.total / self.steps_per_epoch) if self.steps_per_epoch else 0

    def resolve(self, steps_done: int, elapsed_s: float, timed_steps: int,
                timed_s: float) -> bool:
        """After `timed_steps` steps took `timed_s` seconds (and `elapsed_s` of the budget are
        spent, `steps_done` steps taken), fix the total. Returns whether it resolved now."""
        if self.is_resolved or timed_steps < self.rate_steps:
            return False
        rate = timed_steps / max(timed_s, 1e-9)
        remaining = max(self.time_budget_s - elapsed_s, 0.0)
        self.total = max(steps_done, min(self.upper_bound, steps_done + int(remaining * rate)))
        self.is_resolved = True
        return True
