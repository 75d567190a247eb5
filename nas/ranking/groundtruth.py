"""Ground truth the platform makes itself: sampled architectures trained stand-alone, K seeds each.

The architecture list is drawn once (seeded, distinct canonical strings) and saved as
`archs.txt` before any training, so a resumed run trains exactly the same list. Every finished
(architecture, seed) pair becomes a row of `groundtruth.csv` at once (atomically); a re-run skips
finished rows and resumes an unfinished one from its own checkpoint under `models/`.

Several workers may run the same command on the same directory, started together or later (one
per core or GPU, or on machines sharing a POSIX file system with working locks): a worker claims a row by holding an
exclusive lock on its `models/<row>.lock` while it trains it, and appends to the CSV under a
lock. The operating system drops the locks of a worker that dies, so its row is resumed by the
next worker that reaches it.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from nas.config import DataConfig, RunRecord, SpaceConfig, TrainConfig
from nas.data import make_splits
from nas.errors import ConfigError
from nas.runs import RunDir, atomic_write_csv, atomic_write_text, exclusive_lock
from nas.training.standalone import check_standalone_training, train_model
from nas.problem import SearchProblem, build_problem
from search_spaces import Architecture, SearchSpace
from supernets.progress import Progress

GROUNDTRUTH_FILE = "groundtruth.csv"
DEFAULT_SAMPLE, DEFAULT_SEEDS = 64, 2  # architectures, and seeds per architecture
ARCHS_FILE = "archs.txt"
COLUMNS = ["arch", "seed", "accuracy", "params_m", "flops_m", "wall_s"]


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list[Architecture]:
    """`n` distinct architectures drawn uniformly (distinct canonical strings)."""
    if n > space.size():
        raise ConfigError(f"--sample {n} exceeds the {space.size()} architectures of {space.name}")
    rng, chosen = np.random.default_rng(seed), {}
    while len(chosen) < n:
        arch = space.sample(rng)
        chosen.setdefault(str(arch), arch)
    return list(chosen.values())


def _architecture_list(run: RunDir, space: SearchSpace, sample: int, seed: int) -> list[Architecture]:
    path = run / ARCHS_FILE
    if path.is_file():
        return [space.parse(line) for line in path.read_text().splitlines() if line.strip()]
    archs = sample_architectures(space, sample, seed)
    atomic_write_text(path, "".join(f"{a}\n" for a in archs))
    return archs


def _finished_rows(run: RunDir) -> pd.DataFrame:
    path = run / GROUNDTRUTH_FILE
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=COLUMNS)


def _append_row(run: RunDir, row: dict) -> None:
    with exclusive_lock(run / (GROUNDTRUTH_FILE + ".lock"), wait=True):
        table = pd.concat([_finished_rows(run), pd.DataFrame([row])], ignore_index=True)
        atomic_write_csv(run / GROUNDTRUTH_FILE, table[COLUMNS])


def _is_finished(run: RunDir, arch: Architecture, seed: int) -> bool:
    table = _finished_rows(run)
    return bool(((table["arch"] == str(arch)) & (table["seed"].astype(int) == seed)).any())


def groundtruth(space: SpaceConfig, data: DataConfig = DataConfig(),
                train_config: TrainConfig = TrainConfig(), sample: int = DEFAULT_SAMPLE,
                seeds: int = DEFAULT_SEEDS,
                out: str | Path | None = None) -> Path:
    """Train `sample` architectures stand-alone with `seeds` seeds each; write groundtruth.csv.

    Training follows `nas train`: the whole training set, test accuracy reported. Seed j of an
    architecture uses training seed `train_config.seed + j` (initial weights and data order).
    The architectures are drawn with `train_config.seed`.
    """
    if sample < 2 or seeds < 1:
        raise ConfigError(f"--sample must be >= 2 and --seeds >= 1, got {sample} and {seeds}")
    record = RunRecord("groundtruth", space, data, train_config, sample=sample, seeds=seeds)
    base = build_problem(space, data, train_config.seed, train_config.device)
    check_standalone_training(train_config, base)
    run = RunDir(out or RunDir.default_path(f"groundtruth-{space.name}"))
    run.open(record)
    base.record_data(run)
    archs = _architecture_list(run, base.space, sample, train_config.seed)
    images = base.splits.data  # loaded once, by the problem
    jobs = [(i, a, train_config.seed + j) for i, a in enumerate(archs) for j in range(seeds)]
    elsewhere = 0  # rows that other live workers hold
    with Progress(len(jobs), initial=len(_finished_rows(run)), desc="ground truth",
                  unit="model") as bar:
        for index, arch, seed in jobs:
            if _is_finished(run, arch, seed):  # re-read: other workers add rows
                continue
            name = f"{index:04d}-seed{seed}"
            with exclusive_lock(run / "models" / f"{name}.lock", wait=False) as claimed:
                if not claimed:
                    elsewhere += 1
                    continue
                if _is_finished(run, arch, seed):  # finished between the check and the claim
                    continue
                problem = SearchProblem(base.space, make_splits(images, data, seed, base.device),
                                        base.device)
                row_run = RunDir(run / "models" / name)
                row_run.open(RunRecord(arch=str(arch), seed=seed))
                start = time.monotonic()
                _, metrics = train_model(row_run, arch, problem, replace(train_config, seed=seed))
                _append_row(run, {"arch": str(arch), "seed": seed,
                                  "accuracy": metrics["test_accuracy"],
                                  "params_m": base.space.params_m(arch),
                                  "flops_m": base.space.flops_m(arch),
                                  "wall_s": time.monotonic() - start})
                bar.update(1)
    if elsewhere:
        print(f"{elsewhere} row{'s were' if elsewhere > 1 else ' was'} being trained by other "
              f"workers when this one reached them; {GROUNDTRUTH_FILE} is complete once they "
              "finish (if one stopped, run this command again to resume its row)")
    return run.path
