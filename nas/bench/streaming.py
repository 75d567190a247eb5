"""An image folder streamed from its files against the same folder held decoded in memory:
peak memory of a supernet run, and images per second of the batches and of training.

    python -m nas.bench.streaming --folder DIR [--small DIR] --out DIR

Memory is the peak proportional set size (PSS: shared pages split among the processes sharing
them, so forked decoding workers are not counted twice) of the whole process tree of
`nas supernet` on the folder, sampled every 50 ms. The streamed run is measured on `--small`
too (a folder a tenth the size, say): bounded memory means it peaks alike on both. Those runs
train `--memory-steps` steps, within one epoch of either folder. Speed is
measured in this process on the same splits, one after the other: the training batches alone
(read, crop, flip, normalise), and SPOS supernet steps including them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from nas.bench.rows import make_row
from nas.bench.throughput import trained_images_per_second
from nas.data import DataConfig, load_data, make_splits
from nas.runs import atomic_write_csv, atomic_write_text
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig

SKELETON = ["--space", "nb201", "--width", "8", "--cells", "1"]  # the ranking protocol's
BATCH = 128


def process_tree_pss_bytes(pid: int) -> int:
    """PSS of `pid` and every descendant, in bytes (0 for a process that has gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def peak_run_memory(folder: Path, in_memory: str, steps: int, out: Path) -> tuple[float, float]:
    """(peak PSS in MiB, wall seconds) of `nas supernet` on `folder`."""
    command = [sys.executable, "-m", "nas.cli", "supernet", *SKELETON, "--data", str(folder),
               "--in-memory", in_memory, "--steps", str(steps), "--batch-size", str(BATCH),
               "--checkpoint-every", "0", "--device", "cpu", "--out", str(out)]
    started, peak = time.perf_counter(), 0
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    while process.poll() is None:
        peak = max(peak, process_tree_pss_bytes(process.pid))
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-2000:]}")
    return peak / 2**20, time.perf_counter() - started


def batches_per_second(source, batches: int) -> float:
    """Training batches (read, augmented, normalised) per second, over `batches` of them."""
    started, seen = time.perf_counter(), 0
    for epoch in range(10**6):
        for _ in source.epoch(epoch):
            seen += 1
            if seen == batches:
                return batches / (time.perf_counter() - started)
    raise AssertionError("unreachable")


def training_images_per_second(splits, steps: int, warmup: int = 5) -> float:
    """Images per second of SPOS supernet steps on `splits.train` (timed after `warmup`)."""
    data = splits.data
    space = get_space("nb201", Skeleton(data.in_channels, data.num_classes, data.image_size,
                                         width=8, cells=1))
    method = METHODS.get("spos")(space, seed=0)
    torch.manual_seed(0)
    return trained_images_per_second(
        method.build_supernet(), method, splits.train,
        TrainConfig(steps=warmup + steps, checkpoint_every_steps=0), warmup,
        splits.train.batch_size, description="streaming bench")


def measure(folder: Path, small: Path | None, steps: int, batches: int,
            memory_steps: int) -> list[dict]:
    config = DataConfig(batch_size=BATCH)
    held = make_splits(load_data(folder, in_memory="yes"), config, seed=0)
    streamed = make_splits(load_data(folder, in_memory="no"), config, seed=0)
    size_mib = (held.data.x_train.numel() + held.data.x_test.numel()) / 2**20
    n = len(held.data.x_train) + len(held.data.x_test)
    where = f"{folder.name}, {n} images"
    rows = [make_row("training batches per second, streamed / held", where,
                     batches_per_second(held.train, batches),
                     batches_per_second(streamed.train, batches), "batches/s",
                     detail=f"{batches} batches of {BATCH}")]
    rows.append(make_row("SPOS training images per second, streamed / held", where,
                         training_images_per_second(held, steps),
                         training_images_per_second(streamed, steps), "images/s",
                         detail=f"nb201 C=8 N=1, batch {BATCH}, {steps} timed steps"))
    del held, streamed
    with tempfile.TemporaryDirectory() as runs:
        held_mib, held_s = peak_run_memory(folder, "yes", memory_steps, Path(runs) / "held")
        stream_mib, stream_s = peak_run_memory(folder, "no", memory_steps, Path(runs) / "streamed")
        rows.append(make_row("peak memory of nas supernet, streamed / held", where, held_mib,
                             stream_mib, "MiB PSS",
                             detail=f"{memory_steps} steps; the images take {size_mib:.0f} MiB "
                                    f"decoded; wall {held_s:.0f} s held, {stream_s:.0f} s streamed"))
        if small is not None:
            small_mib, _ = peak_run_memory(small, "no", memory_steps, Path(runs) / "small")
            small_data = load_data(small, in_memory="no")  # the images, not other files
            small_n = len(small_data.x_train) + len(small_data.x_test)
            rows.append(make_row("peak memory streamed, this folder / one a tenth its size",
                                 where, small_mib, stream_mib, "MiB PSS",
                                 detail=f"the small folder holds {small_n} images"))
    return rows


def write(rows: list[dict], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    atomic_write_csv(out / "streaming.csv", table)
    lines = ["# Image folders: streamed against held in memory", "",
             f"Command: `{command}`", "",
             "| figure | data | baseline | measured | unit | ratio | detail |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['figure']} | {r['space']} | {r['baseline']:.4g} | {r['measured']:.4g} | "
              f"{r['unit']} | {r['ratio']:.3f} | {r['detail']} |" for r in rows]
    atomic_write_text(out / "streaming.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--small", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batches", type=int, default=100)
    # Fewer than one epoch of the small folder, so that neither run writes an epoch's checkpoint
    # (a transient copy of the weights) and the two peaks compare the data alone.
    parser.add_argument("--memory-steps", type=int, default=30)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    rows = measure(args.folder, args.small, args.steps, args.batches, args.memory_steps)
    write(rows, args.out, " ".join(["python -m nas.bench.streaming", *(argv or sys.argv[1:])]))
    for row in rows:
        print(f"{row['figure']}: {row['baseline']:.4g} -> {row['measured']:.4g} {row['unit']} "
              f"(ratio {row['ratio']:.3f}; {row['detail']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
