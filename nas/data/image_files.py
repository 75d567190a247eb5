"""Images kept as files and decoded when read: the dataset of a folder too large to hold decoded.

`ImageFiles` stands where a uint8 (N, C, H, W) tensor stands in `ImageData`: it has the
tensor's `shape` and `len`, and `read(indices)` decodes those images into one. `stream` decodes
a sequence of index batches in `DataLoader` worker processes, in order, a few batches ahead of
the consumer, so that peak memory is a few batches per worker whatever the dataset's size.

Decoding is the same function for a folder held in memory and one streamed (`decode_image`),
and the order, crops and flips of an epoch are drawn in the main process (`BatchSource`), so a
streamed run trains on exactly the pixels, in exactly the order, of an in-memory run.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch

from nas.errors import DataError

# Decoding workers; one core stays with training. A one-core machine decodes in the main process.
STREAM_WORKERS = min(4, max(0, (os.cpu_count() or 1) - 1))
PREFETCH_BATCHES = 2  # per worker


def decode_image(path: str, size: int, channels: int) -> np.ndarray:
    """The image at `path` as uint8 (channels, size, size): converted to grey (1) or RGB (3),
    its shorter side resized to `size` (bilinear, antialiased) and the centre cropped square."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")  # decodes: a truncated file fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # bad files
        raise DataError(f"cannot decode image {path}: {error}") from None
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        resized = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(resized, Image.Resampling.BILINEAR)
        left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


class ImageFiles:
    """N image files read as a uint8 (N, C, size, size) array (module docstring)."""

    def __init__(self, paths: Sequence[str], size: int, channels: int) -> None:
        self.paths, self.size, self.channels = tuple(paths), size, channels

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), self.channels, self.size, self.size))

    def __len__(self) -> int:
        return len(self.paths)

    def nbytes(self) -> int:
        """Bytes the images take decoded."""
        return len(self.paths) * self.channels * self.size * self.size

    def read(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The images at `indices`, decoded here, as uint8 (B, C, size, size)."""
        batch = np.empty((len(indices), self.channels, self.size, self.size), dtype=np.uint8)
        for row, index in enumerate(torch.as_tensor(indices).tolist()):
            batch[row] = decode_image(self.paths[index], self.size, self.channels)
        return torch.from_numpy(batch)

    def stream(self, batches: Sequence[torch.Tensor], *, pin_memory: bool = False,
               workers: int = STREAM_WORKERS) -> Iterator[torch.Tensor]:
        """Each batch of indices decoded, in order, by `workers` processes (module docstring).

        A worker that meets a bad file hands its one-line message back rather than raising, as a
        worker's exception would reach the main process wrapped in its traceback."""
        from torch.utils.data import DataLoader

        if not batches:
            return
        loader = DataLoader(_Batches(self, batches), batch_size=None, num_workers=workers,
                            pin_memory=pin_memory,
                            prefetch_factor=PREFETCH_BATCHES if workers else None)
        for images, error in loader:
            if error:
                raise DataError(error)
            yield images

    def load(self, batch_size: int = 256) -> torch.Tensor:
        """Every image decoded into one uint8 tensor (an image folder held in memory)."""
        whole = torch.empty(tuple(self.shape), dtype=torch.uint8)
        batches = list(torch.arange(len(self)).split(batch_size))
        for indices, images in zip(batches, self.stream(batches)):
            whole[indices] = images
        return whole


class _Batches(torch.utils.data.Dataset):
    """Batch i of a stream: the decoded images of `batches[i]`, and an error message or ''."""

    def __init__(self, files: ImageFiles, batches: Sequence[torch.Tensor]) -> None:
        self.files, self.batches = files, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        try:
            return self.files.read(self.batches[i]), ""
        except DataError as error:
            return torch.empty(0, dtype=torch.uint8), str(error)


def read_images(images: torch.Tensor | ImageFiles, batches: Sequence[torch.Tensor], *,
                pin_memory: bool = False) -> Iterator[torch.Tensor]:
    """The uint8 images of each batch of indices, in order: gathered from a tensor (on its
    device), or decoded from files by streaming workers (a single batch, such as a proxy's,
    here: starting workers would cost more than it saves)."""
    if isinstance(images, ImageFiles):
        if len(batches) == 1:
            yield images.read(batches[0])
        else:
            yield from images.stream(batches, pin_memory=pin_memory)
        return
    for chosen in batches:
        yield images[chosen.to(images.device, non_blocking=True)]
