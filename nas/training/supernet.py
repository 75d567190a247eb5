"""Training a supernet into a run directory, loading it back with its method, which scores it.

The checkpoint `supernet.pt` records the space, skeleton and method it was trained with, so it
can never be evaluated as another space's or another method's supernet.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from nas.config import DataConfig, MethodSetting, RunRecord, SpaceConfig, TrainConfig
from nas.errors import CheckpointError, ConfigError
from nas.problem import SearchProblem, build_problem
from nas.runs import RunDir, atomic_torch_save, load_checkpoint
from nas.training import torchrun
from search_spaces import SearchSpace, Supernet
from supernets import METHODS, TrainingMethod, train
from supernets.budget import check_warmup
from supernets.precision import resolve_precision

SUPERNET_FORMAT = "nas-supernet"
SUPERNET_FILE = "supernet.pt"
KEPT_DIR = "checkpoints"  # snapshots along the run (--keep-checkpoints): step-0001234.pt


def check_training(train_config: TrainConfig, problem: SearchProblem, steps_per_epoch: int
                   ) -> None:
    """Training options that cannot work here fail before a run directory is made: a warm-up
    longer than the budget, a precision this device lacks."""
    check_warmup(train_config, steps_per_epoch)
    resolve_precision(train_config.precision, problem.device)


def check_method_data(method: TrainingMethod, problem: SearchProblem) -> None:
    """A bi-level method's architecture step needs a search-validation batch, checked before
    a run directory is made."""
    if method.uses_validation_batches and len(problem.splits.val_stream) == 0:
        raise ConfigError(f"--method {method.name} trains its architecture on search-validation "
                          f"batches, but the split has fewer images than one batch; lower "
                          f"--batch-size or use more data (--train-subset, --val-images)")


@dataclass(frozen=True)
class TrainedSupernet:
    """A trained supernet with the method that trained it (which scores its paths:
    `nas.scorers.supernet`), and the checkpoint it was saved to."""

    problem: SearchProblem
    supernet: Supernet
    method: TrainingMethod
    checkpoint: Path


def supernet_record(kind: str, space: SpaceConfig, data: DataConfig, train_config: TrainConfig,
                    method: str, method_options: Mapping[str, Any]) -> RunRecord:
    """The record of a run that trains a supernet (`kind`: supernet or search), its method's
    options checked against the method's settings."""
    if train_config.compile:
        raise ConfigError("--compile compiles stand-alone models (nas train); a supernet's "
                          "graph changes with every path it trains")
    setting = MethodSetting.parse(method, method_options)
    for name in ("weight_decay", "nesterov"):  # the gradient methods' weights optimiser
        if hasattr(setting.options, name) and getattr(train_config, name) != getattr(
                TrainConfig(), name):
            raise ConfigError(f"--method {method} sets its own {name} (--method-opt {name}=V); "
                              f"the training option {name}={getattr(train_config, name)} would "
                              f"be ignored")
    return RunRecord(kind, space, data, train_config, setting)


def _checkpoint_header(problem: SearchProblem, method: TrainingMethod) -> dict[str, Any]:
    return {"format": SUPERNET_FORMAT, "space": problem.space.name,
            "skeleton": asdict(problem.space.skeleton), "method_name": method.name}


def _check_header(state: Mapping[str, Any], expected: Mapping[str, Any], path: Path) -> None:
    recorded = dict(state)
    if isinstance(recorded.get("skeleton"), dict):
        # Checkpoints from before skeletons were resolved record null for "the default"; which
        # default that was is the run's settings' to say (`with_added_defaults`), checked already.
        recorded["skeleton"] = {k: (expected["skeleton"].get(k) if v is None else v)
                                for k, v in recorded["skeleton"].items()}
    for key in ("space", "skeleton", "method_name"):
        if recorded.get(key) != expected[key]:
            raise CheckpointError(f"{path} was trained for {key} {recorded.get(key)!r}, but this run "
                                  f"needs {expected[key]!r}")


def build_method(record: RunRecord, space: SearchSpace) -> TrainingMethod:
    """The training method a run's record names, with its recorded options."""
    return METHODS.get(record.method.name)(space, record.method.options, seed=record.train.seed)


