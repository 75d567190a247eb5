"""What a training method costs beyond SPOS, measured in one run.

1. PA&DA epoch ÷ SPOS epoch (goal <= 1.10): the real loop (`supernets.loop.train`) for
   `epochs` epochs on the same images, skeleton and seed, PA&DA runs alternating with SPOS runs
   so that drifts in machine load hit both; the median over `repeats`. PA&DA's extra work
   (per-sample logit-gradient norms, per-candidate gradient norms, the epoch-end updates and
   weighted data draws) is inside these epochs. Its sampled paths differ from SPOS's uniform
   ones, so the mean MFLOPs of the paths each trained, and the time ratio per path MFLOP (the
   method's own overhead), are in the row's detail.
2. AlphaNet's sandwich step ÷ the sum of its subnets' stand-alone steps (goal <= 1.10): one
   `train_step` of the method plus clipping and the SGD step, against training each of the
   step's subnets (recorded from the step itself: largest, random ones, smallest) as a
   stand-alone model with the loop's plain step, same batch.
Images are random CIFAR-shaped uint8: timing does not depend on pixel values. CPU.
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass

import torch

from nas.bench.rows import make_row
from nas.bench.skeletons import describe, random_images, skeleton
from nas.data import DataConfig, make_splits
from nas.training.standalone import StandaloneStep
from search_spaces import get_space
from supernets import METHODS, TrainConfig, train
from supernets.progress import Progress

GOAL = "<= 1.10"


@dataclass(frozen=True)
class MethodBench:
    space: str = "nb201"
    method: str = "pada"
    images: int = 2048     # 1,945 training images at batch 64: 30 steps an epoch
    epochs: int = 2
    repeats: int = 3       # single runs spread by about ±10% on a 2-core machine
    batch: int = 64
    sandwich_space: str = "mobilenet"
    sandwich_steps: int = 10
    warmup_steps: int = 2
    seed: int = 0


QUICK = MethodBench(images=64, epochs=1, repeats=1, batch=16, sandwich_steps=2, warmup_steps=1)


def _record_paths(net) -> list:
    """Wrap `net.forward` to list the architectures it runs."""
    used: list = []
    forward = net.forward
    net.forward = lambda images, arch: (used.append(arch), forward(images, arch))[1]
    return used


def epoch_row(bench: MethodBench, quick: bool) -> dict:
    space = get_space(bench.space, skeleton(bench.space, quick))
    data = random_images(bench.images, space.skeleton.image_size, bench.seed)
    splits = make_splits(data, DataConfig(batch_size=bench.batch, val_fraction=0.05), bench.seed)
    times: dict[str, list[float]] = {"spos": [], bench.method: []}
    flops: dict[str, list[float]] = {"spos": [], bench.method: []}
    cost = functools.lru_cache(maxsize=None)(space.flops_m)
    for repeat in range(bench.repeats):
        for name in ("spos", bench.method):
            method = METHODS.get(name)(space, seed=bench.seed)
            torch.manual_seed(bench.seed)
            net = method.build_supernet()
            used = _record_paths(net)
            start = time.perf_counter()
            train(net, method, splits.train,
                  TrainConfig(epochs=bench.epochs, checkpoint_every_steps=0),
                  description=f"bench {name} {repeat + 1}/{bench.repeats}")
            times[name].append((time.perf_counter() - start) / bench.epochs)
            flops[name].append(statistics.mean(cost(a) for a in used))
    base, other = statistics.median(times["spos"]), statistics.median(times[bench.method])
    base_flops = statistics.mean(flops["spos"])
    other_flops = statistics.mean(flops[bench.method])
    # A method that samples costlier paths (PA&DA moves probability towards candidates with
    # large gradients, often convolutions) takes longer for that reason alone; the per-MFLOP
    # ratio separates that from the method's own bookkeeping.
    detail = (f"per path MFLOP {(other / other_flops) / (base / base_flops):.3f} (path MFLOPs "
              f"ratio {other_flops / base_flops:.3f}); median of {bench.repeats} x "
              f"{bench.epochs} epochs of {len(splits.train)} steps, batch {bench.batch}, "
              f"{describe(space.skeleton)}, random images, cpu")
    return make_row(f"{bench.method} epoch / spos epoch", bench.space, base, other, "s",
                    goal=GOAL, detail=detail)


def _loop_step(method, net, parameters, optimizer, x, y, max_norm: float) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    method.train_step(net, x, y, torch.arange(len(y)))
    method.clip_gradients(parameters, max_norm)
    optimizer.step()
    return time.perf_counter() - start


def _subnet_steps(space, supernet, archs, x, y) -> float:
    """Seconds of one plain stand-alone step of each of `archs` (after one warm-up each)."""
    total = 0.0
    for arch in archs:
        model = space.build_model(arch)
        model.load_state_dict(supernet.subnet_state_dict(arch, model))
        model.train()
        plain, parameters = StandaloneStep(), list(model.parameters())
        optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9)
        _loop_step(plain, model, parameters, optimizer, x, y, 5.0)  # warm-up
        total += _loop_step(plain, model, parameters, optimizer, x, y, 5.0)
    return total


def sandwich_row(bench: MethodBench, quick: bool) -> dict:
    space = get_space(bench.sandwich_space, skeleton(bench.sandwich_space, quick))
    method = METHODS.get("alphanet")(space, seed=bench.seed)
    torch.manual_seed(bench.seed)
    supernet = method.build_supernet()
    parameters = list(supernet.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9)
    x = torch.randn(bench.batch, *space.input_shape())  # (B, C, H, W)
    y = torch.randint(0, space.skeleton.num_classes, (bench.batch,))
    used = _record_paths(supernet)
    sandwich, separate = [], []
    total_steps = bench.warmup_steps + bench.sandwich_steps
    with Progress(total_steps, desc="bench alphanet sandwich", unit="step") as progress:
        for i in range(total_steps):
            used.clear()
            elapsed = _loop_step(method, supernet, parameters, optimizer, x, y, 5.0)
            subnets_s = _subnet_steps(space, supernet, list(used), x, y)
            if i >= bench.warmup_steps:
                sandwich.append(elapsed)
                separate.append(subnets_s)
            progress.update(1)
    detail = (f"{len(used)} paths a step (largest, random, smallest); median of "
              f"{bench.sandwich_steps} steps after {bench.warmup_steps} warm-up; batch "
              f"{bench.batch}, {describe(space.skeleton)}, cpu")
    return make_row("alphanet sandwich step / sum of its subnets' steps",
                    bench.sandwich_space, 1e3 * statistics.median(separate),
                    1e3 * statistics.median(sandwich), "ms", goal=GOAL, detail=detail)


def method_rows(quick: bool = False) -> list[dict]:
    bench = QUICK if quick else MethodBench()
    return [epoch_row(bench, quick), sandwich_row(bench, quick)]
