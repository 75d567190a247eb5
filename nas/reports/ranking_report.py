"""The ranking report: training methods' supernet rankings against one ground truth, side by side,
with training-free proxies as rows of their own (`nas correlate --proxy ... --out RUNS` writes
them as runs `RUNS/proxy-<name>-seed<k>`; name them `proxy-<name>` in --methods).

    python -m nas.reports.ranking_report --runs RUNS --ground-truth GT.csv --out results/ranking
        [--methods spos,pada,pada-code,fewshot,gmnas,alphanet] [--seeds 0,1,2] [--baseline spos]

Reads what `nas correlate RUNS/<method>-seed<k> --ground-truth GT.csv --archs ...` wrote into each
run directory (correlation.csv, correlation.json), so every run must have been scored on the same
architectures against the same file. Writes into --out:
- methods.csv: per method, the seed-mean Kendall tau with a two-level bootstrap 95% interval
  (architectures and supernet seeds resampled), its difference from the baseline with a paired
  interval and a verdict; the seed-mean tau against one ground-truth seed at a time (comparable
  with the noise ceiling); mean Spearman, top-10% precision and top-1 regret; the top-10% overlap
  of the seeds' shortlists.
- runs.csv: every run's own figures with their bootstrap intervals.
- kendall_tau.png (methods with intervals, seeds, and the noise ceiling) and scatter.png (one
  panel per method: seed-0 supernet scores against ground truth).
- report.md: the tables and the plain verdicts, with this command line.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nas.ranking.correlate import correlation_folder, rankable_scores, read_ground_truth
from nas.errors import DataError, NasError
from nas.ranking import (bootstrap_interval, compare_with_baseline, kendall_tau, mean_tau,
                         seed_to_seed_tau, top_k_overlap)
from nas.ranking.plots import plt, write_png
from nas.runs import atomic_write_csv, atomic_write_text
from search_spaces import get_space

RUN_FIGURES = ("kendall_tau", "spearman_rho", "pearson_r", "precision_top10", "top1_regret")


def _load_run(run_dir: Path, correlation_dir: str) -> tuple[pd.DataFrame, dict]:
    folder = run_dir / correlation_dir
    try:
        table = pd.read_csv(folder / "correlation.csv")
        report = json.loads((folder / "correlation.json").read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"no readable correlation results in {folder} ({error}); run nas "
                        f"correlate {run_dir} --ground-truth ... first") from None
    return table, report


def load_methods(runs: Path, methods: list[str], seeds: list[int], correlation_dir: str):
    """scores[method] of shape (seeds, N), the architectures, the truth, and each run's figures."""
    scores, figures, archs, truth = {}, [], None, None
    for method in methods:
        rows = []
        for seed in seeds:
            table, report = _load_run(runs / f"{method}-seed{seed}", correlation_dir)
            if archs is None:
                archs, truth = list(table["arch"]), table["ground_truth"].to_numpy(dtype=float)
            elif list(table["arch"]) != archs:
                raise DataError(f"{method}-seed{seed} was scored on other architectures than "
                                f"{methods[0]}-seed{seeds[0]}; correlate every run with one --archs")
            column = next(c for c in table.columns if c.endswith("_score"))
            rows.append(rankable_scores(table[column].to_numpy(dtype=float), archs))
            # Tau within FLOPs terciles: in reports written since it was added.
            terciles = report["figures"].get("kendall_tau_flops_terciles", {"value": np.nan})
            figures.append({"method": method, "seed": seed, **{
                f"{name}{suffix}": report["figures"][name][key] for name in RUN_FIGURES
                for suffix, key in (("", "value"), ("_low", "low"), ("_high", "high"))},
                "tau_flops_terciles": terciles["value"]})
        scores[method] = np.stack(rows)
    return scores, archs, truth, pd.DataFrame(figures)


def method_table(scores: dict[str, np.ndarray], truth: np.ndarray, truth_by_seed: np.ndarray,
                 runs: pd.DataFrame, baseline: str, resamples: int) -> pd.DataFrame:
    comparison = compare_with_baseline(scores, truth, baseline, resamples=resamples)
    rows = []
    for method, by_seed in scores.items():
        own = runs[runs["method"] == method]
        row = {"method": method, "seeds": by_seed.shape[0], **comparison[method],
               "tau_seed_sd": float(own["kendall_tau"].std(ddof=1)),  # NaN for one seed
               "tau_vs_one_gt_seed": float(np.mean([mean_tau(by_seed, one) for one in truth_by_seed])),
               "spearman_rho": float(own["spearman_rho"].mean()),
               "tau_flops_terciles": float(own["tau_flops_terciles"].mean()),
               "precision_top10": float(own["precision_top10"].mean()),
               "top1_regret": float(own["top1_regret"].mean()),
               "top10_overlap": top_k_overlap(by_seed, 0.10) if by_seed.shape[0] > 1 else float("nan"),
               "mean_supernet_score": float(by_seed.mean())}
        rows.append(row)
    return pd.DataFrame(rows)


