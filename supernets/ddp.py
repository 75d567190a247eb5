"""The step context of multi-process training: PyTorch's DistributedDataParallel under torchrun.

Every process trains the same supernet on its own shard of each global batch; DDP averages the
gradients. What makes a weight-sharing supernet fit DDP:

- Same paths on every rank. Methods draw paths from their own samplers, seeded by the run's
  seed and apart from the data's generators; every rank makes the same draws in the same order,
  so every rank runs the same path each step. The loop checks this at each checkpoint
  (`check_same`), so a divergence is an error, not a silent mix of different paths' gradients.
- Unused parameters. A single-path step uses a few of the supernet's candidate weights.
  `find_unused_parameters=True` makes DDP walk each step's autograd graph after the forward pass
  and mark the weights it does not reach as ready; since every rank skipped the same weights,
  DDP leaves their `.grad` untouched (None), so SGD does not move them, as in one process.
  The cost is one graph traversal per forward pass (measured by `nas bench`). `static_graph`
  is not used: the set of used weights changes every step.
- Several backward passes per step (AlphaNet's sandwich, SPOS with paths > 1): DDP decides at
  forward time whether the coming backward synchronises. Passes alternate forward and backward,
  so the wrapper lets only the last pass synchronise (`require_backward_grad_sync`, as nanoGPT
  does for gradient accumulation); the earlier passes accumulate locally.
- BatchNorm normalises by each rank's own share of the batch (torch's SyncBatchNorm has no CPU
  kernel). Buffers are synchronised when DDP wraps the model, not at every forward pass:
  training's running statistics never score a path (the platform recalibrates them per path).
- Methods keep their state identical on every rank through `all_reduce` / `all_gather`
  (PA&DA's image scores, GM-NAS's gradient distances), so the main rank's checkpoint is the
  run's, and a resumed run continues as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import inspect
import pickle
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nas.errors import ConfigError, TrainingError
from supernets.step_context import Batches, StepContext

_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


# Buffers are synchronised once, when DDP wraps the model, and never per forward pass.
_DDP_OPTIONS = inspect.signature(DistributedDataParallel).parameters
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_OPTIONS
                   else {"broadcast_buffers": False})


class _PathDDP(DistributedDataParallel):
    """DDP whose backward synchronises gradients only on the step's last pass."""

    def __init__(self, module: nn.Module, context: "DistributedContext") -> None:
        super().__init__(module, find_unused_parameters=True, **_NO_BUFFER_SYNC)
        self._context = context

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        context = self._context
        self.require_backward_grad_sync = context.backward_calls >= context.passes - 1
        return super().forward(*args, **kwargs)


def _digest(value: Any, digest: "hashlib._Hash") -> None:
    """Feed `value`'s contents to `digest` (pickling a tensor is not deterministic: torch writes
    a fresh serialisation id each time)."""
    if torch.is_tensor(value):
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        raw = value.detach().cpu().contiguous().flatten().view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(repr(key).encode())
            _digest(value[key], digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _digest(item, digest)
    else:
        digest.update(pickle.dumps(value))


class DistributedContext(StepContext):
    """Rank `rank` of `world_size` processes in the default process group."""

    def __init__(self, validation: Batches | None = None) -> None:
        super().__init__(validation)
        if not dist.is_initialized():
            raise ConfigError("a distributed step context needs a process group; launch with "
                              "torchrun --nproc-per-node K -m nas ...")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        # nccl reduces CUDA tensors only; gloo CPU ones.
        self._device = (torch.device("cuda", torch.cuda.current_device())
                        if dist.get_backend() == "nccl" else torch.device("cpu"))

    def wrap(self, model: nn.Module) -> nn.Module:
        return _PathDDP(model, self)

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        moved = tensor.to(self._device)
        dist.all_reduce(moved, op=_OPS[op])
        if moved is not tensor:
            tensor.copy_(moved)
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        moved = tensor.to(self._device).contiguous()
        parts = [torch.empty_like(moved) for _ in range(self.world_size)]
        dist.all_gather(parts, moved)
        return torch.cat(parts).to(tensor.device)

    def check_same(self, what: str, value: Any) -> None:
        """Raise on every rank unless every rank holds the same `value` (compared by digest)."""
        digest = hashlib.sha256()
        _digest(value, digest)
        mine = torch.tensor([int.from_bytes(digest.digest()[:8], "little", signed=True)],
                            dtype=torch.int64)
        low, high = mine.clone(), mine.clone()
        self.all_reduce(low, "min")
        self.all_reduce(high, "max")
        if int(low) != int(high):
            raise TrainingError(f"the training processes disagree on {what} at global step "
                                f"{self.global_step}; every rank must draw the same paths (a "
                                f"method's sampler must not depend on its rank's data)")
