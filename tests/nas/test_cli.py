"""The `nas` command end to end on the embedded digits, and its answers to bad input."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from nas.cli import main
from nas.data import DataConfig, load_data, make_splits
from nas.export import load_model, load_program
from supernets import accuracy

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "1"]
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "search"
    assert main(["search", *TINY, "--trials", "5", "--scorer", "supernet", "--out", str(run)]) == 0
    return run


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_search_writes_a_complete_run(search_run):
    for name in ("config.json", "study.db", "trials.csv", "best.txt", "supernet.pt"):
        assert (search_run / name).is_file(), name
    assert any((search_run / "tb").iterdir())
    trials = pd.read_csv(search_run / "trials.csv")
    assert len(trials) == 5 and trials["val_accuracy"].between(0, 100).all()
    best = (search_run / "best.txt").read_text().strip()
    assert best == trials.sort_values("val_accuracy", ascending=False, kind="stable")["arch"].iloc[0]


def test_rerunning_the_same_search_resumes_without_new_trials(search_run, capsys):
    before = (search_run / "trials.csv").read_text()
    assert main(["search", *TINY, "--trials", "5", "--scorer", "supernet",
                 "--out", str(search_run)]) == 0
    assert (search_run / "trials.csv").read_text() == before


def test_exported_model_scores_what_the_search_scored(search_run, tmp_path):
    out = tmp_path / "best.pt2"
    assert main(["export", str(search_run), "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    trials = pd.read_csv(search_run / "trials.csv")
    searched = trials.set_index("arch").loc[meta["arch"], "val_accuracy"]
    assert meta["val_accuracy"] == pytest.approx(searched)
    splits = make_splits(load_data(None), DataConfig(), seed=0)
    program = load_program(out)
    model, arch = load_model(out.with_suffix(".state_dict.pt"))
    assert str(arch) == meta["arch"]
    assert accuracy(model, program, splits.val.epoch(0)) == pytest.approx(searched)


def test_export_refuses_to_overwrite(search_run, tmp_path, capsys):
    out = tmp_path / "m.pt2"
    out.write_bytes(b"earlier result")
    assert main(["export", str(search_run), "--out", str(out)]) == 2
    assert "exists" in _error_line(capsys)
    assert out.read_bytes() == b"earlier result"


def test_train_reports_test_accuracy_and_saves_a_model(tmp_path):
    run = tmp_path / "train"
    assert main(["train", *TINY, "--arch", NB201_ARCH, "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 100 and metrics["arch"] == NB201_ARCH
    program = load_program(run / "model.pt2")
    assert program(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("argv, expected", [
    (["search", "--space", "dart"], "unknown space 'dart'; choose one of: darts, mobilenet, nb201"),
    (["train", "--space", "nb201", "--arch", NB201_ARCH.replace("avg_pool_3x3", "nor_conv_4x4")],
     "nor_conv_4x4"),
    (["search", "--space", "nb201", "--data", "/nonexistent/data.npz"], "does not exist"),
    (["search", "--space", "nb201", "--searcher", "grid"], "unknown searcher 'grid'"),
    (["search", "--space", "nb201", "--method", "enas"], "unknown method 'enas'"),
    (["search", "--space", "nb201", "--method-opt", "colour=red"], "unknown method option 'colour'"),
    (["search", "--space", "nb201", "--device", "cuda"] if not torch.cuda.is_available()
     else ["search", "--space", "nb201", "--device", "tpu"], "device"),
])
def test_bad_input_is_one_line_and_exit_2(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in _error_line(capsys)


def test_data_of_the_wrong_format(tmp_path, capsys):
    path = tmp_path / "images.txt"
    path.write_text("1,2,3")
    assert main(["search", *TINY, "--data", str(path)]) == 2
    error = _error_line(capsys)
    assert "expected a folder of images" in error and "a .npz file" in error


def test_corrupt_checkpoint_is_refused(search_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(search_run, broken)
    data = (broken / "supernet.pt").read_bytes()
    (broken / "supernet.pt").write_bytes(data[: len(data) // 2])
    assert main(["export", str(broken), "--out", str(tmp_path / "m.pt2")]) == 2
    assert "not a readable checkpoint" in _error_line(capsys)
    assert not (tmp_path / "m.pt2").exists()


def test_architecture_of_another_space_is_refused(search_run, tmp_path, capsys):
    genotype = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2, 3, 4, 5], "
                "reduce=[], reduce_concat=[2, 3, 4, 5])")
    assert main(["export", str(search_run), "--arch", genotype, "--out", str(tmp_path / "m.pt2")]) == 2
    assert "nb201 architecture needs 3 nodes joined by '+'" in _error_line(capsys)
    assert not (tmp_path / "m.pt2").exists()


def test_other_settings_never_overwrite_a_run(search_run, capsys):
    before = {p.name: p.read_bytes() for p in search_run.iterdir() if p.is_file()}
    argv = ["search", "--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "2",
            "--trials", "5", "--scorer", "supernet", "--out", str(search_run)]
    assert main(argv) == 2
    assert "other settings (train.epochs: 1 there, 2 now)" in _error_line(capsys)
    after = {p.name: p.read_bytes() for p in search_run.iterdir() if p.is_file()}
    assert after == before