def tau_plot(table: pd.DataFrame, runs: pd.DataFrame, ceiling: tuple[float, float, float],
             path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.0, 4.0), layout="constrained")
    try:
        x = np.arange(len(table))
        value, low, high = ceiling
        ax.axhspan(low, high, color="tab:green", alpha=0.15)
        ax.axhline(value, color="tab:green", linestyle="--", linewidth=1,
                   label=f"noise ceiling (ground truth seed vs seed) {value:.2f}")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.errorbar(x, table["mean_tau"], yerr=[table["mean_tau"] - table["low"],
                    table["high"] - table["mean_tau"]], fmt="o", color="black", capsize=4,
                    label="mean over seeds, 95% interval")
        for i, method in enumerate(table["method"]):
            taus = runs.loc[runs["method"] == method, "kendall_tau"]
            ax.scatter(np.full(len(taus), i + 0.15), taus, s=14, color="tab:blue", alpha=0.7,
                       label="one supernet seed" if i == 0 else None)
        ax.set_xticks(x, table["method"])
        ax.set_ylabel("Kendall tau vs ground truth")
        ax.set_ylim(-1.0, 1.0)
        ax.legend(loc="lower left", fontsize=8, frameon=False)
        write_png(fig, path)
    finally:
        plt.close(fig)


