"""Named datasets (`nas.data.named`) read from tiny files laid out as torchvision's downloads leave
them, in the real file formats; downloads served by a stand-in for `urllib.request.urlopen`."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from nas.data import named
from nas.data.named import NAMED_DATASETS, data_root, load_named
from nas.errors import DataError, UnknownNameError

N_TRAIN, N_TEST = 20, 10
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
CIFAR100_NAMES = tuple(f"fine_{i:02d}" for i in range(100))


@dataclasses.dataclass
class Written:
    """What a test wrote: images (N, C, H, W) and labels as the loader must return them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    is_flip_invariant: bool


def _split(rng, channels, size, num_classes, names, flip) -> Written:
    x = rng.integers(0, 256, (N_TRAIN + N_TEST, channels, size, size), dtype=np.uint8)
    y = rng.integers(0, num_classes, N_TRAIN + N_TEST)
    y[0], y[N_TRAIN] = num_classes - 1, 0  # the extreme labels appear in both splits
    return Written(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], names, flip)


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote the real CIFAR files: its str (our bytes and str alike) as
    BINSTRING opcodes, which load as bytes. Python 3's own protocol 2 would instead pickle bytes
    as calls of `_codecs.encode`, which no real file holds and the restricted unpickler refuses."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256
                   else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes], dispatch[str] = save_bytes, save_str


def _pickle(path: Path, content: dict) -> None:
    with path.open("wb") as file:
        _Python2Pickler(file, protocol=2).dump(content)


def write_cifar10(root: Path, rng) -> Written:
    w = _split(rng, 3, 32, 10, CIFAR10_NAMES, True)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(5):  # 4 images per training batch
        part = slice(4 * i, 4 * i + 4)
        _pickle(folder / f"data_batch_{i + 1}", {
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": w.y_train[part].tolist(), b"data": w.x_train[part].reshape(4, -1),
            b"filenames": [b"x.png"] * 4})
    _pickle(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1",
                                    b"labels": w.y_test.tolist(),
                                    b"data": w.x_test.reshape(N_TEST, -1)})
    _pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES],
                                      b"num_cases_per_batch": 4, b"num_vis": 3072})
    return w


