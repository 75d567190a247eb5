"""Datasets by name (`--data cifar10`), read from a cache folder, downloaded into it on first use.

The cache root is `$NAS_DATA`, else `~/.cache/nas/data`. Under it each dataset is laid out exactly
as torchvision's dataset classes leave it after `download=True`, so a torchvision data root serves
as the cache and the cache as a torchvision root (torchvision itself does not import here: its
wheels are built against CUDA torch):

    cifar10        cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar100       cifar-100-python/{train, test, meta}
    svhn           train_32x32.mat, test_32x32.mat
    mnist          MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    fashion-mnist  FashionMNIST/raw/ (the same four files)

The URLs, file names, folder names, metadata keys and md5 checksums below were checked against
torchvision 0.29.1's `torchvision/datasets/cifar.py`, `svhn.py` and `mnist.py` (the md5s are of
the downloaded files: the CIFAR archives, SVHN's .mat files, MNIST's .gz files). As there, the
downloaded archive or .gz stays beside what is extracted from it.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from nas.data.datasets import (ImageData, _build, check_labels, load_cifar_dir,
                               pickled_class_names, unpickle_arrays, with_classes)
from nas.data.download import Remote, check_md5, extract_tar, fetch, gunzip
from nas.errors import DataError, UnknownNameError

_CIFAR = ("https://www.cs.toronto.edu/~kriz/",)
_SVHN = ("http://ufldl.stanford.edu/housenumbers/",)
# torchvision tries the S3 copy first: yann.lecun.com often refuses or times out.
_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")

# What each dataset downloads, as torchvision's classes name it (tests substitute their own md5s).
_SOURCES: dict[str, tuple[Remote, ...]] = {
    "cifar10": (Remote("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", _CIFAR),),
    "cifar100": (Remote("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", _CIFAR),),
    "svhn": (Remote("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", _SVHN),
             Remote("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", _SVHN)),
    "mnist": tuple(Remote(f"{stem}.gz", md5, _MNIST) for stem, md5 in zip(_IDX_FILES, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
    "fashion-mnist": tuple(Remote(f"{stem}.gz", md5, _FASHION) for stem, md5 in zip(_IDX_FILES, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
}
DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot")
# IDX magic numbers: 0x08 = unsigned bytes, then the number of dimensions (LeCun's MNIST page).
_IDX_MAGIC = {"images": 0x0803, "labels": 0x0801}


def data_root() -> Path:
    """The cache folder: `$NAS_DATA`, else `~/.cache/nas/data`; created if absent."""
    return _make_root(Path(os.environ.get("NAS_DATA") or Path.home() / ".cache" / "nas" / "data"))


def _make_root(root: Path) -> Path:
    root = root.expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data cache folder {root} ({error.strerror}); set "
                        f"$NAS_DATA to a folder you can write to") from None
    return root


def load_named(name: str, root: Path | None = None) -> ImageData:
    """Dataset `name` (one of `NAMED_DATASETS`) from `root` (default `data_root()`), downloading
    whatever files of it are absent."""
    if name not in _LOADERS:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of: "
                               f"{', '.join(NAMED_DATASETS)}")
    return _LOADERS[name](_make_root(Path(root)) if root is not None else data_root())


def _dataset_folder(root: Path, name: str, folder: str) -> Path:
    """`root/folder`; if absent, extracted from its archive, downloaded first if need be."""
    if (root / folder).is_dir():
        return root / folder
    remote, = _SOURCES[name]
    archive = root / remote.filename
    if archive.is_file():
        check_md5(archive, remote, name)
    else:
        fetch(remote, archive, dataset=name, scratch=root,
              place=f"{remote.filename}, or the extracted {folder}/,")
    return extract_tar(archive, folder, root)


def _load_cifar10(root: Path) -> ImageData:
    folder = _dataset_folder(root, "cifar10", "cifar-10-batches-py")
    if not (folder / "batches.meta").is_file():  # it names the classes of a complete download
        raise DataError(f"{folder} lacks batches.meta; a CIFAR-10 folder holds it as downloaded "
                        f"(delete the folder to download it again)")
    return load_cifar_dir(folder)


def _read_cifar100(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = unpickle_arrays(path, "CIFAR-100")
    try:
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"fine_labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path} is not a CIFAR-100 file: {error}") from None
    return images.transpose(0, 2, 3, 1), check_labels(labels, num_classes, path)  # (N, H, W, C)


def _load_cifar100(root: Path) -> ImageData:
    folder = _dataset_folder(root, "cifar100", "cifar-100-python")
    names = pickled_class_names(folder / "meta", b"fine_label_names", "CIFAR-100")
    train, test = (_read_cifar100(folder / split, len(names)) for split in ("train", "test"))
    return with_classes(_build("cifar100", *train, *test, is_flip_invariant=True), names)


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
        images, labels = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    except (KeyError, ValueError, TypeError, OSError, scipy.io.matlab.MatReadError) as error:
        raise DataError(f"{path} is not an SVHN .mat file with X and y: {error}") from None
    if images.ndim != 4 or images.shape[3] != len(labels):
        raise DataError(f"{path} has X of shape {images.shape} for {len(labels)} labels; SVHN's "
                        f"is (32, 32, 3, N)")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path} has label {labels.min() if labels.min() < 1 else labels.max()}; "
                        f"SVHN's labels are 1..10 (10 is the digit 0)")
    return images.transpose(3, 0, 1, 2), labels % 10  # (N, H, W, C); SVHN's 10 is the digit 0


def _load_svhn(root: Path) -> ImageData:
    remotes = _SOURCES["svhn"]
    for remote in remotes:
        if not (root / remote.filename).is_file():
            fetch(remote, root / remote.filename, dataset="svhn", scratch=root,
                  place=" and ".join(r.filename for r in remotes))
    train, test = (_read_svhn(root / remote.filename) for remote in remotes)
    # House-number digits are not mirror-symmetric: a flipped 2 is no digit.
    return with_classes(_build("svhn", *train, *test, is_flip_invariant=False), DIGIT_NAMES)


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """An IDX file of unsigned bytes (LeCun's MNIST format), plain or gzipped."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {error}") from None
    magic, ndim = _IDX_MAGIC[kind], _IDX_MAGIC[kind] & 0xFF
    found = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 * (ndim + 1) or found != magic:
        raise DataError(f"{path} is not an IDX {kind} file: it starts with {found} ({len(raw)} "
                        f"bytes), expected magic number {magic}")
    shape = tuple(int.from_bytes(raw[4 * i:4 * i + 4], "big") for i in range(1, ndim + 1))
    body = memoryview(raw)[4 * (ndim + 1):]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"{path} is truncated or padded: its header says {kind} of shape {shape} "
                        f"({int(np.prod(shape))} bytes) but {len(body)} bytes follow")
    # A copy: an array over the immutable bytes would become a read-only tensor.
    return np.frombuffer(body, dtype=np.uint8).reshape(shape).copy()


