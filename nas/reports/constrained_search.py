"""Constrained search against search-then-pick, on the NAS-Bench-201 table.

Each searcher searches the 15,625 NB201 cells with the table as its oracle (`--column`, by
default `cifar10_test`, the column `nas search --oracle` reads), for `--queries` scored trials,
under a FLOPs limit (by default the table's 20th percentile of FLOPs), in two ways:

- **constrained**, as `nas search --constraint flops<=LIMIT` searches: the search loop's own
  rejection (`nas.search.constraints.ask_feasible`), so a proposal over the limit is pruned
  unscored and costs no query; TPE and NSGA-II get the constraint values
  (`constraints_func`).
- **picked**, as `nas search --pick flops<=LIMIT` does: an unconstrained search of the same
  number of queries, then the most accurate trial under the limit (`Pick.choose`). Searchers
  that optimise several objectives (tpe, random, nsga2) search accuracy and FLOPs
  (`--objectives accuracy,flops`); evolution and EPNAS search accuracy alone.

Each run reports the accuracy of the architecture it returns (none where no trial met the
limit), beside the table's best under the limit. FLOPs are the table's `flops_m` (the CIFAR-10
network, C=16, N=5), which the NB201 space counts identically for its default skeleton
(tests/nas/test_constraints.py).

    python -m nas.reports.constrained_search --out results/search/constraints [--seeds 10] \
        [--queries 100] [--quantile 0.2]

Writes OUT/runs.csv (one row per searcher, mode and seed), OUT/summary.csv and
OUT/constraints.png. Each run is kept in OUT/runs/ as it finishes, so a re-run resumes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nas.runs import atomic_write_csv, atomic_write_text
from nas.scorers.table import TableScorer
from nas.search.constraints import Constraint, Constraints, ask_feasible, constraint_values
from nas.search.objectives import Pick
from nas.search.shared_study import directions_of
from nas.searchers import MULTI_OBJECTIVE, SEARCHERS, OptunaSearcher
from nas.reports.searcher_comparison import DEFAULT_TABLE
from search_spaces import SPACES

MODES = ("constrained", "picked")


def _returned(search: OptunaSearcher, limit: float) -> dict:
    """The trial `--pick flops<=limit` names among the search's trials (the most accurate,
    earliest on ties), as the loop's `write_results` picks."""
    rows = [{"trial": t.number, "arch": t.user_attrs["arch"], "accuracy": t.values[0],
             "flops_m": t.user_attrs["flops_m"]} for t in search.completed()]
    top = Pick("flops", limit).choose(pd.DataFrame(rows), "accuracy")
    if top is None:
        return {"arch": None, "flops_m": float("nan"), "search_accuracy": float("nan")}
    return {"arch": top["arch"], "flops_m": float(top["flops_m"]),
            "search_accuracy": float(top["accuracy"])}


def search_once(searcher: str, mode: str, seed: int, queries: int, accuracy: dict[str, float],
                flops: dict[str, float], limit: float) -> dict:
    """One run: `queries` scored trials, constrained or picked (module doc)."""
    space = SPACES.get("nb201")()
    constraints = Constraints([Constraint("flops", limit)], lambda arch, name: flops[str(arch)])
    constrained = mode == "constrained"
    objectives = ("accuracy", "flops") if not constrained and searcher in MULTI_OBJECTIVE \
        else ("accuracy",)
    sampler = SEARCHERS.get(searcher)(seed,
                                      constraints_func=constraint_values if constrained else None)
    search = OptunaSearcher(space, optuna.create_study(directions=list(directions_of(objectives)),
                                                       sampler=sampler))
    rejections = []
    for _ in range(queries):
        if constrained:
            arch, rejected = ask_feasible(search, constraints)
        else:
            (arch,), rejected = search.ask(1), 0
        rejections.append(rejected)
        values = [accuracy[str(arch)], flops[str(arch)]][:len(objectives)]
        search.tell(arch, values, {"flops_m": flops[str(arch)],
                                   **(constraints.attrs(arch) if constrained else {})})
    return {"searcher": searcher, "mode": mode, "seed": seed, "queries": queries,
            **_returned(search, limit), "rejected": sum(rejections),
            "rejected_first_half": sum(rejections[:queries // 2]),
            "rejected_second_half": sum(rejections[queries // 2:]),
            "over_limit_queries": sum(t.user_attrs["flops_m"] > limit
                                      for t in search.completed())}


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["searcher", "mode"])
    summary = grouped["report_accuracy"].agg(["mean", "std", "min", "max"])
    summary["runs"] = grouped.size()
    summary["runs_without_feasible"] = grouped["arch"].apply(lambda a: int(a.isna().sum()))
    for column in ("rejected", "rejected_first_half", "rejected_second_half",
                   "over_limit_queries"):
        summary[f"mean_{column}"] = grouped[column].mean()
    return summary.reset_index()


def plot(summary: pd.DataFrame, optimum: float, limit: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    searchers = list(dict.fromkeys(summary["searcher"]))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for offset, mode in zip((-0.12, 0.12), MODES):
        part = summary[summary["mode"] == mode].set_index("searcher").reindex(searchers)
        ax.errorbar(np.arange(len(searchers)) + offset, part["mean"], yerr=part["std"],
                    fmt="o", capsize=3, label=mode)
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"feasible optimum {optimum:.2f}")
    ax.set_xticks(range(len(searchers)), searchers)
    ax.set_ylabel("test accuracy of the returned architecture (%)")
    ax.set_title(f"NB201 CIFAR-10 under flops<={limit:g} M (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--column", default="cifar10_test")
    parser.add_argument("--searchers", default="tpe,random,evolution,epnas,nsga2")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--quantile", type=float, default=0.2,
                        help="the FLOPs limit as a quantile of the table's FLOPs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    space = SPACES.get("nb201")()
    accuracy = TableScorer(args.table, space, args.column).truth.accuracy.to_dict()
    frame = pd.read_csv(args.table)
    flops = {str(space.parse(a)): float(f) for a, f in zip(frame["arch"], frame["flops_m"])}
    # A FLOPs value of the table, so that the limit keeps every cell at that level.
    limit = float(np.quantile(list(flops.values()), args.quantile, method="higher"))
    feasible = {a: v for a, v in accuracy.items() if flops[a] <= limit}
    optimum = max(feasible.values())
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.searchers.split(","):
        SEARCHERS.get(name)
        for mode in MODES:
            for seed in range(args.seeds):
                cached = out / "runs" / f"{name}-{mode}-seed{seed}-q{args.queries}-l{limit:g}.json"
                if not cached.is_file():
                    atomic_write_text(cached, json.dumps(search_once(
                        name, mode, seed, args.queries, accuracy, flops, limit)))
                row = json.loads(cached.read_text())
                row["report_accuracy"] = accuracy[row["arch"]] if row["arch"] else float("nan")
                rows.append(row)
                print(f"{name} {mode} seed {seed}: {row['report_accuracy']:.2f} "
                      f"({row['rejected']} rejected)", flush=True)
    runs = pd.DataFrame(rows)
    atomic_write_csv(out / "runs.csv", runs)
    summary = summarise(runs)
    atomic_write_csv(out / "summary.csv", summary)
    plot(summary, optimum, limit, out / "constraints.png")
    print(summary.round(2).to_string(index=False))
    print(f"flops<={limit:g} keeps {len(feasible)} of {len(flops)} cells "
          f"({len(feasible) / len(flops):.1%}); their best {args.column}: {optimum:.2f} "
          f"(the whole table's: {max(accuracy.values()):.2f})")


if __name__ == "__main__":
    main()
