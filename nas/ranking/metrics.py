"""How well a supernet ranks architectures: correlations, top-k agreement, regret, and intervals.

Every function takes `scores` (the supernet's estimate, one value per architecture) and `truth`
(the ground truth, such as stand-alone accuracy, in the same architecture order). Higher is better
for both; negate a loss before passing it. Arrays go in, Python floats come out. A correlation of a
constant array is undefined and comes out as NaN, as in scipy.
"""
from __future__ import annotations

import itertools
import math
import warnings
from functools import partial
from typing import Callable

import numpy as np
from scipy import stats

from nas.errors import ConfigError

Statistic = Callable[[np.ndarray, np.ndarray], float]

# Bootstrap resamples are drawn in blocks of at most this many values, so that memory stays
# bounded when N is large (all 15,625 NB201 cells) while small N still gets one vectorised call.
_BLOCK_VALUES = 1 << 21


def _checked_values(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array of one value per architecture, "
                          f"but got shape {values.shape}")
    if values.size < 2:
        raise ConfigError(f"{name} must hold at least 2 architectures to rank, "
                          f"but got {values.size}")
    _check_finite(values, name)
    return values


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        raise ConfigError(f"{name} must be finite, but holds {values[where]} at index "
                          f"{where[0] if len(where) == 1 else where}; drop or re-evaluate those "
                          "architectures")


