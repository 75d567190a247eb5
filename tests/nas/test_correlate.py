"""`nas groundtruth` and `nas correlate` end to end on tiny nb201 supernets."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from nas.cli import main
from nas.ranking.correlate import correlate_run, read_ground_truth
from nas.errors import ArchitectureError, DataError
from search_spaces import get_space

TINY = ["--space", "nb201", "--width", "4", "--cells", "1"]


@pytest.fixture(scope="module")
def supernets(tmp_path_factory):
    root = tmp_path_factory.mktemp("supernets")
    runs = [root / f"seed{s}" for s in (0, 1)]
    for seed, run in enumerate(runs):
        assert main(["supernet", *TINY, "--epochs", "1", "--seed", str(seed), "--out", str(run)]) == 0
    return runs


@pytest.fixture(scope="module")
def groundtruth_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gt") / "gt"
    assert main(["groundtruth", *TINY, "--epochs", "1", "--sample", "3", "--seeds", "2",
                 "--out", str(run)]) == 0
    return run


def test_groundtruth_trains_every_architecture_and_seed(groundtruth_run):
    table = pd.read_csv(groundtruth_run / "groundtruth.csv")
    archs = (groundtruth_run / "archs.txt").read_text().split()
    assert len(archs) == len(set(archs)) == 3
    assert sorted(zip(table["arch"], table["seed"])) == sorted((a, s) for a in archs for s in (0, 1))
    assert table["accuracy"].between(0, 100).all()


def test_groundtruth_resumes_row_by_row_and_reproduces_a_row(groundtruth_run):
    path = groundtruth_run / "groundtruth.csv"
    full = pd.read_csv(path)
    path.write_text(full.iloc[:-1].to_csv(index=False))  # as if killed before the last row
    last = full.iloc[-1]
    import shutil
    index = (groundtruth_run / "archs.txt").read_text().split().index(last["arch"])
    shutil.rmtree(groundtruth_run / "models" / f"{index:04d}-seed{last['seed']}")
    assert main(["groundtruth", *TINY, "--epochs", "1", "--sample", "3", "--seeds", "2",
                 "--out", str(groundtruth_run)]) == 0
    again = pd.read_csv(path)
    assert len(again) == len(full)
    assert again.iloc[-1]["accuracy"] == last["accuracy"]  # same seed, same model


def test_a_row_held_by_another_worker_is_left_to_it(groundtruth_run, capsys):
    from nas.runs import exclusive_lock

    path = groundtruth_run / "groundtruth.csv"
    full = pd.read_csv(path)
    path.write_text(full.iloc[1:].to_csv(index=False))  # the first row is not finished
    argv = ["groundtruth", *TINY, "--epochs", "1", "--sample", "3", "--seeds", "2",
            "--out", str(groundtruth_run)]
    with exclusive_lock(groundtruth_run / "models" / "0000-seed0.lock", wait=False) as held:
        assert held  # as another live worker holds it
        assert main(argv) == 0
        assert len(pd.read_csv(path)) == len(full) - 1
        assert "1 row was being trained by other workers" in capsys.readouterr().out
    assert main(argv) == 0  # the lock is free: as after that worker died
    again = pd.read_csv(path)
    assert sorted(zip(again["arch"], again["seed"])) == sorted(zip(full["arch"], full["seed"]))


def test_two_workers_share_one_ground_truth_without_repeating_a_row(tmp_path):
    out = tmp_path / "gt"
    argv = [sys.executable, "-m", "nas.cli", "groundtruth", *TINY, "--epochs", "1",
            "--sample", "4", "--seeds", "2", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Started together: they may meet on a directory that neither has finished creating.
    first, second = (subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT) for _ in range(2))
    outputs = [worker.communicate(timeout=600)[0].decode() for worker in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    table = pd.read_csv(out / "groundtruth.csv")
    assert len(table) == 8 and not table.duplicated(["arch", "seed"]).any()
    assert sum(1 for _ in (out / "models").glob("*/config.json")) == 8


def _own_scores_as_truth(run, tmp_path, reverse=False):
    """A 'ground truth' that is the supernet's own scores: a perfect (or reversed) ranking."""
    space = get_space("nb201")
    archs = [str(space.from_indices([i % 5, (i // 5) % 5, i % 3, 1, 2, (i * 7) % 5]))
             for i in range(12)]
    pd.DataFrame({"arch": archs, "accuracy": range(12)}).to_csv(tmp_path / "any.csv", index=False)
    scores = correlate_run(run, tmp_path / "any.csv", seed=0, overwrite=True)["scores"]
    values = [(-1 if reverse else 1) * scores[a] for a in archs]
    truth = tmp_path / f"own{'-rev' if reverse else ''}.csv"
    pd.DataFrame({"arch": archs, "accuracy": values}).to_csv(truth, index=False)
    return truth


def test_the_supernets_own_scores_rank_perfectly(supernets, tmp_path):
    report = correlate_run(supernets[0], _own_scores_as_truth(supernets[0], tmp_path))
    assert report["figures"]["kendall_tau"]["value"] == pytest.approx(1.0)
    assert report["figures"]["top1_regret"]["value"] == 0
    reversed_report = correlate_run(supernets[0], _own_scores_as_truth(supernets[0], tmp_path, True),
                                    overwrite=True)
    assert reversed_report["figures"]["kendall_tau"]["value"] == pytest.approx(-1.0)
    out = supernets[0] / "correlation-own-rev-accuracy"
    for name in ("correlation.csv", "correlation.json", "scatter.png", "ranks.png"):
        assert (out / name).is_file()


def test_correlate_with_the_nb201_table_and_several_runs(supernets, shared_data, tmp_path, capsys):
    table = shared_data / "nb201.csv.gz"
    argv = ["correlate", *map(str, supernets), "--ground-truth", str(table), "--sample", "20",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "kendall_tau" in printed and "across runs: top5_overlap" in printed
    report = json.loads((supernets[1] / "correlation-nb201-cifar10_test" / "correlation.json").read_text())
    assert report["architectures"] == 20 and report["column"] == "cifar10_test"
    assert -1 <= report["figures"]["kendall_tau"]["value"] <= 1
    summary = json.loads((tmp_path / "across_runs.json").read_text())
    assert 0 <= summary["top10_overlap"] <= 1
    assert main(argv) == 2  # results exist: not overwritten without --overwrite


def test_noise_ceiling_from_a_seeded_ground_truth(supernets, groundtruth_run):
    report = correlate_run(supernets[0], groundtruth_run / "groundtruth.csv")
    assert -1 <= report["noise_ceiling_kendall_tau"] <= 1
    assert report["architectures"] == 3


def test_bad_ground_truth_files(tmp_path):
    space = get_space("nb201")
    arch = str(space.from_indices([0, 1, 2, 3, 4, 0]))
    cases = {
        "unknown.csv": ("arch,accuracy\n" + arch + ",1\n|bogus~0|,2\n", ArchitectureError, "row 3"),
        "twice.csv": (f"arch,accuracy\n{arch},1\n{arch},2\n", DataError, r"twice \(rows 2 and 3\)"),
        "column.csv": (f"arch,acc\n{arch},1\n", DataError, "no column 'accuracy'"),
        "text.csv": (f"arch,accuracy\n{arch},high\n", DataError, "is not a number"),
    }
    for name, (text, error, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(error, match=message):
            read_ground_truth(tmp_path / name, space)
    with pytest.raises(DataError, match="no ground-truth file"):
        read_ground_truth(tmp_path / "absent.csv", space)


def test_several_runs_need_an_output_directory(supernets, tmp_path, capsys):
    assert main(["correlate", *map(str, supernets), "--ground-truth", "x.csv"]) == 2
    assert "--out" in capsys.readouterr().err
