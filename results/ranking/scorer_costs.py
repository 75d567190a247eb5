"""Seconds per architecture of each scorer on protocol v2's problem, for the cost column of
scorers.md: the supernet (10,000 validation images, batch statistics) and each proxy on the
run's own batches, one thread, one architecture after another.

    OMP_NUM_THREADS=1 python results/ranking/scorer_costs.py RUN_DIR [--archs 20] \
        [--out results/ranking/scorer_costs.csv]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from nas.ranking.groundtruth import sample_architectures
from nas.scorers import ScorerSetting, build_scorer
from nas.training.supernet import load_supernet

PARTS = ("supernet", "naswot", "params", "synflow", "jacov", "zico", "meco", "az_expressivity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--out", default="results/ranking/scorer_costs.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trained = load_supernet(args.run, "cpu")
    problem = trained.problem
    archs = sample_architectures(problem.space, args.archs, seed=123)
    rows = []
    for part in PARTS:
        scorer = build_scorer(ScorerSetting.parse(part), problem, trained=trained)
        scorer(archs[0])  # warm-up: first-call allocations are not a per-architecture cost
        started = time.perf_counter()
        for arch in archs[1:]:
            scorer(arch)
        seconds = (time.perf_counter() - started) / (len(archs) - 1)
        rows.append({"scorer": part, "s_per_arch": seconds})
        print(f"{part}: {seconds:.3f} s per architecture")
    pd.DataFrame(rows).to_csv(args.out, index=False, float_format="%.4f")
    print(f"written to {args.out}; AZ-NAS's three components cost one computation together")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
