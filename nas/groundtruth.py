"""Ground truth the platform makes itself: sampled architectures trained stand-alone, K seeds each.

The architecture list is drawn once (seeded, distinct canonical strings) and saved as
`archs.txt` before any training, so a resumed run trains exactly the same list. Every finished
(architecture, seed) pair becomes a row of `groundtruth.csv` at once (atomically); a re-run skips
finished rows and resumes an unfinished one from its own checkpoint under `models/`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from nas.config import DataConfig, SpaceConfig, TrainConfig
from nas.data import load_data, make_splits
from nas.errors import ConfigError
from nas.results import RunDir, atomic_write_csv, atomic_write_text
from nas.standalone import train_model
from nas.supernet_run import Context, build_context
from search_spaces import Architecture, SearchSpace

GROUNDTRUTH_FILE = "groundtruth.csv"
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


def groundtruth(space: SpaceConfig, data: DataConfig = DataConfig(),
                train_config: TrainConfig = TrainConfig(), sample: int = 64, seeds: int = 2,
                out: str | Path | None = None) -> Path:
    """Train `sample` architectures stand-alone with `seeds` seeds each; write groundtruth.csv.

    Training follows `nas train`: the whole training set, test accuracy reported. Seed j of an
    architecture uses training seed `train_config.seed + j` (initial weights and data order).
    The architectures are drawn with `train_config.seed`.
    """
    if sample < 2 or seeds < 1:
        raise ConfigError(f"--sample must be >= 2 and --seeds >= 1, got {sample} and {seeds}")
    settings = {"kind": "groundtruth", "space": asdict(space), "data": asdict(data),
                "train": asdict(train_config), "sample": sample, "seeds": seeds}
    base = build_context(space, data, train_config.seed, train_config.device)
    run = RunDir(out or RunDir.default_path(f"groundtruth-{space.name}"))
    run.open(settings)
    archs = _architecture_list(run, base.space, sample, train_config.seed)
    table = (pd.read_csv(run / GROUNDTRUTH_FILE) if (run / GROUNDTRUTH_FILE).is_file()
             else pd.DataFrame(columns=COLUMNS))
    done = set(zip(table["arch"], table["seed"].astype(int)))
    images = load_data(data.path)
    jobs = [(i, a, train_config.seed + j) for i, a in enumerate(archs) for j in range(seeds)]
    with tqdm(total=len(jobs), initial=len(done), desc="ground truth", unit="model",
              dynamic_ncols=True, disable=None) as bar:
        for index, arch, seed in jobs:
            if (str(arch), seed) in done:
                continue
            context = Context(base.space, make_splits(images, data, seed, base.device), base.device)
            row_run = RunDir(run / "models" / f"{index:04d}-seed{seed}")
            row_run.open({"arch": str(arch), "seed": seed})
            start = time.monotonic()
            _, metrics = train_model(row_run, arch, context, replace(train_config, seed=seed))
            row = {"arch": str(arch), "seed": seed, "accuracy": metrics["test_accuracy"],
                   "params_m": base.space.params_m(arch), "flops_m": base.space.flops_m(arch),
                   "wall_s": time.monotonic() - start}
            table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
            atomic_write_csv(run / GROUNDTRUTH_FILE, table[COLUMNS])
            bar.update(1)
    return run.path
