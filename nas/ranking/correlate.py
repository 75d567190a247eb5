"""How far a supernet's ranking can be trusted: its scores against ground truth.

Ground truth is a CSV (plain or gzipped) with an `arch` column of canonical strings and an
accuracy column: `accuracy` (what `nas groundtruth` writes), or `cifar10_test` for a file in the
NAS-Bench-201 table format, or any column named with `--column`. With a `seed` column the
accuracies are averaged per architecture, and the seed-to-seed Kendall tau of the ground truth
itself is reported as the noise ceiling.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nas.config import TrainConfig
from nas.errors import ArchitectureError, ConfigError, DataError
from nas.ranking import (rank_plot, ranking_figures, scatter_plot, score_variance,
                         seed_to_seed_tau, top_k_overlap)
from nas.ranking.comparison import compare_with_baseline
from nas.runs import atomic_write_csv, atomic_write_json
from nas.problem import SearchProblem
from nas.scorers import ScorerSetting, build_scorer
from nas.scorers.combined import DEFAULT_WITH_SUPERNET
from nas.training.supernet import load_supernet
from search_spaces import SearchSpace
from supernets.progress import Progress

NB201_DEFAULT_COLUMN = "cifar10_test"
DEFAULT_SAMPLE = 100  # architectures scored when no --archs list is given
DEFAULT_SCORER = DEFAULT_WITH_SUPERNET  # as `nas search --supernet RUN` scores unless told


@dataclass(frozen=True)
class GroundTruth:
    accuracy: pd.Series              # canonical arch string -> mean accuracy over seeds
    by_seed: pd.DataFrame | None     # arch x seed accuracies, when the file has seeds
    source: str
    column: str


def correlation_folder(truth: GroundTruth) -> str:
    """The folder inside a run directory where `nas correlate` writes results against `truth`."""
    return f"correlation-{Path(truth.source).name.split('.')[0]}-{truth.column}"


def read_ground_truth(path: str | Path, space: SearchSpace, column: str | None = None) -> GroundTruth:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no ground-truth file at {path}; give a CSV with columns arch,accuracy "
                        f"(e.g. from nas groundtruth) or a NAS-Bench-201 table")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as error:
        raise DataError(f"cannot read {path} as CSV: {str(error).splitlines()[0]}") from None
    if column is None:
        column = NB201_DEFAULT_COLUMN if NB201_DEFAULT_COLUMN in table.columns else "accuracy"
    for needed in ("arch", column):
        if needed not in table.columns:
            raise DataError(f"{path} has no column {needed!r}; its columns: "
                            f"{', '.join(map(str, table.columns))}")
    canonical = []
    for row, text in enumerate(table["arch"]):
        try:
            canonical.append(str(space.parse(str(text))))
        except ArchitectureError as error:
            raise ArchitectureError(f"{path} row {row + 2}: {error}") from None
    table = table.assign(arch=canonical)
    values = pd.to_numeric(table[column], errors="coerce")
    if values.isna().any():
        row = int(values.isna().to_numpy().argmax())
        raise DataError(f"{path} row {row + 2}: {column} = {table[column].iloc[row]!r} is not a number")
    table = table.assign(**{column: values})
    keys = ["arch", "seed"] if "seed" in table.columns else ["arch"]
    duplicated = table.duplicated(keys, keep=False)
    if duplicated.any():
        rows = [int(i) + 2 for i in np.flatnonzero(duplicated.to_numpy())[:2]]
        raise DataError(f"{path} lists {table['arch'][rows[0] - 2]} twice (rows {rows[0]} and "
                        f"{rows[1]}); one row per architecture{' and seed' if len(keys) > 1 else ''}")
    by_seed = None
    if "seed" in table.columns:
        by_seed = table.pivot(index="arch", columns="seed", values=column)
    accuracy = table.groupby("arch", sort=False)[column].mean()
    return GroundTruth(accuracy, by_seed, str(path), column)


def choose_archs(truth: GroundTruth, space: SearchSpace, archs_file: str | None,
                  sample: int, seed: int) -> list[str]:
    if archs_file is not None:
        lines = [l for l in Path(archs_file).read_text().splitlines() if l.strip()]
        archs = [str(space.parse(l)) for l in lines]
        missing = [a for a in archs if a not in truth.accuracy.index]
        if missing:
            raise DataError(f"{missing[0]} (from {archs_file}) has no ground truth in {truth.source}")
        return archs
    archs = list(truth.accuracy.index)
    if len(archs) > sample:
        picked = np.random.default_rng(seed).choice(len(archs), size=sample, replace=False)
        archs = [archs[i] for i in sorted(picked)]
    return archs


def correlate_run(run_dir: str | Path, ground_truth: str | Path, column: str | None = None,
                  archs_file: str | None = None, sample: int = DEFAULT_SAMPLE, seed: int = 0,
                  overwrite: bool = False, device: str = TrainConfig.device,
                  scorer: str | None = None) -> dict:
    """Score architectures of `run_dir`'s problem with `scorer` (None: the one `nas search`
    uses by default, written to the plain correlation folder; another goes to a folder named
    after it); compare with ground truth; write results. A combination's report carries each
    part's figures and the paired-bootstrap difference of the combination from each part."""
    trained = load_supernet(run_dir, device)
    space = trained.problem.space
    setting = ScorerSetting.parse(scorer if scorer is not None else DEFAULT_SCORER)
    truth = read_ground_truth(ground_truth, space, column)
    name = correlation_folder(truth) + ("" if scorer is None else f"-{setting.label}")
    out = _fresh_folder(Path(run_dir) / name, overwrite)
    archs = choose_archs(truth, space, archs_file, sample, seed)
    built = build_scorer(setting, trained.problem, trained=trained, reference_dir=run_dir)
    with Progress(len(archs), desc=f"correlate {setting.label}", unit="arch") as bar:
        scores = np.array([_scored(built, space.parse(a), bar) for a in archs])
    parts = pd.DataFrame([built.parts(space.parse(a)) for a in archs])
    return _write_correlation(out, archs, scores, truth, f"{setting.kind}_score", seed,
                              {"run": str(run_dir), "scorer": str(setting)},
                              f"{space.name}: {len(archs)} architectures, {setting.label}",
                              space, parts)


