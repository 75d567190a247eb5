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

import pandas as pd

from nas.ranking.correlate import correlation_folder, read_ground_truth
from nas.runs import atomic_write_csv
from search_spaces import get_space

# All 15,625 NB201 cells, CIFAR-10: Spearman from the zero-cost-nas notebook (Abdelfattah et
# al. 2021), Kendall tau from AZ-NAS's reproduction (Lee & Ham, CVPR 2024, Table 1); "-" where
# neither reports one. Our figures are on a seeded sample and one initialisation.
LITERATURE = {"params": ("0.578", "~0.75 (unverified)"),
              "flops": ("0.578", "~0.75 (unverified)"), "synflow": ("0.571", "0.737"), "naswot": ("0.557", "-"),
              "snip": ("0.454", "0.596"), "grad_norm": ("0.357", "0.594")}


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
    lines = ["| proxy | Kendall tau [95%] | Spearman rho [95%] | top-10% precision | top-1 regret "
             "(points) | s / arch | literature tau | literature rho |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["kendall_tau"]):
        tau, rho = LITERATURE.get(r["proxy"], ("-", "-"))
        lines.append(f"| {r['proxy']} | {r['kendall_tau']:.3f} [{r['kendall_tau_low']:.3f}, "
                     f"{r['kendall_tau_high']:.3f}] | {r['spearman_rho']:.3f} "
                     f"[{r['spearman_rho_low']:.3f}, {r['spearman_rho_high']:.3f}] | "
                     f"{r['precision_top10']:.2f} | {r['top1_regret']:.2f} | "
                     f"{r['s_per_arch']:.2f} | {tau} | {rho} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--ground-truth", required=True)
    parser.add_argument("--column", default=None)
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--out", required=True, type=Path, help="CSV of every score")
    args = parser.parse_args(argv)
    truth = read_ground_truth(args.ground_truth, get_space(args.space), args.column)
    scores, rows = load(args.runs, correlation_folder(truth))
    atomic_write_csv(args.out, scores)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
