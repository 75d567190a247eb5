"""`nas ablate`: variants of a recipe, their runs shared by workers, and the paired figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from nas.config import DataConfig, SpaceConfig, SUPERNET_TRAINING
from nas.errors import ConfigError
from nas.ranking.ablation import Recipe, combined_scores, variants
from nas.ranking.comparison import (compare_within_bands, mean_tau_resamples,
                                    within_band_resamples)
from nas.ranking.metrics import kendall_tau
from search_spaces import get_space

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]
RECIPE = Recipe(SpaceConfig("nb201", 4, 1), DataConfig(), SUPERNET_TRAINING, "spos", {})


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_one_variant_per_value_the_recipes_own_value_being_the_baseline():
    own = RECIPE.train.lr
    found = variants(RECIPE, [f"lr=0.025,{own},0.2", "bn=batch-stats,recalibrate"], ["wd=0,clip=0"])
    assert [v.name for v in found] == ["baseline", "lr=0.025", "lr=0.2", "bn_mode=batch-stats",
                                       "weight_decay=0+grad_clip_norm=0"]
    record = RECIPE.record(found[-1].changes, seed=4)
    assert record.train.weight_decay == 0 and record.train.grad_clip_norm == 0
    assert record.train.seed == 4 and record.train.lr == own
    assert RECIPE.record(found[3].changes, 0).method.options.bn_mode == "batch-stats"
    assert RECIPE.record((("batch_size", "32"),), 0).data.batch_size == 32


@pytest.mark.parametrize("vary, combine, expected", [
    (["lrr=0.1"], [], "unknown setting 'lrr'"),
    (["lr"], [], "must look like KEY=VALUE"),
    (["lr=fast"], [], "lr='fast'"),
    (["bn=sometimes"], [], "bn_mode"),
    (["lr=0.2", "lr=0.20"], [], "variants lr=0.2 and lr=0.20 train the same settings"),
    (["bn_affine=false"], ["bn_affine=0"], "train the same settings"),
    ([], ["lr=0.1,0.2"], "one value per setting"),
])
def test_an_unknown_setting_or_value_is_refused_before_anything_runs(vary, combine, expected):
    with pytest.raises(ConfigError, match=expected):
        variants(RECIPE, vary, combine)


def test_a_method_owning_an_optimiser_setting_has_it_varied_there():
    darts = Recipe(SpaceConfig("nb201", 4, 1), DataConfig(), SUPERNET_TRAINING, "darts", {})
    record = darts.record((("weight_decay", "0.01"),), 0)
    assert record.method.options.weight_decay == 0.01
    assert record.train.weight_decay == SUPERNET_TRAINING.weight_decay


def test_the_combination_ranks_quantiles_among_the_scored_architectures():
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    parts = {"supernet": rng.normal(size=9).round(1), "jacov": rng.normal(size=9)}
    got = combined_scores(parts, "log_rank")
    # each part's average rank among the 9 with one more place (the architecture itself counted
    # as the reference's n + 1st), over n + 1: AZ-NAS's log(rank / N) summed over the parts
    expected = sum(np.log((rankdata(v) + 0.5) / 10) for v in parts.values())
    np.testing.assert_allclose(got, expected)
    # ranks only: a monotone transform of a part changes nothing
    same = combined_scores({"supernet": np.exp(parts["supernet"]), "jacov": parts["jacov"]},
                           "log_rank")
    np.testing.assert_allclose(same, got)


def test_with_one_band_the_within_band_bootstrap_is_the_overall_one():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    scores = {"a": truth + rng.normal(size=(3, 40)), "b": truth + 2 * rng.normal(size=(2, 40))}
    flat = np.zeros(40)  # one band holding every architecture, in order
    within = within_band_resamples(scores, truth, flat, resamples=200, seed=3, bands=1)
    overall = mean_tau_resamples(scores, truth, resamples=200, seed=3)
    for name in scores:
        np.testing.assert_allclose(within[name], overall[name])


def test_a_seed_is_drawn_once_across_the_bands():
    """Seeds of very different quality: the seed-mean's interval must show that spread, not
    average it away over independent draws per band."""
    rng = np.random.default_rng(2)
    truth = rng.normal(size=300)
    cost = rng.uniform(size=300)
    good, bad = truth + 0.2 * rng.normal(size=300), rng.normal(size=300)
    draws = within_band_resamples({"m": np.stack([good, bad])}, truth, cost, resamples=400)
    # half the replicates draw the same seed twice: the mean is then one seed's tau
    tau_good = np.mean([kendall_tau(good[b], truth[b]) for b in np.array_split(np.argsort(cost), 3)])
    assert np.quantile(draws["m"], 0.95) > tau_good - 0.05


def test_within_band_comparison_is_paired():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=60)
    cost = rng.uniform(size=60)
    noise = rng.normal(size=(1, 60))  # one seed: the architecture resamples alone, paired
    scores = {"baseline": truth + 3 * noise, "copy": truth + 3 * noise, "better": truth + 0.1 * noise}
    table = compare_within_bands(scores, truth, cost, "baseline", resamples=300)
    assert table["copy"]["difference"] == 0
    assert table["copy"]["difference_low"] == table["copy"]["difference_high"] == 0
    assert table["better"]["verdict"] == "better"
    assert table["better"]["mean_tau"] > table["baseline"]["mean_tau"]


@pytest.fixture(scope="module")
def truth_csv(tmp_path_factory):
    """A ground truth over 10 nb201 cells: parameter count plus noise, two seeds."""
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = sorted({str(space.sample(rng)) for _ in range(10)})
    rows = [{"arch": a, "seed": s, "accuracy": 50 + 80 * space.params_m(space.parse(a))
             + rng.normal()} for a in archs for s in (0, 1)]
    path = tmp_path_factory.mktemp("truth") / "gt.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _argv(truth_csv, out, *extra):
    return ["ablate", *TINY, "--steps", "6", "--ground-truth", str(truth_csv), "--seeds", "2",
            "--vary", "lr=0.2", "--vary", "bn=batch-stats", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def study(truth_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation") / "study"
    assert main(_argv(truth_csv, out)) == 0
    return out


def test_every_variant_and_seed_is_a_resumable_run_scored_on_the_ground_truth(study, truth_csv):
    runs = pd.read_csv(study / "runs.csv")
    assert sorted(zip(runs["variant"], runs["seed"])) == sorted(
        (v, s) for v in ("baseline", "lr=0.2", "bn_mode=batch-stats") for s in (0, 1))
    assert (runs["steps"] == 6).all()
    config = json.loads((study / "runs" / "lr=0.2-seed1" / "config.json").read_text())["settings"]
    assert config["train"]["lr"] == 0.2 and config["train"]["seed"] == 1
    scored = json.loads((study / "runs" / "lr=0.2-seed1" / "ablation_scores.json").read_text())
    truth = pd.read_csv(truth_csv).groupby("arch")["accuracy"].mean()
    row = runs[(runs["variant"] == "lr=0.2") & (runs["seed"] == 1)].iloc[0]
    assert row["tau_supernet"] == pytest.approx(
        kendall_tau(np.array(scored["supernet"]), truth.loc[scored["archs"]].to_numpy()))
    table = pd.read_csv(study / "ablation.csv")
    assert sorted(set(table["scorer"])) == ["supernet", "supernet+jacov+meco"]
    base = table[(table["variant"] == "baseline") & (table["scorer"] == "supernet")].iloc[0]
    assert base["mean_tau"] == pytest.approx(
        runs.loc[runs["variant"] == "baseline", "tau_supernet"].mean())
    assert (study / "ablation.png").stat().st_size > 0
    assert "| lr=0.2 | 2 |" in (study / "ablation.md").read_text()


def test_a_rerun_trains_nothing_again_and_another_recipe_is_refused(study, truth_csv, capsys):
    checkpoint = study / "runs" / "baseline-seed0" / "supernet.pt"
    before = checkpoint.stat().st_mtime_ns
    table = pd.read_csv(study / "ablation.csv")
    assert main(_argv(truth_csv, study)) == 0
    assert checkpoint.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(pd.read_csv(study / "ablation.csv"), table)
    capsys.readouterr()
    assert main(_argv(truth_csv, study, "--lr", "0.2")) == 2
    assert (f"holds an ablation with recipe.train.lr = {SUPERNET_TRAINING.lr}, not 0.2"
            in _error_line(capsys))


def test_unknown_heuristic_on_the_command_line_is_one_line_exit_2(truth_csv, tmp_path, capsys):
    assert main(["ablate", *TINY, "--ground-truth", str(truth_csv), "--vary", "dropout=0.1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "unknown setting 'dropout'" in _error_line(capsys)
    assert not (tmp_path / "x").exists()


def test_two_workers_share_the_queue_without_training_a_run_twice(truth_csv, tmp_path):
    out = tmp_path / "shared"
    argv = [sys.executable, "-m", "nas.cli", *_argv(truth_csv, out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0].decode() for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    started = [line for text in outputs for line in text.splitlines()
               if line.startswith("ablate: run ")]
    assert len(started) == 6 and len(set(s.split(": ", 2)[2] for s in started)) == 6
    assert main(_argv(truth_csv, out)) == 0
    assert len(pd.read_csv(out / "runs.csv")) == 6


def test_a_diverging_variant_is_recorded_and_the_queue_goes_on(truth_csv, tmp_path, capsys):
    out = tmp_path / "diverging"
    argv = ["ablate", *TINY, "--steps", "6", "--ground-truth", str(truth_csv), "--seeds", "1",
            "--vary", "lr=1e30", "--out", str(out)]
    assert main(argv) == 0
    failure = json.loads((out / "runs" / "lr=1e30-seed0" / "ablation_failed.json").read_text())
    assert "non-finite" in failure["error"] or "nan" in failure["error"].lower()
    assert "Failed, left out: lr=1e30 seed 0" in (out / "ablation.md").read_text()
    assert list(pd.read_csv(out / "runs.csv")["variant"]) == ["baseline"]


def test_scored_by_the_supernet_alone_each_run_counts_once(truth_csv, tmp_path):
    out = tmp_path / "alone"
    assert main(["ablate", *TINY, "--steps", "4", "--ground-truth", str(truth_csv), "--seeds", "2",
                 "--vary", "lr=0.2", "--scorer", "supernet", "--out", str(out)]) == 0
    table = pd.read_csv(out / "ablation.csv")
    assert list(table["scorer"]) == ["supernet", "supernet"]
    assert list(table["seeds"]) == [2, 2]


def test_a_time_budget_is_refused(truth_csv, tmp_path, capsys):
    assert main(["ablate", *TINY, "--time-budget", "10s", "--ground-truth", str(truth_csv),
                 "--out", str(tmp_path / "t")]) == 2
    assert "equal steps" in _error_line(capsys)
