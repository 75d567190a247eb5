"""A gradient-based method's result: the architecture it derives, in place of a search.

DARTS, DrNAS and TangleNAS end with learned mixing weights, and the space's rule turns them
into one architecture (`SearchSpace.derive`). `nas search` with such a method writes that
architecture as the run's `best.txt` (so `nas export` takes it as any search's best), scored by
the method like any trial in `trials.csv`, and the learned weights beside it:
`architecture_weights.csv` (one row per relaxed decision and candidate) and a PNG of them.
Their parameter-free share is where DARTS's well-known collapse shows: weight drifting to
`skip_connect`, pooling and `none`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from nas.ranking.plots import plt, write_png
from nas.runs import RunDir, atomic_write_csv, atomic_write_text
from nas.scorers import Scorer
from nas.search.loop import BEST_FILE, TRIALS_FILE, SearchOutcome
from nas.training.supernet import TrainedSupernet
from search_spaces import Architecture

WEIGHTS_FILE, WEIGHTS_PLOT = "architecture_weights.csv", "architecture_weights.png"
# Candidates without weights of their own, in every space's spelling.
PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")


def weights_table(trained: TrainedSupernet) -> pd.DataFrame:
    method = trained.method
    rows = []
    for decision, row, alpha in zip(method.decisions, method.probabilities(), method.alphas):
        for choice, weight, value in zip(decision.choices, row, alpha.detach().cpu().tolist()):
            rows.append({"decision": decision.name, "choice": str(choice), "weight": weight,
                         "alpha": value})
    return pd.DataFrame(rows, columns=["decision", "choice", "weight", "alpha"])


def parameter_free_share(table: pd.DataFrame) -> float | None:
    """Mean weight on parameter-free candidates over the decisions that have any (None: none)."""
    free = table[table["choice"].isin(PARAMETER_FREE)]
    if free.empty:
        return None
    return float(free.groupby("decision")["weight"].sum().mean())


def _plot(table: pd.DataFrame, path) -> None:
    decisions = list(dict.fromkeys(table["decision"]))
    fig, ax = plt.subplots(figsize=(6.0, max(2.5, 0.28 * len(decisions) + 1.2)))
    left = np.zeros(len(decisions))
    choices = list(dict.fromkeys(table["choice"]))
    for choice in choices:
        part = table[table["choice"] == choice].set_index("decision")["weight"]
        values = np.array([part.get(d, 0.0) for d in decisions])
        ax.barh(range(len(decisions)), values, left=left, label=choice)
        left += values
    ax.set_yticks(range(len(decisions)), decisions, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("learned mixing weight")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    write_png(fig, path)
    plt.close(fig)


def write_derived(run: RunDir, trained: TrainedSupernet, scorer: Scorer, arch: Architecture
                  ) -> SearchOutcome:
    """best.txt, trials.csv (its one row, `arch` as `scorer` scores it) and the learned
    weights of a gradient-based run, whose method derived `arch`."""
    space = trained.problem.space
    start = time.perf_counter()
    score = scorer(arch)
    wall_s = time.perf_counter() - start
    trials = pd.DataFrame([{
        "trial": 0, "arch": str(arch), scorer.column: score, "params_m": space.params_m(arch),
        "flops_m": space.flops_m(arch), "wall_s": wall_s, **scorer.parts(arch)}])
    atomic_write_csv(run / TRIALS_FILE, trials)
    table = weights_table(trained)
    atomic_write_csv(run / WEIGHTS_FILE, table)
    _plot(table, run / WEIGHTS_PLOT)
    atomic_write_text(run / BEST_FILE, f"{arch}\n")
    share = parameter_free_share(table)
    if share is not None:
        print(f"{trained.method.name}: mean weight on parameter-free candidates "
              f"{share:.2f} ({WEIGHTS_FILE})")
    return SearchOutcome(arch, score, trials)