def write_cifar100(root: Path, rng) -> Written:
    w = _split(rng, 3, 32, 100, CIFAR100_NAMES, True)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, x, y in (("train", w.x_train, w.y_train), ("test", w.x_test, w.y_test)):
        _pickle(folder / split, {b"data": x.reshape(len(x), -1), b"fine_labels": y.tolist(),
                                 b"coarse_labels": (y // 5).tolist()})
    _pickle(folder / "meta", {b"fine_label_names": [n.encode() for n in CIFAR100_NAMES],
                              b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)]})
    return w


def write_svhn(root: Path, rng) -> Written:
    w = _split(rng, 3, 32, 10, tuple("0123456789"), False)
    root.mkdir(parents=True, exist_ok=True)
    for filename, x, y in (("train_32x32.mat", w.x_train, w.y_train),
                           ("test_32x32.mat", w.x_test, w.y_test)):
        # SVHN stores X as (H, W, C, N) and the digit 0 as label 10, y as an (N, 1) column.
        svhn_y = np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(root / filename, {"X": x.transpose(2, 3, 1, 0), "y": svhn_y})
    return w


def _idx(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def _write_idx(root: Path, rng, folder: str, names, flip, gz: bool) -> Written:
    w = _split(rng, 1, 28, 10, names, flip)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for stem, x, y in (("train", w.x_train, w.y_train), ("t10k", w.x_test, w.y_test)):
        for path, content in ((raw / f"{stem}-images-idx3-ubyte", _idx(2051, x[:, 0])),
                              (raw / f"{stem}-labels-idx1-ubyte", _idx(2049, y.astype(np.uint8)))):
            if gz:
                path = path.with_name(path.name + ".gz")
                content = gzip.compress(content)
            path.write_bytes(content)
    return w


def write_mnist(root: Path, rng, gz: bool = False) -> Written:
    return _write_idx(root, rng, "MNIST", tuple("0123456789"), False, gz)


def write_fashion_mnist(root: Path, rng, gz: bool = False) -> Written:
    return _write_idx(root, rng, "FashionMNIST", named.FASHION_NAMES, True, gz)


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "svhn": write_svhn,
           "mnist": write_mnist, "fashion-mnist": write_fashion_mnist}


def _assert_loaded(data, written: Written, name: str) -> None:
    assert data.name == name
    for got, want in ((data.x_train, written.x_train), (data.x_test, written.x_test)):
        assert got.dtype == torch.uint8 and tuple(got.shape) == want.shape  # (N, C, H, W)
        assert torch.equal(got, torch.from_numpy(want))
    assert torch.equal(data.y_train, torch.from_numpy(written.y_train.astype(np.int64)))
    assert torch.equal(data.y_test, torch.from_numpy(written.y_test.astype(np.int64)))
    assert data.class_names == written.class_names
    assert data.num_classes == len(written.class_names)
    assert data.is_flip_invariant is written.is_flip_invariant


def _one_line_error(match: str, load, *args) -> str:
    with pytest.raises(DataError, match=match) as info:
        load(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_the_names_are_the_five_datasets():
    assert set(NAMED_DATASETS) == set(WRITERS) == set(named._SOURCES)
    with pytest.raises(UnknownNameError, match="dataset 'cifar-10'; choose one of: cifar10, "):
        load_named("cifar-10")


@pytest.mark.parametrize("name", NAMED_DATASETS)
def test_each_dataset_loads_from_the_torchvision_layout(name, tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)  # everything is in place
    written = WRITERS[name](tmp_path, np.random.default_rng(0))
    _assert_loaded(load_named(name, tmp_path), written, name)


def test_svhn_label_10_is_the_digit_0(tmp_path):
    written = write_svhn(tmp_path, np.random.default_rng(1))
    data = load_named("svhn", tmp_path)
    assert int(data.y_test[0]) == 0 and written.y_test[0] == 0  # stored as 10 in the .mat
    assert data.label_names()[0] == "0"


def test_nas_data_sets_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" and (tmp_path / "cache").is_dir()  # created
    written = write_mnist(tmp_path / "cache", np.random.default_rng(2))
    _assert_loaded(load_named("mnist"), written, "mnist")


def test_an_unusable_cache_root_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "file" / "cache"))  # under a plain file
    _one_line_error(f"cannot create the data cache folder {tmp_path / 'file' / 'cache'} ",
                    load_named, "mnist")


def test_default_root_is_under_the_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root() == tmp_path / ".cache" / "nas" / "data"
    assert data_root().is_dir()


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets_read_the_gz_when_only_it_is_there(name, tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    written = WRITERS[name](tmp_path, np.random.default_rng(3), gz=True)
    _assert_loaded(load_named(name, tmp_path), written, name)


def test_truncated_or_foreign_idx_files_name_the_file(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(4))
    raw = tmp_path / "MNIST" / "raw"
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    _one_line_error(f"{images} is truncated or padded: its header says images of shape "
                    r"\(20, 28, 28\)", load_named, "mnist", tmp_path)
    images.write_bytes(images.read_bytes() + b"\x00" * 10)  # now 5 bytes too many
    _one_line_error(f"{images} is truncated or padded: .* but {20 * 28 * 28 + 5} bytes follow",
                    load_named, "mnist", tmp_path)
    images.write_bytes((raw / "train-labels-idx1-ubyte").read_bytes())  # a labels file instead
    _one_line_error(f"{images} is not an IDX images file: it starts with 2049 .* magic number "
                    "2051", load_named, "mnist", tmp_path)
    images.write_bytes(b"\x00\x00")
    _one_line_error(f"{images} is not an IDX images file", load_named, "mnist", tmp_path)
    images.unlink()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    _one_line_error(f"cannot read {images}.gz", load_named, "mnist", tmp_path)


def test_image_and_label_counts_must_match(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(5))
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(_idx(2049, np.zeros(N_TEST - 1, np.uint8)))
    _one_line_error(f"holds {N_TEST} images but {labels} holds {N_TEST - 1} labels",
                    load_named, "mnist", tmp_path)


def _replace_labels(path: Path, key: bytes, index: int, label: int) -> None:
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch[key][index] = label
    _pickle(path, batch)


def test_out_of_range_labels_name_the_file(tmp_path):
    rng = np.random.default_rng(6)
    write_cifar10(tmp_path / "a", rng)
    batch = tmp_path / "a" / "cifar-10-batches-py" / "data_batch_2"
    _replace_labels(batch, b"labels", 1, 10)  # batches.meta names 10 classes
    _one_line_error(f"{batch} has label 10, outside 0..9 for its 10 classes",
                    load_named, "cifar10", tmp_path / "a")

    write_cifar100(tmp_path / "b", rng)
    test = tmp_path / "b" / "cifar-100-python" / "test"
    _replace_labels(test, b"fine_labels", 3, -1)
    _one_line_error(f"{test} has label -1, outside 0..99", load_named, "cifar100", tmp_path / "b")

    write_svhn(tmp_path / "c", rng)
    mat = tmp_path / "c" / "train_32x32.mat"
    arrays = scipy.io.loadmat(mat)
    arrays["y"][2, 0] = 11
    scipy.io.savemat(mat, {"X": arrays["X"], "y": arrays["y"]})
    _one_line_error(f"{mat} has label 11; SVHN's labels are 1..10", load_named, "svhn",
                    tmp_path / "c")

    write_fashion_mnist(tmp_path / "d", rng)
    labels = tmp_path / "d" / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx(2049, np.full(N_TRAIN, 10, np.uint8)))
    _one_line_error(f"{labels} has label 10, outside 0..9", load_named, "fashion-mnist",
                    tmp_path / "d")


