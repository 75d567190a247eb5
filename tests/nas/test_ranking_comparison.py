"""Comparing training methods: seed-mean tau, and two-level bootstrap intervals that cover."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nas.errors import ConfigError
from nas.ranking import compare_with_baseline, mean_tau, mean_tau_resamples


def noisy_seeds(truth: np.ndarray, noise: float, seeds: int, rng: np.random.Generator) -> np.ndarray:
    return truth + rng.normal(scale=noise, size=(seeds, truth.size))


def test_mean_tau_is_the_mean_of_scipys_per_seed_taus() -> None:
    rng = np.random.default_rng(0)
    truth = np.round(rng.normal(size=30), 1)  # ties
    scores = np.round(noisy_seeds(truth, 1.0, 3, rng), 1)
    expected = np.mean([stats.kendalltau(run, truth).statistic for run in scores])
    assert mean_tau(scores, truth) == pytest.approx(expected)


def test_perfect_scores_give_tau_one_in_every_resample() -> None:
    truth = np.random.default_rng(1).normal(size=20)
    draws = mean_tau_resamples({"perfect": np.stack([truth, 2 * truth])}, truth, resamples=100)
    np.testing.assert_allclose(draws["perfect"], 1.0)


def test_architecture_resamples_are_shared_by_methods() -> None:
    """With one seed each, method B = A's scores: every resample gives both the same tau, so the
    difference is exactly 0 (a paired comparison, not two independent ones)."""
    rng = np.random.default_rng(2)
    truth = rng.normal(size=40)
    scores = noisy_seeds(truth, 1.0, 1, rng)
    table = compare_with_baseline({"a": scores, "b": scores.copy()}, truth, "a", resamples=200)
    assert (table["b"]["difference_low"], table["b"]["difference_high"]) == (0.0, 0.0)
    assert table["b"]["verdict"] == "no clear difference"


def test_two_level_interval_covers_the_population_tau() -> None:
    """Scores = truth + N(0, noise²) with normal truth are bivariate normal with correlation
    r = 1/sqrt(1 + noise²), so every seed's population tau is 2/pi * arcsin(r); the seed-mean
    sample tau is unbiased for it. 20 fixed samples of 64 architectures × 3 seeds: a correct 95%
    interval covers it 17 or more times with probability about 95% (these give 19)."""
    noise = 1.5
    population_tau = 2 / math.pi * math.asin(1 / math.sqrt(1 + noise ** 2))
    covered = 0
    for trial in range(20):
        rng = np.random.default_rng(500 + trial)
        truth = rng.normal(size=64)
        table = compare_with_baseline({"m": noisy_seeds(truth, noise, 3, rng)}, truth, "m",
                                      resamples=400, seed=trial)
        low, high = table["m"]["low"], table["m"]["high"]
        assert 0.0 < high - low < 0.4
        covered += low <= population_tau <= high
    assert covered >= 17


def test_verdicts_follow_the_difference_interval() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=64)
    scores = {"baseline": noisy_seeds(truth, 2.0, 3, rng),
              "sharper": noisy_seeds(truth, 0.3, 3, rng),
              "reversed": -noisy_seeds(truth, 0.3, 3, rng),
              "similar": noisy_seeds(truth, 2.0, 3, rng)}
    table = compare_with_baseline(scores, truth, "baseline", resamples=500)
    assert table["sharper"]["verdict"] == "better"
    assert table["reversed"]["verdict"] == "worse"
    assert table["similar"]["verdict"] == "no clear difference"
    assert "verdict" not in table["baseline"] and table["baseline"]["difference"] == 0.0
    for row in table.values():
        assert row["low"] <= row["mean_tau"] <= row["high"]


def test_bad_input_is_one_clear_error() -> None:
    truth = np.arange(5.0)
    with pytest.raises(ConfigError, match="baseline 'spos' is not among"):
        compare_with_baseline({"pada": np.stack([truth, truth])}, truth, "spos")
    with pytest.raises(ConfigError, match=r"shape \(seeds, 5 architectures\)"):
        mean_tau(np.ones((2, 4)), truth)
    with pytest.raises(ConfigError, match="seed row 1 gives every architecture the same score"):
        mean_tau(np.stack([truth, np.ones(5)]), truth)
    with pytest.raises(ConfigError, match="must be finite"):
        mean_tau(np.array([[1.0, np.nan, 2.0, 3.0, 4.0]]), truth)
