"""Commands launched by torchrun: everything a run does differently under several processes.

    torchrun --nproc-per-node K -m nas supernet ...   (or nas search)

torchrun starts K copies of the command with RANK, LOCAL_RANK and WORLD_SIZE set. Each copy
joins one process group (nccl when the run trains on CUDA, gloo on CPU), takes the GPU of its
local rank, and trains the supernet with DistributedDataParallel (`supernets/ddp.py`). The
main rank (0) names the run directory and writes every file; the others check that they were
given the same settings, train, and end. A search then runs on the main rank alone.
Every process reads a resumed run's checkpoint from the run directory, so the ranks need one
file system (one machine, or a shared disk).

What differs, all here: joining the group (`start`), the main rank's run directory checked
against every rank's settings (`open_run`), each rank's share of the data and the step
context that synchronises gradients and reduces the method's statistics (`this_process`, with
`supernets.ddp.DistributedContext`), main-rank-only writes (`this_process().is_main`), and the
commands and options that cannot run under torchrun (`check_search`, `check_command`).
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from nas.errors import ConfigError, NasError
from nas.runs import RunDir
from nas.runs.run_dir import first_difference

if TYPE_CHECKING:
    from nas.config import RunRecord

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


def wait_for_all() -> None:
    """Every rank waits here until all have arrived: called where training ends, so no rank
    leaves (and tears gloo down, which aborts a rank with a collective still in flight) while
    another is still training. Not later: a search goes on in the main rank alone."""
    if dist.is_initialized():
        dist.barrier()


@dataclass(frozen=True)
class ThisProcess:
    """This process's part of a supernet training run."""

    train_batches: Any        # its shard of every global batch (all of them in one process)
    validation: Any           # its shard of the search-validation stream
    context: Any              # the loop's step context: None for one process
    is_main: bool             # only the main process writes checkpoints, logs and results


def this_process(splits) -> ThisProcess:
    """The data and step context of this process for a run over `splits`: under torchrun its
    rank's shards and a `DistributedContext` (DDP's gradient sync, cross-rank reductions)."""
    if not is_launched():
        return ThisProcess(splits.train, splits.val_stream, None, True)
    from supernets.ddp import DistributedContext

    rank, world_size = rank_and_world_size()
    validation = splits.val_stream.shard(rank, world_size)
    return ThisProcess(splits.train.shard(rank, world_size), validation,
                       DistributedContext(validation), is_main())


def check_search(trains_supernet: bool, parallel: Any) -> None:
    """What torchrun can do for a search: train its supernet on every process, then search
    on the main one alone."""
    if not trains_supernet:
        raise ConfigError("torchrun trains a supernet on several processes, and this search "
                          "trains none; run it without torchrun")
    if parallel.workers > 1 or parallel.storage is not None:
        raise ConfigError("under torchrun the main process searches alone; for many search "
                          "workers run nas search --workers K or --storage without torchrun, "
                          "after training with torchrun")


DISTRIBUTED_COMMANDS = ("supernet", "search")  # the `nas` commands that train a supernet


def check_command(command: str) -> None:
    """Under torchrun, only the commands that train a supernet can run."""
    if is_launched() and command not in DISTRIBUTED_COMMANDS:
        raise ConfigError(f"nas {command} runs in one process; torchrun trains supernets "
                          f"(nas supernet, nas search): run it without torchrun")


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


def open_run(path: str | Path, record: RunRecord) -> RunDir:
    """Open (or resume) the run at `path`; under torchrun, the main rank's path, after every
    rank showed the same settings; an error opening it is every rank's error."""
    if not dist.is_initialized():
        run = RunDir(path)
        run.open(record)
        return run
    run = RunDir(_from_main(str(path)))
    _check_same_settings(record.to_dict())
    error = None
    if is_main():
        try:
            run.open(record)
        except NasError as failure:
            error = str(failure)
    error = _from_main(error)
    if error is not None:
        raise ConfigError(error)
    return run
