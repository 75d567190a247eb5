"""The protocol-v2 tables of README.md, from budget.csv: each method's Kendall tau at equal
optimiser steps and at equal training wall time, read off each run's curve by linear
interpolation between its snapshots (never beyond its last one), then averaged over seeds.

    python results/ranking/v2/tables.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
STEPS = [1950, 3900, 7800, 11700, 20475, 27300, 33800, 40950]
SECONDS = [100, 200, 300, 500, 800, 1200, 1700, 2400]


def at(runs: pd.DataFrame, column: str, points: list[float]) -> pd.DataFrame:
    rows = []
    for (method, run), curve in runs.groupby(["method", "run"]):
        curve = curve.sort_values(column)
        for x in points:
            if curve[column].min() <= x <= curve[column].max() * 1.0001:
                rows.append({"method": method, "run": run, column: x,
                             "tau": float(np.interp(x, curve[column], curve["kendall_tau"]))})
    return pd.DataFrame(rows)


def table(values: pd.DataFrame, column: str, label: str) -> str:
    grouped = values.groupby(["method", column])["tau"]
    cells = grouped.mean().unstack(column)
    counts = grouped.count().unstack(column)
    points = list(cells.columns)
    lines = [f"| method | " + " | ".join(f"{label(p)}" for p in points) + " |",
             "|---|" + "---|" * len(points)]
    for method in cells.index:
        lines.append(f"| {method} | " + " | ".join(
            "" if np.isnan(cells.loc[method, p]) else
            f"{cells.loc[method, p]:.2f}" + (f" ({int(counts.loc[method, p])})"
                                              if counts.loc[method, p] < 3 else "")
            for p in points) + " |")
    return "\n".join(lines)


def main() -> None:
    runs = pd.read_csv(HERE / "budget.csv")
    print("Kendall tau at equal optimiser steps (mean over seeds; (n) = fewer than 3 seeds)\n")
    print(table(at(runs, "steps", STEPS), "steps", lambda s: f"{s:,} steps"))
    print("\nKendall tau at equal training wall time\n")
    print(table(at(runs, "elapsed_s", SECONDS), "elapsed_s", lambda s: f"{s} s"))
    last = runs.sort_values("steps").groupby("run").tail(1)
    print("\nWhole runs (final weights)\n")
    print(last.groupby("method").agg(seeds=("run", "count"), steps=("steps", "mean"),
                                     wall_s=("elapsed_s", "mean"),
                                     tau=("kendall_tau", "mean"),
                                     tau_min=("kendall_tau", "min"),
                                     tau_max=("kendall_tau", "max")).round(3).to_string())


if __name__ == "__main__":
    main()
