"""PNG figures of a supernet's ranking: score against ground truth, and rank against rank.

Figures are rendered off-screen (Agg) into memory and written atomically, so a crashed run never
leaves a half-written PNG in its directory.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from nas.ranking.metrics import _checked_pair, kendall_tau
from nas.runs import atomic_write_bytes

matplotlib.use("Agg")  # headless: runs write files and never open windows
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

_FIGSIZE_IN = (5.0, 4.0)


def write_png(fig: Figure, path: Path | str) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(Path(path), buffer.getvalue())


def scatter_plot(scores: np.ndarray, truth: np.ndarray, path: Path | str, *, title: str,
                 xlabel: str = "supernet score", ylabel: str = "ground truth") -> None:
    """One point per architecture, supernet score against ground truth; Kendall tau-b in the
    title."""
    scores, truth = _checked_pair(scores, truth)
    tau = kendall_tau(scores, truth)
    fig, ax = plt.subplots(figsize=_FIGSIZE_IN, layout="constrained")
    try:
        ax.scatter(scores, truth, s=12, alpha=0.6, linewidths=0)
        ax.set_title(f"{title}  (Kendall τ = {tau:.3f}, n = {scores.size})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        write_png(fig, path)
    finally:
        plt.close(fig)


def rank_plot(scores: np.ndarray, truth: np.ndarray, path: Path | str, *, title: str) -> None:
    """Rank by score against rank by ground truth (rank 1 = best, ties share their average rank),
    with the diagonal that a perfect ranking would lie on."""
    scores, truth = _checked_pair(scores, truth)
    score_rank, truth_rank = stats.rankdata(-scores), stats.rankdata(-truth)
    n = scores.size
    fig, ax = plt.subplots(figsize=_FIGSIZE_IN, layout="constrained")
    try:
        ax.plot([1, n], [1, n], linestyle="--", color="grey", linewidth=1, label="perfect ranking")
        ax.scatter(score_rank, truth_rank, s=12, alpha=0.6, linewidths=0)
        ax.set_title(title)
        ax.set_xlabel("rank by supernet score (1 = best)")
        ax.set_ylabel("rank by ground truth (1 = best)")
        ax.set_aspect("equal")
        ax.legend(loc="upper left", frameon=False)
        write_png(fig, path)
    finally:
        plt.close(fig)