def correlate_proxies(problem: SearchProblem, names: Sequence[str], ground_truth: str | Path,
                      out: str | Path, column: str | None = None, archs_file: str | None = None,
                      sample: int = DEFAULT_SAMPLE, seed: int = 0,
                      proxy_seeds: Sequence[int] = (0,), overwrite: bool = False) -> list[dict]:
    """Score the ground truth's architectures with training-free proxies, no supernet.

    Each (proxy, seed) is written as a run of its own, `out/proxy-<name>-seed<k>/`, in the layout
    `nas correlate` gives a supernet run, so ranking reports take proxies as rows beside the
    training methods. Seed k fixes the fresh models' initialisation and the scored batch.
    """
    truth = read_ground_truth(ground_truth, problem.space, column)
    archs = choose_archs(truth, problem.space, archs_file, sample, seed)
    parsed = [problem.space.parse(a) for a in archs]
    runs = {(name, proxy_seed): Path(out) / f"proxy-{name}-seed{proxy_seed}"
            for name in names for proxy_seed in proxy_seeds}
    for run in runs.values():  # every refusal before anything is written
        _fresh_folder(run / correlation_folder(truth), overwrite)
    reports = []
    for (name, proxy_seed), run in runs.items():
        scorer = build_scorer(ScorerSetting("proxy", name), problem, proxy_seed)
        started = time.monotonic()
        with Progress(len(parsed), desc=f"{name} seed {proxy_seed}", unit="arch") as bar:
            scores = np.array([_scored(scorer, a, bar) for a in parsed])
        extra = {"run": str(run), "proxy": name, "proxy_seed": proxy_seed,
                 "wall_s": time.monotonic() - started}
        reports.append(_write_correlation(
            run / correlation_folder(truth), archs, scores, truth, "proxy_score", seed, extra,
            f"{problem.space.name}: {len(archs)} architectures, {name}", problem.space))
    return reports


def _scored(scorer, arch, bar: Progress) -> float:
    value = scorer(arch)
    bar.update(1)
    return value


def _fresh_folder(out: Path, overwrite: bool) -> Path:
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    return out


def rankable_scores(scores: np.ndarray, archs: Sequence[str]) -> np.ndarray:
    """Scores for the rank statistics: -inf (naswot's singular kernel: the lowest possible
    score) ranks last, placed one below the lowest finite score; NaN or +inf is refused."""
    bad = np.flatnonzero(np.isnan(scores) | (scores == np.inf))
    if len(bad):
        raise DataError(f"{archs[bad[0]]} scored {scores[bad[0]]}; a score must be a number")
    finite = scores[np.isfinite(scores)]
    floor = (finite.min() - 1.0) if len(finite) else 0.0
    return np.where(np.isfinite(scores), scores, floor)


