"""EPNAS as an Optuna sampler: its sampling rule, its progression, a known optimum, exact resume."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas.errors import ConfigError
from nas.searchers import EPNAS, SEARCHERS, OptunaSearcher
from nas.searchers.epnas import blocks_of, sample_k, temperature
from search_spaces import SPACES
from tests.nas.synthetic_space import objective, proposals


def test_temperature_follows_the_official_schedule():
    # T = (T0 - Tf) exp(-(t+1)^2 / sigma^2) + Tf, T0 = 10, Tf = 0.2, sigma = 4
    assert temperature(0) == pytest.approx(9.8 * np.exp(-1 / 16) + 0.2)
    assert temperature(3) == pytest.approx(9.8 * np.exp(-1) + 0.2)
    assert temperature(30) == pytest.approx(0.2)


def test_sampling_probabilities_are_the_sharpened_normalised_scores():
    scores = np.array([1.0, 2.0, 3.0])
    for temp in (1.0, 0.5):
        expected = (scores / scores.sum()) ** (1 / temp)
        expected /= expected.sum()
        rng = np.random.default_rng(0)
        counts = np.bincount([sample_k(scores, 1, temp, rng)[0] for _ in range(20000)],
                             minlength=3) / 20000
        assert counts == pytest.approx(expected, abs=0.015)
    # Without replacement, and never more than there are.
    assert sample_k(scores, 5, 1.0, np.random.default_rng(0)) == [0, 1, 2]


def test_blocks_group_a_nodes_or_a_blocks_decisions():
    assert blocks_of(["normal.node2.inputs", "normal.node2.op0", "normal.node2.op1",
                      "normal.node3.inputs", "resolution", "stage1.depth",
                      "stage1.block1.kernel", "stage1.block1.expand", "1<-0", "2<-0"]) == [
        ["normal.node2.inputs", "normal.node2.op0", "normal.node2.op1"],
        ["normal.node3.inputs"], ["resolution"], ["stage1.depth"],
        ["stage1.block1.kernel", "stage1.block1.expand"], ["1<-0"], ["2<-0"]]


def test_the_first_pass_grows_configurations_one_decision_at_a_time():
    study = optuna.create_study(direction="maximize", sampler=EPNAS(seed=0))
    study.optimize(objective, n_trials=4 + 15 + 15)
    archs = proposals(study)
    # Round 1 (trials 4-18) expands round 0's first decisions by every choice of the second:
    # its configurations' first decisions all come from round 0.
    assert {a[0] for a in archs[4:19]} <= {a[0] for a in archs[:4]}
    # Round 2 (trials 19-33) keeps round 1's first two decisions.
    assert {a[:2] for a in archs[19:34]} <= {a[:2] for a in archs[4:19]}


def test_every_searcher_sees_one_parameter_per_decision_and_the_spaces_order():
    space = SPACES.get("nb201")()
    names = [d.name for d in space.decisions]
    for searcher in SEARCHERS.names():
        study = optuna.create_study(direction="maximize", sampler=SEARCHERS.get(searcher)(0))
        search = OptunaSearcher(space, study)
        for arch in search.ask(3):
            search.tell(arch, float(len(str(arch))))
        assert all(sorted(t.params) == sorted(names) for t in study.trials), searcher
        assert study.user_attrs["decisions"] == names  # the order, for progressive searchers


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="k >= 1"):
        EPNAS(k=0)
    assert isinstance(SEARCHERS.get("epnas")(0), EPNAS)


def test_the_first_round_measures_every_choice_of_the_first_block():
    space = SPACES.get("nb201")()
    study = optuna.create_study(direction="maximize", sampler=EPNAS(seed=2))
    search = OptunaSearcher(space, study)
    first = [search.ask(1)[0] for _ in range(5)]  # NB201's first edge has 5 choices
    assert sorted(a.values[0] for a in first) == sorted(space.decisions[0].choices)
