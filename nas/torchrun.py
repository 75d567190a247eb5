"""Commands launched by torchrun: the process group, and the run every process trains.

    torchrun --nproc-per-node K -m nas supernet ...   (or nas search)

torchrun starts K copies of the command with RANK, LOCAL_RANK and WORLD_SIZE set. Each copy
joins one process group (nccl when the run trains on CUDA, gloo on CPU), takes the GPU of its
local rank, and trains the supernet with DistributedDataParallel (`supernets/ddp.py`). The
main rank (0) names the run directory and writes every file; the others check that they were
given the same settings, train, and end. A search then runs on the main rank alone.
Every process reads a resumed run's checkpoint from the run directory, so the ranks need one
file system (one machine, or a shared disk).
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from nas.errors import ConfigError, NasError
from nas.results import RunDir
from nas.results.run_dir import first_difference

TIMEOUT = datetime.timedelta(minutes=10)  # a rank that stops answering fails the others then


def is_launched() -> bool:
    """Whether this process is one of several that torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def rank_and_world_size() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def local_device(device: str) -> str:
    """The device this process trains on: under torchrun, a CUDA device is the local rank's."""
    if not is_launched() or not device.startswith("cuda"):
        return device
    if ":" in device:
        raise ConfigError(f"--device {device} names one GPU, but under torchrun each process "
                          f"takes the GPU of its local rank; use --device cuda or auto")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(f"torchrun started local rank {local_rank}, but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s); give --nproc-per-node "
                          f"at most {torch.cuda.device_count()}")
    return f"cuda:{local_rank}"


def start(device: str) -> None:
    """Join the process group once (nccl for a CUDA `device`, gloo otherwise)."""
    if not is_launched() or dist.is_initialized():
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=TIMEOUT)


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _from_main(value: Any) -> Any:
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _check_same_settings(settings: dict[str, Any]) -> None:
    text = json.dumps(settings, sort_keys=True, default=str)
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, text)
    for rank, other in enumerate(every):
        if other != every[0]:
            raise ConfigError(f"torchrun rank {rank} was given other settings than rank 0 "
                              f"({first_difference(json.loads(every[0]), json.loads(other))[0]}); "
                              f"start every process with the same command")


def open_run(path: str | Path, settings: dict[str, Any],
             fill_defaults: Callable[[dict[str, Any]], dict[str, Any]]) -> RunDir:
    """Open (or resume) the run at `path`; under torchrun, the main rank's path, after every
    rank showed the same settings; an error opening it is every rank's error."""
    if not dist.is_initialized():
        run = RunDir(path)
        run.open(settings, fill_defaults=fill_defaults)
        return run
    run = RunDir(_from_main(str(path)))
    _check_same_settings(settings)
    error = None
    if is_main():
        try:
            run.open(settings, fill_defaults=fill_defaults)
        except NasError as failure:
            error = str(failure)
    error = _from_main(error)
    if error is not None:
        raise ConfigError(error)
    return run
