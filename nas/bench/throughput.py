"""Training throughput (images per second) of the real loop, the unit of the DDP and
precision figures: SPOS steps on random CIFAR-shaped images, timed from the loop's own
per-step log after a few warm-up steps, so data, step and bookkeeping are all inside."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from nas.bench.skeletons import random_images, skeleton
from nas.data import DataConfig, make_splits
from search_spaces import get_space
from supernets import METHODS, StepContext, TrainConfig, train


@dataclass(frozen=True)
class Throughput:
    space: str = "nb201"
    batch: int = 32          # per process
    steps: int = 20          # timed
    warmup_steps: int = 3
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool | None = None
    seed: int = 0

    def quick(self) -> "Throughput":
        return replace(self, batch=8, steps=2, warmup_steps=1)


def images_per_second(bench: Throughput, quick: bool, context: StepContext | None = None) -> float:
    """Images per second this process group trains (every rank's images; meaningful on the
    main rank, which times the steps)."""
    rank, world = (context.rank, context.world_size) if context is not None else (0, 1)
    shape = skeleton(bench.space, quick)
    steps = bench.warmup_steps + bench.steps
    # One epoch holds every step: no epoch-end work inside the timed steps.
    images = random_images(bench.batch * world * (steps + 1) + 64, shape.image_size, bench.seed)
    splits = make_splits(images, DataConfig(batch_size=bench.batch, val_fraction=0.01),
                         bench.seed, bench.device)
    batches = splits.train.shard(rank, world) if world > 1 else splits.train
    space = get_space(bench.space, shape)
    method = METHODS.get("spos")(space, seed=bench.seed)
    torch.manual_seed(bench.seed)
    supernet = method.build_supernet().to(bench.device)
    config = TrainConfig(steps=steps, checkpoint_every_steps=0, device=bench.device,
                         precision=bench.precision, channels_last=bench.channels_last)
    return trained_images_per_second(supernet, method, batches, config, bench.warmup_steps,
                                     bench.batch * world, context,
                                     description=f"throughput {bench.space}")


def trained_images_per_second(supernet, method, batches, config: TrainConfig, warmup_steps: int,
                              images_per_step: int, context: StepContext | None = None,
                              description: str = "throughput") -> float:
    """Images per second of `config.steps` steps of the real loop, timed from its per-step log
    after `warmup_steps`; 0 on a rank other than the main one (it logs nothing)."""
    stamps: list[float] = []

    def stamp(tag: str, value: float, step: int) -> None:
        if tag == "train/lr":  # logged once per step, after the optimiser's step
            if config.device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    train(supernet, method, batches, config, context=context, log_scalar=stamp,
          description=description)
    if not stamps:
        return 0.0
    timed_steps = config.steps - warmup_steps
    return images_per_step * timed_steps / (stamps[-1] - stamps[warmup_steps - 1])
