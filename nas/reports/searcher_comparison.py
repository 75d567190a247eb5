"""Searchers compared on a benchmark table, as the NAS-Bench-201 paper compares its searchers.

Each searcher (an Optuna sampler from `nas.searchers`, driven through the platform's own
`OptunaSearcher`) searches NB201 with the table as its oracle: it sees `--search-column` (the
low-fidelity `cifar10_valid_12ep` by default) and, after each budget of queries, the
architecture it would return (the best seen by that column; the earliest on ties) is reported by
`--report-column` (`cifar10_test`). A query is one trial, repeats included, as a searcher pays
for every proposal it makes.

    python -m nas.reports.searcher_comparison --out results/search [--seeds 20] [--queries 50,100,200,500]
    python -m nas.reports.searcher_comparison --out results/search --cost params_m \
        --searchers nsga2,tpe,random --seeds 10

Writes OUT/searchers.csv (searcher, seed, queries, arch, search and report accuracy),
OUT/summary.csv (mean, std, min, max over seeds) and OUT/searchers.png. Each (searcher, seed)
is kept in OUT/runs/ as it finishes, so a re-run resumes.

With `--cost COLUMN` (e.g. the table's `params_m`) it runs the two-objective search instead
(accuracy up, cost down; searchers nsga2, tpe and random) and scores each run's front by its
hypervolume, as a fraction of the whole table's front (`pareto_summary.csv`, `pareto_hv.png`).
The hypervolume's box runs from the table's median accuracy and largest cost.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nas.search.objectives import hypervolume_2d
from nas.scorers.table import TableScorer
from nas.runs import atomic_write_csv, atomic_write_text
from nas.searchers import SEARCHERS, OptunaSearcher
from search_spaces import SPACES

DEFAULT_TABLE = "../shared/data/nb201.csv.gz"


def search_once(searcher: str, seed: int, queries: list[int], table: dict[str, float],
                report: dict[str, float]) -> list[dict]:
    space = SPACES.get("nb201")()
    study = optuna.create_study(direction="maximize", sampler=SEARCHERS.get(searcher)(seed))
    search = OptunaSearcher(space, study)
    best_arch, best_value, rows, start = None, float("-inf"), [], time.perf_counter()
    for number in range(1, max(queries) + 1):
        (arch,) = search.ask(1)
        value = table[str(arch)]
        search.tell(arch, value)
        if value > best_value:
            best_arch, best_value = str(arch), value
        if number in queries:
            rows.append({"searcher": searcher, "seed": seed, "queries": number,
                         "arch": best_arch, "search_accuracy": best_value,
                         "report_accuracy": report[best_arch],
                         "distinct": len({t.user_attrs["arch"] for t in search.completed()}),
                         "wall_s": time.perf_counter() - start})
    return rows


def pareto_once(searcher: str, seed: int, queries: list[int], table: dict[str, float],
                cost: dict[str, float], reference: tuple[float, float], whole: float
                ) -> list[dict]:
    space = SPACES.get("nb201")()
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=SEARCHERS.get(searcher)(seed))
    search = OptunaSearcher(space, study)
    points, rows = [], []
    for number in range(1, max(queries) + 1):
        (arch,) = search.ask(1)
        search.tell(arch, [table[str(arch)], cost[str(arch)]])
        points.append((table[str(arch)], cost[str(arch)]))
        if number in queries:
            volume = hypervolume_2d(np.array(points), reference)
            rows.append({"searcher": searcher, "seed": seed, "queries": number,
                         "hypervolume": volume, "fraction": volume / whole})
    return rows


def pareto_benchmark(args: argparse.Namespace, table: dict[str, float], out: Path,
                     queries: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(args.table)
    space = SPACES.get("nb201")()
    cost = {str(space.parse(a)): float(c) for a, c in zip(frame["arch"], frame[args.cost])}
    # The box starts at the table's median accuracy: from its worst (about 10%, untrainable
    # cells) every run's front would cover 97% of the whole one within 50 queries.
    reference = (float(np.median(list(table.values()))), max(cost.values()))
    whole = hypervolume_2d(np.array([(table[a], cost[a]) for a in table]), reference)
    rows = []
    for name in args.searchers.split(","):
        for seed in range(args.seeds):
            cached = out / "runs" / f"pareto-{args.cost}-{name}-seed{seed}-q{max(queries)}.json"
            if not cached.is_file():
                atomic_write_text(cached, json.dumps(pareto_once(name, seed, queries, table,
                                                                 cost, reference, whole)))
            rows += json.loads(cached.read_text())
            print(f"{name} seed {seed}: " + ", ".join(
                f"{r['queries']}q {r['fraction']:.4f}" for r in rows[-len(queries):]), flush=True)
    runs = pd.DataFrame(rows)
    summary = (runs.groupby(["searcher", "queries"])["fraction"]
               .agg(["mean", "std", "min", "max", "count"]).reset_index())
    atomic_write_csv(out / "pareto_runs.csv", runs)
    atomic_write_csv(out / "pareto_summary.csv", summary)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, group in summary.groupby("searcher"):
        ax.errorbar(group["queries"], group["mean"], yerr=group["std"], marker="o", capsize=3,
                    label=name)
    ax.set_xscale("log")
    ax.set_xlabel("queries (trials)")
    ax.set_ylabel("hypervolume / whole table's")
    ax.set_title(f"NB201: {args.search_column} up, {args.cost} down (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pareto_hv.png", dpi=120)
    plt.close(fig)
    print(summary.round(4).to_string(index=False))
    print(f"whole table's hypervolume {whole:.4g} (box from accuracy {reference[0]:.2f}, "
          f"{args.cost} {reference[1]:.4g})")


def plot(summary: pd.DataFrame, optimum: float, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, group in summary.groupby("searcher"):
        ax.errorbar(group["queries"], group["mean"], yerr=group["std"], marker="o", capsize=3,
                    label=name)
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"table optimum {optimum:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("queries (trials)")
    ax.set_ylabel("test accuracy of the returned architecture (%)")
    ax.set_title("NB201 CIFAR-10: searching cifar10_valid_12ep (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--search-column", default="cifar10_valid_12ep")
    parser.add_argument("--report-column", default="cifar10_test")
    parser.add_argument("--searchers", default="random,evolution,tpe,epnas")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--queries", default="50,100,200,500")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cost", default=None, metavar="COLUMN",
                        help="run the two-objective benchmark against this table column")
    args = parser.parse_args(argv)

    space = SPACES.get("nb201")()
    table = TableScorer(args.table, space, args.search_column).truth.accuracy.to_dict()
    report = TableScorer(args.table, space, args.report_column).truth.accuracy.to_dict()
    queries = sorted(int(q) for q in args.queries.split(","))
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if args.cost is not None:
        pareto_benchmark(args, table, out, queries)
        return
    rows = []
    for name in args.searchers.split(","):
        SEARCHERS.get(name)
        for seed in range(args.seeds):
            cached = out / "runs" / f"{name}-seed{seed}-q{max(queries)}.json"
            if not cached.is_file():
                atomic_write_text(cached, json.dumps(search_once(name, seed, queries, table,
                                                                 report)))
            found = json.loads(cached.read_text())
            rows += [r for r in found if r["queries"] in queries]
            print(f"{name} seed {seed}: " + ", ".join(
                f"{r['queries']}q {r['report_accuracy']:.2f}" for r in found), flush=True)
    runs = pd.DataFrame(rows)
    atomic_write_csv(out / "searchers.csv", runs)
    summary = (runs.groupby(["searcher", "queries"])["report_accuracy"]
               .agg(["mean", "std", "min", "max", "count"]).reset_index())
    atomic_write_csv(out / "summary.csv", summary)
    best_searched = max(table, key=table.get)
    plot(summary, max(report.values()), out / "searchers.png")
    print(summary.round(2).to_string(index=False))
    print(f"table optimum by {args.report_column}: {max(report.values()):.2f}; the architecture "
          f"best by {args.search_column} scores {report[best_searched]:.2f}")


if __name__ == "__main__":
    main()
