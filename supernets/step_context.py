"""What the loop hands a method's step: backward, validation batches, all-reduce, rank.

Everything a method does that depends on how many processes train, or on data beyond the
step's batch, goes through this object, so distributed training changes the context and not
the methods (nanoGPT `train.py` keeps DDP inside its one loop the same way). This class is the
single-process context; the multi-process one (`supernets/ddp.py`) overrides `wrap` (the
model in DistributedDataParallel, synchronising gradients on a step's last pass only),
`all_reduce`, `all_gather`, `rank` and `world_size`.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from nas.errors import ConfigError
from supernets.precision import Precision

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (B,C,H,W), labels, dataset ids


class Batches(Protocol):
    indices: torch.Tensor  # dataset indices of the images an epoch draws from

    def __len__(self) -> int: ...
    # From batch `start` on, as if the batches before it had been drawn (a resume).
    def epoch(self, epoch: int, probabilities: np.ndarray | None = None,
              start: int = 0) -> Iterator[Batch]: ...


class StepContext:
    """One process, rank 0 of 1. The loop makes one per run and tells it where each step is.

    - `backward(loss, inputs=None)`: the only place a training pass calls backward. A step
      calls it exactly `method.backward_passes()` times (the loop checks), so a distributed
      context knows which pass is the last and synchronises gradients only then. `inputs`
      restricts which leaves accumulate gradient (torch's own argument): a bi-level method
      sends its validation loss to the architecture parameters alone.
    - `validation_batches()`: one endless stream of shuffled, augmented search-validation
      batches per run, continuing from step to step; its position is checkpointed, so a resumed
      run draws the same batches.
    - `all_reduce(tensor, op)`: the sum (or "min", "max") over processes, in place; and
      `all_gather(tensor)`: every process's tensor, concatenated in rank order (here: the
      tensor itself). Methods keep their state identical on every process with these, so the
      main process's checkpoint is the whole run's.
    - `rank`, `world_size`, `is_main`: only the main process writes checkpoints, TensorBoard
      and results.
    - `precision`: the run's numeric precision (`supernets/precision.py`), set by the loop;
      `backward` scales the loss for fp16 and runs outside autocast.
    """

    rank: int = 0
    world_size: int = 1

    def __init__(self, validation: Batches | None = None) -> None:
        self._validation = validation
        self.precision = Precision()  # the loop sets the run's
        self._stream: Iterator[Batch] | None = None
        self.validation_position = 0  # validation batches drawn so far in this run
        self.backward_calls = 0  # in the current step
        self.passes = 1  # backward passes a step makes (the method's; the loop sets it)
        self.epoch = self.step = self.global_step = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def begin_step(self, epoch: int, step: int, global_step: int) -> None:
        self.epoch, self.step, self.global_step = epoch, step, global_step
        self.backward_calls = 0

    def backward(self, loss: torch.Tensor, inputs: Sequence[torch.Tensor] | None = None) -> None:
        with self.precision.outside_autocast():
            self.precision.scale(loss).backward(inputs=list(inputs) if inputs is not None else None)
        self.backward_calls += 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module a step's passes run through (a distributed context: its DDP wrapper)."""
        return model

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def validation_batches(self) -> Iterator[Batch]:
        if self._validation is None:
            raise ConfigError("this method trains on validation batches, but the run has none; "
                              "train it through nas supernet / nas search")
        if self._stream is None:
            self._stream = self._endless(self.validation_position)
        return self._stream

    def _endless(self, start: int) -> Iterator[Batch]:
        per_epoch = len(self._validation)
        if per_epoch == 0:
            raise ConfigError("the search-validation split is smaller than one batch; lower "
                              "--batch-size")
        first_epoch, skip = divmod(start, per_epoch)  # whole epochs are skipped unmade
        for epoch in itertools.count(first_epoch):
            batches = self._validation.epoch(epoch, start=skip if epoch == first_epoch else 0)
            for batch in batches:
                self.validation_position += 1
                yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"validation_position": self.validation_position}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.validation_position = int(state.get("validation_position", 0))
        self._stream = None
