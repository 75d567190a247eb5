"""Image datasets the platform trains on, as uint8 (N, C, H, W) images and int64 labels.

The sources `--data` names:
- nothing: scikit-learn's handwritten digits (1,797 real 8x8 grey images shipped inside the
  package; no download). Split 80/20 into train/test with a fixed seed.
- a `.npz` file with uint8 `x_train` (N,H,W[,C]), `y_train`, `x_test`, `y_test`.
- a CIFAR-10 `cifar-10-batches-py` directory (data_batch_1..5, test_batch), read with a
  restricted unpickler that can build numpy arrays and nothing else.
- a folder of images, one subfolder per class (`nas.data.folders`): held in memory decoded, or,
  when that would not fit (`in_memory`), kept as files decoded batch by batch while training
  (`nas.data.image_files`).
- a dataset's name (`nas.data.named`: cifar10, cifar100, svhn, mnist, fashion-mnist), read
  from a cache folder where it is downloaded on first use. An existing path of the same name
  wins: `--data ./mnist` is the folder.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.data.image_files import ImageFiles
from nas.errors import DataError

DIGITS_TEST_FRACTION = 0.2  # sklearn digits ships no test split; fixed seed 0 below
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@dataclass(frozen=True)
class ImageData:
    """Train and test images as uint8 (N, C, H, W) tensors, or image files read as such
    (`ImageFiles`, a streamed folder), with int64 labels."""

    name: str
    x_train: torch.Tensor | ImageFiles
    y_train: torch.Tensor
    x_test: torch.Tensor | ImageFiles
    y_test: torch.Tensor
    num_classes: int
    is_flip_invariant: bool  # horizontal flips are a valid augmentation (not for digits)
    # The name of each label, in label order (a folder's class subfolders, CIFAR-10's classes);
    # recorded in the run and in an exported model's metadata. None: the labels' own numbers.
    class_names: tuple[str, ...] | None = None
    # Indices of `x_train` the data itself sets apart for validation (a folder's val/): the
    # search-validation split, instead of a seeded share of the training images.
    held_out: torch.Tensor | None = None
    # What the data was read from, to notice it changed under a run that resumes (an image
    # folder: a hash of its files' names and sizes); None where the source cannot change.
    fingerprint: str | None = None

    @property
    def is_streamed(self) -> bool:
        return isinstance(self.x_train, ImageFiles)

    def label_names(self) -> tuple[str, ...]:
        """Every label's name: `class_names`, or the label numbers as text."""
        return self.class_names or tuple(str(i) for i in range(self.num_classes))

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])

    def describe(self) -> str:
        held = f"{len(self.held_out)} of them validation, " if self.held_out is not None else ""
        kept = "streamed" if self.is_streamed else "in memory"
        return (f"{self.name}: {len(self.x_train)} train ({held}{kept}) / {len(self.x_test)} test "
                f"images, {self.in_channels}x{self.image_size}x{self.image_size}, "
                f"{self.num_classes} classes")


IN_MEMORY = ("auto", "yes", "no")
# --in-memory auto holds decoded images when they take at most this share of the memory
# available at start: the rest stays for the model, its activations and the scoring batches.
IN_MEMORY_SHARE = 0.25
SOURCES = ("a folder of images (one subfolder per class), a .npz file, a cifar-10-batches-py "
           "directory, a dataset name (cifar10, cifar100, svhn, mnist, fashion-mnist)")


