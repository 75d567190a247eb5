"""Ranking statistics against scipy and hand-worked examples, bootstrap coverage, and the plots."""
from __future__ import annotations

import itertools
import math

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from nas.errors import ConfigError
from nas.ranking import metrics
from nas.ranking import (bootstrap_interval, kendall_tau, pearson_r, precision_at_top, rank_plot,
                         ranking_figures, scatter_plot, score_variance, seed_to_seed_tau,
                         spearman_rho, top1_regret, top_k_overlap)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def brute_force_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall (1945) tau-b by counting pairs: sum of sign products / sqrt(untied x * untied y)."""
    sign_sum = untied_x = untied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sign_x, sign_y = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        sign_sum += sign_x * sign_y
        untied_x += sign_x != 0
        untied_y += sign_y != 0
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return sign_sum / math.sqrt(untied_x * untied_y)


def same(actual: float, expected: float) -> bool:
    return (math.isnan(actual) and math.isnan(expected)) or actual == pytest.approx(expected)


@st.composite
def tied_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of 2-30 values on a 0.1 grid: ties, and sometimes constant arrays, are common."""
    n = draw(st.integers(2, 30))
    grid = st.lists(st.integers(0, 9), min_size=n, max_size=n)
    return np.array(draw(grid)) / 10, np.array(draw(grid)) / 10


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@settings(max_examples=60, deadline=None)
@given(tied_pairs())
def test_correlations_match_scipy_and_pair_count_with_ties(pair) -> None:
    scores, truth = pair
    tau = kendall_tau(scores, truth)
    assert same(tau, brute_force_tau_b(scores, truth))
    assert same(tau, stats.kendalltau(scores, truth, variant="b").statistic)
    assert same(spearman_rho(scores, truth), stats.spearmanr(scores, truth).statistic)
    assert same(pearson_r(scores, truth), stats.pearsonr(scores, truth).statistic)


@settings(max_examples=60, deadline=None)
@given(tied_pairs(), st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0]))
def test_precision_and_regret_stay_in_range(pair, fraction) -> None:
    scores, truth = pair
    assert 0.0 <= precision_at_top(scores, truth, fraction) <= 1.0
    assert precision_at_top(truth, truth, fraction) == 1.0
    assert precision_at_top(scores, truth, 1.0) == 1.0
    assert 0.0 <= top1_regret(scores, truth) <= truth.max() - truth.min()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correlations_match_scipy_on_larger_tied_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=300), 1)
    truth = np.round(scores + rng.normal(size=300), 1)
    assert kendall_tau(scores, truth) == pytest.approx(brute_force_tau_b(scores, truth))
    assert spearman_rho(scores, truth) == pytest.approx(stats.spearmanr(scores, truth).statistic)
    assert pearson_r(scores, truth) == pytest.approx(stats.pearsonr(scores, truth).statistic)


def test_perfect_and_reversed_rankings() -> None:
    truth = np.random.default_rng(0).permutation(40) / 4
    scores = 3 * truth - 7  # any increasing function of the truth ranks perfectly
    assert kendall_tau(scores, truth) == pytest.approx(1.0)
    assert spearman_rho(scores, truth) == pytest.approx(1.0)
    assert pearson_r(scores, truth) == pytest.approx(1.0)
    assert precision_at_top(scores, truth, 0.1) == 1.0
    assert top1_regret(scores, truth) == 0.0
    assert kendall_tau(-scores, truth) == pytest.approx(-1.0)
    assert spearman_rho(-scores, truth) == pytest.approx(-1.0)


def test_precision_at_top_hand_worked() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.0])
    truth = np.array([9.0, 1.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 0.0])
    # k = ceil(0.3 * 10) = 3: top by score {0, 1, 2}, top by truth {0, 2, 3}, shared {0, 2}.
    assert precision_at_top(scores, truth, 0.3) == pytest.approx(2 / 3)
    # k = max(1, ceil(0.01 * 10)) = 1: both put position 0 first.
    assert precision_at_top(scores, truth, 0.01) == 1.0


def test_precision_at_top_breaks_ties_by_position() -> None:
    # k = 2. Scores tie positions 0-2, so the first two, {0, 1}, are taken; truth ties 2 and 3,
    # both in its top 2, {2, 3}. Nothing is shared.
    scores = np.array([1.0, 1.0, 1.0, 0.0])
    assert precision_at_top(scores, np.array([0.0, 0.0, 1.0, 1.0]), 0.5) == 0
    # Same scores, truth tying positions 0 and 1 at the top instead: {0, 1} is shared in full.
    assert precision_at_top(scores, np.array([1.0, 1.0, 0.0, 0.0]), 0.5) == 1