def scatter_grid(scores: dict[str, np.ndarray], truth: np.ndarray, path: Path) -> None:
    columns = 3
    panels = len(scores)
    fig, axes = plt.subplots((panels + columns - 1) // columns, columns, squeeze=False,
                             figsize=(3.2 * columns, 2.8 * ((panels + columns - 1) // columns)),
                             layout="constrained")
    try:
        for ax, (method, by_seed) in zip(axes.flat, scores.items()):
            ax.scatter(by_seed[0], truth, s=10, alpha=0.6, linewidths=0)
            ax.set_title(f"{method} seed 0 (τ = {kendall_tau(by_seed[0], truth):.2f})", fontsize=9)
            ax.set_xlabel("supernet score (%)", fontsize=8)
            ax.set_ylabel("ground truth (%)", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[panels:]:
            ax.set_visible(False)
        write_png(fig, path)
    finally:
        plt.close(fig)


def _markdown(table: pd.DataFrame, columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def write_report(table: pd.DataFrame, runs: pd.DataFrame, ceiling: tuple[float, float, float],
                 archs: int, baseline: str, command: str, out: Path) -> str:
    shown = table.copy()
    shown["mean tau [95%]"] = [f"{r.mean_tau:.3f} [{r.low:.3f}, {r.high:.3f}]"
                               for r in table.itertuples()]
    shown["vs baseline [95%]"] = [
        "baseline" if r.method == baseline else
        f"{r.difference:+.3f} [{r.difference_low:+.3f}, {r.difference_high:+.3f}]"
        for r in table.itertuples()]
    shown["verdict"] = shown["verdict"].fillna("baseline") if "verdict" in shown else "baseline"
    for name in ("tau_seed_sd", "tau_vs_one_gt_seed", "tau_flops_terciles", "spearman_rho",
                 "precision_top10",
                 "top1_regret", "top10_overlap", "mean_supernet_score"):
        shown[name] = shown[name].map(lambda v: f"{v:.3f}")
    per_run = runs.copy()
    per_run["kendall tau [95%]"] = [f"{r.kendall_tau:.3f} [{r.kendall_tau_low:.3f}, "
                                    f"{r.kendall_tau_high:.3f}]" for r in runs.itertuples()]
    for name in ("spearman_rho", "precision_top10", "top1_regret"):
        per_run[name] = per_run[name].map(lambda v: f"{v:.3f}")
    better = [m for m, v in zip(table["method"], shown["verdict"]) if v == "better"]
    worse = [m for m, v in zip(table["method"], shown["verdict"]) if v == "worse"]
    unclear = [m for m, v in zip(table["method"], shown["verdict"]) if v == "no clear difference"]
    verdicts = (f"- Beat {baseline} (95% interval of the difference above 0): "
                f"{', '.join(better) or 'none'}.\n"
                f"- Worse than {baseline}: {', '.join(worse) or 'none'}.\n"
                f"- No clear difference from {baseline}: {', '.join(unclear) or 'none'}.")
    text = f"""# Ranking report

Made by:

    {command}

{archs} architectures with ground truth; Kendall tau of each supernet's scores against the ground
truth (mean accuracy over its seeds). Intervals: two-level bootstrap (architectures, shared by all
methods so differences are paired; and each method's supernet seeds), 95%.

Noise ceiling (ground truth seed against seed, Kendall tau): **{ceiling[0]:.3f}**
[{ceiling[1]:.3f}, {ceiling[2]:.3f}]. Compare it with `tau vs one GT seed`, the supernets' tau
against one ground-truth seed at a time: the same footing.

{_markdown(shown, {"method": "method", "seeds": "seeds", "mean tau [95%]": "mean tau [95%]",
                   "tau_seed_sd": "seed sd", "vs baseline [95%]": f"minus {baseline} [95%]",
                   "verdict": "verdict", "tau_vs_one_gt_seed": "tau vs one GT seed",
                   "tau_flops_terciles": "tau within FLOPs terciles",
                   "spearman_rho": "Spearman", "precision_top10": "top-10% precision",
                   "top1_regret": "top-1 regret (pts)", "top10_overlap": "top-10% overlap of seeds",
                   "mean_supernet_score": "mean supernet score (%)"})}

{verdicts}

Per run (interval: bootstrap over architectures only):

{_markdown(per_run, {"method": "method", "seed": "seed", "kendall tau [95%]": "Kendall tau [95%]",
                     "spearman_rho": "Spearman", "precision_top10": "top-10% precision",
                     "top1_regret": "top-1 regret (pts)"})}

![Kendall tau by method](kendall_tau.png)

![supernet score against ground truth](scatter.png)
"""
    atomic_write_text(out / "report.md", text)
    return text


def _seed_list(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds, "
                                         "such as 0,1,2") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, type=Path, help="holds <method>-seed<k> run dirs")
    parser.add_argument("--ground-truth", required=True, type=Path, help="the CSV correlated with")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--methods", default="spos,pada,pada-code,fewshot,gmnas,alphanet")
    parser.add_argument("--seeds", default=[0, 1, 2], type=_seed_list, help="e.g. 0,1,2")
    parser.add_argument("--baseline", default="spos")
    parser.add_argument("--space", default="nb201", help="space of the ground truth's strings")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        methods = args.methods.split(",")
        truth_file = read_ground_truth(args.ground_truth, get_space(args.space))
        correlation_dir = correlation_folder(truth_file)
        scores, archs, truth, runs = load_methods(args.runs, methods, args.seeds,
                                                    correlation_dir)
        if truth_file.by_seed is None or truth_file.by_seed.shape[1] < 2:
            raise DataError(f"{args.ground_truth} needs 2 or more seeds per architecture for a "
                            "noise ceiling; make it with nas groundtruth --seeds 2")
        by_seed = truth_file.by_seed.loc[archs].to_numpy().T  # (ground-truth seeds, N)
        if np.isnan(by_seed).any() or not np.allclose(by_seed.mean(axis=0), truth):
            raise DataError(f"{args.ground_truth} does not hold every seed of the correlated "
                            "architectures, or has changed since nas correlate ran; re-run it")
        # With more than 2 seeds the value is the mean over pairs; its interval, the first pair's.
        ceiling = (seed_to_seed_tau(by_seed),
                   *bootstrap_interval(kendall_tau, by_seed[0], by_seed[1], resamples=args.resamples))
        table = method_table(scores, truth, by_seed, runs, args.baseline, args.resamples)
    except NasError as error:
        print(f"ranking_report: error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(args.out / "methods.csv", table)
    atomic_write_csv(args.out / "runs.csv", runs)
    tau_plot(table, runs, ceiling, args.out / "kendall_tau.png")
    scatter_grid(scores, truth, args.out / "scatter.png")
    command = "python -m nas.reports.ranking_report " + shlex.join(argv or sys.argv[1:])
    print(write_report(table, runs, ceiling, len(archs), args.baseline, command, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
