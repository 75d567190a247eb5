"""What every searcher promises: a guided one finds the one optimum of a small synthetic space
(4,096 architectures) within a budget far below exhaustive search (random search is the
reference, not a subject: with 300 draws it finds the optimum with probability
1 - (1 - 1/4096)**300 = 7%); the project's samplers, whose state is the study, resume exactly."""
from __future__ import annotations

import optuna
import pytest

from nas.searchers import EPNAS, SEARCHERS, RegularizedEvolution
from tests.nas.synthetic_space import DECISIONS, objective, proposals

BUDGETS = {"evolution": 300, "epnas": 300, "tpe": 300, "nsga2": 400}  # 7-10% of the space


def test_every_registered_searcher_but_random_is_covered():
    assert set(SEARCHERS.names()) - {"random"} == set(BUDGETS)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_the_searcher_finds_the_optimum_far_below_exhaustive_search(name, seed):
    study = optuna.create_study(direction="maximize", sampler=SEARCHERS.get(name)(seed))
    study.optimize(objective, n_trials=BUDGETS[name])
    assert study.best_value == DECISIONS


@pytest.mark.parametrize("sampler, whole, stop", [(RegularizedEvolution, 40, 25),
                                                  (EPNAS, 60, 27)])  # EPNAS: stopped mid-round
def test_a_resumed_study_proposes_what_an_uninterrupted_one_would(sampler, whole, stop,
                                                                   tmp_path):
    uninterrupted = optuna.create_study(direction="maximize", sampler=sampler(seed=3))
    uninterrupted.optimize(objective, n_trials=whole)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=sampler(seed=3))
    first.optimize(objective, n_trials=stop)
    resumed = optuna.load_study(study_name="s", storage=storage, sampler=sampler(seed=3))
    resumed.optimize(objective, n_trials=whole - stop)
    assert proposals(resumed) == proposals(uninterrupted)
