"""DDP scaling on this machine: 2 processes' training throughput ÷ (2 × one process's).

    nas bench --only ddp

Each process trains with one thread (`torch.set_num_threads(1)`), so one process uses one
core and two use two: the figure is how much of the second core DDP turns into throughput.
Both runs use the real loop (SPOS, `nas.bench.throughput`): the 2-process one through
`supernets.ddp.DistributedContext` (gloo, DistributedDataParallel with
find_unused_parameters), each process at the one process's batch size, so the global batch
doubles, as it does under torchrun. Goal >= 0.8. Two figures without a goal place it: what
the DDP wrapper itself costs (one process through DDP, a 1-process group, ÷ one without), and
the machine's own ceiling (two independent trainings side by side ÷ twice one alone).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nas.bench.rows import make_row
from nas.bench.skeletons import describe, skeleton
from nas.bench.throughput import Throughput, images_per_second

GOAL = ">= 0.8"
WORLD = 2


def _rank(rank: int, world: int, bench: Throughput, quick: bool, folder: str,
          is_wrapped: bool) -> None:
    torch.set_num_threads(1)
    context = None
    if is_wrapped:
        dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                                world_size=world)
        from supernets.ddp import DistributedContext

        context = DistributedContext()
    try:
        rate = images_per_second(bench, quick, context)
        Path(folder, f"rate{rank}").write_text(repr(rate))
        if is_wrapped:
            # Every rank waits here until all are done: a rank tearing gloo down while another
            # still has a collective in flight aborts ("terminate called without an active
            # exception"), which is what made this figure fail now and then.
            dist.barrier()
    finally:
        if is_wrapped:
            dist.destroy_process_group()


def _throughput(world: int, bench: Throughput, quick: bool, is_wrapped: bool) -> float:
    """Images/s of `world` processes: one DDP group if `is_wrapped` (its main rank counts every
    rank's images; a 1-process group measures the wrapper alone), else `world` independent
    single-process trainings side by side (summed: the machine's own ceiling)."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_rank, args=(world, bench, quick, folder, is_wrapped), nprocs=world)
        rates = [float(Path(folder, f"rate{r}").read_text()) for r in range(world)]
    return rates[0] if is_wrapped else sum(rates)


def ddp_rows(quick: bool = False) -> list[dict]:
    rows = []
    for space in ("nb201", "darts"):
        bench = Throughput(space=space, steps=40)
        bench = bench.quick() if quick else bench
        # One process alone is measured first and last, its mean the baseline: a drift in the
        # machine's speed over the measurements then hits the baseline as it hits the others.
        first = _throughput(1, bench, quick, is_wrapped=False)
        wrapped = _throughput(1, bench, quick, is_wrapped=True)
        two = _throughput(WORLD, bench, quick, is_wrapped=True)
        apart = _throughput(WORLD, bench, quick, is_wrapped=False)
        one = (first + _throughput(1, bench, quick, is_wrapped=False)) / 2
        shape = describe(skeleton(space, quick))
        rows.append(make_row(
            f"machine's ceiling: {WORLD} independent processes' images/s ÷ ({WORLD} × one)",
            space, WORLD * one, apart, "images/s",
            detail=f"{shape}, no communication at all: what {WORLD} processes can reach on "
                   f"these cores (shared caches, memory bandwidth, SMT)"))
        rows.append(make_row(
            "DDP's own cost: 1 process through DDP ÷ without, images/s", space, one, wrapped,
            "images/s", detail=f"{shape}, gloo, find_unused_parameters (a graph walk per "
                               f"forward pass), all gradient buckets reduced every step"))
        rows.append(make_row(
            f"DDP {WORLD} CPU processes: images/s ÷ ({WORLD} × one process)", space,
            WORLD * one, two, "images/s", goal=GOAL,
            detail=f"{shape}, gloo, 1 thread a process, batch "
                   f"{bench.batch} a process, {bench.steps} timed steps; one process "
                   f"{one:.1f} images/s (mean of {first:.1f} first and "
                   f"{2 * one - first:.1f} last)"))
    return rows
