"""An ablation's figures (`nas.ranking.ablation`): runs.csv, ablation.csv, ablation.md, .png.

For every variant and both scorers (the supernet alone, the study's combination): the
seed-mean Kendall tau and its difference from the baseline's with paired 95% intervals,
overall and within FLOPs terciles (`nas.ranking.comparison`). The plot shows the differences;
the table adds the taus themselves and the training seconds (the figures are at equal steps:
a variant that trains slower costs more wall time), beside the proxies' own tau and the noise
ceiling. A run whose supernet gives every architecture one score ranks nothing: it is listed,
not compared; a run that failed is listed with its error.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nas.ranking.ablation import (BASELINE, Scoring, Study, combined_scores, run_failure,
                                  scored_runs)
from nas.ranking.comparison import compare_with_baseline, compare_within_bands
from nas.ranking.correlate import rankable_scores
from nas.ranking.metrics import kendall_tau, seed_to_seed_tau, within_band_tau
from nas.ranking.plots import plt, write_png
from nas.runs import atomic_write_csv, atomic_write_text

FIGURES = ("mean_tau", "low", "high", "difference", "difference_low", "difference_high",
           "verdict")


def write_report(study: Study, scoring: Scoring) -> dict:
    """The study's files from every run scored so far; returns what they say."""
    setting = study.scorer_setting
    space, archs = scoring.problem.space, scoring.archs
    targets = scoring.truth.accuracy.loc[archs].to_numpy(dtype=float)
    flops = np.array([space.flops_m(space.parse(a)) for a in archs])
    proxies = {p.label: rankable_scores(scoring.proxies[p.label].to_numpy(float), archs)
               for p in setting.parts if not p.trains_supernet}
    scorers = list(dict.fromkeys(("supernet", setting.label)))  # one column for --scorer supernet
    runs, by_variant, collapsed = [], {}, []
    for variant, seed, scored in scored_runs(study, archs):
        supernet = rankable_scores(np.array(scored["supernet"]), archs)
        if np.ptp(supernet) == 0:
            collapsed.append(f"{variant.name} seed {seed}")
            continue
        values = {"supernet": supernet,
                  setting.label: combined_scores(
                      {p.label: supernet if p.trains_supernet else proxies[p.label]
                       for p in setting.parts}, setting.aggregation)}
        row = {"variant": variant.name, "seed": seed, "run": str(study.run_dir(variant, seed)),
               "steps": scored["steps"], "train_s": scored["train_s"],
               "score_s": scored["score_s"]}
        for name in scorers:
            by_variant.setdefault(variant.name, {s: [] for s in scorers})[name].append(values[name])
            row[f"tau_{name}"] = kendall_tau(values[name], targets)
            row[f"tau_{name}_within_flops_terciles"] = within_band_tau(values[name], targets, flops)
        runs.append(row)
    run_table = pd.DataFrame(runs)
    atomic_write_csv(study.out / "runs.csv", run_table)
    errors = {f"{v.name} seed {s}": run_failure(study.run_dir(v, s))
              for v in study.variants for s in study.seeds}
    failed = {run: error for run, error in errors.items() if error is not None}
    report = {"runs": len(runs), "expected_runs": len(study.variants) * len(study.seeds),
              "architectures": len(archs), "scorer": str(setting), "failed": failed,
              "collapsed": collapsed,
              "proxies": {name: kendall_tau(v, targets) for name, v in proxies.items()},
              "rows": []}
    truth = scoring.truth
    if truth.by_seed is not None and truth.by_seed.shape[1] >= 2:
        report["noise_ceiling_kendall_tau"] = seed_to_seed_tau(
            truth.by_seed.loc[archs].dropna().to_numpy().T)
    if BASELINE not in by_variant:
        print(f"ablate: {len(runs)} of {report['expected_runs']} runs scored; the baseline has "
              f"none yet, so nothing is compared")
        return report
    for name in scorers:
        scores = {variant: np.stack(v[name]) for variant, v in by_variant.items()}
        overall = compare_with_baseline(scores, targets, BASELINE)
        within = compare_within_bands(scores, targets, flops, BASELINE)
        for variant in scores:
            seconds = run_table.loc[run_table["variant"] == variant, "train_s"]
            report["rows"].append({"variant": variant, "scorer": name,
                                   "seeds": len(scores[variant]), "train_s": float(seconds.mean()),
                                   **{k: overall[variant].get(k, np.nan) for k in FIGURES},
                                   **{f"within_{k}": within[variant].get(k, np.nan)
                                      for k in FIGURES}})
    table = pd.DataFrame(report["rows"])
    atomic_write_csv(study.out / "ablation.csv", table)
    text = markdown(study, table, report)
    atomic_write_text(study.out / "ablation.md", text + "\n")
    plot(table, study.out / "ablation.png",
         f"{report['runs']} runs, {report['architectures']} architectures, equal steps")
    print("\n".join(line for line in text.splitlines() if line.startswith(("|", "## "))))
    return report