def _idx_file(raw: Path, remote: Remote, name: str, scratch: Path) -> Path:
    """The extracted file, else its .gz alone; if neither is there, downloaded and extracted."""
    extracted, packed = raw / remote.filename.removesuffix(".gz"), raw / remote.filename
    if extracted.is_file():
        return extracted
    if packed.is_file():
        return packed
    every = [r.filename for r in _SOURCES[name]]
    fetch(remote, packed, dataset=name, scratch=scratch,
          place=f"{', '.join(every[:-1])} and {every[-1]} (or the files they hold)")
    gunzip(packed, extracted)
    return extracted


def _load_idx_dataset(root: Path, name: str, folder: str, class_names: tuple[str, ...],
                      is_flip_invariant: bool) -> ImageData:
    raw = root / folder / "raw"
    paths = [_idx_file(raw, remote, name, root) for remote in _SOURCES[name]]
    splits = []
    for image_path, label_path in (paths[:2], paths[2:]):
        images, labels = _read_idx(image_path, "images"), _read_idx(label_path, "labels")
        if len(images) != len(labels):
            raise DataError(f"{image_path} holds {len(images)} images but {label_path} holds "
                            f"{len(labels)} labels")
        splits += [images, check_labels(labels.astype(np.int64), len(class_names), label_path)]
    return with_classes(_build(name, *splits, is_flip_invariant=is_flip_invariant), class_names)


def _load_mnist(root: Path) -> ImageData:
    # A mirrored digit is another glyph or none (a flipped 2 is no digit).
    return _load_idx_dataset(root, "mnist", "MNIST", DIGIT_NAMES, is_flip_invariant=False)


def _load_fashion_mnist(root: Path) -> ImageData:
    # Unlike digits, a mirrored garment keeps its class (a mirrored sandal is a sandal, no class is
    # another's mirror image), so flipping is label-preserving. The shoes all point left in the
    # data; flips add right-pointing ones, which the test set lacks but which are still shoes.
    return _load_idx_dataset(root, "fashion-mnist", "FashionMNIST", FASHION_NAMES,
                             is_flip_invariant=True)


_LOADERS = {"cifar10": _load_cifar10, "cifar100": _load_cifar100, "svhn": _load_svhn,
            "mnist": _load_mnist, "fashion-mnist": _load_fashion_mnist}
NAMED_DATASETS = tuple(_LOADERS)
