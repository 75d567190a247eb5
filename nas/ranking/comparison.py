"""Which training method ranks better than a baseline, with both sources of noise in the interval.

A method's ranking quality is the mean Kendall tau over its supernet seeds. Two things make that
number uncertain: which architectures happened to be sampled for ground truth, and which supernet
seeds happened to be trained. `mean_tau_resamples` bootstraps both at once (a two-level bootstrap:
architectures with replacement, shared by every method so comparisons are paired; then each
method's seeds with replacement), so an interval on a method's mean tau, or on its difference
from the baseline, is not narrowed by pretending the seeds are the only truth.
"""
from __future__ import annotations

import numpy as np

from nas.errors import ConfigError
from nas.ranking.metrics import (_check_finite, _checked_values, _kendall_rows, kendall_tau,
                                 percentile_interval)


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


def compare_with_baseline(scores: dict[str, np.ndarray], truth: np.ndarray, baseline: str, *,
                          resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per method: its seed-mean tau with a two-level 95% interval, and its difference from the
    baseline's with a paired two-level 95% interval. `verdict` is "better" or "worse" when that
    difference's interval excludes 0, else "no clear difference"."""
    if baseline not in scores:
        raise ConfigError(f"baseline {baseline!r} is not among the methods {sorted(scores)}")
    draws = mean_tau_resamples(scores, truth, resamples=resamples, seed=seed)
    observed = {name: mean_tau(by_seed, truth) for name, by_seed in scores.items()}
    table = {}
    for name in scores:
        low, high = _defined_interval(draws[name])
        difference = draws[name] - draws[baseline]
        row = {"mean_tau": observed[name], "low": low, "high": high,
               "difference": observed[name] - observed[baseline]}
        if name != baseline:
            row["difference_low"], row["difference_high"] = _defined_interval(difference)
            row["verdict"] = ("better" if row["difference_low"] > 0 else
                              "worse" if row["difference_high"] < 0 else "no clear difference")
        table[name] = row
    return table
