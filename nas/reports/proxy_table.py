"""Training-free proxies side by side against one ground truth, with the papers' figures.

    python -m nas.reports.proxy_table --runs RUNS --ground-truth GT.csv [--column C]
        --out results/ranking/proxies.csv

Reads what `nas correlate --proxy ... --out RUNS` wrote (RUNS/proxy-<name>-seed<k>/) and writes
one CSV of every architecture's proxy scores beside its ground truth, and prints a markdown
table: Kendall tau and Spearman rho with their 95% bootstrap intervals, the wall seconds per
architecture, and the figures the literature reports for NAS-Bench-201 CIFAR-10.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nas.ranking import kendall_tau, ranking_figures
from nas.ranking.comparison import compare_with_baseline
from nas.ranking.correlate import correlation_folder, rankable_scores, read_ground_truth
from nas.scorers.az_nas import log_rank_aggregate
from nas.scorers.combined import COMBINATIONS as NAMED
from nas.runs import atomic_write_csv
from search_spaces import get_space

# All 15,625 NB201 cells, CIFAR-10: Spearman from the zero-cost-nas notebook (Abdelfattah et
# al. 2021), Kendall tau from AZ-NAS's reproduction (Lee & Ham, CVPR 2024, Table 1); "-" where
# neither reports one. Our figures are on a seeded sample and one initialisation.
LITERATURE = {"params": ("0.578", "~0.75 (unverified)"),
              "flops": ("0.578", "~0.75 (unverified)"), "synflow": ("0.571", "0.737"), "naswot": ("0.557", "-"),
              "snip": ("0.454", "0.596"), "grad_norm": ("0.357", "0.594"),
              # jacov: Ning et al. 2021 (6,466 de-isomorphic cells) and the zero-cost-nas notebook;
              # zico: AZ-NAS's Table 1; meco: its abstract's 0.89 names no coefficient.
              "jacov": ("0.61", "0.731"), "zico": ("0.589", "-"), "meco": ("-", "0.89 (unverified)"),
              "az_nas": ("0.741", "0.913")}

# Seconds per architecture of the proxies of the first table (2026-12-02, 3-5 processes on
# the 2 cores), for rows merged from it (--merge).
MEASURED_BEFORE = {"naswot": 1.25, "synflow": 0.10, "flops": 0.03, "params": 0.01, "snip": 0.99,
                   "grad_norm": 1.15}

# Combinations of proxies, each by AZ-NAS's log-rank aggregation over the architectures scored
# (the paper's own protocol; `nas search` ranks against a fixed reference sample instead).
AZ_NAS = tuple(NAMED["az_nas"].split("+"))  # its three components and FLOPs, as `--scorer az_nas`
COMBINATIONS = {"az_nas": AZ_NAS,
                "naswot+synflow+params": ("naswot", "synflow", "params"),
                "meco+jacov": ("meco", "jacov"),
                "meco+naswot": ("meco", "naswot"),
                "meco+synflow": ("meco", "synflow"),
                "meco+jacov+naswot": ("meco", "jacov", "naswot"),
                "meco+jacov+synflow": ("meco", "jacov", "synflow"),
                "meco+jacov+synflow+params": ("meco", "jacov", "synflow", "params"),
                "meco+synflow+params": ("meco", "synflow", "params"),
                "meco+naswot+synflow+params": ("meco", "naswot", "synflow", "params"),
                "meco+az_nas": ("meco", *AZ_NAS),
                "meco+jacov+az_nas": ("meco", "jacov", *AZ_NAS)}


def load(runs: Path, correlation_dir: str) -> tuple[pd.DataFrame, list[dict]]:
    scores, rows = None, []
    for path in sorted(runs.glob(f"proxy-*-seed*/{correlation_dir}/correlation.json")):
        run = path.parents[1].name
        name = re.fullmatch(r"proxy-(.+)-seed\d+", run).group(1)
        report = json.loads(path.read_text())
        table = pd.read_csv(path.parent / "correlation.csv").set_index("arch")
        column = f"{run.removeprefix('proxy-')}"
        if scores is None:
            scores = table[["ground_truth"]].copy()
        scores[column] = table["proxy_score"]
        figures = report["figures"]
        rows.append({"proxy": name, "run": run, "architectures": report["architectures"],
                     **{f"{k}{s}": figures[k][v] for k in ("kendall_tau", "spearman_rho")
                        for s, v in (("", "value"), ("_low", "low"), ("_high", "high"))},
                     "precision_top10": figures["precision_top10"]["value"],
                     "top1_regret": figures["top1_regret"]["value"],
                     "s_per_arch": report["wall_s"] / report["architectures"]})
    if scores is None:
        raise SystemExit(f"no proxy runs for {correlation_dir} under {runs}")
    return scores.reset_index(), rows


def markdown(rows: list[dict]) -> str:
    lines = ["| proxy | Kendall tau [95%] | Spearman rho [95%] | tau within FLOPs terciles [95%] "
             "| top-10% precision | top-1 regret (points) | s / arch | literature tau "
             "| literature rho | tau minus the best single proxy's [95% paired] |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["kendall_tau"]):
        tau, rho = LITERATURE.get(r["proxy"], ("-", "-"))
        lines.append(f"| {r['proxy']} | {r['kendall_tau']:.3f} [{r['kendall_tau_low']:.3f}, "
                     f"{r['kendall_tau_high']:.3f}] | {r['spearman_rho']:.3f} "
                     f"[{r['spearman_rho_low']:.3f}, {r['spearman_rho_high']:.3f}] | "
                     f"{r['kendall_tau_flops_terciles']:.3f} [{r['kendall_tau_flops_terciles_low']:.3f}, "
                     f"{r['kendall_tau_flops_terciles_high']:.3f}] | "
                     f"{r['precision_top10']:.2f} | {r['top1_regret']:.2f} | "
                     f"{r['s_per_arch']:.2f} | {tau} | {rho} | {r.get('vs_best', '-')} |")
    return "\n".join(lines)


def scored_rows(scores: pd.DataFrame, rows: list[dict], flops: pd.Series) -> list[dict]:
    """Figures of every proxy column of `scores` (those merged from an earlier table
    included) and of each combination in COMBINATIONS whose parts are all there; the seconds
    per architecture where a run recorded them."""
    truth = scores["ground_truth"].to_numpy(dtype=float)
    costs = {r["proxy"]: r["s_per_arch"] for r in rows}
    columns = {c.removesuffix("-seed0"): rankable_scores(scores[c].to_numpy(dtype=float),
                                                         list(scores["arch"]))
               for c in scores.columns if c not in ("arch", "ground_truth")}
    for name, parts in COMBINATIONS.items():
        if all(p in columns for p in parts):
            columns[name] = log_rank_aggregate([columns[p].tolist() for p in parts])
            # AZ-NAS's components come from one computation: the first run paid for it.
            costs[name] = sum(costs.get(p, float("nan")) for p in parts)
    singles = [n for n in columns if n not in COMBINATIONS]
    best = max(singles, key=lambda n: kendall_tau(np.asarray(columns[n]), truth))
    paired = compare_with_baseline({n: np.asarray(v)[None, :] for n, v in columns.items()},
                                   truth, best, resamples=1000)
    out = []
    for name, values in columns.items():
        figures = ranking_figures(np.asarray(values), truth, flops=flops.to_numpy(dtype=float))
        out.append({"proxy": name, **{f"{k}{s}": figures[k][v]
                                      for k in ("kendall_tau", "spearman_rho",
                                                "kendall_tau_flops_terciles")
                                      for s, v in (("", "value"), ("_low", "low"),
                                                   ("_high", "high"))},
                    "precision_top10": figures["precision_top10"]["value"],
                    "top1_regret": figures["top1_regret"]["value"],
                    "s_per_arch": costs.get(name, float("nan")),
                    "vs_best": "-" if name == best else
                    f"{paired[name]['difference']:+.3f} [{paired[name]['difference_low']:+.3f}, "
                    f"{paired[name]['difference_high']:+.3f}] vs {best}"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--ground-truth", required=True)
    parser.add_argument("--column", default=None)
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--out", required=True, type=Path, help="CSV of every score")
    parser.add_argument("--merge", default=None, type=Path, metavar="CSV",
                        help="an earlier --out of the same architectures whose proxy columns "
                             "are kept beside the runs' (columns the runs hold are replaced)")
    args = parser.parse_args(argv)
    space = get_space(args.space)
    truth = read_ground_truth(args.ground_truth, space, args.column)
    scores, rows = load(args.runs, correlation_folder(truth))
    if args.merge is not None:
        earlier = pd.read_csv(args.merge).set_index("arch")
        scores = scores.set_index("arch")
        if set(earlier.index) != set(scores.index):
            raise SystemExit(f"{args.merge} holds other architectures than {args.runs}")
        kept = earlier.drop(columns=["ground_truth", *scores.columns], errors="ignore")
        scores = scores.join(kept).reset_index()
        rows += [{"proxy": name, "s_per_arch": seconds} for name, seconds in
                 MEASURED_BEFORE.items() if name in kept.columns.str.removesuffix("-seed0")]
    atomic_write_csv(args.out, scores)
    flops = pd.Series([space.flops_m(space.parse(a)) for a in scores["arch"]])
    print(markdown(scored_rows(scores, rows, flops)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
