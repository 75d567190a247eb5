"""How far a search's ranking can be trusted: score noise, size bias, and the stand-alone audit."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from nas.cli import main
from nas.config import DataConfig, SpaceConfig
from nas.problem import build_problem
from nas.training.supernet import load_supernet
from nas.scorers import ScorerSetting, build_scorer
from nas.scorers.supernet import redrawn
from nas.search.trust import Audit, distinct

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


def test_a_redraw_holds_the_same_images_in_another_order():
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    source = problem.splits.calibration
    other = redrawn(source, seed=1)
    first = torch.cat([ids for _, _, ids in source.epoch(0)])
    second = torch.cat([ids for _, _, ids in other.epoch(0)])
    assert sorted(first.tolist()) == sorted(second.tolist())
    assert not torch.equal(first, second)
    assert torch.equal(source.indices, problem.splits.calibration.indices)  # untouched
    assert torch.equal(torch.cat([i for _, _, i in redrawn(source, 1).epoch(0)]), second)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "run"
    assert main(["search", *TINY, "--epochs", "1", "--trials", "6", "--audit", "2", "--scorer", "supernet",
                 "--audit-epochs", "1", "--out", str(out)]) == 0
    return out


def test_trust_reports_the_lead_the_noise_and_the_size_bias_of_the_trials(audited):
    trials = pd.read_csv(audited / "trials.csv")
    trust = json.loads((audited / "trust.json").read_text())
    ranked = distinct(trials, "val_accuracy")
    assert trust["top"] == ranked["arch"].head(10).tolist()
    assert trust["scores"] == pytest.approx(ranked["val_accuracy"].head(10).tolist())
    assert trust["best_margin"] == pytest.approx(ranked.val_accuracy.iloc[0] - ranked.val_accuracy.iloc[1])
    assert trust["trials"] == trials.arch.nunique()
    # The second draw is another draw: rescores differ from the scores, yet rescoring with the
    # first draw reproduces the search's scores exactly.
    trained = load_supernet(audited, "cpu")
    assert trust["rescores"] != trust["scores"]
    scorer = build_scorer(ScorerSetting(), trained.problem, trained=trained)
    again = [scorer(trained.problem.space.parse(a)) for a in trust["top"]]
    assert again == pytest.approx(trust["scores"])
    noise = np.mean(np.abs(np.array(trust["scores"]) - np.array(trust["rescores"])))
    assert trust["score_noise"] == pytest.approx(noise) and noise > 0
    assert trust["params_tau"] == pytest.approx(kendalltau(ranked.val_accuracy, ranked.params_m)[0])


def test_repeated_proposals_count_once():
    trials = pd.DataFrame({"trial": [0, 1, 2, 3], "arch": ["a", "b", "a", "c"],
                           "val_accuracy": [90.0, 80.0, 90.0, 70.0]})
    ranked = distinct(trials, "val_accuracy")
    assert ranked["arch"].tolist() == ["a", "b", "c"]  # the runner-up of a is b, not a again


def test_the_audit_trains_the_shortlist_and_distinct_random_architectures(audited):
    table = pd.read_csv(audited / "audit.csv")
    trials = pd.read_csv(audited / "trials.csv")
    ranked = distinct(trials, "val_accuracy")
    short, rand = table[table.group == "shortlist"], table[table.group == "random"]
    assert short.arch.tolist() == ranked.arch.head(2).tolist()
    assert len(rand) == 2 and not set(rand.arch) & set(short.arch) and rand.arch.is_unique
    assert table.test_accuracy.between(0, 100).all()
    assert (audited / "best.txt").read_text().strip() == short.arch.iloc[0]
    # Each stand-alone model is its own run, named by what it trains: a re-run, or a larger K,
    # trains only what is new.
    models = {p: p.stat().st_mtime_ns for p in (audited / "audit").glob("*/model.pt")}
    assert len(models) == 4
    assert main(["search", *TINY, "--epochs", "1", "--trials", "6", "--audit", "3", "--scorer", "supernet",
                 "--audit-epochs", "1", "--out", str(audited)]) == 0
    grown = pd.read_csv(audited / "audit.csv")
    assert len(grown) == 6 and len(list((audited / "audit").glob("*/model.pt"))) == 6
    assert all(p.stat().st_mtime_ns == t for p, t in models.items())
    kept = grown.set_index("arch").loc[table.arch, "test_accuracy"].to_numpy()
    assert kept == pytest.approx(table.test_accuracy.to_numpy())


def test_the_audit_verdict_counts_each_group_and_ties():
    table = pd.DataFrame({"group": ["shortlist", "random", "random", "random"],
                          "test_accuracy": [90.0, 90.0, 80.0, 95.0]})
    (line,) = Audit(table, test_images=200).lines()
    assert "its shortlist of 1 90.00%" in line and "3 random architectures" in line
    assert "beats 1 of the 3 random ones and ties 1" in line and "0.50 points" in line


@pytest.mark.parametrize("flags, message", [
    (["--audit-epochs", "2"], "give --audit K too"),
    (["--trials", "0", "--audit", "1"], "--trials 0 searches none")])
def test_audit_options_that_would_do_nothing_are_one_line_errors(flags, message, tmp_path, capsys):
    assert main(["search", *TINY, "--trials", "3", *flags, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
