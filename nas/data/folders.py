"""Image folders: one subfolder per class, of any format Pillow reads (torchvision's
`ImageFolder` layout, ImageNet's, and most users' own data).

`DIR/<class>/<image>` (or `DIR/train/<class>/<image>` alone): the images are split into train
and test by a seeded draw of `FOLDER_TEST_FRACTION` of each class. `DIR/train/<class>/...` with `DIR/val/` or `DIR/test/`
beside it: those are the splits; with both, `val/` is the search-validation split (held out of
supernet training) and `test/` the test split. Classes are the train folder's subfolders in
sorted order (label i is the i-th name), as `ImageFolder` numbers them.

Every image is resized to one square size (`decode_image`): `image_size`, else the images' own
size when they all share it, else `DEFAULT_IMAGE_SIZE`. The folder is scanned whole before
anything trains: each file's header is read (not its pixels), and an unreadable file, an empty
class folder, a single class, mixed grey and colour images, or a test class unknown to training
is named in a one-line error. A truncated image shows only when decoded: in memory that is at
loading, streamed it is when its batch is read; either way the error names the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.data.image_files import ImageFiles
from nas.errors import DataError

FOLDER_TEST_FRACTION = 0.2
DEFAULT_IMAGE_SIZE = 32  # for images of several sizes when --image-size is not given
SPLIT_FOLDERS = ("train", "val", "test")
GREY_MODES = {"1", "L", "LA", "La"}
# 16-bit and float pixels: converting them to 8 bits clips rather than scales, so they are
# refused by name instead of trained on as white.
DEEP_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class FolderImages:
    """The scanned folder: every image's path and label, its split, and what the header said."""

    paths: tuple[str, ...]
    labels: np.ndarray       # int64, one per path
    split: np.ndarray        # "train", "val" or "test", one per path
    class_names: tuple[str, ...]
    sizes: frozenset[tuple[int, int]]  # (width, height) of the images
    channels: int


def _image_suffixes() -> set[str]:
    from PIL import Image

    Image.init()  # registers every format plug-in, so the suffixes are all Pillow reads
    return {suffix.lower() for suffix in Image.registered_extensions()}


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """Each class subfolder of `root` and its image files, sorted; hidden entries are skipped."""
    try:
        return _listed_class_folders(root)
    except PermissionError as error:
        raise DataError(f"cannot list {error.filename or root}: permission denied") from None


def _listed_class_folders(root: Path) -> dict[str, list[Path]]:
    suffixes = _image_suffixes()
    classes = sorted(child for child in root.iterdir()
                     if child.is_dir() and not child.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class subfolders; an image folder holds one subfolder "
                        f"per class (DIR/<class>/<image>), optionally under DIR/train and DIR/val")
    files = {}
    for folder in classes:
        images = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                        and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not images:
            raise DataError(f"class folder {folder} holds no image Pillow reads; remove it or add "
                            f"images ({', '.join(sorted(suffixes)[:6])}, ...)")
        files[folder.name] = images
    return files


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from None
    if mode in DEEP_MODES:
        raise DataError(f"{path} has {'float' if mode == 'F' else '16- or 32-bit'} pixels (mode "
                        f"{mode}); convert the folder's images to 8 bits per channel")
    return mode, size


def scan_folder(root: Path) -> FolderImages:
    """The images of an image folder (module docstring), their headers checked."""
    present = [name for name in SPLIT_FOLDERS if (root / name).is_dir()]
    if present == ["train"]:  # train/ alone: its classes, split as a flat folder's
        splits = {"all": _class_folders(root / "train")}
    elif "train" in present:
        splits = {name: _class_folders(root / name) for name in present}
    elif present and set(present) <= {"val", "test"}:
        raise DataError(f"{root} has {'/'.join(present)}/ but no train/; give DIR/train/<class>/ "
                        f"beside it, or the class folders directly in DIR")
    else:
        splits = {"all": _class_folders(root)}
    class_names = tuple(splits["train"] if "train" in splits else splits["all"])
    if len(class_names) < 2:
        raise DataError(f"{root} has a single class ({class_names[0]!r}); classification needs "
                        f"at least 2 class folders")
    paths, labels, split_of = [], [], []
    for split, classes in splits.items():
        for name, files in classes.items():
            if name not in class_names:
                raise DataError(f"{root / split / name} is a class that {root / 'train'} lacks; "
                                f"every class of val/ and test/ needs training images")
            paths += [str(p) for p in files]
            labels += [class_names.index(name)] * len(files)
            split_of += [split] * len(files)
    modes, sizes = {}, set()
    for path in paths:
        mode, size = _header(Path(path))
        modes.setdefault(1 if mode in GREY_MODES else 3, path)
        sizes.add(size)
    if len(modes) > 1:
        raise DataError(f"{root} mixes grey and colour images (e.g. {modes[1]} is grey, "
                        f"{modes[3]} colour); convert them to one kind")
    labels_array = np.asarray(labels, dtype=np.int64)
    split_array = np.asarray(split_of)
    if "all" in splits:
        split_array = _seeded_test_split(labels_array)
    elif "val" in splits and "test" not in splits:
        split_array[split_array == "val"] = "test"  # train/ + val/: val is the held-out test split
    return FolderImages(tuple(paths), labels_array, split_array, class_names, frozenset(sizes),
                        next(iter(modes)))


def _seeded_test_split(labels: np.ndarray) -> np.ndarray:
    """'test' for a seeded FOLDER_TEST_FRACTION of each class (at least one image of a class
    stays for training), 'train' for the rest."""
    split = np.full(len(labels), "train", dtype=object)
    rng = np.random.default_rng(0)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_test = min(len(members) - 1, int(round(len(members) * FOLDER_TEST_FRACTION)))
        split[rng.permutation(members)[:n_test]] = "test"
    return split.astype(str)


def image_size_of(folder: FolderImages, requested: int | None) -> int:
    """The square size images are resized to (module docstring)."""
    if requested is not None:
        return requested
    if len(folder.sizes) == 1:
        return min(next(iter(folder.sizes)))
    return DEFAULT_IMAGE_SIZE


def folder_files(folder: FolderImages, size: int) -> dict[str, tuple[ImageFiles, torch.Tensor]]:
    """Per split present ("train", "val", "test"): its images as files and its labels."""
    out = {}
    for split in SPLIT_FOLDERS:
        rows = np.flatnonzero(folder.split == split)
        if len(rows):
            out[split] = (ImageFiles([folder.paths[i] for i in rows], size, folder.channels),
                          torch.from_numpy(folder.labels[rows]))
    return out
