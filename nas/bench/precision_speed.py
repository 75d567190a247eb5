"""Mixed precision: training images/s with autocast ÷ without, same loop, same steps.

    nas bench --only precision

On a GPU: the platform's GPU defaults (`--precision auto`: bf16, or fp16 with loss scaling
where the GPU lacks bf16; channels-last) against fp32 with contiguous tensors, NB201 and DARTS
at the benchmark skeletons, batch 256. Without a GPU the figure is measured on the CPU with bf16
autocast against fp32, for reference only (no goal): the CPU default stays fp32.
"""
from __future__ import annotations

import torch

from nas.bench.rows import make_row
from nas.bench.skeletons import describe, skeleton
from nas.bench.throughput import Throughput, images_per_second
from supernets.precision import resolve_precision


def precision_rows(quick: bool = False) -> list[dict]:
    is_cuda = torch.cuda.is_available()
    device = "cuda" if is_cuda else "cpu"
    mixed = resolve_precision("auto", device) if is_cuda else "bf16"
    rows = []
    for space in ("nb201", "darts"):
        plain = Throughput(space=space, device=device, batch=256 if is_cuda else 32,
                           precision="fp32", channels_last=False)
        fast = Throughput(space=space, device=device, batch=plain.batch, precision=mixed,
                          channels_last=is_cuda)
        if quick:
            plain, fast = plain.quick(), fast.quick()
        # Alternate twice so that drifts in machine load hit both alike; keep the better run.
        rates = {"plain": [], "fast": []}
        for _ in range(1 if quick else 2):
            rates["plain"].append(images_per_second(plain, quick))
            rates["fast"].append(images_per_second(fast, quick))
        where = (torch.cuda.get_device_name() if is_cuda else
                 "CPU, for reference: no GPU on this machine")
        rows.append(make_row(
            f"training images/s, {mixed} autocast"
            + (" + channels-last" if is_cuda else "") + " ÷ fp32", space,
            max(rates["plain"]), max(rates["fast"]), "images/s",
            goal=">= 1.0" if is_cuda else "",
            detail=f"{describe(skeleton(space, quick))}, batch {plain.batch}, {where}"))
    return rows
