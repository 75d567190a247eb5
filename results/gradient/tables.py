"""Summary of results/gradient/run.sh: each method's found architecture, judged stand-alone.

    python results/gradient/tables.py        (from the repository root, ../shared beside it)

Writes results/gradient/summary.csv (and init.csv, from results/gradient/init.sh) and prints
them as Markdown tables. Stand-alone accuracy is
the 12-epoch test accuracy of the protocol's skeleton (NB201 cell, width 8, 1 cell per stage,
CIFAR-10 16 px, 10,000-image subset), mean of seeds 0 and 1, from the committed ground truth
when it holds the architecture, else from this experiment's own `nas train` runs. The NB201
columns look the cell up in the full NAS-Bench-201 table (its own skeleton: C=16, N=5, 32 px).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import torch

RUNS = Path("results/runs/gradient")
V2 = Path("results/runs/ranking-v2")
GROUND_TRUTH = Path("results/ranking/groundtruth/groundtruth.csv")
NB201 = Path("../shared/data/nb201.csv.gz")
OUT = Path("results/gradient/summary.csv")
INIT_RUNS, INIT_OUT = RUNS / "init", Path("results/gradient/init.csv")
GRADIENT = ["darts", "drnas", "tangle", "darts2", "darts-long", "drnas-long", "tangle-long"]
SINGLE = {"spos": "spos-s40950-seed0", "pada": "pada-code-seed0", "fewshot": "fewshot-paper-seed0"}
FREE = ("none", "skip_connect", "avg_pool_3x3")


def _stand_alone(arch: str, name: str, truth: pd.DataFrame) -> tuple[float, int]:
    rows = truth[truth["arch"] == arch]
    values = list(rows["accuracy"])
    for seed in (0, 1):
        if seed in set(rows["seed"]):
            continue
        metrics = RUNS / f"train-{name}-seed{seed}" / "metrics.json"
        if metrics.is_file():
            values.append(json.loads(metrics.read_text())["test_accuracy"])
    return (sum(values) / len(values) if values else float("nan")), len(values)


def _training(run: Path) -> tuple[int, float]:
    state = torch.load(run / "supernet.pt", map_location="cpu", weights_only=False)
    return int(state["steps_done"]), float(state["elapsed_s"])


def _markdown(table: pd.DataFrame) -> None:
    columns = list(table.columns)
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")


def init_table() -> pd.DataFrame | None:
    """results/gradient/init.sh: test accuracy after E epochs per initialisation, seed mean."""
    rows = []
    for metrics in sorted(INIT_RUNS.glob("*-e*-seed*/metrics.json")):
        init, epochs, seed = metrics.parent.name.rsplit("-", 2)
        rows.append({"init": init, "epochs": int(epochs[1:]), "seed": int(seed[4:]),
                     "test_accuracy": json.loads(metrics.read_text())["test_accuracy"]})
    if not rows:
        return None
    runs = pd.DataFrame(rows)
    table = (runs.groupby(["epochs", "init"])["test_accuracy"].agg(["mean", "min", "max", "count"])
             .round(2).reset_index())
    table.to_csv(INIT_OUT, index=False)
    return table


def main() -> int:
    truth = pd.read_csv(GROUND_TRUTH)
    table = pd.read_csv(NB201).set_index("arch") if NB201.is_file() else None
    rows = []
    runs = [(n, RUNS / f"{n}-seed0", RUNS / f"{n}-seed0") for n in GRADIENT] + \
           [(n, RUNS / f"search-{n}", V2 / v) for n, v in SINGLE.items()]
    for name, result, supernet in runs:
        if not (result / "best.txt").is_file():
            continue
        arch = (result / "best.txt").read_text().strip()
        steps, wall_s = _training(supernet)
        accuracy, seeds = _stand_alone(arch, name, truth)
        ops = [token.split("~")[0] for token in arch.replace("+", "").split("|") if token]
        row = {"method": name, "arch": arch, "steps": steps, "train_wall_s": round(wall_s),
               "stand_alone_accuracy": round(accuracy, 2), "seeds": seeds,
               "parameter_free_edges": sum(op in FREE for op in ops)}
        weights = result / "architecture_weights.csv"
        if weights.is_file():
            w = pd.read_csv(weights)
            free = w[w["choice"].isin(FREE)].groupby("decision")["weight"].sum()
            row["weight_on_parameter_free"] = round(float(free.mean()), 3)
            row["max_weight_shift"] = round(float((w["weight"] - 0.2).abs().max()), 3)
        if table is not None and arch in table.index:
            row["nb201_cifar10_test"] = round(float(table.loc[arch, "cifar10_test"]), 2)
            row["nb201_percentile"] = round(
                100 * float((table["cifar10_test"] < table.loc[arch, "cifar10_test"]).mean()), 1)
        rows.append(row)
    means = truth.groupby("arch")["accuracy"].mean()
    for label, arch in (("ground-truth best of 64", means.idxmax()),
                        ("ground-truth median of 64", (means - means.median()).abs().idxmin())):
        row = {"method": label, "arch": arch, "stand_alone_accuracy": round(means[arch], 2),
               "seeds": 2}
        if table is not None:
            row["nb201_cifar10_test"] = round(float(table.loc[arch, "cifar10_test"]), 2)
        rows.append(row)
    summary = pd.DataFrame(rows)
    for column in ("steps", "train_wall_s", "parameter_free_edges"):
        summary[column] = summary[column].astype("Int64")
    summary.to_csv(OUT, index=False)
    _markdown(summary)
    initialised = init_table()
    if initialised is not None:
        print()
        _markdown(initialised)
    return 0


if __name__ == "__main__":
    sys.exit(main())
