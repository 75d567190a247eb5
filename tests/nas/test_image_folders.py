"""Image folders: layouts, resizing, bad data named in one line, and streamed batches equal to
held ones (step for step, and after SIGKILL)."""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.cli import main
from nas.data import DataConfig, load_data, make_splits
from nas.data.folders import DEFAULT_IMAGE_SIZE
from nas.data.image_files import decode_image
from nas.errors import DataError
from nas.runs import load_checkpoint
from tests.nas.test_reliability import _finished, _nas, _wait_for

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


def _jpegs(shared_data: Path, split: str, count: int, seed: int = 0):
    """(label, JPEG bytes) of `count` real CIFAR-10 images, as the source files were."""
    arrays = np.load(shared_data / "cifar10_32_jpeg.npz")
    blob, offsets, labels = (arrays[f"jpeg_{split}"], arrays[f"offsets_{split}"],
                             arrays[f"y_{split}"])
    chosen = np.random.default_rng(seed).choice(len(labels), count, replace=False)
    return [(int(labels[i]), blob[offsets[i]:offsets[i + 1]].tobytes()) for i in chosen]


def _write(root: Path, images, classes=CLASSES) -> Path:
    for number, (label, data) in enumerate(images):
        path = root / classes[label] / f"{number:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory, shared_data) -> Path:
    """train/ and val/ folders of real CIFAR-10 JPEGs (240 and 60 images)."""
    root = tmp_path_factory.mktemp("cifar-folder")
    _write(root / "train", _jpegs(shared_data, "train", 240))
    _write(root / "val", _jpegs(shared_data, "test", 60))
    return root


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_folder_images_equal_the_decoded_source_files(cifar_folder, shared_data):
    data = load_data(cifar_folder, in_memory="yes")
    assert data.class_names == CLASSES and data.num_classes == 10
    assert data.x_train.shape == (240, 3, 32, 32) and data.x_test.shape == (60, 3, 32, 32)
    first = sorted((cifar_folder / "train" / "airplane").iterdir())[0]
    expected = np.array(Image.open(first).convert("RGB")).transpose(2, 0, 1)
    row = [str(p) for p in data_files(data, cifar_folder)].index(str(first))
    assert torch.equal(data.x_train[row], torch.from_numpy(expected))
    assert int(data.y_train[row]) == 0


def data_files(data, root: Path):
    """The files of the training split in the order the loader lists them (class, then name)."""
    return [p for name in CLASSES for p in sorted((root / "train" / name).iterdir())]


