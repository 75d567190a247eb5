"""Several objectives: Pareto fronts, hypervolume, the picked point, latency, search budgets."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from nas.config import DataConfig, SearchConfig, SpaceConfig
from nas.errors import ConfigError
from nas.search.objectives import Latency, Pick, hypervolume_2d, pareto_mask, parse_objectives
from nas.runs import RunDir
from nas.search.loop import run_search
from nas.problem import build_problem

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


def test_pareto_mask_keeps_exactly_the_non_dominated_points():
    # (accuracy up, cost down)
    points = np.array([[90, 5], [80, 1], [85, 5], [90, 6], [70, 0.5], [80, 1]], dtype=float)
    assert pareto_mask(points, [True, False]).tolist() == [True, True, False, False, True, True]


def test_hypervolume_of_a_staircase_against_its_area_by_hand():
    points = np.array([[90.0, 5.0], [80.0, 1.0], [60.0, 8.0]])  # the last is dominated
    # Box from (accuracy 50, cost 10): [1, 5) x 30 + [5, 10) x 40 = 120 + 200
    assert hypervolume_2d(points, (50.0, 10.0)) == pytest.approx(320.0)
    assert hypervolume_2d(points[:1], (50.0, 10.0)) == pytest.approx(40 * 5)
    assert hypervolume_2d(np.array([[40.0, 1.0]]), (50.0, 10.0)) == 0.0  # outside the box


def test_objectives_and_picks_parse_or_fail_with_what_is_allowed():
    assert parse_objectives("flops,accuracy") == ("accuracy", "flops")
    for bad in ("flops", "accuracy,size", "accuracy,flops,flops", ""):
        with pytest.raises(ConfigError, match="--objectives takes"):
            parse_objectives(bad)
    assert Pick.parse("flops<=50") == Pick("flops", 50.0)
    for bad in ("flops<50", "speed<=3", "flops<=-1", "flops<=x"):
        with pytest.raises(ConfigError, match="--pick takes"):
            Pick.parse(bad)
    with pytest.raises(ConfigError, match="needs latency measured"):
        SearchConfig(pick="latency<=2")
    table = pd.DataFrame({"trial": [0, 1, 2], "acc": [90.0, 80.0, 90.0],
                          "flops_m": [60.0, 10.0, 40.0]})
    assert Pick.parse("flops<=50").choose(table, "acc")["trial"] == 2
    assert Pick.parse("accuracy").choose(table, "acc")["trial"] == 0  # earliest of the tie
    assert Pick.parse("flops<=5").choose(table, "acc") is None


def test_a_two_objective_search_writes_its_front_and_picks_under_the_limit(tmp_path):
    out = tmp_path / "mo"
    assert main(["search", *TINY, "--scorer", "proxy:synflow", "--searcher", "nsga2",
                 "--objectives", "accuracy,flops", "--trials", "30", "--out", str(out)]) == 0
    trials = pd.read_csv(out / "trials.csv")
    front = pd.read_csv(out / "pareto.csv")
    assert (out / "pareto.png").is_file() and len(front) >= 1
    # No trial dominates a front row; every other architecture is dominated by a front row.
    unique = trials.drop_duplicates("arch")
    values = unique[["synflow", "flops_m"]].to_numpy()
    on_front = unique["arch"].isin(front["arch"]).to_numpy()
    assert (pareto_mask(values, [True, False]) == on_front).all()
    # --pick: the most accurate under a FLOPs limit; the same seed proposes the same trials.
    limit = float(np.median(trials["flops_m"]))
    picked = tmp_path / "picked"
    assert main(["search", *TINY, "--scorer", "proxy:synflow", "--searcher", "nsga2",
                 "--objectives", "accuracy,flops", "--trials", "30", "--pick",
                 f"flops<={limit}", "--out", str(picked)]) == 0
    best = (picked / "best.txt").read_text().strip()
    within = trials[trials["flops_m"] <= limit]
    assert best == within.sort_values(["synflow", "trial"], ascending=[False, True]).iloc[0]["arch"]


def test_single_objective_searchers_refuse_several_objectives(tmp_path, capsys):
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", "evolution",
                 "--objectives", "accuracy,params", "--out", str(tmp_path / "x")]) == 2
    assert "evolution optimises one objective" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_latency_is_a_median_of_timed_runs_measured_once_per_architecture(tmp_path):
    out = tmp_path / "lat"
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", "random",
                 "--objectives", "accuracy,latency", "--trials", "4", "--out", str(out)]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["latency_ms"] > 0).all()
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    latency, arch = Latency(problem.space), problem.space.parse(trials["arch"][0])
    assert latency(arch) == latency(arch)  # cached: the same measurement
    latency.seed(str(arch), 123.0)
    assert latency(arch) == 123.0


def test_a_search_time_budget_stops_cleanly_and_a_resume_counts_what_was_spent(tmp_path):
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    run = RunDir(tmp_path / "timed")
    run.open({"kind": "test"})

    def slow(arch) -> float:
        time.sleep(0.2)
        return float(len(str(arch)))

    slow.column = "score"  # a Scorer's name for its values
    slow.parts = lambda arch: {}  # and what it was combined from: nothing

    # Scoring an architecture takes at least 0.2 s (a repeat is free: scores are cached), so a
    # 1 s budget allows at most 5 distinct ones, however loaded the machine; it stops there,
    # not at the 200 trials.
    def distinct() -> int:
        return pd.read_csv(run / "trials.csv")["arch"].nunique()

    config = SearchConfig(searcher="random", trials=200, time_budget_s=1.0)
    run_search(run, problem, slow, config)
    first, trials = distinct(), len(pd.read_csv(run / "trials.csv"))
    assert 1 <= first <= 5 and trials < 200
    run_search(run, problem, slow, config)  # the study's trials spent the budget: nothing more
    assert len(pd.read_csv(run / "trials.csv")) == trials
    run_search(run, problem, slow, SearchConfig(searcher="random", trials=200, time_budget_s=2.0))
    assert first + 1 <= distinct() <= 10


def test_a_long_search_writes_its_trials_along_the_way(tmp_path):
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    run = RunDir(tmp_path / "long")
    run.open({"kind": "test"})
    scored = []

    def dies_at_the_13th(arch) -> float:
        if len(scored) == 12:
            raise KeyboardInterrupt  # the run is killed mid-search
        scored.append(arch)
        return float(len(scored))

    dies_at_the_13th.column = "score"
    dies_at_the_13th.parts = lambda arch: {}

    with pytest.raises(KeyboardInterrupt):
        run_search(run, problem, dies_at_the_13th, SearchConfig(searcher="random", trials=50))
    assert len(pd.read_csv(run / "trials.csv")) == 10  # written every 10 trials