def _checked_pair(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = _checked_values(scores, "scores"), _checked_values(truth, "truth")
    if scores.size != truth.size:
        raise ConfigError(f"scores and truth must have one value per architecture each, "
                          f"but got {scores.size} and {truth.size}")
    return scores, truth


def _checked_runs(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 2:
        raise ConfigError(f"{name} must have shape (runs >= 2, architectures >= 2), "
                          f"but got shape {values.shape}")
    _check_finite(values, name)
    return values


def _top_k_count(n: int, fraction: float) -> int:
    """k = max(1, ceil(fraction * n)), with fraction * n rounded to 9 decimals first so that float
    error cannot turn 0.07 * 100 = 7.000000000000001 into k = 8."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], but got {fraction}")
    return max(1, math.ceil(round(fraction * n, 9)))


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values; equal values keep their order, so the earlier wins."""
    return np.argsort(-values, kind="stable")[:k]


def kendall_tau(scores: np.ndarray, truth: np.ndarray) -> float:
    """Kendall tau-b (Kendall 1945, Biometrika 33(3), "The treatment of ties in ranking problems"):
    (concordant - discordant) / sqrt(pairs untied in scores * pairs untied in truth).

    Computed by `scipy.stats.kendalltau`, as PA&DA (Lu et al., CVPR 2023) and Few-Shot NAS (Zhao et
    al., ICML 2021) do, so figures compare with theirs.
    """
    scores, truth = _checked_pair(scores, truth)
    return float(stats.kendalltau(scores, truth).statistic)


def spearman_rho(scores: np.ndarray, truth: np.ndarray) -> float:
    """Spearman's rho (Spearman 1904): Pearson's r of the ranks, ties given their average rank
    (`scipy.stats.spearmanr`)."""
    scores, truth = _checked_pair(scores, truth)
    return float(stats.spearmanr(scores, truth).statistic)


def pearson_r(scores: np.ndarray, truth: np.ndarray) -> float:
    """Pearson's product-moment correlation of the raw values (`scipy.stats.pearsonr`)."""
    scores, truth = _checked_pair(scores, truth)
    return float(stats.pearsonr(scores, truth).statistic)


def precision_at_top(scores: np.ndarray, truth: np.ndarray, fraction: float) -> float:
    """P@top-K of Ning et al. (NeurIPS 2021, "Evaluating Efficient Performance Estimators of Neural
    Architectures"): the share of the true top-k among the top-k by score, k = max(1, ceil(fraction
    * n)).

    Ties at the k-th place are broken by position: of equal values the earlier architecture is taken
    (a stable sort), so the result is deterministic but depends on the input order.
    """
    scores, truth = _checked_pair(scores, truth)
    k = _top_k_count(scores.size, fraction)
    shared = np.intersect1d(_top_k(scores, k), _top_k(truth, k))
    return shared.size / k


def top1_regret(scores: np.ndarray, truth: np.ndarray) -> float:
    """How much ground truth the supernet's favourite loses to the best architecture:
    max(truth) - truth[argmax(scores)], the regret of NAS-Bench-101 (Ying et al., ICML 2019) for a
    search that trusts the supernet. Of equally scored favourites the first is taken."""
    scores, truth = _checked_pair(scores, truth)
    return float(truth.max() - truth[np.argmax(scores)])


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return stats.pearsonr(x, y, axis=1).statistic


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


# Up to this many architectures, tau-b of each row is counted over all pairs at once, which is far
# faster on bootstrap-sized arrays than scipy's per-row sort; above it, scipy's O(N log N) wins.
_PAIRWISE_KENDALL_MAX_N = 512


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """tau-b per row: sum over pairs of sign(dx)·sign(dy) / sqrt(untied-in-x · untied-in-y pairs),
    the same quantity as scipy's (C - D) / sqrt((n0 - n1)(n0 - n2)); NaN for a constant row."""
    n = x.shape[1]
    if n > _PAIRWISE_KENDALL_MAX_N:
        return stats.kendalltau(x, y, axis=1).statistic
    first, second = np.triu_indices(n, 1)
    rows_per_block = max(1, _BLOCK_VALUES // first.size)
    taus = np.empty(x.shape[0])
    for start in range(0, x.shape[0], rows_per_block):
        block = slice(start, start + rows_per_block)
        sign_x = np.sign(x[block][:, first] - x[block][:, second])
        sign_y = np.sign(y[block][:, first] - y[block][:, second])
        untied = np.abs(sign_x).sum(axis=1) * np.abs(sign_y).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            taus[block] = (sign_x * sign_y).sum(axis=1) / np.sqrt(untied)
    return taus


# The same scipy definitions applied to each row of (resamples, N) arrays in one call; a statistic
# not listed here is called once per resample. Both paths give equal values (tested).
_ROWWISE: dict[Statistic, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    kendall_tau: _kendall_rows, spearman_rho: _spearman_rows, pearson_r: _pearson_rows}


def _statistic_per_row(statistic: Statistic, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rowwise = _ROWWISE.get(statistic)
    if rowwise is not None:
        return np.asarray(rowwise(x, y), dtype=float)
    return np.array([statistic(x_row, y_row) for x_row, y_row in zip(x, y)], dtype=float)


def _resampled_statistics(statistic: Statistic, scores: np.ndarray, truth: np.ndarray,
                          resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = scores.size
    rows_per_block = max(1, _BLOCK_VALUES // n)
    values = []
    with warnings.catch_warnings():
        # A constant resample is expected (few distinct values) and is dropped by the caller.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        for start in range(0, resamples, rows_per_block):
            rows = min(rows_per_block, resamples - start)
            indices = rng.integers(0, n, size=(rows, n))  # (rows, N); shared by both arrays: paired
            values.append(_statistic_per_row(statistic, scores[indices], truth[indices]))
    return np.concatenate(values)


def bootstrap_interval(statistic: Statistic, scores: np.ndarray, truth: np.ndarray, *,
                       resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Paired percentile bootstrap interval (Efron & Tibshirani 1993, "An Introduction to the
    Bootstrap", ch. 13) of `statistic(scores, truth)` over architectures.

    Each resample draws N architecture indices with replacement and applies the same indices to
    both arrays. Resamples where the statistic is undefined (NaN, e.g. all resampled scores equal)
    are dropped; if none is defined the interval is (nan, nan). Deterministic for a given seed.
    """
    scores, truth = _checked_pair(scores, truth)
    is_count = isinstance(resamples, (int, np.integer)) and not isinstance(resamples, bool)
    if not is_count or resamples < 1:
        raise ConfigError(f"resamples must be a positive integer, but got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), such as 0.95, but got {level}")
    return percentile_interval(_resampled_statistics(statistic, scores, truth, resamples, seed),
                               level)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` share of bootstrap `values`, NaNs (undefined resamples) dropped;
    (nan, nan) when none is defined."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


RANKING_STATISTICS: dict[str, Statistic] = {
    "kendall_tau": kendall_tau,
    "spearman_rho": spearman_rho,
    "pearson_r": pearson_r,
    "precision_top5": partial(precision_at_top, fraction=0.05),
    "precision_top10": partial(precision_at_top, fraction=0.10),
    "top1_regret": top1_regret,
}


def ranking_figures(scores: np.ndarray, truth: np.ndarray, *, seed: int = 0,
                    resamples: int = 1000, flops: np.ndarray | None = None
                    ) -> dict[str, dict[str, float]]:
    """Every statistic of `RANKING_STATISTICS` as {"value", "low", "high"}: the value on all
    architectures and its 95% bootstrap interval, and with `flops` the Kendall tau within
    FLOPs terciles (`within_band_figure`). All statistics see the same resamples (same
    seed). A percentile interval need not contain the value when the statistic is skewed."""
    scores, truth = _checked_pair(scores, truth)
    figures = {}
    for name, statistic in RANKING_STATISTICS.items():
        low, high = bootstrap_interval(statistic, scores, truth, resamples=resamples, seed=seed)
        figures[name] = {"value": float(statistic(scores, truth)), "low": low, "high": high}
    if flops is not None:
        figures["kendall_tau_flops_terciles"] = within_band_figure(
            scores, truth, flops, seed=seed, resamples=resamples)
    return figures


def seed_to_seed_tau(truth_by_seed: np.ndarray) -> float:
    """Mean Kendall tau-b over all pairs of seeds of a ground truth, truth_by_seed shape (K, N).

    Two training runs of the same architectures disagree this much on their own, so no supernet
    can be expected to agree with one run of the ground truth better: the noise ceiling.
    """
    truth_by_seed = _checked_runs(truth_by_seed, "truth_by_seed")
    pairs = itertools.combinations(truth_by_seed, 2)
    return float(np.mean([kendall_tau(first, second) for first, second in pairs]))


def top_k_overlap(scores_by_run: np.ndarray, fraction: float) -> float:
    """Mean over pairs of runs of |top-k of run i ∩ top-k of run j| / k, for scores_by_run of
    shape (R, N); k and tie-breaking as in `precision_at_top`. How stable a supernet's shortlist
    is across runs (training seeds, or scoring batches)."""
    scores_by_run = _checked_runs(scores_by_run, "scores_by_run")
    k = _top_k_count(scores_by_run.shape[1], fraction)
    tops = [_top_k(run, k) for run in scores_by_run]
    return float(np.mean([np.intersect1d(first, second).size / k
                          for first, second in itertools.combinations(tops, 2)]))


def score_variance(scores_by_run: np.ndarray) -> np.ndarray:
    """Per-architecture variance of the score across runs (ddof=1), shape (N,)."""
    scores_by_run = _checked_runs(scores_by_run, "scores_by_run")
    return np.var(scores_by_run, axis=0, ddof=1)


COST_BANDS = 3  # the terciles of "within a cost band": where a parameter count cannot help


def cost_bands(cost: np.ndarray, bands: int = COST_BANDS) -> list[np.ndarray]:
    """Indices of the architectures in each of `bands` equal-count bands of `cost`, cheapest
    first (ties split by order, so every band has its share)."""
    return np.array_split(np.argsort(np.asarray(cost, dtype=float), kind="stable"), bands)


def within_band_tau(scores: np.ndarray, truth: np.ndarray, cost: np.ndarray,
                    bands: int = COST_BANDS) -> float:
    """Mean over cost bands of Kendall tau-b inside each band: how well a scorer ranks
    architectures of about the same cost (FLOPs), the choice a search at a budget makes."""
    scores, truth = _checked_pair(scores, truth)
    taus = [kendall_tau(scores[band], truth[band]) for band in cost_bands(cost, bands)
            if band.size >= 2]
    if not taus:
        return math.nan
    return float(np.nanmean(taus)) if not np.all(np.isnan(taus)) else math.nan


def within_band_figure(scores: np.ndarray, truth: np.ndarray, cost: np.ndarray, *,
                       seed: int = 0, resamples: int = 1000,
                       bands: int = COST_BANDS) -> dict[str, float]:
    """`within_band_tau` with its 95% interval: a bootstrap stratified by band (each band's
    architectures resampled within it, the bands kept)."""
    scores, truth = _checked_pair(scores, truth)
    rng = np.random.default_rng(seed)
    per_band = []
    for band in cost_bands(cost, bands):
        if band.size < 2:  # a pair at least, or the band has no ranking
            continue
        picked = band[rng.integers(0, band.size, size=(resamples, band.size))]
        per_band.append(_kendall_rows(scores[picked], truth[picked]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with a constant band
        draws = np.nanmean(np.stack(per_band), axis=0) if per_band else np.full(1, np.nan)
    low, high = percentile_interval(draws)
    return {"value": within_band_tau(scores, truth, cost, bands), "low": low, "high": high}