def test_a_missing_batch_or_meta_is_named(tmp_path):
    write_cifar10(tmp_path, np.random.default_rng(7))
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    _one_line_error("cifar-10-batches-py lacks batches.meta", load_named, "cifar10", tmp_path)


# --- downloads, served by stand-ins for urllib.request.urlopen ---------------------------------

def _no_network(request, timeout=None):
    raise AssertionError(f"no download expected, got {request.full_url}")


class _Response(io.BytesIO):
    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def _serve(monkeypatch, files: dict[str, bytes], offline_prefix: str | None = None) -> list[str]:
    """urlopen answering each URL by its file name; URLs starting with `offline_prefix` fail."""
    asked: list[str] = []

    def urlopen(request, timeout=None):
        asked.append(request.full_url)
        if offline_prefix and request.full_url.startswith(offline_prefix):
            raise urllib.error.URLError("[Errno 111] Connection refused")
        return _Response(files[request.full_url.rsplit("/", 1)[-1]])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def _trust(monkeypatch, name: str, files: dict[str, bytes]) -> None:
    """The checksum table, with the test's own files' md5s in place of the real ones."""
    remotes = tuple(dataclasses.replace(r, md5=hashlib.md5(files[r.filename]).hexdigest())
                    for r in named._SOURCES[name])
    monkeypatch.setitem(named._SOURCES, name, remotes)


def _tar_gz(folder: Path, arcname: str, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
        for member, content in (extra or {}).items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -3] name resolution failed"),
                                   TimeoutError("timed out"), ConnectionResetError("reset")])
@pytest.mark.parametrize("name", NAMED_DATASETS)
def test_offline_names_the_urls_and_the_folder(name, error, tmp_path, monkeypatch):
    def urlopen(request, timeout=None):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    message = _one_line_error(f"cannot download {name} from ", load_named, name, tmp_path)
    first = named._SOURCES[name][0]
    assert all(url in message for url in first.urls)  # every mirror tried
    folder = {"mnist": tmp_path / "MNIST" / "raw",
              "fashion-mnist": tmp_path / "FashionMNIST" / "raw"}.get(name, tmp_path)
    assert f"place {first.filename}" in message and f" in {folder} (or set $NAS_DATA" in message
    assert named._SOURCES[name][-1].filename in message  # every file the user needs, not one
    assert list(tmp_path.iterdir()) == []  # no temporary file, no dataset folder


