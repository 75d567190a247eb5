"""Ranking versus training budget: how a supernet's ranking improves as it trains.

Scores the ground truth's architectures with each snapshot a run kept (`--keep-checkpoints`) and
with its final weights, and writes, per run and snapshot, Kendall tau (with its bootstrap
interval) against training steps and against training wall seconds: `budget.csv`, and
`budget.png` with one curve per method (the mean over its runs, each seed drawn faintly), the
ground truth's noise ceiling and the training-free proxies as reference lines. This is the
figure a user reads to decide how long to train.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nas.ranking.correlate import (DEFAULT_SAMPLE, choose_archs, correlation_folder, rankable_scores,
                           read_ground_truth)
from nas.config import RunRecord, TrainConfig
from nas.errors import ConfigError
from nas.ranking import ranking_figures, seed_to_seed_tau
from nas.ranking.plots import plt, write_png
from nas.runs import RunDir, atomic_write_csv, atomic_write_json, load_checkpoint
from nas.scorers import ScorerSetting, build_scorer
from nas.training.supernet import (SUPERNET_FILE, SUPERNET_FORMAT, TrainedSupernet,
                                   kept_checkpoints, load_supernet, supernet_run_dir)
from supernets.progress import Progress

BASIS_FILE = "budget.json"  # what the table's rows were scored against
BUDGET_COLUMNS = ["method", "run", "steps", "elapsed_s", "kendall_tau", "kendall_tau_low",
                  "kendall_tau_high", "spearman_rho", "precision_top10", "top1_regret"]


def method_label(run_dir: Path) -> str:
    """A run's method as the protocols name its directories (`<method>-seed<k>`), else its
    recorded method."""
    match = re.fullmatch(r"(.+)-seed\d+", run_dir.name)
    if match:
        return match.group(1)
    method = RunDir(run_dir).record(RunRecord).method
    return method.name if method is not None else run_dir.name


def budget_rows(run_dir: str | Path, trained: TrainedSupernet, archs: Sequence[str],
                targets: np.ndarray, seed: int) -> list[dict]:
    """Figures of every kept snapshot of a run and of its final weights (`trained` is the run
    loaded; its supernet's weights are replaced by each snapshot's in turn)."""
    steps_per_epoch = len(trained.problem.splits.train)
    states = [load_checkpoint(p, SUPERNET_FORMAT)
              for p in [*kept_checkpoints(run_dir), supernet_run_dir(run_dir) / SUPERNET_FILE]]
    # The final weights are often the last kept snapshot too: score each step once.
    steps = [int(s.get("steps_done", int(s["epoch"]) * steps_per_epoch + int(s.get("step", 0))))
             for s in states]
    snapshots = [(n, s) for i, (n, s) in enumerate(zip(steps, states)) if n not in steps[:i]]
    space, rows = trained.problem.space, []
    scorer = build_scorer(ScorerSetting(), trained.problem, trained=trained)
    parsed = [space.parse(a) for a in archs]
    with Progress(len(snapshots) * len(parsed), desc=f"budget {Path(run_dir).name}",
                  unit="arch") as bar:
        for steps_done, state in snapshots:
            trained.supernet.load_state_dict(state["model"])
            scores = []
            for arch in parsed:
                scores.append(scorer(arch))
                bar.update(1)
            figures = ranking_figures(rankable_scores(np.array(scores), archs), targets, seed=seed)
            rows.append({"method": method_label(Path(run_dir)), "run": str(run_dir),
                         "steps": steps_done,
                         "elapsed_s": float(state.get("elapsed_s", np.nan)),
                         "kendall_tau": figures["kendall_tau"]["value"],
                         "kendall_tau_low": figures["kendall_tau"]["low"],
                         "kendall_tau_high": figures["kendall_tau"]["high"],
                         "spearman_rho": figures["spearman_rho"]["value"],
                         "precision_top10": figures["precision_top10"]["value"],
                         "top1_regret": figures["top1_regret"]["value"]})
    return rows


def proxy_references(folder: str | Path | None, correlation_dir: str) -> dict[str, float]:
    """Mean Kendall tau of each proxy run (`proxy-<name>-seed<k>`) under `folder`."""
    if folder is None:
        return {}
    taus: dict[str, list[float]] = {}
    for path in sorted(Path(folder).glob(f"proxy-*-seed*/{correlation_dir}/correlation.json")):
        name = re.fullmatch(r"proxy-(.+)-seed\d+", path.parents[1].name).group(1)
        taus.setdefault(name, []).append(json.loads(path.read_text())["figures"]["kendall_tau"]["value"])
    if not taus:
        raise ConfigError(f"no proxy results for this ground truth under {folder}; run nas "
                          f"correlate --proxy ... --out {folder} with the same ground truth first")
    return {name: float(np.mean(values)) for name, values in taus.items()}


def correlate_budget(run_dirs: Sequence[str | Path], ground_truth: str | Path, out: str | Path,
                     column: str | None = None, archs_file: str | None = None,
                     sample: int = DEFAULT_SAMPLE, seed: int = 0, references: str | None = None,
                     device: str = TrainConfig.device) -> pd.DataFrame:
    """budget.csv and budget.png in `out` for `run_dirs` (see module doc)."""
    first = load_supernet(run_dirs[0], device)
    space = first.problem.space
    truth = read_ground_truth(ground_truth, space, column)
    archs = choose_archs(truth, space, archs_file, sample, seed)
    targets = truth.accuracy.loc[archs].to_numpy(dtype=float)
    proxies = proxy_references(references, correlation_folder(truth))
    basis = {"ground_truth_sha1": hashlib.sha1(Path(ground_truth).read_bytes()).hexdigest(),
             "column": truth.column, "seed": seed,
             "archs_sha1": hashlib.sha1("\n".join(archs).encode()).hexdigest()}
    out = Path(out)
    _check_basis(out, basis)  # before any scoring: a mismatch costs nothing
    rows = [row for i, run in enumerate(run_dirs)
            for row in budget_rows(run, first if i == 0 else load_supernet(run, device), archs,
                                   targets, seed)]
    ceiling = None
    if truth.by_seed is not None and truth.by_seed.shape[1] >= 2:
        ceiling = seed_to_seed_tau(truth.by_seed.loc[archs].dropna().to_numpy().T)
    out.mkdir(parents=True, exist_ok=True)
    # Runs scored one at a time (one process per core) land in one table and one figure: the
    # read-merge-write and the plot hold a lock, so two processes finishing together both land.
    with open(out / ".budget.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _check_basis(out, basis)
        table = merge_budget_rows(out / "budget.csv", pd.DataFrame(rows, columns=BUDGET_COLUMNS))
        atomic_write_json(out / BASIS_FILE, basis)
        budget_plot(table, out / "budget.png", ceiling, proxies,
                    f"{space.name}: {len(archs)} architectures vs {truth.column}")
    return table


def _check_basis(out: Path, basis: dict) -> None:
    """Refuse to merge rows scored against another ground truth, column, seed or set of
    architectures into `out`'s table."""
    path = out / BASIS_FILE
    if path.exists() and json.loads(path.read_text()) != basis:
        raise ConfigError(f"{out}/budget.csv was scored against another ground truth, column, "
                          f"architecture list or seed ({path}); give another --out")