def test_precision_at_top_k_is_not_inflated_by_float_error() -> None:
    # 0.07 * 100 = 7.000000000000001 in floats; k must be 7. Position 92 is truly best but only
    # 8th by score: k = 7 shares 99..94 (6 of 7); k = 8 would share all 8.
    scores = np.arange(100.0)
    truth = scores.copy()
    truth[92] = 1000.0
    assert precision_at_top(scores, truth, 0.07) == pytest.approx(6 / 7)


def test_top1_regret_hand_worked() -> None:
    scores = np.array([0.2, 0.9, 0.9, 0.1])
    truth = np.array([70.0, 65.0, 72.0, 71.0])
    # Positions 1 and 2 tie for the best score; the first (truth 65) is taken: 72 - 65.
    assert top1_regret(scores, truth) == pytest.approx(7.0)
    assert top1_regret(truth, truth) == 0.0


def test_bootstrap_interval_covers_population_tau() -> None:
    """Bivariate normal with correlation r has population tau = 2/pi * arcsin(r) (Greiner's
    relation). A percentile interval covers it slightly less often than its nominal 95%: 93.5%
    measured over 200 other seeds, so about 19 of these 20 samples; a correct interval covers 17
    or more with probability about 95%. The seeds are fixed, so the test is deterministic (these
    give 20 of 20)."""
    r = 0.6
    population_tau = 2 / math.pi * math.asin(r)
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        x, y = rng.multivariate_normal([0.0, 0.0], [[1.0, r], [r, 1.0]], size=200).T
        low, high = bootstrap_interval(kendall_tau, x, y, resamples=300, seed=seed)
        assert 0.0 < high - low < 0.3  # informative, not [-1, 1]
        covered += low <= population_tau <= high
    assert covered >= 17


def test_bootstrap_resamples_architectures_in_pairs() -> None:
    truth = np.random.default_rng(0).normal(size=50)
    # Only resampling both arrays with the same indices keeps every difference exactly 1.
    mean_gap = bootstrap_interval(lambda s, t: float(np.mean(s - t)), truth + 1.0, truth)
    assert mean_gap == pytest.approx((1.0, 1.0))


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(3)
    scores, truth = rng.normal(size=30), rng.normal(size=30)
    first = bootstrap_interval(spearman_rho, scores, truth, resamples=200, seed=7)
    assert bootstrap_interval(spearman_rho, scores, truth, resamples=200, seed=7) == first
    assert bootstrap_interval(spearman_rho, scores, truth, resamples=200, seed=8) != first


@pytest.mark.parametrize("statistic", [kendall_tau, spearman_rho, pearson_r])
def test_vectorised_bootstrap_equals_one_call_per_resample(statistic) -> None:
    # Few distinct values and N = 6: some resamples are constant (undefined) and get dropped.
    rng = np.random.default_rng(5)
    scores, truth = np.round(rng.random(6), 1), np.round(rng.random(6), 1)
    looped = bootstrap_interval(lambda s, t: statistic(s, t),  # not listed: called per resample
                                scores, truth, resamples=300, seed=1)
    vectorised = bootstrap_interval(statistic, scores, truth, resamples=300, seed=1)
    assert vectorised == pytest.approx(looped)


def test_bootstrap_drops_undefined_resamples() -> None:
    # Resamples drawn only from the first two positions have constant scores: tau undefined.
    low, high = bootstrap_interval(kendall_tau, np.array([0.0, 0.0, 1.0]), np.arange(3.0))
    assert -1.0 <= low <= high <= 1.0
    # Constant scores: no resample is defined.
    interval = bootstrap_interval(kendall_tau, np.ones(5), np.arange(5.0), resamples=50)
    assert all(math.isnan(bound) for bound in interval)


def test_ranking_figures() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=120)
    scores = truth + rng.normal(size=120)
    figures = ranking_figures(scores, truth, resamples=200)
    assert list(figures) == ["kendall_tau", "spearman_rho", "pearson_r", "precision_top5",
                             "precision_top10", "top1_regret"]
    assert all(set(entry) == {"value", "low", "high"} for entry in figures.values())
    assert all(isinstance(number, float) for entry in figures.values() for number in entry.values())
    assert figures["kendall_tau"]["value"] == kendall_tau(scores, truth)
    assert figures["precision_top10"]["value"] == precision_at_top(scores, truth, 0.10)
    tau = figures["kendall_tau"]
    assert tau["low"] < tau["value"] < tau["high"]


def test_seed_to_seed_tau_hand_made() -> None:
    # Pairs: (0, 1) agree (1), (0, 2) and (1, 2) are reversed (-1); mean -1/3.
    truth_by_seed = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]])
    assert seed_to_seed_tau(truth_by_seed) == pytest.approx(-1 / 3)
    # One swapped pair of three: 2 concordant, 1 discordant: 1/3.
    assert seed_to_seed_tau(np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])) == pytest.approx(1 / 3)


