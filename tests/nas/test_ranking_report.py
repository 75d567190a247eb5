"""The methods' ranking report, from correlation results laid out as `nas correlate` writes them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nas.reports import ranking_report
from nas.ranking import compare_with_baseline, ranking_figures
from search_spaces import get_space

SEEDS = (0, 1)


@pytest.fixture
def laid_out(tmp_path):
    """30 nb201 architectures, 2 ground-truth seeds; 'sharp' supernets track the ground truth,
    'blurred' ones (the baseline) barely do."""
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = sorted({str(space.sample(rng)) for _ in range(60)})[:30]
    quality = rng.normal(60, 3, size=len(archs))
    by_seed = quality + rng.normal(0, 0.5, size=(2, len(archs)))
    gt = tmp_path / "gt.csv"
    pd.DataFrame([{"arch": a, "seed": s, "accuracy": by_seed[s, i]} for i, a in enumerate(archs)
                  for s in SEEDS]).to_csv(gt, index=False)
    truth = by_seed.mean(axis=0)
    scores = {"blurred": truth + rng.normal(0, 6, size=(2, len(archs))),
              "sharp": truth + rng.normal(0, 0.3, size=(2, len(archs)))}
    for method, runs in scores.items():
        for seed, run_scores in zip(SEEDS, runs):
            folder = tmp_path / "runs" / f"{method}-seed{seed}" / "correlation-gt-accuracy"
            folder.mkdir(parents=True)
            pd.DataFrame({"arch": archs, "supernet_score": run_scores,
                          "ground_truth": truth}).to_csv(folder / "correlation.csv", index=False)
            figures = ranking_figures(run_scores, truth, resamples=50)
            (folder / "correlation.json").write_text(json.dumps({"figures": figures}))
    return tmp_path, scores, truth


def test_report_tables_verdicts_and_plots(laid_out, capsys):
    root, scores, truth = laid_out
    out = root / "report"
    argv = ["--runs", str(root / "runs"), "--ground-truth", str(root / "gt.csv"), "--out",
            str(out), "--methods", "blurred,sharp", "--seeds", "0,1", "--baseline", "blurred",
            "--resamples", "300"]
    assert ranking_report.main(argv) == 0
    methods = pd.read_csv(out / "methods.csv").set_index("method")
    expected = compare_with_baseline(scores, truth, "blurred", resamples=300)
    for method in scores:
        assert methods.loc[method, "mean_tau"] == pytest.approx(expected[method]["mean_tau"])
        assert methods.loc[method, "low"] == pytest.approx(expected[method]["low"])
    assert methods.loc["sharp", "verdict"] == "better"
    assert methods.loc["sharp", "mean_tau"] > methods.loc["blurred", "mean_tau"]
    assert len(pd.read_csv(out / "runs.csv")) == 4
    report = (out / "report.md").read_text()
    assert "Beat blurred (95% interval of the difference above 0): sharp." in report
    assert "python -m nas.reports.ranking_report --runs" in report
    for png in ("kendall_tau.png", "scatter.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert "Noise ceiling" in capsys.readouterr().out


def test_runs_on_other_architectures_are_refused(laid_out, capsys):
    root, _, _ = laid_out
    table = root / "runs" / "sharp-seed1" / "correlation-gt-accuracy" / "correlation.csv"
    pd.read_csv(table).iloc[::-1].to_csv(table, index=False)
    argv = ["--runs", str(root / "runs"), "--ground-truth", str(root / "gt.csv"), "--out",
            str(root / "report"), "--methods", "blurred,sharp", "--seeds", "0,1",
            "--baseline", "blurred"]
    assert ranking_report.main(argv) == 2
    error = capsys.readouterr().err
    assert "sharp-seed1 was scored on other architectures" in error
    assert not (root / "report").exists()


def test_missing_correlation_results_name_the_command_to_run(laid_out, capsys):
    root, _, _ = laid_out
    argv = ["--runs", str(root / "runs"), "--ground-truth", str(root / "gt.csv"), "--out",
            str(root / "report"), "--methods", "blurred,absent", "--seeds", "0,1",
            "--baseline", "blurred"]
    assert ranking_report.main(argv) == 2
    assert "run nas correlate" in capsys.readouterr().err