def _write_correlation(out: Path, archs: list[str], scores: np.ndarray, truth: GroundTruth,
                       score_column: str, seed: int, extra: dict, title: str,
                       space: SearchSpace, parts: pd.DataFrame | None = None) -> dict:
    """correlation.csv/.json and the plots. Figures include the tau within FLOPs terciles;
    with `parts` (a combination's, `Scorer.parts`), each part's figures and the combination's
    paired difference from each."""
    targets = truth.accuracy.loc[archs].to_numpy(dtype=float)
    flops = np.array([space.flops_m(space.parse(a)) for a in archs])
    rankable = rankable_scores(scores, archs)
    figures = ranking_figures(rankable, targets, seed=seed, flops=flops)
    report = {**extra, "ground_truth": truth.source, "column": truth.column,
              "architectures": len(archs), "figures": figures}
    raw = [c for c in parts.columns if not c.endswith("_quantile")] if parts is not None else []
    if raw:
        part_scores = {c: rankable_scores(parts[c].to_numpy(dtype=float), archs) for c in raw}
        report["parts"] = {c: ranking_figures(v, targets, seed=seed, flops=flops)
                           for c, v in part_scores.items()}
        report["differences"] = paired_differences(rankable, part_scores, targets, seed)
    if truth.by_seed is not None and truth.by_seed.shape[1] >= 2:
        complete = truth.by_seed.loc[archs].dropna()
        report["noise_ceiling_kendall_tau"] = seed_to_seed_tau(complete.to_numpy().T)
    table = pd.DataFrame({"arch": archs, score_column: scores, "ground_truth": targets,
                          "flops_m": flops})
    if parts is not None and not parts.empty:
        table = pd.concat([table, parts.reset_index(drop=True)], axis=1)
    table["score_rank"] = pd.Series(rankable).rank(ascending=False, method="min")
    table["ground_truth_rank"] = table["ground_truth"].rank(ascending=False, method="min")
    atomic_write_csv(out / "correlation.csv", table)
    atomic_write_json(out / "correlation.json", report)
    scatter_plot(rankable, targets, out / "scatter.png", title=title, ylabel=truth.column)
    rank_plot(rankable, targets, out / "ranks.png", title=title)
    report["out"] = str(out)
    report["scores"] = dict(zip(archs, scores.tolist()))
    return report


def paired_differences(combined: np.ndarray, parts: dict[str, np.ndarray], truth: np.ndarray,
                       seed: int = 0) -> dict[str, dict]:
    """Kendall tau of the combination minus each part's, with a paired 95% bootstrap interval
    (the same architectures resampled for both) and its verdict."""
    table = compare_with_baseline({"combined": combined[None, :],
                                   **{k: v[None, :] for k, v in parts.items()}},
                                  truth, "combined", seed=seed)
    return {name: {"difference": -row["difference"], "low": -row["difference_high"],
                   "high": -row["difference_low"],
                   "verdict": {"better": "part better", "worse": "combination better"}.get(
                       row["verdict"], row["verdict"])}
            for name, row in table.items() if name != "combined"}


def compare_runs(reports: list[dict], out: str | Path, fractions=(0.05, 0.10)) -> dict:
    """Across supernet runs scored on the same architectures: top-k overlap, score variance."""
    archs = list(reports[0]["scores"])
    if any(list(r["scores"]) != archs for r in reports):
        raise ConfigError("runs were scored on different architectures; give --archs FILE")
    matrix = np.array([[r["scores"][a] for a in archs] for r in reports])  # (runs, archs)
    summary = {"runs": [r["run"] for r in reports],
               **{f"top{round(100 * f)}_overlap": top_k_overlap(matrix, f) for f in fractions},
               "mean_score_variance": float(score_variance(matrix).mean())}
    atomic_write_json(Path(out) / "across_runs.json", summary)
    atomic_write_csv(Path(out) / "across_runs.csv", pd.DataFrame(
        {"arch": archs, **{f"run{i}": row for i, row in enumerate(matrix)},
         "variance": score_variance(matrix)}))
    return summary


def format_report(report: dict) -> str:
    lines = [f"{'statistic':<16}{'value':>9}   95% bootstrap interval"]
    for name, f in report["figures"].items():
        name = "tau in terciles" if name == "kendall_tau_flops_terciles" else name
        lines.append(f"{name:<16}{f['value']:>9.4f}   [{f['low']:.4f}, {f['high']:.4f}]")
    for part, figures in report.get("parts", {}).items():
        tau, band = figures["kendall_tau"], figures["kendall_tau_flops_terciles"]
        d = report["differences"][part]
        lines.append(f"part {part:<11}{tau['value']:>9.4f}   [{tau['low']:.4f}, {tau['high']:.4f}]"
                     f"  in terciles {band['value']:.4f}; combination minus part "
                     f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
    if "noise_ceiling_kendall_tau" in report:
        lines.append(f"{'noise ceiling':<16}{report['noise_ceiling_kendall_tau']:>9.4f}   "
                     f"(seed-to-seed Kendall tau of the ground truth)")
    return "\n".join(lines)

