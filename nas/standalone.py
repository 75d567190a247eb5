"""Training one architecture stand-alone, through the same loop as supernets."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.results import RunDir, atomic_torch_save, load_checkpoint
from nas.supernet_run import Context
from search_spaces import Architecture
from supernets import TrainConfig, accuracy, train
from supernets.loop import StepMethod

MODEL_CHECKPOINT_FORMAT = "nas-standalone"


class StandaloneStep(StepMethod):
    """The loop's step for a plain model: cross-entropy on its own output, no sampling."""

    name = "standalone"

    def train_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor) -> float:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return float(loss.detach())


def train_model(run: RunDir, arch: Architecture, context: Context,
                train_config: TrainConfig) -> tuple[nn.Module, dict[str, float]]:
    """Train `arch` from scratch on the whole training set; report test accuracy.

    The model trains on supernet-train + search-validation images together (every image that
    is not test), as NAS-Bench-201 trains its stand-alone networks on the full training set.
    """
    torch.manual_seed(train_config.seed)
    model = context.space.build_model(arch).to(context.device)
    path = run / "model.pt"
    header = {"format": MODEL_CHECKPOINT_FORMAT, "arch": str(arch)}
    resume_from = load_checkpoint(path, MODEL_CHECKPOINT_FORMAT) if path.exists() else None
    log_scalar = run.tensorboard()
    try:
        train(model, StandaloneStep(), context.splits.full_train, train_config,
              resume_from=resume_from, log_scalar=log_scalar, description=f"train {arch.space}",
              save_checkpoint=lambda state: atomic_torch_save(path, {**header, **state}))
    finally:
        log_scalar.close()
    metrics = {"test_accuracy": accuracy(model, model, context.splits.test.epoch(0)),
               "train_accuracy": accuracy(model, model, context.splits.calibration.epoch(0))}
    return model, metrics
