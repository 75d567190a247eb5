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
from nas.supernet_run import build_problem
from nas.trust import redrawn

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
    assert main(["search", *TINY, "--epochs", "1", "--trials", "6", "--audit", "2",
                 "--audit-epochs", "1", "--out", str(out)]) == 0
    return out


def test_trust_reports_the_lead_the_noise_and_the_size_bias_of_the_trials(audited):
    trials = pd.read_csv(audited / "trials.csv")
    trust = json.loads((audited / "trust.json").read_text())
    ranked = trials.sort_values(["val_accuracy", "trial"], ascending=[False, True])
    assert trust["top"] == ranked["arch"].head(6).tolist()
    assert trust["best_margin"] == pytest.approx(ranked.val_accuracy.iloc[0] - ranked.val_accuracy.iloc[1])
    noise = np.mean(np.abs(np.array(trust["scores"]) - np.array(trust["rescores"])))
    assert trust["score_noise"] == pytest.approx(noise)
    assert trust["params_tau"] == pytest.approx(kendalltau(trials.val_accuracy, trials.params_m)[0])
    assert trust["best_stays_best"] == (trust["rescores"][0] >= max(trust["rescores"]))


def test_the_audit_trains_the_shortlist_and_distinct_random_architectures(audited):
    table = pd.read_csv(audited / "audit.csv")
    trials = pd.read_csv(audited / "trials.csv")
    ranked = trials.sort_values(["val_accuracy", "trial"], ascending=[False, True])
    short, rand = table[table.group == "shortlist"], table[table.group == "random"]
    assert short.arch.tolist() == ranked.arch.head(2).tolist()
    assert len(rand) == 2 and not set(rand.arch) & set(short.arch) and rand.arch.is_unique
    assert table.test_accuracy.between(0, 100).all()
    assert (audited / "best.txt").read_text().strip() == short.arch.iloc[0]
    # Each stand-alone model is its own resumable run; re-running trains nothing new.
    assert sorted(p.name for p in (audited / "audit").iterdir()) == [
        "random-0", "random-1", "shortlist-0", "shortlist-1"]
    before = table.copy()
    assert main(["search", *TINY, "--epochs", "1", "--trials", "6", "--audit", "2",
                 "--audit-epochs", "1", "--out", str(audited)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(audited / "audit.csv"), before)


def test_an_audit_of_a_proxy_search_is_a_one_line_error(tmp_path, capsys):
    assert main(["search", *TINY, "--scorer", "proxy:params", "--trials", "3", "--audit", "1",
                 "--out", str(tmp_path / "run")]) == 2
    assert "--audit checks a supernet" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
