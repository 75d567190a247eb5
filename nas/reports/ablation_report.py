"""The ablation's table and plot (`nas.ranking.ablation`): ablation.md and ablation.png.

The plot shows each variant's difference in Kendall tau from the baseline, with its paired 95%
interval, overall and within FLOPs terciles, one panel per scorer; the table beside it gives
the taus themselves, the training seconds (the figures are at equal steps: a variant that
trains slower costs more wall time), the proxies' own tau and the noise ceiling.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nas.ranking.plots import plt, write_png
from nas.runs import atomic_write_text

if TYPE_CHECKING:
    from nas.ranking.ablation import Study


def _interval(row: pd.Series, prefix: str = "") -> str:
    return (f"{row[prefix + 'mean_tau']:.3f} [{row[prefix + 'low']:.3f}, "
            f"{row[prefix + 'high']:.3f}]")


def _difference(row: pd.Series, prefix: str = "") -> str:
    if pd.isna(row[prefix + "difference_low"]):
        return "—"
    return (f"{row[prefix + 'difference']:+.3f} [{row[prefix + 'difference_low']:+.3f}, "
            f"{row[prefix + 'difference_high']:+.3f}] {row[prefix + 'verdict']}")


def markdown(study: Study, table: pd.DataFrame, report: dict) -> str:
    steps = study.recipe.train.steps
    lines = [f"# Ablation: {len(study.variants) - 1} variants against the baseline recipe", "",
             f"Made by: `{study.command}`" if study.command else "", "",
             f"{report['runs']} of {report['expected_runs']} runs scored on "
             f"{report['architectures']} architectures of {study.ground_truth}; every variant at "
             f"equal steps ({steps if steps is not None else study.recipe.train.epochs} "
             f"{'steps' if steps is not None else 'epochs'} unless it varies them); "
             f"train s = mean training seconds a run. Intervals: 95%, paired two-level "
             f"bootstrap (architectures shared, seeds resampled).", ""]
    free = ", ".join(f"{name} {tau:.3f}" for name, tau in report["proxies"].items())
    if free:
        lines.append(f"Training-free parts alone on these architectures: {free}.")
    if "noise_ceiling_kendall_tau" in report:
        lines.append(f"Noise ceiling (the ground truth's seed-to-seed tau): "
                     f"{report['noise_ceiling_kendall_tau']:.3f}.")
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
    fig, axes = plt.subplots(1, len(scorers), figsize=(5.5 * len(scorers), 0.45 * len(names) + 1.6),
                             sharey=True, layout="constrained", squeeze=False)
    try:
        for ax, scorer in zip(axes[0], scorers):
            rows = table[table["scorer"] == scorer].set_index("variant").reindex(names)
            y = np.arange(len(names))
            for offset, prefix, marker, label in ((-0.15, "", "o", "overall"),
                                                  (0.15, "within_", "s", "within FLOPs terciles")):
                centre = rows[prefix + "difference"].to_numpy(float)
                low = centre - rows[prefix + "difference_low"].to_numpy(float)
                high = rows[prefix + "difference_high"].to_numpy(float) - centre
                ax.errorbar(centre, y + offset, xerr=np.nan_to_num(np.vstack([low, high])),
                            fmt=marker, capsize=3, label=label)
            ax.axvline(0.0, color="grey", linestyle="--", linewidth=1)
            base = rows.loc[names[0]]
            ax.set_title(f"{scorer}: baseline tau {base['mean_tau']:.3f} "
                         f"(within {base['within_mean_tau']:.3f})", fontsize=9)
            ax.set_xlabel("Kendall tau minus the baseline's (95% paired interval)")
            ax.set_yticks(y, names)
            ax.grid(alpha=0.3, axis="x")
        axes[0][0].invert_yaxis()  # the baseline on top (the axes share y: once)
        axes[0][0].legend(fontsize=8, loc="lower right")
        fig.suptitle(title, fontsize=10)
        write_png(fig, path)
    finally:
        plt.close(fig)


def write_figures(study: Study, table: pd.DataFrame, report: dict) -> None:
    text = markdown(study, table, report)
    atomic_write_text(study.out / "ablation.md", text + "\n")
    plot(table, study.out / "ablation.png",
         f"{report['runs']} runs, {report['architectures']} architectures, equal steps")
    print("\n".join(line for line in text.splitlines() if line.startswith("|") or
                    line.startswith("## ")))
