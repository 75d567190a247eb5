"""Budgets beside --epochs (steps, wall time), kept snapshots and the ranking-versus-budget
curve, and progress that reaches a log file."""
from __future__ import annotations

import copy
import io
import math

import numpy as np
import pandas as pd
import pytest
import torch

from nas.cli import main
from nas.data import DataConfig, load_data, make_splits
from nas.errors import ConfigError
from nas.runs import load_checkpoint
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig, train
from supernets.budget import StepBudget, parse_duration
from supernets.loop import kept_steps
from supernets.progress import Progress

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_data(None), DataConfig(batch_size=64), 0)  # 17 steps an epoch


def _fresh(name="spos", **options):
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    cls = METHODS.get(name)
    method = cls(space, cls.config_class(**options), seed=0)
    torch.manual_seed(0)
    return method.build_supernet(), method


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400),
                                           ("600", 600), ("2.5m", 150)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "0", "-5m", "5x", "m"])
def test_malformed_or_empty_durations_are_refused(text):
    with pytest.raises(ConfigError, match="time budget"):
        parse_duration(text)


def test_a_time_budget_becomes_steps_from_the_measured_rate():
    budget = StepBudget(steps_per_epoch=10, epochs=100, steps=None, time_budget_s=60.0)
    assert budget.total == 1000 and not budget.is_resolved  # the upper bound, until measured
    assert not budget.resolve(steps_done=5, elapsed_s=1.0, timed_steps=5, timed_s=1.0)
    assert budget.resolve(steps_done=10, elapsed_s=2.0, timed_steps=10, timed_s=2.0)
    assert budget.total == 10 + 58 * 5 and budget.epochs == 30  # 5 steps/s for 58 s more
    capped = StepBudget(10, 3, None, 3600.0)
    capped.resolve(10, 1.0, 10, 1.0)
    assert capped.total == 30  # --epochs stays the upper bound


def test_keep_checkpoints_specs():
    assert kept_steps("", 100) == set()
    assert kept_steps("4", 100) == {25, 50, 75, 100}
    assert kept_steps("10,30,500", 100) == {10, 30}
    for bad in ("x", "0", "3,-1", ","):
        with pytest.raises(ConfigError, match="keep_checkpoints"):
            kept_steps(bad, 100)


def test_a_steps_budget_trains_exactly_that_many_steps_and_resumes_bit_identically(splits):
    config = TrainConfig(steps=40, checkpoint_every_steps=6)  # 2 epochs and 6 steps
    net, method = _fresh()
    saved = []
    lrs = []
    train(net, method, splits.train, config, save_checkpoint=lambda s: saved.append(copy.deepcopy(s)),
          log_scalar=lambda tag, value, step: lrs.append(value) if tag == "train/lr" else None)
    last = saved[-1]
    assert (last["epoch"], last["step"], last["steps_done"], last["finished"]) == (2, 6, 40, True)
    # Each step trains at the cosine over the budget's 40 steps, not the config's 30 epochs.
    assert lrs == pytest.approx([0.05 * 0.5 * (1 + math.cos(math.pi * k / 40)) for k in range(40)])
    for state in saved[:-1]:  # epoch ends and mid-epoch points alike
        again, method = _fresh()
        train(again, method, splits.train, config, resume_from=state)
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                      again.state_dict().values()))
    again, method = _fresh()
    train(again, method, splits.train, config, resume_from=last)  # finished: trains nothing
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  again.state_dict().values()))


def test_a_steps_budget_drives_epoch_milestones(splits):
    """PA&DA's smoothing and a split's epoch follow the budget's epochs (3 here, not 30)."""
    net, method = _fresh("fewshot", split_at=0.5)
    seen = []
    original = method.on_epoch_start
    method.on_epoch_start = lambda epoch, epochs: (seen.append((epoch, epochs)),
                                                   original(epoch, epochs))
    train(net, method, splits.train, TrainConfig(epochs=30, steps=40, checkpoint_every_steps=0))
    assert seen == [(0, 3), (1, 3), (2, 3)] and len(net.regions) == 5


