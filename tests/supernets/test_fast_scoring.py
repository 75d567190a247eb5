"""Prepared scoring data scores exactly as the sources it was prepared from, once per problem."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.bench.rows import ROW_KEYS
from nas.bench.scoring_speed import scoring_rows
from nas.config import DataConfig, SpaceConfig
from nas.data import BatchSource, PreparedBatches
from nas.errors import DataError
from nas.problem import build_problem
from supernets import METHODS, ScoringData, TrainConfig, train
from supernets.evaluation import batchnorms


@pytest.fixture(scope="module")
def problem():
    return build_problem(SpaceConfig("nb201", width=4, cells=1), DataConfig(), seed=0,
                         device="cpu")


@pytest.fixture(scope="module")
def trained(problem):
    """A supernet after 30 SPOS steps on the digits: predictions and statistics of its own."""
    method = METHODS.get("spos")(problem.space)
    torch.manual_seed(0)
    supernet = method.build_supernet()
    train(supernet, method, problem.splits.train,
          TrainConfig(steps=30, checkpoint_every_steps=0, device="cpu"), description="test")
    return method, supernet


def _archs(problem, count: int = 4) -> list:
    rng = np.random.default_rng(0)
    return [problem.space.sample(rng) for _ in range(count)]


def _naive(problem) -> ScoringData:
    """The scoring data before preparation: the sources themselves."""
    return ScoringData(problem.splits.val, problem.splits.calibration)


def _statistics(supernet) -> list[torch.Tensor]:
    return [t.clone() for bn in batchnorms(supernet)
            for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]


def test_prepared_batches_are_the_sources_batches(problem):
    source = problem.splits.calibration
    for got, want in zip(PreparedBatches(source).epoch(0), source.epoch(0), strict=True):
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)


def test_regrouped_batches_hold_the_same_images_in_order(problem):
    source = problem.splits.val
    prepared = PreparedBatches(source, batch_size=100, channels_last=True)
    batches = list(prepared.epoch(0))
    assert len(batches) == len(prepared) == -(-len(source.indices) // 100)
    assert all(len(ids) == 100 for _, _, ids in batches[:-1])
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    got = [torch.cat(parts) for parts in zip(*batches)]  # images, labels, ids
    want = [torch.cat(parts) for parts in zip(*source.epoch(0))]
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_a_training_source_cannot_be_prepared(problem):
    with pytest.raises(DataError, match="training source"):
        PreparedBatches(problem.splits.train)


def test_recalibration_gives_bit_identical_statistics(problem, trained):
    method, supernet = trained
    for arch in _archs(problem):
        method.calibrate(supernet, arch, _naive(problem))
        naive = _statistics(supernet)
        method.calibrate(supernet, arch, problem.scoring_data())
        for got, want in zip(_statistics(supernet), naive, strict=True):
            assert torch.equal(got, want)


@pytest.mark.parametrize("bn_mode", ["recalibrate", "batch-stats"])
def test_fast_scores_equal_the_naive_ones(problem, trained, bn_mode):
    _, supernet = trained
    method = METHODS.get("spos")(problem.space, METHODS.get("spos").config_class(bn_mode=bn_mode))
    naive = [method.score(supernet, a, _naive(problem)) for a in _archs(problem)]
    fast = [method.score(supernet, a, problem.scoring_data()) for a in _archs(problem)]
    assert fast == naive
    assert len(set(naive)) > 1  # trained: the architectures really score differently


def test_scoring_data_is_prepared_once_per_problem(problem, trained, monkeypatch):
    method, supernet = trained
    gathered = []
    epoch = BatchSource.epoch

    def counting_epoch(self, *args, **kwargs):
        for batch in epoch(self, *args, **kwargs):
            gathered.append(len(batch[2]))
            yield batch

    monkeypatch.setattr(BatchSource, "epoch", counting_epoch)
    fresh = build_problem(SpaceConfig("nb201", width=4, cells=1), DataConfig(), seed=0,
                          device="cpu")
    first, second = _archs(fresh, 2)
    method.score(supernet, first, fresh.scoring_data())
    assert sum(gathered) > 0
    before = len(gathered)
    method.score(supernet, second, fresh.scoring_data())
    assert fresh.scoring_data() is fresh.scoring_data()
    assert len(gathered) == before  # the second scoring gathered no batch from the sources
    # Only what was read was prepared: the validation images once (in the large batches of
    # eval-mode scoring) and the calibration batches, not the whole training split.
    calibration = method.config.calibration_batches * fresh.splits.calibration.batch_size
    assert sum(gathered) == len(fresh.splits.val.indices) + calibration


def test_quick_benchmark_rows_are_well_formed():
    rows = scoring_rows(quick=True)
    assert [row["space"] for row in rows] == ["nb201", "darts"]
    for row in rows:
        assert tuple(row) == ROW_KEYS
        assert row["figure"] == "architectures scored per second, fast / naive"
        assert row["unit"] == "archs/s" and row["goal"] == ">= 5"
        assert row["baseline"] > 0 and row["measured"] > 0
        assert row["ratio"] == pytest.approx(row["measured"] / row["baseline"])
        assert isinstance(row["met"], bool) and "scores equal on 2/2" in row["detail"]
