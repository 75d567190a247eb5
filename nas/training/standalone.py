"""Training one architecture stand-alone, through the same loop as supernets."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas.config import DataConfig, RunRecord, SpaceConfig
from nas.errors import ConfigError
from nas.export.files import ExportedFiles, save_model
from nas.export.initial_weights import data_metadata, initial_state
from nas.problem import SearchProblem, build_problem
from nas.runs import RunDir, atomic_torch_save, atomic_write_json, load_checkpoint
from nas.training.supernet import check_training
from search_spaces import Architecture
from supernets import ScoringData, StepContext, StepMethod, TrainConfig, train

MODEL_CHECKPOINT_FORMAT = "nas-standalone"


class StandaloneStep(StepMethod):
    """The loop's step for a plain model: cross-entropy on its own output, no sampling.
    `forward` replaces the model's own (a `torch.compile`d one, sharing its parameters)."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.forward = forward

    def train_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        forward = model if self.forward is None else self.forward
        loss = F.cross_entropy(forward(images), labels)
        (context or StepContext()).backward(loss)
        return loss.detach()


def check_standalone_training(train_config: TrainConfig, problem: SearchProblem) -> None:
    """Options a stand-alone training cannot honour fail before its run directory is made."""
    if train_config.keep_checkpoints:
        raise ConfigError("--keep-checkpoints keeps snapshots of supernet runs; stand-alone "
                          "training keeps only its resumable checkpoint, so drop it")
    check_training(train_config, problem, len(problem.splits.full_train))


def train_model(run: RunDir, arch: Architecture, problem: SearchProblem,
                train_config: TrainConfig,
                initial_state: Mapping[str, torch.Tensor] | None = None
                ) -> tuple[nn.Module, dict[str, float]]:
    """Train `arch` on the whole training set, from `initial_state` (default: the seed's fresh
    weights); report test accuracy.

    The model trains on supernet-train + search-validation images together (every image that
    is not test), as NAS-Bench-201 trains its stand-alone networks on the full training set.
    A resumed run continues from its checkpoint: `initial_state` only starts a fresh one.
    """
    torch.manual_seed(train_config.seed)
    model = problem.space.build_model(arch).to(problem.device)
    path = run / "model.pt"
    header = {"format": MODEL_CHECKPOINT_FORMAT, "arch": str(arch)}
    resume_from = load_checkpoint(path, MODEL_CHECKPOINT_FORMAT) if path.exists() else None
    if resume_from is None and initial_state is not None:
        model.load_state_dict(initial_state)
    log_scalar = run.tensorboard()
    step = StandaloneStep(torch.compile(model) if train_config.compile else None)
    try:
        train(model, step, problem.splits.full_train, train_config,
              resume_from=resume_from, log_scalar=log_scalar, description=f"train {arch.space}",
              save_checkpoint=lambda state: atomic_torch_save(path, {**header, **state}))
    finally:
        log_scalar.close()
    metrics = {"test_accuracy": step.score(model, arch, ScoringData(problem.splits.test)),
               "train_accuracy": step.score(model, arch, ScoringData(problem.splits.calibration))}
    return model, metrics


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    arch: Architecture
    metrics: dict[str, float] = field(default_factory=dict)
    exported: ExportedFiles | None = None


def train_architecture(space: SpaceConfig, arch: str, data: DataConfig, train_config: TrainConfig,
                       out: str | Path | None, init: str, teacher: str | Path | None
                       ) -> TrainResult:
    """`nas train` (`nas.api.train`): one architecture trained stand-alone into a run
    directory from its first weights (`nas.export.initial_weights`), its test accuracy
    reported and its model saved; a resumed run continues from its checkpoint instead."""
    problem = build_problem(space, data, train_config.seed, train_config.device)
    arch_obj = problem.space.parse(arch)
    check_standalone_training(train_config, problem)
    torch.manual_seed(train_config.seed)  # the fresh weights `train_model` builds, too
    start = initial_state(problem.space, arch_obj, problem.space.build_model(arch_obj), init,
                          teacher, train_config.device)
    # runs from before initialisations record none: scratch
    recorded_init = ({"name": init, "teacher": start.metadata["teacher"]}
                     if init != "scratch" else None)
    run = RunDir(out or RunDir.default_path(f"train-{space.name}"))
    run.open(RunRecord("train", space, data, train_config, arch=str(arch_obj),
                       init=recorded_init))
    problem.record_data(run)
    model, metrics = train_model(run, arch_obj, problem, train_config, start.state_dict)
    metrics = {**metrics, "params_m": problem.space.params_m(arch_obj),
               "flops_m": problem.space.flops_m(arch_obj)}
    atomic_write_json(run / "metrics.json", {"arch": str(arch_obj), **metrics})
    files = save_model(model, problem.space, arch_obj, run / "model.pt2",
                       {"init": f"{init}-trained", **start.metadata,
                        **data_metadata(problem), **metrics}, overwrite=True)
    return TrainResult(run.path, arch_obj, metrics, files)
