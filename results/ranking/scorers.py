"""Protocol v2 by scorer: every single scorer and combination against the ground truth.

    python results/ranking/scorers.py [--runs results/runs/ranking-v2] [--out results/ranking/scorers.csv]

Reads what score_v2.sh wrote: per supernet run, correlation.csv of one combination of every
part, holding each part's raw score and its quantile among the run's reference sample. A
combination of any subset of parts is then the aggregate of their quantile columns, exactly
the value `nas search --scorer A+B` computes (nas.scorers.combined). Prints markdown tables:
overall Kendall tau (mean over the 3 supernet seeds where a supernet is a part), tau within
FLOPs terciles, the paired two-level bootstrap difference from the best single proxy, and the
cost in stand-alone trainings; then the labelled-weights experiment (--audit K labels).
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nas.ranking import kendall_tau
from nas.ranking.comparison import compare_with_baseline
from nas.ranking.metrics import seed_to_seed_tau, within_band_tau
from nas.scorers.combined import REFERENCE_SIZE

ALL = ("supernet+naswot+params+synflow+jacov+zico+meco+az_expressivity+az_progressivity+"
       "az_trainability+flops")
FOLDER = f"correlation-groundtruth-accuracy-{ALL}"
BUDGETS = {"spos-s2600": 2600, "spos-s5200": 5200, "spos": 11700}  # run name -> steps
PROXIES = ("naswot", "params", "synflow", "jacov", "zico", "meco", "az_expressivity",
           "az_progressivity", "az_trainability")
AZ = ("az_expressivity", "az_progressivity", "az_trainability", "flops")
COMBINATIONS = {  # name -> parts
    "naswot+params": ("naswot", "params"),
    "naswot+synflow+params": ("naswot", "synflow", "params"),
    "jacov+naswot+params": ("jacov", "naswot", "params"),
    "jacov+naswot": ("jacov", "naswot"),
    "jacov+meco": ("jacov", "meco"),
    "jacov+meco+synflow": ("jacov", "meco", "synflow"),
    "supernet+jacov+meco+synflow": ("supernet", "jacov", "meco", "synflow"),
    "jacov+meco+naswot": ("jacov", "meco", "naswot"),
    "jacov+meco+naswot+params": ("jacov", "meco", "naswot", "params"),
    "supernet+jacov": ("supernet", "jacov"),
    "supernet+jacov+naswot": ("supernet", "jacov", "naswot"),
    "supernet+jacov+meco": ("supernet", "jacov", "meco"),
    "supernet+jacov+meco+naswot": ("supernet", "jacov", "meco", "naswot"),
    "az_nas": AZ,
    "az_nas+naswot": (*AZ, "naswot"),
    "supernet+params": ("supernet", "params"),
    "supernet+naswot": ("supernet", "naswot"),
    "supernet+naswot+params": ("supernet", "naswot", "params"),
    "supernet+naswot+synflow": ("supernet", "naswot", "synflow"),
    "supernet+naswot+synflow+params": ("supernet", "naswot", "synflow", "params"),
    "supernet+az_nas": ("supernet", *AZ),
    "supernet+az_nas+naswot": ("supernet", *AZ, "naswot"),
}
STANDALONE_S = 67.0  # one stand-alone training here (v2/README.md: median 67 s on a core)
GT = Path("results/ranking/groundtruth/groundtruth.csv")


def load(runs: Path) -> dict[str, list[pd.DataFrame]]:
    tables = {}
    for name in BUDGETS:
        found = sorted(runs.glob(f"{name}-seed*/{FOLDER}/correlation.csv"))
        if found:
            tables[name] = [pd.read_csv(p).set_index("arch") for p in found]
    if not tables:
        sys.exit(f"no scored runs under {runs}; run results/ranking/score_v2.sh first")
    return tables


def combined(table: pd.DataFrame, parts, aggregation: str) -> np.ndarray:
    q = table[[f"{p}_quantile" for p in parts]].to_numpy(dtype=float)
    return np.log(q).sum(axis=1) if aggregation == "log_rank" else q.mean(axis=1)


def rankable(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    return np.where(np.isfinite(values), values, finite.min() - 1 if finite.size else 0.0)


def scorer_rows(tables: dict[str, list[pd.DataFrame]]) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """One row per scorer: its scores per seed (S, 64), figures, and cost."""
    first = next(iter(tables.values()))[0]
    truth = first["ground_truth"].to_numpy(dtype=float)
    flops = first["flops_m"].to_numpy(dtype=float)
    scores: dict[str, np.ndarray] = {}
    for proxy in PROXIES:
        scores[proxy] = rankable(first[proxy].to_numpy(dtype=float))[None, :]
    for name, parts in COMBINATIONS.items():
        for aggregation in ("log_rank", "mean"):
            label = name if aggregation == "log_rank" else f"mean:{name}"
            if "supernet" not in parts:
                scores[label] = combined(first, parts, aggregation)[None, :]
                continue
            for budget, runs in tables.items():
                scores[f"{label} @{budget}"] = np.stack([combined(t, parts, aggregation)
                                                         for t in runs])
    for budget, runs in tables.items():
        scores[f"supernet @{budget}"] = np.stack([t["supernet"].to_numpy(dtype=float)
                                                  for t in runs])
    return pd.DataFrame(index=list(scores)), scores, np.stack([truth, flops])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="results/runs/ranking-v2")
    parser.add_argument("--out", default="results/ranking/scorers.csv")
    parser.add_argument("--costs", default="results/ranking/scorer_costs.csv",
                        help="seconds per architecture of each part (scorer_costs.py)")
    args = parser.parse_args()
    tables = load(Path(args.runs))
    _, scores, (truth, flops) = scorer_rows(tables)
    single = {k: v for k, v in scores.items() if k in PROXIES}
    best_proxy = max(single, key=lambda k: kendall_tau(single[k][0], truth))
    comparison = compare_with_baseline(scores, truth, best_proxy, seed=0)
    gt = pd.read_csv(GT)
    ceiling = seed_to_seed_tau(gt.pivot(index="arch", columns="seed", values="accuracy")
                               .dropna().to_numpy().T)
    rows = []
    seconds = pd.read_csv(args.costs).set_index("scorer")["s_per_arch"].to_dict()
    seconds.update({"flops": seconds["params"], "az": seconds.pop("az_expressivity")})
    for name, by_seed in scores.items():
        budget = name.split("@")[1] if "@" in name else None
        steps = BUDGETS[budget] if budget else 0
        plain = name.split(" @")[0].removeprefix("mean:")
        parts = COMBINATIONS.get(plain, (plain,))
        if "supernet" in parts:
            parts = parts[1:] + ("supernet",)
        # AZ-NAS's components are one computation; a combination also scores its reference.
        paid = {"az" if p.startswith("az_") else p for p in parts}
        scored = 64 + (REFERENCE_SIZE if len(parts) > 1 else 0)
        train_s = steps / 23.9  # SPOS's measured rate on this skeleton (217 s for 5,200 steps)
        score_s = scored * sum(seconds[p] for p in paid)
        c = comparison[name]
        rows.append({"scorer": name, "seeds": by_seed.shape[0], "kendall_tau": c["mean_tau"],
                     "tau_low": c["low"], "tau_high": c["high"],
                     "tau_terciles": float(np.mean([within_band_tau(s, truth, flops)
                                                    for s in by_seed])),
                     "vs_best_proxy": c["difference"],
                     "vs_low": c.get("difference_low", math.nan),
                     "vs_high": c.get("difference_high", math.nan),
                     "verdict": c.get("verdict", "baseline"),
                     "cost_trainings": (train_s + score_s) / STANDALONE_S})
    table = pd.DataFrame(rows).sort_values("kendall_tau", ascending=False)
    table.to_csv(args.out, index=False, float_format="%.4f")
    print(f"best single proxy: {best_proxy}; noise ceiling {ceiling:.3f}; 64 architectures\n")
    print("| scorer | seeds | Kendall tau [95%] | tau in FLOPs terciles | minus best proxy "
          "[95% paired] | cost (stand-alone trainings) |")
    print("|---|---|---|---|---|---|")
    for r in table.itertuples():
        diff = "-" if r.verdict == "baseline" else \
            f"{r.vs_best_proxy:+.3f} [{r.vs_low:+.3f}, {r.vs_high:+.3f}]"
        print(f"| {r.scorer} | {r.seeds} | {r.kendall_tau:.3f} [{r.tau_low:.2f}, {r.tau_high:.2f}]"
              f" | {r.tau_terciles:.3f} | {diff} | {r.cost_trainings:.1f} |")
    labelled(tables, truth)


def _weighted(q: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.log(q) @ weights


def labelled(tables: dict[str, list[pd.DataFrame]], truth: np.ndarray, repeats: int = 200
             ) -> None:
    """K <= 10 stand-alone labels choosing the combination's weights (equal, or a grid over the
    simplex in steps of 1/6, whichever ranks the K best; a tie keeps equal), against the unlabelled equal weights, by leave-out: the K labelled
    architectures chosen at random, tau measured on the other 64 - K."""
    from sklearn.ensemble import RandomForestRegressor

    print("\n| parts | budget | K labels | labels used by | equal weights: tau on the rest | "
          "with labels | difference [95% over splits] | splits where labels help |")
    print("|---|---|---|---|---|---|---|---|")
    # Equal weights first, so that a tie on the K labels keeps them: labels must earn a change.
    grid = [np.ones(3) / 3] + [np.array(w) / 6 for w in itertools.product(range(7), repeat=3)
                               if sum(w) == 6 and len(set(w)) > 1]
    rng = np.random.default_rng(0)
    for budget in tables:
        for parts in (("supernet", "naswot", "params"), ("supernet", "naswot", "synflow")):
            for k in (5, 10):
                equal, tuned, forest = [], [], []
                for _ in range(repeats):
                    table = tables[budget][rng.integers(len(tables[budget]))]
                    q = table[[f"{p}_quantile" for p in parts]].to_numpy(dtype=float)
                    chosen = rng.choice(len(truth), size=k, replace=False)
                    rest = np.setdiff1d(np.arange(len(truth)), chosen)
                    fits = [kendall_tau(_weighted(q[chosen], w), truth[chosen]) for w in grid]
                    fits = np.nan_to_num(fits, nan=-2)
                    best = grid[int(np.argmax(fits))]
                    equal.append(kendall_tau(_weighted(q[rest], np.ones(3) / 3), truth[rest]))
                    tuned.append(kendall_tau(_weighted(q[rest], best), truth[rest]))
                    # NAS-Bench-Suite-Zero's way: a random forest on the parts, fit to K labels.
                    model = RandomForestRegressor(n_estimators=100, random_state=0)
                    model.fit(np.log(q[chosen]), truth[chosen])
                    forest.append(kendall_tau(model.predict(np.log(q[rest])), truth[rest]))
                for how, values in (("weights (grid)", tuned), ("random forest", forest)):
                    diff = np.array(values) - np.array(equal)
                    low, high = np.quantile(diff, [0.025, 0.975])
                    print(f"| {'+'.join(parts)} | {budget} | {k} | {how} | {np.mean(equal):.3f} "
                          f"| {np.mean(values):.3f} | {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]"
                          f" | {np.mean(diff > 0):.0%} |")


if __name__ == "__main__":
    main()
