"""Regularised evolution as an Optuna sampler: finds a known optimum, resumes exactly."""
from __future__ import annotations

import optuna
import pytest

from nas.errors import ConfigError
from nas.searchers import SEARCHERS, RegularizedEvolution
from tests.nas.synthetic_space import DECISIONS, objective, proposals


def test_each_child_differs_from_its_population_parent_in_one_decision():
    study = optuna.create_study(direction="maximize", sampler=RegularizedEvolution(seed=0))
    study.optimize(objective, n_trials=40)
    archs = proposals(study)
    for n in range(10, len(archs)):
        # A mutant: exactly one decision differs from some member of its population.
        assert any(sum(a != b for a, b in zip(archs[n], p)) == 1 for p in archs[n - 10:n])


def test_minimising_studies_pick_the_lowest_contender():
    study = optuna.create_study(direction="minimize", sampler=RegularizedEvolution(seed=0))
    study.optimize(lambda t: -objective(t), n_trials=300)
    assert study.best_value == -DECISIONS


def test_bad_settings_are_refused_and_the_searcher_is_registered():
    with pytest.raises(ConfigError, match="sample size"):
        RegularizedEvolution(population=3, sample_size=5)
    assert "evolution" in SEARCHERS.names()
    assert isinstance(SEARCHERS.get("evolution")(0), RegularizedEvolution)