def test_the_cifar10_offline_message_offers_the_extracted_folder(tmp_path, monkeypatch):
    _serve(monkeypatch, {}, offline_prefix="https://")
    message = _one_line_error("cifar10", load_named, "cifar10", tmp_path)
    assert message.startswith("cannot download cifar10 from "
                              "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
                              "([Errno 111] Connection refused); place cifar-10-python.tar.gz, "
                              f"or the extracted cifar-10-batches-py/, in {tmp_path}")


@pytest.mark.parametrize("name", ["cifar10", "svhn", "mnist"])
def test_a_download_with_the_wrong_md5_is_refused(name, tmp_path, monkeypatch):
    _serve(monkeypatch, {r.filename: b"an error page" for r in named._SOURCES[name]})
    expected = named._SOURCES[name][0].md5
    _one_line_error(f"md5 {hashlib.md5(b'an error page').hexdigest()}, expected {expected}",
                    load_named, name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cifar10_downloads_extracts_and_loads(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path / "staging", np.random.default_rng(8))
    archive = _tar_gz(tmp_path / "staging" / "cifar-10-batches-py", "cifar-10-batches-py")
    files = {"cifar-10-python.tar.gz": archive}
    _trust(monkeypatch, "cifar10", files)
    asked = _serve(monkeypatch, files)
    root = tmp_path / "root"
    _assert_loaded(load_named("cifar10", root), written, "cifar10")
    assert asked == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    kept = sorted(p.name for p in root.iterdir())
    assert kept == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]  # as torchvision leaves it

    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    _assert_loaded(load_named("cifar10", root), written, "cifar10")  # the cache, no download
    for path in (root / "cifar-10-batches-py").iterdir():
        path.unlink()
    (root / "cifar-10-batches-py").rmdir()
    _assert_loaded(load_named("cifar10", root), written, "cifar10")  # from the kept archive


def test_mnist_falls_back_to_the_next_mirror_and_keeps_the_gz(tmp_path, monkeypatch):
    written = write_mnist(tmp_path / "staging", np.random.default_rng(9))
    raw = tmp_path / "staging" / "MNIST" / "raw"
    files = {f"{p.name}.gz": gzip.compress(p.read_bytes()) for p in raw.iterdir()}
    _trust(monkeypatch, "mnist", files)
    asked = _serve(monkeypatch, files, offline_prefix="https://ossci-datasets")
    _assert_loaded(load_named("mnist", tmp_path / "root"), written, "mnist")
    assert len(asked) == 8  # each file: the S3 mirror, refused, then LeCun's site
    assert asked[1] == "http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz"
    got = sorted(p.name for p in (tmp_path / "root" / "MNIST" / "raw").iterdir())
    assert got == sorted([*files, *(f.removesuffix(".gz") for f in files)])  # as torchvision


def test_a_placed_archive_with_the_wrong_md5_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(b"half an archive")
    _one_line_error(f"{tmp_path / 'cifar-100-python.tar.gz'} has md5 .* expected "
                    "eb9058c3a382ffc7106e4002c42a8d85", load_named, "cifar100", tmp_path)


@pytest.mark.parametrize("case", ["truncated", "escapes", "wrong folder"])
def test_a_bad_archive_leaves_no_dataset_folder(case, tmp_path, monkeypatch):
    write_cifar100(tmp_path / "staging", np.random.default_rng(10))
    folder = tmp_path / "staging" / "cifar-100-python"
    archive = {"truncated": lambda: _tar_gz(folder, "cifar-100-python")[:3000],
               "escapes": lambda: _tar_gz(folder, "cifar-100-python", {"../../escaped": b"x"}),
               "wrong folder": lambda: _tar_gz(folder, "cifar100")}[case]()
    files = {"cifar-100-python.tar.gz": archive}
    _trust(monkeypatch, "cifar100", files)
    _serve(monkeypatch, files)
    root = tmp_path / "root"
    match = "holds no cifar-100-python/ folder" if case == "wrong folder" else "cannot extract"
    _one_line_error(match, load_named, "cifar100", root)
    assert [p.name for p in root.iterdir()] == ["cifar-100-python.tar.gz"]  # no folder, no temp
    assert not (tmp_path / "escaped").exists()
