"""Image datasets the platform trains on, loaded into memory as uint8 tensors.

Three sources, chosen by `--data`:
- nothing: scikit-learn's handwritten digits (1,797 real 8x8 grey images shipped inside the
  package; no download). Split 80/20 into train/test with a fixed seed.
- a `.npz` file with uint8 `x_train` (N,H,W[,C]), `y_train`, `x_test`, `y_test`.
- a CIFAR-10 `cifar-10-batches-py` directory (data_batch_1..5, test_batch), read with a
  restricted unpickler that can build numpy arrays and nothing else.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.errors import DataError

DIGITS_TEST_FRACTION = 0.2  # sklearn digits ships no test split; fixed seed 0 below
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@dataclass(frozen=True)
class ImageData:
    """Train and test images as uint8 (N, C, H, W) tensors with int64 labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    is_flip_invariant: bool  # horizontal flips are a valid augmentation (not for digits)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test images, "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes")


def load_data(path: str | Path | None) -> ImageData:
    """The dataset at `path` (see module docstring); None means the embedded digits."""
    if path is None or str(path) == "digits":
        return _load_digits()
    path = Path(check_data_path(str(path)))
    if not path.exists():
        raise DataError(f"data path {str(path)!r} does not exist; give a .npz file, a "
                        f"cifar-10-batches-py directory, or omit --data for the embedded digits")
    if path.is_dir():
        return _load_cifar_dir(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    raise DataError(f"cannot read data {str(path)!r}: expected a .npz file or a "
                    f"cifar-10-batches-py directory")


def check_data_path(text: str) -> str:
    """A path the operating system can take; a NUL byte would raise deep inside `os`."""
    if "\x00" in text or not text.strip():
        raise DataError(f"--data {text!r} is not a usable path; give a .npz file or a "
                        f"cifar-10-batches-py directory")
    return text


def _to_nchw(images: np.ndarray, what: str) -> torch.Tensor:
    if images.dtype != np.uint8:
        raise DataError(f"{what} must be uint8 images, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise DataError(f"{what} must have shape (N, H, W) or (N, H, W, C) with H == W, "
                        f"got {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _labels(labels: np.ndarray, n: int, what: str) -> torch.Tensor:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{what} must be {n} integer labels, got shape {labels.shape} "
                        f"dtype {labels.dtype}")
    if labels.min() < 0:
        raise DataError(f"{what} has a negative label {labels.min()}")
    return torch.from_numpy(labels.astype(np.int64))


def _build(name: str, x_train, y_train, x_test, y_test, is_flip_invariant: bool) -> ImageData:
    xt, xs = _to_nchw(x_train, "x_train"), _to_nchw(x_test, "x_test")
    if xt.shape[1:] != xs.shape[1:]:
        raise DataError(f"x_train images are {tuple(xt.shape[1:])} but x_test images are "
                        f"{tuple(xs.shape[1:])}; they must match")
    yt, ys = _labels(y_train, len(xt), "y_train"), _labels(y_test, len(xs), "y_test")
    num_classes = int(max(yt.max(), ys.max())) + 1
    return ImageData(name, xt, yt, xs, ys, num_classes, is_flip_invariant)


def _load_digits() -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # pixel values are 0..16
    order = np.random.default_rng(0).permutation(len(images))
    n_test = int(round(len(images) * DIGITS_TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return _build("digits", images[train], digits.target[train], images[test],
                  digits.target[test], is_flip_invariant=False)


def _load_npz(path: Path) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
            if missing:
                raise DataError(f"{path} lacks array {missing[0]!r}; a data .npz needs "
                                f"x_train, y_train, x_test, y_test")
            parts = [arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"cannot read {path} as a .npz archive: {error}") from None
    # Natural photos are flip-invariant; a user with digit-like data should not pass 3-channel npz.
    return _build(path.stem, *parts, is_flip_invariant=parts[0].ndim == 4)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Builds the dicts of numpy arrays a CIFAR batch holds; any other global is refused."""

    _ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 directory lacks {path.name}; expected {', '.join(CIFAR_BATCHES)}, "
                        f"test_batch (the cifar-10-batches-py layout)")
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a CIFAR-10 batch file: {error}") from None
    return data.transpose(0, 2, 3, 1), labels


def _load_cifar_dir(path: Path) -> ImageData:
    train = [_read_cifar_batch(path / name) for name in CIFAR_BATCHES]
    x_test, y_test = _read_cifar_batch(path / "test_batch")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return _build("cifar10", x_train, y_train, x_test, y_test, is_flip_invariant=True)