def train_supernet_in(run: RunDir, train_config: TrainConfig, method: TrainingMethod,
                      problem: SearchProblem) -> TrainedSupernet:
    """Train (or resume training) `method`'s supernet into `run/supernet.pt`."""
    torch.manual_seed(train_config.seed)  # initial weights are part of what --seed fixes
    supernet = method.build_supernet().to(problem.device)
    header = _checkpoint_header(problem, method)
    path = run / SUPERNET_FILE
    resume_from = None
    if path.exists():
        resume_from = load_checkpoint(path, SUPERNET_FORMAT)
        _check_header(resume_from, header, path)
    process = torchrun.this_process(problem.splits)
    if process.is_main:
        _drop_snapshots_after(run, int((resume_from or {}).get("steps_done", 0)))
        problem.record_data(run)
    log_scalar = run.tensorboard() if process.is_main else None
    try:
        train(supernet, method, process.train_batches, train_config,
              validation=process.validation, context=process.context, resume_from=resume_from,
              save_checkpoint=lambda state: atomic_torch_save(path, {**header, **state}),
              keep_checkpoint=lambda state: atomic_torch_save(
                  run / KEPT_DIR / f"step-{state['steps_done']:07d}.pt", {**header, **state}),
              log_scalar=log_scalar, description=f"supernet {problem.space.name}/{method.name}")
        torchrun.wait_for_all()
    finally:
        if log_scalar is not None:
            log_scalar.close()
    return TrainedSupernet(problem, supernet, method, path)


def _drop_snapshots_after(run: RunDir, steps_done: int) -> None:
    """Kept snapshots beyond where training resumes belong to a run that was cut short before
    its next checkpoint (a time budget re-measures its total then): they are made again."""
    for snapshot in (run / KEPT_DIR).glob("step-*.pt"):
        if int(snapshot.stem.removeprefix("step-")) > steps_done:
            snapshot.unlink()


def is_finished(state: Mapping[str, Any], train_config: TrainConfig) -> bool:
    """Whether a checkpoint is the end of its run (older checkpoints: all epochs done)."""
    if "finished" in state:
        return bool(state["finished"])
    return int(state["epoch"]) >= train_config.epochs


def supernet_run_dir(run_path: str | Path) -> RunDir:
    """The run directory that holds `run_path`'s supernet: itself, or for a search that reused
    another run's supernet (`nas search --supernet`), that run."""
    run = RunDir(run_path)
    reused = run.record(RunRecord).supernet_run
    return supernet_run_dir(reused) if reused is not None else run


def kept_checkpoints(run_path: str | Path) -> list[Path]:
    """The run's snapshots along training (`--keep-checkpoints`), in step order."""
    return sorted((supernet_run_dir(run_path) / KEPT_DIR).glob("step-*.pt"))


def load_supernet(run_path: str | Path, device: str = "auto") -> TrainedSupernet:
    """The trained supernet of a `nas supernet` or `nas search` run directory, with its method."""
    run = supernet_run_dir(run_path)
    record = run.record(RunRecord)
    if record.method is None:
        raise ConfigError(f"{run.path} holds no supernet (it is a {record.kind} run)")
    problem = build_problem(record.space, record.data, record.train.seed, device)
    method = build_method(record, problem.space)
    path = run / SUPERNET_FILE
    state = load_checkpoint(path, SUPERNET_FORMAT)
    _check_header(state, _checkpoint_header(problem, method), path)
    if not is_finished(state, record.train):
        raise CheckpointError(f"supernet training in {run.path} stopped at epoch {state['epoch']} "
                              f"step {state.get('step', 0)}, before its budget's end; rerun its "
                              f"command to resume it")
    supernet = method.build_supernet()
    try:
        supernet.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit the {problem.space.name} supernet: "
                              f"{str(error).splitlines()[0]}") from None
    method.load_state_dict(state["method"])  # e.g. a gradient method's learned alphas
    return TrainedSupernet(problem, supernet.to(problem.device), method, path)
