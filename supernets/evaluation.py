"""Scoring a network: BatchNorm recalibration and top-1 accuracy.

BatchNorm policy of the platform's supernets. Every path of a supernet shares BatchNorm layers
whose running statistics, accumulated while training random paths, belong to no single
architecture. Before an architecture is evaluated its statistics are therefore recomputed: every
BatchNorm is reset and fed a fixed set of training batches in train mode with `momentum=None`
(an exact cumulative average), as SPOS does (megvii SinglePathOneShot `tester.py`, 200 batches;
AlphaNet `post_bn_calibration_batch_num` 64). Weights are untouched.

The alternative policy (`batch_statistics=True` in `accuracy`) normalises each evaluation batch
by its own statistics, as supernets built without running statistics do (PA&DA, Few-Shot NAS).
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]


class EvaluationSource(Protocol):
    def epoch(self, epoch: int = 0) -> Iterator[Any]: ...


@dataclass(frozen=True)
class ScoringData:
    """The data a method scores an architecture on: `evaluation` batches (search-validation
    for search and ranking, test for reported accuracy) and, for BatchNorm recalibration,
    un-augmented training batches (`calibration`; how many is the method's setting).

    `per_image_evaluation`, where given, holds the evaluation images again in whatever batches
    and memory layout run fastest (`nas.data.PreparedBatches`): for a score with running
    statistics, which treats every image alone, so the grouping changes no prediction beyond
    float rounding. Batch-statistics scoring normalises each batch by itself and always reads
    `evaluation`'s batches.
    """

    evaluation: EvaluationSource
    calibration: EvaluationSource | None = None
    per_image_evaluation: EvaluationSource | None = None

    def per_image_batches(self) -> Iterator[Any]:
        """The evaluation batches for a score that treats every image alone (eval mode)."""
        source = self.evaluation if self.per_image_evaluation is None else self.per_image_evaluation
        return source.epoch(0)


def batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def _batchnorm_mode(module: nn.Module, layers: list[nn.modules.batchnorm._BatchNorm],
                    is_training: bool, momentum: float | None) -> Iterator[None]:
    """`module` in train or eval mode, with `layers` in train mode at `momentum`; everything
    restored afterwards, also on error."""
    momenta = [bn.momentum for bn in layers]
    was_training = module.training
    module.train(is_training)
    for bn in layers:
        bn.train()
        bn.momentum = momentum
    try:
        yield
    finally:
        for bn, old in zip(layers, momenta):
            bn.momentum = old
        module.train(was_training)


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, forward: Forward, batches: Iterable,
                          num_batches: int) -> None:
    """Recompute every BatchNorm's running statistics of `module` from `num_batches` batches."""
    layers = batchnorms(module)
    for bn in layers:
        bn.reset_running_stats()
    with _batchnorm_mode(module, layers, is_training=True, momentum=None):
        for images, *_rest in itertools.islice(batches, num_batches):
            forward(images)


@torch.inference_mode()
def accuracy(module: nn.Module, forward: Forward, batches: Iterable, *,
             batch_statistics: bool = False) -> float:
    """Top-1 accuracy in percent of `forward` over `batches`, in eval mode.

    With `batch_statistics` every BatchNorm normalises by the batch's own statistics (train
    mode with momentum 0, so the stored running statistics stay as they were). The count of
    correct predictions stays on the device and is read once, at the end: reading it per batch
    would wait for every batch's forward on a GPU.
    """
    layers = batchnorms(module) if batch_statistics else []
    correct: torch.Tensor | int = 0
    total = 0
    with _batchnorm_mode(module, layers, is_training=False, momentum=0.0):
        for images, labels, *_rest in batches:
            correct = correct + (forward(images).argmax(dim=1) == labels).sum()
            total += len(labels)
    return 100.0 * int(correct) / max(total, 1)
