"""`nas search` with a gradient-based method: its derived architecture is the run's best.txt,
its learned weights are written beside it, and export takes the derived architecture."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from nas.cli import main
from nas.export import read_metadata
from nas.training.supernet import load_supernet

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--train-subset", "300",
        "--batch-size", "16", "--steps", "12", "--device", "cpu"]


@pytest.mark.parametrize("method", ["darts", "drnas", "tangle"])
def test_search_writes_the_derived_architecture_and_its_weights(method, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", *TINY, "--method", method, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"derived by {method}" in out
    best = (run / "best.txt").read_text().strip()
    trained = load_supernet(run, "cpu")
    assert best == str(trained.method.derive())  # from the checkpoint's alphas
    trials = pd.read_csv(run / "trials.csv")
    assert list(trials["arch"]) == [best]
    weights = pd.read_csv(run / "architecture_weights.csv")
    assert len(weights) == 6 * 5  # nb201: 6 edges x 5 ops
    assert weights.groupby("decision")["weight"].sum().round(5).eq(1.0).all()
    assert (run / "architecture_weights.png").stat().st_size > 0
    assert main(["export", str(run), "--out", str(tmp_path / "m.pt2"), "--device", "cpu"]) == 0
    assert read_metadata(tmp_path / "m.pt2")["arch"] == best


def test_tangle_trains_mobilenet_and_derives_at_the_largest_resolution(tmp_path):
    run = tmp_path / "run"
    assert main(["search", "--space", "mobilenet", "--width", "4", "--cells", "2",
                 "--train-subset", "300", "--batch-size", "16", "--steps", "4", "--device",
                 "cpu", "--method", "tangle", "--out", str(run)]) == 0
    best = (run / "best.txt").read_text().strip()
    assert best.startswith("r8-")  # digits are 8 px: the largest resolution
    assert main(["export", str(run), "--out", str(tmp_path / "m.pt2"), "--device", "cpu"]) == 0


@pytest.mark.parametrize("flags,message", [
    (["--space", "mobilenet", "--method", "darts"], "--method tangle"),
    (["--space", "darts", "--method", "tangle"], "--method darts or drnas"),
    (["--space", "nb201", "--method", "drnas", "--batch-size", "512", "--train-subset", "300"],
     "lower --batch-size"),
    (["--space", "nb201", "--method", "darts", "--method-opt", "order=3"], "order must be 1"),
])
def test_bad_gradient_runs_fail_in_one_line_before_any_file(flags, message, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["supernet", *flags, "--device", "cpu", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_the_run_config_records_the_gradient_method(tmp_path):
    run = tmp_path / "run"
    assert main(["supernet", *TINY, "--method", "darts", "--method-opt", "order=2",
                 "--out", str(run)]) == 0
    method = json.loads((run / "config.json").read_text())["settings"]["method"]
    assert method["name"] == "darts" and method["options"]["order"] == 2