def _interval(row: pd.Series, prefix: str = "") -> str:
    return (f"{row[prefix + 'mean_tau']:.3f} [{row[prefix + 'low']:.3f}, "
            f"{row[prefix + 'high']:.3f}]")


def _difference(row: pd.Series, prefix: str = "") -> str:
    if pd.isna(row[prefix + "difference_low"]):
        return "—"
    return (f"{row[prefix + 'difference']:+.3f} [{row[prefix + 'difference_low']:+.3f}, "
            f"{row[prefix + 'difference_high']:+.3f}] {row[prefix + 'verdict']}")


def markdown(study: Study, table: pd.DataFrame, report: dict) -> str:
    train = study.recipe.train
    budget = f"{train.steps} steps" if train.steps is not None else f"{train.epochs} epochs"
    lines = [f"# Ablation: {len(study.variants) - 1} variants against the baseline recipe", ""]
    if study.command:
        lines += [f"Made by: `{study.command}`", ""]
    lines += [f"{report['runs']} of {report['expected_runs']} runs scored on "
              f"{report['architectures']} architectures of {study.ground_truth}; every variant "
              f"trains {budget} unless it varies them (equal steps); train s = mean training "
              f"seconds a run. Intervals: 95%, two-level bootstrap (architectures shared by "
              f"every variant, so differences are paired; each variant's seeds resampled).", ""]
    free = ", ".join(f"{name} {tau:.3f}" for name, tau in report["proxies"].items())
    if free:
        lines.append(f"Training-free parts alone on these architectures: {free}.")
    if "noise_ceiling_kendall_tau" in report:
        lines.append(f"Noise ceiling (the ground truth's seed-to-seed tau): "
                     f"{report['noise_ceiling_kendall_tau']:.3f}.")
    for run, error in report["failed"].items():
        lines.append(f"Failed, left out: {run}: {error}")
    for run in report["collapsed"]:
        lines.append(f"Collapsed (one score for every architecture), left out: {run}")
    lines.append("")
    for scorer, rows in table.groupby("scorer", sort=False):
        lines += [f"## Scored by {scorer}", "",
                  "| variant | seeds | train s | tau [95%] | minus baseline [95%] | "
                  "tau within FLOPs terciles | minus baseline |",
                  "|---|---|---|---|---|---|---|"]
        for _, row in rows.iterrows():
            lines.append(f"| {row['variant']} | {row['seeds']} | {row['train_s']:.0f} | "
                         f"{_interval(row)} | {_difference(row)} | {_interval(row, 'within_')} | "
                         f"{_difference(row, 'within_')} |")
        lines.append("")
    return "\n".join(lines)


def plot(table: pd.DataFrame, path, title: str) -> None:
    scorers = list(dict.fromkeys(table["scorer"]))
    names = list(dict.fromkeys(table["variant"]))
    label_in = 0.075 * max(len(n) for n in names)  # the variants' names beside the first panel
    fig, axes = plt.subplots(1, len(scorers), sharey=True, layout="constrained", squeeze=False,
                             figsize=(4.5 * len(scorers) + label_in, 0.45 * len(names) + 1.8))
    try:
        for ax, scorer in zip(axes[0], scorers):
            rows = table[table["scorer"] == scorer].set_index("variant").reindex(names)
            y = np.arange(len(names))
            for offset, prefix, marker, label in ((-0.15, "", "o", "overall"),
                                                  (0.15, "within_", "s", "within FLOPs terciles")):
                centre = rows[prefix + "difference"].to_numpy(float)
                low = rows[prefix + "difference_low"].to_numpy(float)
                high = rows[prefix + "difference_high"].to_numpy(float)
                # A percentile interval need not hold its point estimate: bars from the ends.
                ax.hlines(y + offset, low, high, color=f"C{int(offset > 0)}")
                ax.plot(centre, y + offset, marker, color=f"C{int(offset > 0)}", label=label)
            ax.axvline(0.0, color="grey", linestyle="--", linewidth=1)
            base = rows.loc[names[0]]
            ax.set_title(f"{scorer}\nbaseline tau {base['mean_tau']:.3f} "
                         f"(within terciles {base['within_mean_tau']:.3f})", fontsize=9)
            ax.set_xlabel("tau minus the baseline's (95% paired)", fontsize=9)
            ax.set_yticks(y, names)
            ax.grid(alpha=0.3, axis="x")
        axes[0][0].invert_yaxis()  # the baseline on top (the axes share y: once)
        axes[0][0].legend(fontsize=8, loc="lower right")
        fig.suptitle(title, fontsize=10)
        write_png(fig, path)
    finally:
        plt.close(fig)
