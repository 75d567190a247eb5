"""`nas bench`: the files it writes, its answers to bad flags, and a runner that outlives a
producer module not written yet. Figures are measured at `--quick` sizes: no timing asserts."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from nas.bench import PRODUCERS, ROW_KEYS, Producer, make_row, run_bench, select_producers
from nas.cli import main
from nas.registry import Registry


def _fake_rows(quick: bool) -> list[dict]:
    return [make_row("fake step / baseline step", "nb201", 2.0, 3.0, "ms", goal="<= 1.05")]


def _broken_rows(quick: bool) -> list[dict]:
    raise RuntimeError("the producer broke")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_quick_bench_writes_well_formed_rows(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--only", "steps,methods", "--out", str(out)]) == 0
    table = pd.read_csv(out / "bench.csv")
    assert list(table.columns) == list(ROW_KEYS)
    assert sorted(table.space) == ["darts", "mobilenet", "nb201", "nb201"]
    assert (table.baseline > 0).all() and (table.measured > 0).all()
    assert (table.ratio - table.measured / table.baseline).abs().max() < 1e-9
    assert table.goal.isin(["<= 1.05", "<= 1.10"]).all()
    assert table.met.isin([True, False]).all()
    machine = json.loads((out / "machine.json").read_text())
    assert {"cpu_model", "cpu_cores", "torch", "torch_threads", "cuda_device", "date",
            "command"} <= set(machine)
    assert machine["command"] == f"nas bench --out {out} --only steps,methods --quick"
    readme = (out / "README.md").read_text()
    assert all(figure in readme for figure in table.figure)
    printed = capsys.readouterr().out
    assert "[1/2] steps" in printed and "[2/2] methods" in printed
    assert "pada epoch / spos epoch" in printed


def test_unknown_only_name_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--only", "steps,nope", "--out", str(out)]) == 2
    error = _error_line(capsys)
    assert "'nope'" in error and ", ".join(p.name for p in PRODUCERS) in error
    assert not out.exists()


def test_producers_run_in_registration_order_while_names_are_sorted():
    assert [p.name for p in PRODUCERS] == ["steps", "methods", "scoring", "ddp", "precision"]
    assert [p.name for p in select_producers(PRODUCERS, "precision, steps")] == \
        ["steps", "precision"]
    assert select_producers(PRODUCERS, None) == list(PRODUCERS)
    registry = Registry("producer")
    for name in ("b", "c", "a"):
        registry.register(Producer(name, __name__, "_fake_rows", "a fake figure"))
    assert [p.name for p in registry] == ["b", "c", "a"] and registry.names() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="producer 'a' is registered twice"):
        registry.register(Producer("a", __name__, "_broken_rows", "raises"))
    assert [p.function for p in registry] == ["_fake_rows"] * 3


def test_data_without_scoring_is_refused(tmp_path, capsys):
    assert main(["bench", "--only", "steps", "--data", str(tmp_path), "--out",
                 str(tmp_path / "bench")]) == 2
    assert "scoring" in _error_line(capsys)


def test_missing_producer_module_is_skipped_and_the_rest_runs(tmp_path):
    producers = [Producer("ghost", "nas.bench.no_such_producer", "ghost_rows", "not written"),
                 Producer("fake", __name__, "_fake_rows", "a fake figure")]
    printed = io.StringIO()
    rows = run_bench(producers, tmp_path, quick=True, stream=printed)
    assert [r["figure"] for r in rows] == ["fake step / baseline step"]
    assert rows[0]["ratio"] == 1.5 and rows[0]["met"] is False
    assert "skipped: no module nas.bench.no_such_producer" in printed.getvalue()
    readme = (tmp_path / "README.md").read_text()
    assert "- ghost: skipped" in readme and "- fake: 1 row in" in readme
    assert len(pd.read_csv(tmp_path / "bench.csv")) == 1


def test_a_failing_producer_leaves_the_rows_before_it(tmp_path):
    producers = [Producer("fake", __name__, "_fake_rows", "a fake figure"),
                 Producer("broken", __name__, "_broken_rows", "raises")]
    with pytest.raises(RuntimeError, match="the producer broke"):
        run_bench(producers, tmp_path, stream=io.StringIO())
    assert len(pd.read_csv(tmp_path / "bench.csv")) == 1
    assert "- broken: failed after" in (tmp_path / "README.md").read_text()


def test_row_without_goal_has_no_verdict():
    row = make_row("efficiency", "nb201", 100.0, 180.0, "images/s", ratio=0.9)
    assert row["ratio"] == 0.9 and row["goal"] == "" and row["met"] is None
    assert make_row("x", "nb201", 1.0, 0.7, "s", goal=">= 0.8")["met"] is False
    with pytest.raises(ValueError, match="positive"):
        make_row("x", "nb201", 0.0, 1.0, "s")


def test_a_second_run_into_the_same_folder_keeps_the_first_runs_figures(tmp_path):
    producers = [Producer("fake", __name__, "_fake_rows", "a fake figure")]
    run_bench(producers, tmp_path, stream=io.StringIO())
    first = (tmp_path / "machine.json").read_text()
    printed = io.StringIO()
    run_bench(producers, tmp_path, stream=printed)
    (kept,) = (tmp_path / "earlier").iterdir()
    assert (kept / "machine.json").read_text() == first
    assert len(pd.read_csv(kept / "bench.csv")) == 1 and (kept / "README.md").exists()
    assert f"moved to {kept}" in printed.getvalue()
    assert len(pd.read_csv(tmp_path / "bench.csv")) == 1


def test_quick_ddp_and_precision_figures_are_well_formed():
    from nas.bench.ddp_speed import ddp_rows
    from nas.bench.precision_speed import precision_rows

    rows = ddp_rows(quick=True) + precision_rows(quick=True)
    assert [r["space"] for r in rows] == ["nb201"] * 3 + ["darts"] * 3 + ["nb201", "darts"]
    for row in rows[:6]:  # DDP's own cost, the machine's ceiling, 2 processes' efficiency
        assert row["goal"] == (">= 0.8" if row["figure"].startswith("DDP 2") else "")
        assert row["measured"] > 0
        assert row["ratio"] == pytest.approx(row["measured"] / row["baseline"])
    import torch

    for row in rows[6:]:  # without a GPU: bf16 on the CPU, for reference, without a goal
        assert row["measured"] > 0 and "autocast" in row["figure"]
        assert row["goal"] == (">= 1.0" if torch.cuda.is_available() else "")