def test_a_time_budget_run_stops_near_its_budget_and_records_it(tmp_path):
    run = tmp_path / "run"
    assert main(["supernet", *TINY, "--time-budget", "4s", "--epochs", "200",
                 "--out", str(run)]) == 0
    state = load_checkpoint(run / "supernet.pt", "nas-supernet")
    assert state["finished"] and state["total_steps"] == state["steps_done"]
    assert state["total_steps"] < 200 * 17  # far fewer than the upper bound
    assert 2.0 < state["elapsed_s"] < 15.0  # near 4 s; loose for a busy machine
    assert main(["supernet", *TINY, "--time-budget", "4s", "--epochs", "200",
                 "--out", str(run)]) == 0  # resumes a finished run: nothing more
    assert load_checkpoint(run / "supernet.pt", "nas-supernet")["steps_done"] == state["steps_done"]


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "expected a number >= 1"),
    (["--time-budget", "soon"], "time budget looks like"),
    (["--time-budget", "0s"], "more than 0 seconds"),
    (["--steps", "10", "--time-budget", "1m"], "give one budget"),
    (["--keep-checkpoints", "some"], "keep_checkpoints is a count"),
])
def test_malformed_budgets_are_one_line_errors(flags, message, tmp_path, capsys):
    try:
        code = main(["supernet", *TINY, *flags, "--out", str(tmp_path / "run")])
    except SystemExit as leave:  # argparse's own refusal
        code = leave.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_kept_snapshots_give_a_ranking_versus_budget_curve(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        assert main(["supernet", *TINY, "--steps", "30", "--keep-checkpoints", "3",
                     "--seed", str(seed), "--out", str(runs / f"spos-seed{seed}")]) == 0
    kept = sorted(p.name for p in (runs / "spos-seed0" / "checkpoints").iterdir())
    assert kept == ["step-0000010.pt", "step-0000020.pt", "step-0000030.pt"]
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    rng = np.random.default_rng(0)
    archs = sorted({str(space.sample(rng)) for _ in range(40)})[:12]
    truth = tmp_path / "gt.csv"
    pd.DataFrame([{"arch": a, "seed": s, "accuracy": 40 + i + 2 * s} for i, a in enumerate(archs)
                  for s in (0, 1)]).to_csv(truth, index=False)
    assert main(["correlate", "--proxy", "params", *TINY, "--ground-truth", str(truth),
                 "--out", str(tmp_path / "proxies")]) == 0
    out = tmp_path / "budget"
    assert main(["correlate", str(runs / "spos-seed0"), str(runs / "spos-seed1"), "--budget",
                 "--ground-truth", str(truth), "--references", str(tmp_path / "proxies"),
                 "--device", "cpu", "--out", str(out)]) == 0
    table = pd.read_csv(out / "budget.csv")
    assert sorted(table["steps"].unique()) == [10, 20, 30] and set(table["method"]) == {"spos"}
    assert len(table) == 6
    # Runs scored one at a time land in one table: a run's rows are replaced, others kept.
    assert main(["correlate", str(runs / "spos-seed1"), "--budget", "--ground-truth", str(truth),
                 "--device", "cpu", "--out", str(out)]) == 0
    merged = pd.read_csv(out / "budget.csv")
    key = ["run", "steps"]
    pd.testing.assert_frame_equal(merged.sort_values(key).reset_index(drop=True),
                                  table.sort_values(key).reset_index(drop=True))
    # Rows scored against another ground truth never land in the same table.
    other = tmp_path / "gt2.csv"
    pd.read_csv(truth).assign(accuracy=lambda t: 100 - t.accuracy).to_csv(other, index=False)
    assert main(["correlate", str(runs / "spos-seed1"), "--budget", "--ground-truth", str(other),
                 "--device", "cpu", "--out", str(out)]) == 2
    assert "another ground truth" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(out / "budget.csv"), merged)
    assert table.groupby("run")["elapsed_s"].apply(lambda e: e.is_monotonic_increasing).all()
    assert table["kendall_tau"].between(-1, 1).all() and (out / "budget.png").is_file()
    # The final snapshot scores as nas correlate scores the finished run.
    assert main(["correlate", str(runs / "spos-seed0"), "--ground-truth", str(truth),
                 "--scorer", "supernet", "--device", "cpu"]) == 0
    final = pd.read_json(runs / "spos-seed0" / "correlation-gt-accuracy-supernet" / "correlation.json",
                         typ="series")["figures"]["kendall_tau"]["value"]
    last = table[(table["run"] == str(runs / "spos-seed0")) & (table["steps"] == 30)]
    assert last["kendall_tau"].item() == pytest.approx(final)


