"""Data loading, splits and augmentation."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from nas.data import DataConfig, load_data, make_splits, split_train
from nas.data.batches import BatchSource
from nas.errors import DataError


def test_digits_are_real_and_split_without_overlap():
    data = load_data(None)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.num_classes == 10
    assert len(data.x_train) + len(data.x_test) == 1797
    train, val = split_train(data, DataConfig())
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert len(train) + len(val) == len(data.x_train)
    again, _ = split_train(data, DataConfig())
    assert torch.equal(train, again)  # the split seed, not the run seed, fixes it


def test_split_does_not_depend_on_run_seed():
    data = load_data(None)
    a, b = make_splits(data, DataConfig(), seed=0), make_splits(data, DataConfig(), seed=5)
    assert torch.equal(a.val.indices, b.val.indices)
    xa = next(a.train.epoch(0))[2]
    xb = next(b.train.epoch(0))[2]
    assert not torch.equal(xa, xb)  # but the training order does


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_round_trip_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (20, 6, 6, 3), dtype=np.uint8)
    y = np.arange(20) % 4
    data = load_data(_write_npz(tmp_path / "ok.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5]))
    assert data.x_train.shape == (20, 3, 6, 6) and data.num_classes == 4
    assert torch.equal(data.x_train[3].permute(1, 2, 0), torch.from_numpy(x[3]))
    with pytest.raises(DataError, match="lacks array 'y_test'"):
        load_data(_write_npz(tmp_path / "missing.npz", x_train=x, y_train=y, x_test=x))
    with pytest.raises(DataError, match="uint8"):
        load_data(_write_npz(tmp_path / "float.npz", x_train=x.astype(np.float32), y_train=y,
                             x_test=x, y_test=y))
    with pytest.raises(DataError, match="20 integer labels"):
        load_data(_write_npz(tmp_path / "labels.npz", x_train=x, y_train=y[:3], x_test=x, y_test=y))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_data(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "nowhere.npz")


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, n))}


def test_cifar_directory_layout(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(4, i)))
    (tmp_path / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, 9)))
    data = load_data(tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    first = _cifar_batch(4, 1)[b"data"][0].reshape(3, 32, 32)
    assert torch.equal(data.x_train[0], torch.from_numpy(first))
    (tmp_path / "test_batch").unlink()
    with pytest.raises(DataError, match="lacks test_batch"):
        load_data(tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/nas-test-exploit-ran",))


def test_cifar_loader_runs_no_code_from_a_crafted_pickle(tmp_path):
    marker = "/tmp/nas-test-exploit-ran"
    if os.path.exists(marker):
        os.remove(marker)
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}))
    (tmp_path / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, 9)))
    with pytest.raises(DataError, match="refusing to load"):
        load_data(tmp_path)
    assert not os.path.exists(marker)


def test_random_crop_is_a_shift_with_zero_padding():
    images = torch.arange(2 * 1 * 8 * 8, dtype=torch.uint8).view(2, 1, 8, 8)
    source = BatchSource(images, torch.zeros(2, dtype=torch.long), torch.arange(2),
                         torch.zeros(1), torch.ones(1), batch_size=2, is_training=True)
    generator = torch.Generator().manual_seed(3)
    x = images.float()
    out = source._augment(x, generator)
    generator = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 3, (2,), generator=generator)
    dx = torch.randint(0, 3, (2,), generator=generator)
    for b in range(2):
        padded = torch.nn.functional.pad(x[b], (1, 1, 1, 1))
        expected = padded[:, dy[b]:dy[b] + 8, dx[b]:dx[b] + 8]
        assert torch.equal(out[b], expected)


def test_epochs_are_reproducible_and_differ():
    data = load_data(None)
    splits = make_splits(data, DataConfig(batch_size=32), seed=1)
    a = [x for x, _, _ in splits.train.epoch(2)]
    b = [x for x, _, _ in splits.train.epoch(2)]
    c = [x for x, _, _ in splits.train.epoch(3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert len(a) == len(splits.train) == len(splits.train.indices) // 32


def test_training_subset_is_seeded_and_feeds_every_split():
    data = load_data(None)
    config = DataConfig(train_subset=500)
    train, val = split_train(data, config)
    assert len(train) + len(val) == 500 and len(val) == 100
    again = split_train(data, config)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    splits = make_splits(data, config, seed=0)
    assert set(splits.full_train.indices.tolist()) == set(train.tolist()) | set(val.tolist())
    with pytest.raises(DataError, match="exceeds the 1438 training images"):
        split_train(data, DataConfig(train_subset=5000))
