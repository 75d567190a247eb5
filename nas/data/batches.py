"""Splits, augmentation and mini-batches over uint8 images, held in memory or streamed from
files (`nas.data.image_files`): both give the same batches.

The supernet-train / search-validation split is drawn from the training set only, with its own
seed (`split_seed`, default 0) so that runs with different training seeds score architectures
on the same validation images. The test set is never used for search.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from nas.data.datasets import IN_MEMORY, ImageData, load_data
from nas.data.image_files import ImageFiles, read_images
from nas.errors import ConfigError, DataError

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (B,C,H,W) float, labels, indices
VALIDATION_STREAM_SEED_OFFSET = 7_919
FLIP = ("auto", "yes", "no")


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None        # None: the embedded digits
    val_fraction: float = 0.2      # share of the training set held out to score architectures
    split_seed: int = 0            # fixed, so every run searches on the same validation images
    train_subset: int | None = None  # use only this many training images (drawn with split_seed)
    # Score architectures on this many training images outside `train_subset` (the subset then
    # trains whole) instead of holding out val_fraction of the subset: a larger, independent
    # validation set for ranking, as the ranking protocol uses (10,000 images).
    val_images: int | None = None
    batch_size: int = 64           # DARTS / GM-NAS search batch size
    eval_batch_size: int = 256
    # An image folder's images are resized to this square size (None: their own size when they
    # all share it, else `nas.data.folders.DEFAULT_IMAGE_SIZE`).
    image_size: int | None = None
    # Hold an image folder decoded in memory (yes), stream it from its files (no), or hold it
    # when it takes at most a quarter of the memory available (auto). The batches are the same.
    in_memory: str = "auto"
    # Horizontal flips in training batches: auto is the data's own rule (natural photos and
    # image folders yes; digits, MNIST and SVHN no), yes/no override it.
    flip: str = "auto"

    def __post_init__(self) -> None:
        if self.flip not in FLIP:
            raise ConfigError(f"flip takes {', '.join(FLIP)}, got {self.flip!r}")
        if self.in_memory not in IN_MEMORY:
            raise ConfigError(f"in_memory takes {', '.join(IN_MEMORY)}, got {self.in_memory!r}")
        if self.image_size is not None and self.image_size < 4:
            raise ConfigError(f"image_size must be >= 4 pixels, got {self.image_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.train_subset is not None and self.train_subset < 2:
            raise ConfigError(f"train_subset must be >= 2 images, got {self.train_subset}")
        if self.val_images is not None and (self.val_images < 1 or self.train_subset is None):
            raise ConfigError(f"val_images takes images outside --train-subset, so it needs "
                              f"--train-subset and a count >= 1; got {self.val_images}")
        if self.batch_size < 2 or self.eval_batch_size < 1:
            raise ConfigError(f"batch_size must be >= 2 (BatchNorm needs 2 samples), got "
                              f"{self.batch_size}")


def load_dataset(config: DataConfig) -> ImageData:
    """The dataset `config` names, read as it says (`nas.data.datasets.load_data`)."""
    return load_data(config.path, image_size=config.image_size, in_memory=config.in_memory)


def split_train(data: ImageData, config: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of (supernet-train, search-validation) within `data.x_train`.

    With `train_subset`, both come from a seeded subset of that many training images; with
    `val_images` too, the subset trains whole and the validation images are the next ones of
    the same seeded order, outside the subset.

    Data that sets its own validation images apart (`ImageData.held_out`, a folder's val/)
    validates on those: the subset, if any, is drawn from the rest, and `val_images` takes that
    many of them.
    """
    generator = torch.Generator().manual_seed(config.split_seed)
    if data.held_out is not None:
        return _split_held_out(data, config, generator)
    order = torch.randperm(len(data.x_train), generator=generator)
    if config.train_subset is not None:
        needed = config.train_subset + (config.val_images or 0)
        if needed > len(order):
            raise DataError(f"--train-subset {config.train_subset}"
                            + (f" plus --val-images {config.val_images}" if config.val_images
                               else "")
                            + f" exceeds the {len(order)} training images of {data.name}")
        if config.val_images is not None:
            return order[:config.train_subset], order[config.train_subset:needed]
        order = order[:config.train_subset]
    n_val = max(1, int(round(len(order) * config.val_fraction)))
    return order[n_val:], order[:n_val]