def test_top_k_overlap_and_score_variance_hand_made() -> None:
    runs = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
                     [0.0, 4.0, 3.0, 2.0, 1.0, 5.0],
                     [5.0, 4.0, 0.0, 0.0, 0.0, 0.0]])
    # k = 2; top-2 sets {0, 1}, {5, 1}, {0, 1}: overlaps 1/2, 1, 1/2; mean 2/3.
    assert top_k_overlap(runs, 1 / 3) == pytest.approx(2 / 3)
    assert top_k_overlap(runs, 1.0) == 1.0
    np.testing.assert_allclose(score_variance(np.array([[1.0, 2.0], [3.0, 2.0]])), [2.0, 0.0])
    np.testing.assert_allclose(score_variance(runs), np.var(runs, axis=0, ddof=1))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: kendall_tau(np.arange(3.0), np.arange(4.0)), "3 and 4"),
    (lambda: spearman_rho(np.array([1.0]), np.array([1.0])), "at least 2"),
    (lambda: pearson_r(np.array([1.0, np.nan]), np.array([1.0, 2.0])), "nan at index 1"),
    (lambda: top1_regret(np.array([1.0, 2.0]), np.array([np.inf, 2.0])), "inf at index 0"),
    (lambda: kendall_tau(np.ones((2, 2)), np.ones((2, 2))), "1-D"),
    (lambda: precision_at_top(np.arange(3.0), np.arange(3.0), 0.0), "(0, 1]"),
    (lambda: precision_at_top(np.arange(3.0), np.arange(3.0), 1.5), "(0, 1]"),
    (lambda: bootstrap_interval(kendall_tau, [1.0, 2.0], [1.0, 2.0], resamples=0), "resamples"),
    (lambda: bootstrap_interval(kendall_tau, [1.0, 2.0], [1.0, 2.0], level=1.0), "level"),
    (lambda: seed_to_seed_tau(np.ones((1, 5))), "(1, 5)"),
    (lambda: top_k_overlap(np.ones(5), 0.1), "(5,)"),
    (lambda: score_variance(np.array([[1.0, np.nan], [1.0, 2.0]])), "nan at index (0, 1)"),
])
def test_validation_errors_are_one_line(call, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        call()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("plot", [scatter_plot, rank_plot])
def test_plots_write_readable_png(plot, tmp_path) -> None:
    rng = np.random.default_rng(0)
    truth = np.round(rng.normal(size=40), 1)
    path = tmp_path / "plots" / "figure.png"
    plot(truth + rng.normal(size=40), truth, path, title="nb201 / spos")
    assert path.read_bytes().startswith(PNG_MAGIC)
    height, width, channels = matplotlib.image.imread(path).shape
    assert height > 100 and width > 100 and channels in (3, 4)
    assert [entry.name for entry in path.parent.iterdir()] == ["figure.png"]  # no temporary left
    assert plt.get_fignums() == []  # the figure was closed


def test_plots_validate_input(tmp_path) -> None:
    with pytest.raises(ConfigError):
        scatter_plot(np.arange(3.0), np.arange(4.0), tmp_path / "x.png", title="t")
    assert not (tmp_path / "x.png").exists()


def test_bootstrap_draws_every_resample_when_split_into_blocks(monkeypatch) -> None:
    monkeypatch.setattr(metrics, "_BLOCK_VALUES", 7)  # 2 resamples of 3 per block: 2 + 2 + 1
    calls = []
    def counting(s: np.ndarray, t: np.ndarray) -> float:
        calls.append(s.size)
        return float(np.mean(s - t))
    assert bootstrap_interval(counting, np.arange(3.0), np.arange(3.0), resamples=5) == (0.0, 0.0)
    assert calls == [3] * 5


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("n", [2, 7, 40])
def test_pairwise_kendall_rows_equal_scipy_with_ties(monkeypatch, n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, size=(50, n)).astype(float)
    y = rng.integers(0, 6, size=(50, n)).astype(float)
    x[0] = 2.0  # a constant row: undefined in both
    expected = stats.kendalltau(x, y, axis=1).statistic
    monkeypatch.setattr(metrics, "_BLOCK_VALUES", 3 * n)  # several blocks, some of one row
    np.testing.assert_allclose(metrics._kendall_rows(x, y), expected, rtol=0, atol=1e-12)
    monkeypatch.setattr(metrics, "_PAIRWISE_KENDALL_MAX_N", 1)  # scipy's path
    np.testing.assert_allclose(metrics._kendall_rows(x, y), expected, rtol=0, atol=1e-12)