def test_progress_reaches_a_log_file_with_rate_and_eta():
    log = io.StringIO()
    progress = Progress(100, desc="supernet nb201/spos", unit="step", interval_s=0.0, file=log)
    for _ in range(10):
        progress.update(1, loss="1.234")
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("supernet nb201/spos: 10/100 steps (10.0%), ")
    assert "steps/s, ETA " in lines[-1] and lines[-1].endswith("loss=1.234")
    quiet = io.StringIO()
    with Progress(5, desc="x", unit="step", interval_s=math.inf, file=quiet) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""  # short work prints nothing on a log


# ---- a held-out validation set outside the training subset ---------------------------------
def test_validation_images_can_come_from_outside_the_training_subset():
    from nas.data import split_train

    data = load_data(None)
    train_idx, val_idx = split_train(data, DataConfig(train_subset=600, val_images=500))
    assert len(train_idx) == 600 and len(val_idx) == 500
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    inside, _ = split_train(data, DataConfig(train_subset=600))
    assert set(inside.tolist()) < set(train_idx.tolist())  # the same subset, now trained whole
    with pytest.raises(ConfigError, match="needs --train-subset"):
        DataConfig(val_images=100)
    from nas.errors import DataError
    with pytest.raises(DataError, match="plus --val-images 1000 exceeds"):
        split_train(data, DataConfig(train_subset=600, val_images=1000))


def test_once_a_time_budget_is_resolved_epoch_hooks_see_the_real_epoch_count(splits):
    net, method = _fresh()
    calls = []
    original = method.on_epoch_start
    method.on_epoch_start = lambda epoch, epochs: (calls.append((epoch, epochs)),
                                                   original(epoch, epochs))
    saved = []
    train(net, method, splits.train, TrainConfig(epochs=1000, time_budget_s=1.0),
          save_checkpoint=saved.append)
    epochs = math.ceil(saved[-1]["total_steps"] / len(splits.train))
    assert calls[0] == (0, 1000)  # before the rate is measured: the upper bound
    assert calls[1] == (0, epochs) and epochs < 1000  # then again, with the resolved count
    assert all(e == epochs for _, e in calls[1:])


def test_a_time_budget_with_no_epochs_allowed_is_a_finished_untrained_run(tmp_path):
    run = tmp_path / "run"
    assert main(["supernet", *TINY, "--time-budget", "1m", "--epochs", "0",
                 "--out", str(run)]) == 0
    state = load_checkpoint(run / "supernet.pt", "nas-supernet")
    assert state["finished"] and state["steps_done"] == 0


@pytest.mark.parametrize("argv, message", [
    (["supernet", *TINY, "--steps", "10", "--warmup-epochs", "1"], "the whole budget"),
    (["train", *TINY, "--arch", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
      "--keep-checkpoints", "3"], "keeps snapshots of supernet runs"),
    (["search", *TINY, "--scorer", "proxy:params", "--epochs", "5"], "trains nothing"),
    (["search", *TINY, "--scorer", "proxy:params", "--method", "alphanet"], "trains nothing"),
    (["correlate", "run", "--ground-truth", "gt.csv", "--data", "x.npz"], "are for --proxy"),
])
def test_options_a_command_would_ignore_are_refused(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_held_out_validation_images_stay_out_of_stand_alone_training():
    data = load_data(None)
    splits = make_splits(data, DataConfig(train_subset=600, val_images=500), 0)
    assert sorted(splits.full_train.indices.tolist()) == sorted(splits.train.indices.tolist())
    inside = make_splits(data, DataConfig(train_subset=600), 0)
    assert len(inside.full_train.indices) == 600  # train and its held-out fifth together


def test_snapshots_of_time_budgeted_runs_are_averaged_by_their_order():
    from nas.ranking.budget_curve import snapshot_means
    table = pd.DataFrame({"method": ["m"] * 4, "run": ["a", "a", "b", "b"],
                          "steps": [10, 20, 12, 24], "elapsed_s": [1.0, 2.0, 1.0, 2.2],
                          "kendall_tau": [0.1, 0.3, 0.2, 0.5]})
    means = snapshot_means(table)
    assert means["steps"].tolist() == [11, 22] and means["runs"].tolist() == [2, 2]
    assert means["kendall_tau"].tolist() == pytest.approx([0.15, 0.4])
