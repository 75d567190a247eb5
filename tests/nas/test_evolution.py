"""Regularised evolution as an Optuna sampler: finds a known optimum, resumes exactly."""
from __future__ import annotations

import optuna
import pytest

from nas.errors import ConfigError
from nas.searchers import SEARCHERS, RegularizedEvolution
from tests.nas.synthetic_space import DECISIONS, objective, proposals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evolution_finds_the_optimum_far_below_exhaustive_search(seed):
    study = optuna.create_study(direction="maximize", sampler=RegularizedEvolution(seed=seed))
    study.optimize(objective, n_trials=300)  # 7% of the 4,096
    assert study.best_value == DECISIONS
    # Random search with the same budget almost never does (p = 1 - (1 - 1/4096)**300 = 7%).


def test_each_child_differs_from_its_population_parent_in_one_decision():
    study = optuna.create_study(direction="maximize", sampler=RegularizedEvolution(seed=0))
    study.optimize(objective, n_trials=40)
    archs = proposals(study)
    for n in range(10, len(archs)):
        # A mutant: exactly one decision differs from some member of its population.
        assert any(sum(a != b for a, b in zip(archs[n], p)) == 1 for p in archs[n - 10:n])


def test_a_resumed_study_proposes_what_an_uninterrupted_one_would(tmp_path):
    whole = optuna.create_study(direction="maximize", sampler=RegularizedEvolution(seed=3))
    whole.optimize(objective, n_trials=40)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=RegularizedEvolution(seed=3))
    first.optimize(objective, n_trials=25)
    resumed = optuna.load_study(study_name="s", storage=storage,
                                sampler=RegularizedEvolution(seed=3))
    resumed.optimize(objective, n_trials=15)
    assert proposals(resumed) == proposals(whole)


def test_minimising_studies_pick_the_lowest_contender():
    study = optuna.create_study(direction="minimize", sampler=RegularizedEvolution(seed=0))
    study.optimize(lambda t: -objective(t), n_trials=300)
    assert study.best_value == -DECISIONS


def test_bad_settings_are_refused_and_the_searcher_is_registered():
    with pytest.raises(ConfigError, match="sample size"):
        RegularizedEvolution(population=3, sample_size=5)
    assert "evolution" in SEARCHERS.names()
    assert isinstance(SEARCHERS.get("evolution")(0), RegularizedEvolution)