def load_data(path: str | Path | None, *, image_size: int | None = None,
              in_memory: str = "auto") -> ImageData:
    """The dataset at `path` (see module docstring); None means the embedded digits.
    `image_size` and `in_memory` apply to image folders, which alone are files to decode."""
    if in_memory not in IN_MEMORY:
        raise DataError(f"--in-memory takes {', '.join(IN_MEMORY)}; got {in_memory!r}")
    text = None if path is None else check_data_path(str(path))
    folder = text is not None and is_folder_path(Path(text))
    if not folder:
        if image_size is not None:
            raise DataError(f"--image-size resizes the images of a folder; {text or 'digits'} "
                            f"is used at its own size (drop --image-size)")
        if in_memory == "no":
            raise DataError(f"--in-memory no streams the images of a folder; {text or 'digits'} "
                            f"is stored as arrays and read whole (drop --in-memory)")
    if text is None or text == "digits":
        return _load_digits()
    path = Path(text)
    if not path.exists():
        from nas.data.named import NAMED_DATASETS, load_named

        if text in NAMED_DATASETS:
            return load_named(text)
        raise DataError(f"data path {text!r} does not exist; give {SOURCES}, or omit --data "
                        f"for the embedded digits")
    if folder:
        return _load_folder(path, image_size, in_memory)
    if path.is_dir():
        return load_cifar_dir(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    raise DataError(f"cannot read data {text!r}: expected {SOURCES}")


def is_folder_path(path: Path) -> bool:
    """A directory of images in class folders: any directory but a cifar-10-batches-py one."""
    return path.is_dir() and not any((path / name).exists()
                                     for name in [*CIFAR_BATCHES, "test_batch"])


def check_data_path(text: str) -> str:
    """A path the operating system can take; a NUL byte would raise deep inside `os`."""
    if "\x00" in text or not text.strip():
        raise DataError(f"--data {text!r} is not a usable path; give {SOURCES}")
    return text


def available_memory_bytes() -> int:
    """Memory the system can give without swapping (Linux MemAvailable; else free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _load_folder(path: Path, image_size: int | None, in_memory: str) -> ImageData:
    from nas.data.folders import folder_files, image_size_of, scan_folder

    folder = scan_folder(path)
    size = image_size_of(folder, image_size)
    splits = folder_files(folder, size)
    if "test" not in splits:
        raise DataError(f"{path} has too few images for a test split (each class keeps at least "
                        f"one for training); add images, or give DIR/train and DIR/val")
    (train, y_train), (test, y_test) = splits["train"], splits["test"]
    held_out = None
    if "val" in splits:  # train/, val/ and test/: val/ is the search-validation split
        val, y_val = splits["val"]
        held_out = torch.arange(len(train), len(train) + len(val))
        train = ImageFiles(train.paths + val.paths, size, folder.channels)
        y_train = torch.cat([y_train, y_val])
    decoded = train.nbytes() + test.nbytes()
    stream = in_memory == "no" or (in_memory == "auto"
                                   and decoded > IN_MEMORY_SHARE * available_memory_bytes())
    print(f"image folder {path}: {len(train) + len(test)} images of {len(folder.class_names)} "
          f"classes at {size}x{size}" + ("" if image_size is not None or len(folder.sizes) == 1
                                         else " (several sizes; --image-size sets another)")
          + f", {decoded / 2**20:.0f} MiB decoded: "
          + ("streamed from the files" if stream else "held in memory"))
    x_train, x_test = (train, test) if stream else (train.load(), test.load())
    return ImageData(path.name, x_train, y_train, x_test, y_test, len(folder.class_names),
                     is_flip_invariant=True, class_names=folder.class_names, held_out=held_out,
                     fingerprint=folder_fingerprint(path, folder.paths))


def folder_fingerprint(root: Path, paths: tuple[str, ...]) -> str:
    """A hash of each image's path under `root` and its size: a file added, removed, renamed
    or rewritten to another size changes it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{Path(path).relative_to(root)}\t{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()[:16]


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
    num_classes = int(yt.max()) + 1
    if int(ys.max()) >= num_classes:
        raise DataError(f"{name}: y_test has label {int(ys.max())} but the training labels go "
                        f"to {num_classes - 1}; a test label must be a class the model trains on")
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


def load_cifar_dir(path: Path) -> ImageData:
    """A cifar-10-batches-py folder; its classes named from batches.meta where it has one."""
    parts = [_read_cifar_batch(path / name) for name in [*CIFAR_BATCHES, "test_batch"]]
    x_train = np.concatenate([x for x, _ in parts[:-1]])
    y_train = np.concatenate([y for _, y in parts[:-1]])
    data = _build("cifar10", x_train, y_train, *parts[-1], is_flip_invariant=True)
    if not (path / "batches.meta").is_file():
        return data
    names = pickled_class_names(path / "batches.meta", b"label_names", "CIFAR-10")
    for (_, labels), batch in zip(parts, [*CIFAR_BATCHES, "test_batch"]):
        check_labels(labels, len(names), path / batch)
    return with_classes(data, names)


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise DataError(f"{path} has label {bad}, outside 0..{num_classes - 1} for its "
                        f"{num_classes} classes")
    return labels


def with_classes(data: ImageData, class_names: tuple[str, ...]) -> ImageData:
    # _build counts classes from the largest label; a named dataset has its classes from metadata.
    return dataclasses.replace(data, num_classes=len(class_names), class_names=class_names)


def unpickle_arrays(path: Path, kind: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path.parent} lacks {path.name}; a {kind} folder holds it as downloaded "
                        f"(delete the folder to download it again)")
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"{path} is not a {kind} pickle: {error}") from None


def pickled_class_names(path: Path, key: bytes, kind: str) -> tuple[str, ...]:
    try:
        names = unpickle_arrays(path, kind)[key]
        # The real files were pickled by Python 2: their str values load as bytes here.
        return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    except (KeyError, TypeError, AttributeError):
        raise DataError(f"{path} has no {key.decode()} list of class names") from None