def test_streamed_batches_equal_held_ones_and_stats_too(cifar_folder):
    config = DataConfig(batch_size=32)
    held = make_splits(load_data(cifar_folder, in_memory="yes"), config, seed=3)
    streamed = make_splits(load_data(cifar_folder, in_memory="no"), config, seed=3)
    assert streamed.data.is_streamed and not held.data.is_streamed
    assert torch.equal(held.train.mean, streamed.train.mean)
    assert torch.equal(held.train.std, streamed.train.std)
    for source in ("train", "val", "test", "val_stream"):
        for epoch in (0, 1):
            pairs = zip(getattr(held, source).epoch(epoch), getattr(streamed, source).epoch(epoch),
                        strict=True)
            for (xa, ya, ia), (xb, yb, ib) in pairs:
                assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    a, b = held.train.one_batch(16, seed=5), streamed.train.one_batch(16, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_an_epoch_from_a_later_batch_is_the_tail_of_the_whole_epoch(cifar_folder, in_memory):
    """A resume starts an epoch at its next batch, reading none before it (a streamed one
    decodes nothing it skips), yet every later batch is the one the whole epoch has there."""
    data = load_data(cifar_folder, in_memory=in_memory)
    splits = make_splits(data, DataConfig(batch_size=16), 4)
    for source in (splits.train, splits.val_stream, splits.val):
        whole = list(source.epoch(2))
        for start in sorted({1, len(whole) // 2, len(whole)}):
            tail = list(source.epoch(2, start=start))
            assert len(tail) == len(whole) - start
            for (xa, ya, ia), (xb, yb, ib) in zip(whole[start:], tail, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)


def test_separate_split_folders(tmp_path, shared_data):
    root = tmp_path / "three"
    _write(root / "train", _jpegs(shared_data, "train", 60))
    _write(root / "val", _jpegs(shared_data, "train", 20, seed=1))
    _write(root / "test", _jpegs(shared_data, "test", 30))
    data = load_data(root)
    assert len(data.x_train) == 80 and len(data.x_test) == 30
    assert data.held_out.tolist() == list(range(60, 80))  # val/ validates, it does not train
    splits = make_splits(data, DataConfig(batch_size=16), 0)
    assert sorted(splits.val.indices.tolist()) == list(range(60, 80))
    assert sorted(splits.train.indices.tolist()) == list(range(60))
    subset = make_splits(data, DataConfig(batch_size=16, train_subset=30, val_images=5), 0)
    assert len(subset.train.indices) == 30 and max(subset.train.indices) < 60
    assert len(subset.val.indices) == 5 and min(subset.val.indices) >= 60


def test_one_folder_is_split_per_class_with_a_fixed_seed(tmp_path, shared_data):
    root = _write(tmp_path / "flat", _jpegs(shared_data, "train", 100))
    first, again = load_data(root), load_data(root)
    assert len(first.x_test) + len(first.x_train) == 100
    assert torch.equal(first.y_test, again.y_test) and torch.equal(first.x_test, again.x_test)
    counts = np.bincount(first.y_train.numpy(), minlength=10) + np.bincount(
        first.y_test.numpy(), minlength=10)
    test_counts = np.bincount(first.y_test.numpy(), minlength=10)
    assert np.array_equal(test_counts, [min(c - 1, round(c * 0.2)) for c in counts])


def test_resizing_keeps_the_centre_of_the_shorter_side(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # height 20, width 40
    pixels[:, 10:30] = 255                          # the centre 20 columns white
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    grey = decode_image(str(tmp_path / "wide.png"), 20, 1)  # no scaling: the crop alone
    assert grey.shape == (1, 20, 20) and grey.min() == 255
    pixels[:, 8:32] = 255  # a margin for the antialiasing filter's reach when halved
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    square = decode_image(str(tmp_path / "wide.png"), 10, 3)
    assert square.shape == (3, 10, 10) and square.min() == 255  # the white centre, nothing else
    pixels[:, 8:32] = 0
    pixels[:, 4:8] = 255  # white only outside the centre
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    assert decode_image(str(tmp_path / "wide.png"), 10, 3).max() == 0


def test_image_size_default_own_size_else_stated_default(tmp_path, capsys):
    root = tmp_path / "sizes"
    for name, size in (("a", (40, 40)), ("b", (40, 40))):
        for i in range(3):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (i * 40, 0, 0)).save(root / name / f"{i}.png")
    assert load_data(root).image_size == 40
    Image.new("RGB", (64, 48)).save(root / "b" / "other.png")
    assert load_data(root).image_size == DEFAULT_IMAGE_SIZE
    assert "several sizes; --image-size sets another" in capsys.readouterr().out
    assert load_data(root, image_size=12).x_train.shape[-2:] == (12, 12)


def _corrupt(root: Path) -> Path:
    path = next((root / "train" / "cat").iterdir())
    path.write_bytes(b"not an image at all")
    return path


@pytest.mark.parametrize("case", ["unreadable", "truncated", "empty-class", "one-class",
                                  "grey-and-colour", "sixteen-bit", "val-class-unknown",
                                  "npz-label"])
def test_bad_data_is_named_in_one_line_exit_2(case, tmp_path, shared_data, capsys):
    root = tmp_path / "data"
    _write(root / "train", _jpegs(shared_data, "train", 40))
    _write(root / "val", _jpegs(shared_data, "test", 20))
    named = None
    if case == "unreadable":
        named = _corrupt(root)
    elif case == "truncated":
        named = next((root / "train" / "dog").iterdir())
        named.write_bytes(named.read_bytes()[:300])
    elif case == "empty-class":
        named = root / "train" / "zebra"
        named.mkdir()
    elif case == "one-class":
        root = tmp_path / "single"
        _write(root, [(0, data) for _, data in _jpegs(shared_data, "train", 5)])
        named = "single class"
    elif case == "grey-and-colour":
        named = root / "train" / "cat" / "grey.png"
        Image.new("L", (32, 32), 7).save(named)
    elif case == "sixteen-bit":  # 8 bits would clip it white: refused, not trained on
        named = root / "train" / "cat" / "deep.png"
        Image.fromarray(np.full((32, 32), 40_000, dtype=np.uint16)).save(named)
    elif case == "val-class-unknown":
        named = root / "val" / "unicorn"
        named.mkdir()
        Image.new("RGB", (32, 32)).save(named / "u.png")
    elif case == "npz-label":
        root = tmp_path / "bad.npz"
        x = np.zeros((8, 8, 8), dtype=np.uint8)
        np.savez(root, x_train=x, y_train=np.arange(8) % 3, x_test=x[:2], y_test=np.array([0, 7]))
        named = "y_test has label 7"
    err = _one_line_error(["search", *TINY, "--data", str(root), "--scorer", "params",
                           "--trials", "2", "--out", str(tmp_path / "run")], capsys)
    assert str(named) in err, err
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def test_streamed_and_held_folder_train_the_same_supernet(cifar_folder, tmp_path):
    argv = ["supernet", *TINY, "--data", str(cifar_folder), "--steps", "12", "--batch-size", "16"]
    for mode in ("yes", "no"):
        assert main([*argv, "--in-memory", mode, "--out", str(tmp_path / mode)]) == 0
    held = load_checkpoint(tmp_path / "yes" / "supernet.pt", "nas-supernet")
    streamed = load_checkpoint(tmp_path / "no" / "supernet.pt", "nas-supernet")
    assert held["steps_done"] == streamed["steps_done"] == 12
    for name, tensor in held["model"].items():
        assert torch.equal(tensor, streamed["model"][name]), name
    record = json.loads((tmp_path / "no" / "data.json").read_text())
    assert record["classes"] == list(CLASSES) and record["streamed"] is True


def test_streamed_run_killed_resumes_bit_identically(cifar_folder, tmp_path):
    argv = ["supernet", *TINY, "--data", str(cifar_folder), "--in-memory", "no", "--steps", "60",
            "--batch-size", "16", "--checkpoint-every", "5"]
    straight = _nas(*argv, "--out", str(tmp_path / "straight"))
    killed_run = tmp_path / "killed"
    killed = _nas(*argv, "--out", str(killed_run))
    _wait_for(lambda: (killed_run / "supernet.pt").exists(), killed)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert load_checkpoint(killed_run / "supernet.pt", "nas-supernet")["steps_done"] < 60
    _finished(_nas(*argv, "--out", str(killed_run)))
    _finished(straight)
    a = load_checkpoint(tmp_path / "straight" / "supernet.pt", "nas-supernet")["model"]
    b = load_checkpoint(killed_run / "supernet.pt", "nas-supernet")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_folder_searched_end_to_end_and_a_later_bad_file_loses_nothing(cifar_folder, tmp_path,
                                                                        capsys):
    data = tmp_path / "images"
    shutil.copytree(cifar_folder, data)
    run = tmp_path / "search"
    argv = ["search", *TINY, "--data", str(data), "--steps", "20", "--batch-size", "16",
            "--trials", "4", "--searcher", "random", "--scorer", "supernet", "--out", str(run)]
    assert main(argv) == 0
    assert (run / "best.txt").read_text().strip()
    assert json.loads((run / "data.json").read_text())["classes"] == list(CLASSES)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    bad = _corrupt(data)
    capsys.readouterr()
    err = _one_line_error(argv, capsys)  # the same command again: a resume, refused
    assert str(bad) in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_data_options_that_do_not_apply_are_refused(tmp_path, capsys):
    err = _one_line_error(["search", *TINY, "--scorer", "params", "--trials", "1",
                           "--image-size", "16", "--out", str(tmp_path / "r")], capsys)
    assert "--image-size" in err
    err = _one_line_error(["search", *TINY, "--scorer", "params", "--trials", "1",
                           "--in-memory", "no", "--out", str(tmp_path / "r")], capsys)
    assert "--in-memory" in err
    with pytest.raises(DataError, match="no class subfolders"):
        (tmp_path / "empty" / "train").mkdir(parents=True)
        load_data(tmp_path / "empty")
    flat = tmp_path / "flat"  # images but no class folders: named as such, not as broken CIFAR
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(DataError, match="flat has no class subfolders"):
        load_data(flat)


def test_memory_of_a_process_tree_counts_its_children(tmp_path):
    import subprocess
    import sys
    import time

    from nas.bench.streaming import process_tree_pss_bytes

    alone = process_tree_pss_bytes(os.getpid())
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; x = bytearray(200 * 2**20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while process_tree_pss_bytes(os.getpid()) < alone + 150 * 2**20:
            assert time.monotonic() < deadline, "the child's 200 MiB never showed"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert process_tree_pss_bytes(child.pid) == 0  # gone: nothing to count


def test_train_folder_alone_is_split_like_a_flat_one(tmp_path, shared_data):
    images = _jpegs(shared_data, "train", 60)
    alone = load_data(_write(tmp_path / "a" / "train", images).parent)
    flat = load_data(_write(tmp_path / "flat", images))
    assert torch.equal(alone.y_test, flat.y_test) and torch.equal(alone.x_train, flat.x_train)


def test_flips_follow_the_data_unless_set(cifar_folder):
    def flipped_any(flip: str) -> bool:
        splits = make_splits(load_data(cifar_folder), DataConfig(batch_size=64, flip=flip), 0)
        plain = make_splits(load_data(cifar_folder), DataConfig(batch_size=64, flip="no"), 0)
        return not all(torch.equal(a[0], b[0]) for a, b in
                       zip(splits.train.epoch(0), plain.train.epoch(0), strict=True))

    assert flipped_any("auto") and flipped_any("yes")  # a folder of photos flips by default
    assert not flipped_any("no")
    digits = make_splits(load_data(None), DataConfig(batch_size=64, flip="yes"), 0)
    assert digits.train.is_flip_invariant
    assert not make_splits(load_data(None), DataConfig(batch_size=64), 0).train.is_flip_invariant


def test_a_run_refuses_to_resume_on_a_changed_folder(cifar_folder, tmp_path, capsys):
    data = tmp_path / "images"
    shutil.copytree(cifar_folder, data)
    argv = ["supernet", *TINY, "--data", str(data), "--steps", "4", "--batch-size", "16",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert main(argv) == 0  # the same folder: resumes (here: already finished)
    extra = next((data / "train" / "cat").iterdir())
    shutil.copy(extra, extra.with_name("copy.jpg"))
    before = (tmp_path / "run" / "data.json").read_text()
    err = _one_line_error(argv, capsys)
    assert "changed since" in err and (tmp_path / "run" / "data.json").read_text() == before