def merge_budget_rows(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Write `new` into the budget table at `path`, keeping the rows of every other run already
    there (runs are matched by their resolved directory); the caller holds the lock."""
    table = new
    if path.exists():
        old = pd.read_csv(path)
        if list(old.columns) != BUDGET_COLUMNS:
            raise ConfigError(f"{path} is not a budget table (columns {list(old.columns)}); "
                              f"give another --out")
        resolved = {str(Path(r).resolve()) for r in new["run"]}
        kept = old[~old["run"].map(lambda r: str(Path(r).resolve())).isin(resolved)]
        table = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    atomic_write_csv(path, table)
    return table


def snapshot_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per method, the mean steps, wall seconds and Kendall tau of each run's k-th snapshot, and
    how many runs: a time budget resolves to different steps per seed, so snapshots are matched
    by their order, not their step."""
    order = table.groupby("run")["steps"].rank(method="first").astype(int)
    return (table.assign(snapshot=order)
            .groupby(["method", "snapshot"], sort=False)
            .agg(steps=("steps", "mean"), elapsed_s=("elapsed_s", "mean"),
                 kendall_tau=("kendall_tau", "mean"), runs=("run", "count"))
            .reset_index())


def budget_plot(table: pd.DataFrame, path: Path, ceiling: float | None,
                proxies: dict[str, float], title: str) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, x, label in ((axes[0], "steps", "training steps"),
                         (axes[1], "elapsed_s", "training wall time (s)")):
        means = snapshot_means(table)
        for i, (method, rows) in enumerate(table.groupby("method", sort=False)):
            color = f"C{i}"
            for _, run in rows.groupby("run"):
                ax.plot(run[x], run["kendall_tau"], color=color, alpha=0.25, lw=1)
            mean = means[means["method"] == method]
            ax.plot(mean[x], mean["kendall_tau"], color=color, lw=2, marker="o", ms=3,
                    label=method)
        if ceiling is not None:
            ax.axhline(ceiling, color="black", ls="--", lw=1,
                       label=f"noise ceiling {ceiling:.2f}")
        # Proxies that rank alike (params and flops, within a cell) share one line and label.
        lines: dict[str, list[str]] = {}
        for name, tau in sorted(proxies.items(), key=lambda kv: -kv[1]):
            lines.setdefault(f"{tau:.2f}", []).append(name)
        for tau, names in lines.items():
            ax.axhline(float(tau), color="grey", ls=":", lw=1)
            ax.annotate(f"{' = '.join(names)} {tau}", (1.0, float(tau)),
                        xycoords=("axes fraction", "data"), fontsize=7, ha="right",
                        va="bottom", color="dimgrey")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Kendall tau vs ground truth")
    axes[0].legend(fontsize=7, loc="lower right")
    figure.suptitle(title, fontsize=10)
    write_png(figure, path)
    plt.close(figure)
