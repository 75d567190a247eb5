"""The sizes the benchmarks measure at, the tiny ones `--quick` shrinks them to, and the
random images they train on (timing does not depend on pixel values)."""
from __future__ import annotations

import torch

from nas.data.datasets import ImageData
from search_spaces import Skeleton

# The benchmarks' own sizes: NB201 at its benchmark skeleton (C=16, N=5), DARTS at its search
# skeleton (C=16, 8 cells), mobilenet at width 16 with 5 elastic stages; CIFAR-sized images.
SKELETONS = {"nb201": Skeleton(3, 10, 32, width=16, cells=5),
             "darts": Skeleton(3, 10, 32, width=16, cells=8),
             "mobilenet": Skeleton(3, 10, 32, width=16, cells=5)}

# Small enough that every producer runs in seconds (DARTS needs 3 cells for a normal one).
QUICK_SKELETONS = {"nb201": Skeleton(3, 10, 8, width=4, cells=1),
                   "darts": Skeleton(3, 10, 8, width=4, cells=3),
                   "mobilenet": Skeleton(3, 10, 8, width=4, cells=1)}


def skeleton(space: str, quick: bool) -> Skeleton:
    return (QUICK_SKELETONS if quick else SKELETONS)[space]


def describe(skeleton: Skeleton) -> str:
    size = skeleton.image_size
    return f"C={skeleton.width} N={skeleton.cells}, {size}x{size}x{skeleton.in_channels}"


def random_images(count: int, size: int, seed: int) -> ImageData:
    """`count` random uint8 3-channel images of `size` pixels with 10 classes (64 as a test set)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (count,), generator=generator)
    return ImageData("random", x, y, x[:64], y[:64], 10, True)