def _split_held_out(data: ImageData, config: DataConfig, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    is_held = torch.zeros(len(data.x_train), dtype=torch.bool)
    is_held[data.held_out] = True
    train, val = torch.nonzero(~is_held).flatten(), data.held_out
    train = train[torch.randperm(len(train), generator=generator)]
    if config.train_subset is not None:
        if config.train_subset > len(train):
            raise DataError(f"--train-subset {config.train_subset} exceeds the {len(train)} "
                            f"training images of {data.name} (its val/ images validate)")
        train = train[:config.train_subset]
    if config.val_images is not None:
        if config.val_images > len(val):
            raise DataError(f"--val-images {config.val_images} exceeds the {len(val)} images "
                            f"of {data.name}'s val/ folder")
        val = val[torch.randperm(len(val), generator=generator)[:config.val_images]].sort().values
    return train, val


def channel_stats(images: torch.Tensor | ImageFiles, indices: torch.Tensor,
                  batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (n - 1) of the images at `indices`, on the [0, 1]
    scale. They come from each channel's histogram of pixel values, whose sums are exact
    integers, so the result is the same whichever way the images are read (held, streamed) and
    batched; and a histogram takes no memory beyond the batch, where float or int64 copies of
    it would take 4 to 8 times the batch at every read."""
    histograms = None
    for batch in read_images(images, list(indices.split(batch_size))):
        channels = batch.to("cpu").transpose(0, 1).reshape(batch.shape[1], -1)
        counts = torch.stack([torch.bincount(c, minlength=256) for c in channels])
        histograms = counts if histograms is None else histograms + counts
    if histograms is None or int(histograms[0].sum()) < 2:
        raise DataError("channel statistics need at least 2 pixels per channel")
    values = torch.arange(256, dtype=torch.int64)
    means, stds = [], []
    for counts in histograms:
        n = int(counts.sum())
        s, q = int((counts * values).sum()), int((counts * values * values).sum())
        means.append(s / n / 255.0)  # Python ints: exact until this one rounding
        variance = (n * q - s * s) / (n * (n - 1)) / 255.0 ** 2
        stds.append(max(variance, 0.0) ** 0.5)
    return (torch.tensor(means, dtype=torch.float64).float(),
            torch.tensor(stds, dtype=torch.float64).clamp_min(1e-3).float())


class BatchSource:
    """Mini-batches of one subset of a dataset, normalised with the training set's statistics.

    Training batches are shuffled and augmented (random crop with zero padding of size/8, as the
    CIFAR convention of 4 px at 32 px; horizontal flip only where the data is flip-invariant),
    both drawn from a generator seeded by (seed, epoch) so an epoch's batches are reproducible
    after a resume. Evaluation batches keep order and are not augmented.

    Under torchrun each process trains on a shard (`shard(rank, world_size)`): every rank draws
    the same order of the epoch, cuts it into global batches of `batch_size * world_size`
    images and takes its own `batch_size` of each, so K processes train on the images one
    process with a K times larger batch would, in the same order (their crops and flips come
    from a generator of each rank's own, so ranks do not augment alike). Images may already
    live on the device (`make_splits` puts a dataset that fits on a GPU there once): then a
    batch is gathered and augmented there, with its random offsets still drawn on the CPU
    generator, so the draws stay reproducible.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                 mean: torch.Tensor, std: torch.Tensor, batch_size: int, *, is_training: bool,
                 is_flip_invariant: bool = False, seed: int = 0, device: str = "cpu") -> None:
        self.images, self.labels, self.indices = images, labels, indices
        self.mean, self.std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
        self.batch_size, self.is_training = batch_size, is_training
        self.is_flip_invariant, self.seed, self.device = is_flip_invariant, seed, torch.device(device)
        self.pad = max(1, images.shape[-1] // 8)
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> "BatchSource":
        """This source as process `rank` of `world_size` trains on it (class docstring)."""
        if not self.is_training:
            raise ValueError("only training batches are sharded; every rank scores on all images")
        shard = copy.copy(self)
        shard.rank, shard.world_size = rank, world_size
        return shard

    def __len__(self) -> int:
        n = len(self.indices)
        if self.is_training:
            return n // (self.batch_size * self.world_size)
        return -(-n // self.batch_size)

    def epoch(self, epoch: int = 0, probabilities: np.ndarray | None = None,
              start: int = 0) -> Iterator[Batch]:
        """The epoch's batches from batch `start` on. With `probabilities` (one per image of
        `indices`) the epoch is len(indices) draws with replacement from them (PA&DA's data
        sampling), else a shuffle. The batches before `start` (a resume's, done before it) are
        not read: their crops and flips are drawn, and nothing else, so the rest are the
        batches of the whole epoch (a streamed resume decodes no image it skips)."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = self.indices
        if probabilities is not None:
            weights = torch.as_tensor(np.asarray(probabilities, dtype=np.float64))
            if weights.shape != (len(order),) or not bool(torch.isfinite(weights).all()) \
                    or bool((weights < 0).any()) or not float(weights.sum()) > 0:
                raise ValueError(f"data probabilities must be {len(order)} finite non-negative "
                                 f"numbers with a positive sum")
            order = order[torch.multinomial(weights, len(order), replacement=True,
                                            generator=generator)]
        elif self.is_training:
            order = order[torch.randperm(len(order), generator=generator)]
        # One process keeps drawing crops from the order's generator (runs made before sharding
        # existed resume bit-identically); a rank of several has its own.
        crops = (generator if self.world_size == 1 else
                 torch.Generator().manual_seed((self.seed * 100_003 + epoch) * 1_009 + self.rank))
        per_step = self.batch_size * self.world_size
        batches = [order[start + self.rank * self.batch_size:
                         start + (self.rank + 1) * self.batch_size]
                   for start in range(0, len(self) * per_step, per_step)]
        if self.is_training:
            for chosen in batches[:start]:
                self._draw_augmentation(len(chosen), crops)
        batches = batches[start:]
        for chosen, images in zip(batches, self._read(batches)):
            images = images.float().div_(255.0)
            if self.is_training:
                images = self._augment(images, crops)
            yield (self._to_device(self._normalise(images)),
                   self._to_device(self._gather(self.labels, chosen)), chosen)

    def one_batch(self, size: int, seed: int) -> Batch:
        """`size` images drawn without replacement by a generator seeded with `seed`, augmented
        if this is a training source: the fixed batch a training-free proxy scores on."""
        if not 1 <= size <= len(self.indices):
            raise DataError(f"a batch of {size} images was asked for, but this split holds "
                            f"{len(self.indices)}; use more data or a proxy with a smaller batch")
        generator = torch.Generator().manual_seed(seed)
        chosen = self.indices[torch.randperm(len(self.indices), generator=generator)[:size]]
        (images,) = self._read([chosen])
        images = images.float().div_(255.0)
        if self.is_training:
            images = self._augment(images, generator)
        return (self._to_device(self._normalise(images)),
                self._to_device(self._gather(self.labels, chosen)), chosen)

    @property
    def is_streamed(self) -> bool:
        return isinstance(self.images, ImageFiles)

    def _read(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The uint8 images of each batch: gathered where they live, or decoded from files by
        streaming workers into pinned memory and moved to a GPU before they are augmented."""
        on_gpu = self.device.type == "cuda" and self.is_streamed
        for images in read_images(self.images, batches, pin_memory=on_gpu):
            yield images.to(self.device, non_blocking=True) if on_gpu else images

    @staticmethod
    def _gather(tensor: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        return tensor[chosen.to(tensor.device, non_blocking=True)]

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean.to(images.device)) / self.std.to(images.device)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device == self.device:
            return tensor  # the dataset lives on the device already
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crops with zero padding and (flip-invariant data) flips; the offsets are drawn
        on the CPU `generator` and applied wherever `images` are."""
        b, _, h, w = images.shape  # (B, C, H, W)
        device = images.device
        padded = torch.nn.functional.pad(images, (self.pad,) * 4)
        dy, dx, flip = (draw.to(device) if draw is not None else None
                        for draw in self._draw_augmentation(b, generator))
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (B, 1, 1, W)
        cropped = padded.gather(2, rows.expand(b, padded.shape[1], h, padded.shape[3]))
        cropped = cropped.gather(3, cols.expand(b, padded.shape[1], h, w))
        if flip is not None:
            cropped = torch.where(flip[:, None, None, None], cropped.flip(3), cropped)
        return cropped

    def _draw_augmentation(self, b: int, generator: torch.Generator
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A batch of `b` images' crop offsets (rows, columns) and flips (None: no flips), in
        the order they are drawn."""
        dy = torch.randint(0, 2 * self.pad + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * self.pad + 1, (b,), generator=generator)
        flip = torch.rand(b, generator=generator) < 0.5 if self.is_flip_invariant else None
        return dy, dx, flip


@dataclass(frozen=True)
class DataSplits:
    """The three sources every command needs, built once from a dataset and a config."""

    data: ImageData
    train: BatchSource       # supernet training (augmented, shuffled)
    calibration: BatchSource  # training images without augmentation, for BN recalibration
    val: BatchSource         # search validation
    test: BatchSource        # final reporting only; never used for search
    full_train: BatchSource  # train + val, augmented: stand-alone training
    # Search-validation images shuffled and augmented like training batches, at the training
    # batch size: the validation stream of a training method's step (bi-level methods train
    # architecture parameters on it, as DARTS trains them on its held-out half).
    val_stream: BatchSource


RESIDENT_SHARE = 0.25  # of a GPU's free memory a dataset may take to live there whole


def on_device_if_it_fits(data: ImageData, device: str) -> ImageData:
    """`data` with its uint8 images and labels on a CUDA `device` when they take at most
    `RESIDENT_SHARE` of its free memory (no host-device copy per batch then), else as it is."""
    if torch.device(device).type != "cuda" or data.is_streamed:
        return data
    free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
    size = sum(t.numel() * t.element_size()
               for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    if size > RESIDENT_SHARE * free_bytes:
        return data
    return dataclasses.replace(data, **{name: getattr(data, name).to(device) for name in
                                        ("x_train", "y_train", "x_test", "y_test")})


def make_splits(data: ImageData, config: DataConfig, seed: int, device: str = "cpu") -> DataSplits:
    train_idx, val_idx = split_train(data, config)
    mean, std = channel_stats(data.x_train, train_idx)
    data = on_device_if_it_fits(data, device)
    common = dict(mean=mean, std=std, device=device)
    flip = data.is_flip_invariant if config.flip == "auto" else config.flip == "yes"
    # Stand-alone training uses every non-test image in use; held-out validation images from
    # outside the subset (`val_images`) are only for scoring, so they stay out.
    all_train = (train_idx if config.val_images is not None
                 else torch.cat([train_idx, val_idx])).sort().values
    return DataSplits(
        data=data,
        train=BatchSource(data.x_train, data.y_train, train_idx, batch_size=config.batch_size,
                          is_training=True, is_flip_invariant=flip, seed=seed, **common),
        calibration=BatchSource(data.x_train, data.y_train, train_idx, batch_size=config.batch_size,
                                is_training=False, **common),
        val=BatchSource(data.x_train, data.y_train, val_idx, batch_size=config.eval_batch_size,
                        is_training=False, **common),
        test=BatchSource(data.x_test, data.y_test, torch.arange(len(data.x_test)),
                         batch_size=config.eval_batch_size, is_training=False, **common),
        full_train=BatchSource(data.x_train, data.y_train, all_train, batch_size=config.batch_size,
                               is_training=True, is_flip_invariant=flip, seed=seed, **common),
        # Its own shuffle and crops: a generator seeded apart from the training batches'.
        val_stream=BatchSource(data.x_train, data.y_train, val_idx, batch_size=config.batch_size,
                               is_training=True, is_flip_invariant=flip,
                               seed=seed + VALIDATION_STREAM_SEED_OFFSET, **common),
    )
