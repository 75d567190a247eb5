"""Supernet single-path train step vs the standalone model's step, same architecture, one run.

    python -m nas.benchmarks.supernet_overhead [--spaces nb201 darts] [--archs 4] [--steps 10]

A step is what the training loop does with SPOS: zero gradients (to None), forward,
cross-entropy, backward, (supernet only) all-zero gradients set to None, clip the gradient norm
to 5, SGD step. Both networks run the same path with the same
weights and batch; steps alternate supernet / model so drifts in machine load hit both alike.
Prints the per-architecture median ratio (goal <= 1.05) and writes a CSV beside the report.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from search_spaces import Skeleton, get_space
from supernets.methods.base import release_zero_gradients

# The benchmarks' own sizes: NB201 at its benchmark skeleton, DARTS at its search skeleton.
SKELETONS = {"nb201": Skeleton(3, 10, 32, width=16, cells=5),
             "darts": Skeleton(3, 10, 32, width=16, cells=8),
             "mobilenet": Skeleton(3, 10, 32, width=16, cells=5)}


def _step(parameters, forward, optimizer, x, y, is_single_path: bool) -> float:
    """One step exactly as `supernets.loop.train` takes it; a supernet's single-path step also
    releases all-zero gradients (`release_zero_gradients`), which a plain model does not need."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(forward(x), y).backward()
    if is_single_path:
        release_zero_gradients(parameters)
    torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], 5.0)
    optimizer.step()
    return time.perf_counter() - start


def measure(space_name: str, archs: int, steps: int, batch: int, seed: int) -> list[dict]:
    space = get_space(space_name, SKELETONS[space_name])
    torch.manual_seed(seed)
    supernet = space.build_supernet()
    rng = np.random.default_rng(seed)
    x = torch.randn(batch, *space.input_shape())
    y = torch.randint(0, space.skeleton.num_classes, (batch,))
    rows = []
    for _ in range(archs):
        arch = space.sample(rng)
        model = space.build_model(arch)
        model.load_state_dict(supernet.subnet_state_dict(arch, model))
        nets = {"supernet": (list(supernet.parameters()), lambda v, a=arch: supernet(v, a)),
                "model": (list(model.parameters()), model)}
        optimizers = {k: torch.optim.SGD(params, lr=0.01, momentum=0.9)
                      for k, (params, _) in nets.items()}
        times: dict[str, list[float]] = {"supernet": [], "model": []}
        for i in range(steps + 2):  # 2 warm-up steps each
            for key, (params, forward) in nets.items():
                elapsed = _step(params, forward, optimizers[key], x, y, key == "supernet")
                if i >= 2:
                    times[key].append(elapsed)
        sup, mod = statistics.median(times["supernet"]), statistics.median(times["model"])
        rows.append({"space": space_name, "arch": str(arch), "supernet_step_ms": 1e3 * sup,
                     "model_step_ms": 1e3 * mod, "ratio": sup / mod})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["nb201", "darts"])
    parser.add_argument("--archs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="also write the per-architecture rows here")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rows = [r for s in args.spaces for r in measure(s, args.archs, args.steps, args.batch, args.seed)]
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    summary = table.groupby("space").agg(supernet_step_ms=("supernet_step_ms", "median"),
                                         model_step_ms=("model_step_ms", "median"),
                                         ratio_median=("ratio", "median"), ratio_max=("ratio", "max"))
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
