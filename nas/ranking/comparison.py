"""Which training method ranks better than a baseline, with both sources of noise in the interval.

A method's ranking quality is the mean Kendall tau over its supernet seeds. Two things make that
number uncertain: which architectures happened to be sampled for ground truth, and which supernet
seeds happened to be trained. `mean_tau_resamples` bootstraps both at once (a two-level bootstrap:
architectures with replacement, shared by every method so comparisons are paired; then each
method's seeds with replacement), so an interval on a method's mean tau, or on its difference
from the baseline, is not narrowed by pretending the seeds are the only truth.
"""
from __future__ import annotations

import warnings

import numpy as np

from nas.errors import ConfigError
from nas.ranking.metrics import (COST_BANDS, _check_finite, _checked_values, _kendall_rows,
                                 cost_bands, kendall_tau, percentile_interval, within_band_tau)


def _checked_seeds(scores_by_seed: np.ndarray, n: int, name: str) -> np.ndarray:
    scores_by_seed = np.atleast_2d(np.asarray(scores_by_seed, dtype=float))
    if scores_by_seed.ndim != 2 or scores_by_seed.shape[1] != n:
        raise ConfigError(f"{name} must have shape (seeds, {n} architectures), "
                          f"but got shape {scores_by_seed.shape}")
    _check_finite(scores_by_seed, name)
    constant = np.flatnonzero(np.ptp(scores_by_seed, axis=1) == 0)
    if constant.size:
        raise ConfigError(f"{name}: seed row {int(constant[0])} gives every architecture the same "
                          "score, so it ranks nothing; check that run (a collapsed supernet?)")
    return scores_by_seed


def mean_tau(scores_by_seed: np.ndarray, truth: np.ndarray) -> float:
    """Mean over supernet seeds of Kendall tau-b against `truth`; scores_by_seed has shape (S, N)."""
    truth = _checked_values(truth, "truth")
    scores_by_seed = _checked_seeds(scores_by_seed, truth.size, "scores_by_seed")
    return float(np.mean([kendall_tau(seed_scores, truth) for seed_scores in scores_by_seed]))


def mean_tau_resamples(scores: dict[str, np.ndarray], truth: np.ndarray, *,
                       resamples: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """For each method (name -> scores of shape (S, N)), `resamples` bootstrap values of its
    seed-mean Kendall tau. Resample r uses the same N architecture indices for every method (and
    for the truth), and draws each method's S seeds with replacement on their own."""
    truth = _checked_values(truth, "truth")
    rng = np.random.default_rng(seed)
    n = truth.size
    arch_indices = rng.integers(0, n, size=(resamples, n))
    resampled_truth = truth[arch_indices]
    values = {}
    for name, by_seed in scores.items():
        by_seed = _checked_seeds(by_seed, n, f"scores of {name}")
        # tau of every seed on every architecture resample: (S, R)
        per_seed = np.stack([_kendall_rows(run[arch_indices], resampled_truth) for run in by_seed])
        seed_indices = rng.integers(0, by_seed.shape[0], size=(resamples, by_seed.shape[0]))
        values[name] = np.nanmean(per_seed[seed_indices, np.arange(resamples)[:, None]], axis=1)
    return values


def _defined_interval(values: np.ndarray) -> tuple[float, float]:
    low, high = percentile_interval(values)
    if np.isnan(low):
        raise ConfigError("no bootstrap resample gave a defined Kendall tau (too few distinct "
                          "ground-truth values?); an interval needs more architectures")
    return low, high


def difference_table(observed: dict[str, float], draws: dict[str, np.ndarray], baseline: str,
                     interval=_defined_interval) -> dict[str, dict[str, float]]:
    """Per method: its observed seed-mean tau with the 95% interval of its bootstrap `draws`,
    and its difference from the baseline's with the interval of the paired differences of the
    draws. `verdict` is "better" or "worse" when that interval excludes 0, else "no clear
    difference"."""
    table = {}
    for name in draws:
        low, high = interval(draws[name])
        row = {"mean_tau": observed[name], "low": low, "high": high,
               "difference": observed[name] - observed[baseline]}
        if name != baseline:
            row["difference_low"], row["difference_high"] = interval(draws[name] - draws[baseline])
            row["verdict"] = ("better" if row["difference_low"] > 0 else
                              "worse" if row["difference_high"] < 0 else "no clear difference")
        table[name] = row
    return table


def compare_with_baseline(scores: dict[str, np.ndarray], truth: np.ndarray, baseline: str, *,
                          resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per method: its seed-mean tau with a two-level 95% interval, and its difference from the
    baseline's with a paired two-level 95% interval (`difference_table`)."""
    if baseline not in scores:
        raise ConfigError(f"baseline {baseline!r} is not among the methods {sorted(scores)}")
    draws = mean_tau_resamples(scores, truth, resamples=resamples, seed=seed)
    observed = {name: mean_tau(by_seed, truth) for name, by_seed in scores.items()}
    return difference_table(observed, draws, baseline)


def within_band_resamples(scores: dict[str, np.ndarray], truth: np.ndarray, cost: np.ndarray, *,
                          resamples: int = 2000, seed: int = 0,
                          bands: int = COST_BANDS) -> dict[str, np.ndarray]:
    """`mean_tau_resamples` for the seed-mean of the tau within cost bands (`within_band_tau`).
    Resample r draws each band's architectures within it, the same for every method; each seed's
    taus in the bands are averaged; then each method's seeds are drawn with replacement once for
    all bands (a seed is one supernet, so it is one draw however many bands it is ranked in)."""
    truth = _checked_values(truth, "truth")
    rng = np.random.default_rng(seed)
    picked = [band[rng.integers(0, band.size, size=(resamples, band.size))]
              for band in cost_bands(cost, bands) if band.size >= 2]
    values = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with a constant band: NaN
        for name, by_seed in scores.items():
            by_seed = np.atleast_2d(np.asarray(by_seed, dtype=float))
            per_seed = np.stack([np.nanmean(np.stack([_kendall_rows(run[p], truth[p])
                                                      for p in picked]), axis=0)
                                 for run in by_seed])  # (S, R)
            seed_indices = rng.integers(0, by_seed.shape[0], size=(resamples, by_seed.shape[0]))
            values[name] = np.nanmean(per_seed[seed_indices, np.arange(resamples)[:, None]],
                                      axis=1)
    return values


def compare_within_bands(scores: dict[str, np.ndarray], truth: np.ndarray, cost: np.ndarray,
                         baseline: str, *, resamples: int = 2000, seed: int = 0
                         ) -> dict[str, dict[str, float]]:
    """`compare_with_baseline` for the tau within cost bands (`within_band_resamples`)."""
    draws = within_band_resamples(scores, truth, cost, resamples=resamples, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        observed = {name: float(np.nanmean([within_band_tau(row, truth, cost)
                                            for row in np.atleast_2d(by_seed)]))
                    for name, by_seed in scores.items()}
    return difference_table(observed, draws, baseline, percentile_interval)
