"""A fixed evaluation set held ready: a source's batches normalised once, kept on its device.

Scoring an architecture reads the same images every time: BatchNorm recalibration the first
batches of the un-augmented training images, evaluation every search-validation image. A
`BatchSource` gathers, converts and normalises each batch anew on every epoch; `PreparedBatches`
does it once and afterwards only hands out the stored batches, so the thousands of scorings of
a search pay for it once.

The batches are the source's own, image for image and boundary for boundary, unless
`batch_size` regroups them. BatchNorm recalibration with `momentum=None` averages per-batch
statistics, and batch-statistics scoring normalises each batch by itself, so both need the
source's batches exactly; a score with running statistics treats every image alone and may take
any grouping, and any memory layout (`channels_last`), whichever runs fastest.

A batch is prepared when it is first read: recalibration that reads 10 batches of a 10,000-image
training split prepares 640 images, evaluation that reads all prepares all.
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch

from nas.data.batches import Batch, BatchSource
from nas.errors import ConfigError, DataError


class PreparedBatches:
    """`source`'s batches of epoch 0, in `batch_size` groups (None: the source's own), prepared
    on first read and the same at every epoch; an `EvaluationSource` (`supernets.evaluation`)."""

    def __init__(self, source: BatchSource, batch_size: int | None = None, *,
                 channels_last: bool = False) -> None:
        if source.is_training:
            raise DataError("only a fixed source (no shuffle, no augmentation) can be prepared; "
                            "this one is a training source, whose every epoch differs")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"a prepared batch holds >= 1 image, got batch_size {batch_size}")
        self.source = source
        self.batch_size = source.batch_size if batch_size is None else batch_size
        self.channels_last = channels_last
        regrouped = copy.copy(source)
        regrouped.batch_size = self.batch_size
        self._unread: Iterator[Batch] = regrouped.epoch(0)
        self._prepared: list[Batch] = []

    def __len__(self) -> int:
        return -(-len(self.source.indices) // self.batch_size)

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """Every batch in order; `epoch` is ignored (a fixed source's epochs are all alike)."""
        for i in range(len(self)):
            if i == len(self._prepared):
                self._prepared.append(self._prepare(next(self._unread)))
            yield self._prepared[i]

    def _prepare(self, batch: Batch) -> Batch:
        images, labels, ids = batch  # images (B, C, H, W), normalised on the source's device
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels, ids
