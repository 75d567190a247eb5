"""Supernet single-path train step ÷ the stand-alone model's step: same architecture, weights
and batch, measured in one run (goal <= 1.05).

A step is what the training loop does with SPOS: zero gradients (to None), forward,
cross-entropy, backward, (supernet only) all-zero gradients set to None, clip the gradient norm
to 5, SGD step. Steps alternate supernet / model so that drifts in machine load hit both alike;
each network's median step is kept per architecture. CPU, the process's intra-op threads.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nas.bench.rows import make_row
from nas.bench.skeletons import describe, skeleton
from search_spaces import get_space
from supernets.methods.base import release_zero_gradients
from supernets.progress import Progress

GOAL = "<= 1.05"
FIGURE = "supernet step / stand-alone step"


@dataclass(frozen=True)
class StepBench:
    spaces: tuple[str, ...] = ("nb201", "darts")
    archs: int = 4         # random architectures per space, the same for every run (seed)
    steps: int = 10        # timed steps per architecture and network; the median is kept
    warmup_steps: int = 2  # untimed steps first (allocator, autograd caches)
    batch: int = 32
    seed: int = 0


QUICK = StepBench(archs=1, steps=2, warmup_steps=1, batch=4)


def _step(parameters, forward, optimizer, x, y, is_single_path: bool) -> float:
    """One step exactly as `supernets.loop.train` takes it with SPOS; a supernet's single-path
    step also releases all-zero gradients, which a plain model does not need."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(forward(x), y).backward()
    if is_single_path:
        release_zero_gradients(parameters)
    torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], 5.0)
    optimizer.step()
    return time.perf_counter() - start


def _arch_times(space, supernet, arch, x, y, bench: StepBench) -> tuple[float, float]:
    """Median seconds of a supernet step and of the stand-alone model's step on `arch`."""
    model = space.build_model(arch)
    model.load_state_dict(supernet.subnet_state_dict(arch, model))
    # (parameters, forward, whether it is the supernet) of each timed network
    nets = [(list(supernet.parameters()), lambda v: supernet(v, arch), True),
            (list(model.parameters()), model, False)]
    optimizers = [torch.optim.SGD(params, lr=0.01, momentum=0.9) for params, _, _ in nets]
    times: list[list[float]] = [[], []]
    for i in range(bench.warmup_steps + bench.steps):
        for (params, forward, is_supernet), optimizer, kept in zip(nets, optimizers, times):
            elapsed = _step(params, forward, optimizer, x, y, is_supernet)
            if i >= bench.warmup_steps:
                kept.append(elapsed)
    return statistics.median(times[0]), statistics.median(times[1])


def space_row(space_name: str, bench: StepBench, quick: bool) -> dict:
    """One row per space: the mean over architectures of each network's median step (ms), so
    the ratio is the supernet's time over the model's on the same set of paths."""
    space = get_space(space_name, skeleton(space_name, quick))
    torch.manual_seed(bench.seed)
    supernet = space.build_supernet()
    rng = np.random.default_rng(bench.seed)
    x = torch.randn(bench.batch, *space.input_shape())  # (B, C, H, W)
    y = torch.randint(0, space.skeleton.num_classes, (bench.batch,))
    supernet_s, model_s = [], []
    with Progress(bench.archs, desc=f"bench steps {space_name}", unit="arch") as progress:
        for _ in range(bench.archs):
            sup, mod = _arch_times(space, supernet, space.sample(rng), x, y, bench)
            supernet_s.append(sup)
            model_s.append(mod)
            progress.update(1)
    ratios = [s / m for s, m in zip(supernet_s, model_s)]
    detail = (f"random archs: {bench.archs}, median of {bench.steps} steps each after "
              f"{bench.warmup_steps} warm-up; per-arch ratio median "
              f"{statistics.median(ratios):.3f}, worst {max(ratios):.3f}; batch {bench.batch}, "
              f"{describe(space.skeleton)}, cpu")
    return make_row(FIGURE, space_name, 1e3 * statistics.mean(model_s),
                    1e3 * statistics.mean(supernet_s), "ms", goal=GOAL, detail=detail)


def step_rows(quick: bool = False) -> list[dict]:
    bench = QUICK if quick else StepBench()
    return [space_row(name, bench, quick) for name in bench.spaces]
