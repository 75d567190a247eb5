"""Training a supernet into a run directory, loading it back with its method, which scores it.

The checkpoint `supernet.pt` records the space, skeleton and method it was trained with, so it
can never be evaluated as another space's or another method's supernet.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from nas.config import DataConfig, SpaceConfig, TrainConfig
from nas.data import BatchSource, DataSplits, PreparedBatches, load_data, make_splits
from nas.errors import CheckpointError, ConfigError
from nas.results import RunDir, atomic_torch_save, load_checkpoint
from search_spaces import Architecture, SearchSpace, Skeleton, Supernet, get_space
from nas import torchrun
from supernets.budget import check_warmup
from supernets.precision import resolve_precision
from supernets import METHODS, ScoringData, TrainingMethod, train
from nas.config import parse_options, with_added_defaults

SUPERNET_FORMAT = "nas-supernet"
SUPERNET_FILE = "supernet.pt"
KEPT_DIR = "checkpoints"  # snapshots along the run (--keep-checkpoints): step-0001234.pt


def resolve_device(device: str) -> str:
    """The device `--device` names on this machine: auto is cuda when there is one; under
    torchrun a CUDA device is the process's local rank's (`nas.torchrun.local_device`)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {device!r}; choose auto, cpu or cuda[:N]")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} asked for, but this machine has no CUDA "
                              f"device; use --device cpu")
        index = device.partition(":")[2]
        if index and not (index.isdigit() and int(index) < torch.cuda.device_count()):
            raise ConfigError(f"--device {device}: this machine has CUDA devices 0 to "
                              f"{torch.cuda.device_count() - 1}")
    return torchrun.local_device(device)


@dataclass(frozen=True)
class SearchProblem:
    """What every command works on: a search space sized to its data, the data's splits, and
    the device."""

    space: SearchSpace
    splits: DataSplits
    device: str

    def scoring_data(self) -> ScoringData:
        """Search-validation accuracy, BatchNorm recalibrated on un-augmented training batches;
        prepared on first use and shared by every later scoring of this problem."""
        return self._scoring_data

    @functools.cached_property
    def _scoring_data(self) -> ScoringData:
        return prepare_scoring_data(self.splits.val, self.splits.calibration)


# Batches of eval-mode scoring, whose images are independent. On a CPU, channels-last batches
# of about 32k pixels (128 images of 16x16, 32 of 32x32) ran fastest (`nas.bench.scoring`):
# larger ones make activations of many MB, which malloc maps afresh for every op and the kernel
# then faults in page by page; NCHW batches of 256 ran 1.3x (NB201, C=8) to 2.7x (DARTS, C=16)
# slower. A GPU wants large batches instead, to keep it busy.
PER_IMAGE_BATCH_CPU_PIXELS = 32_768
PER_IMAGE_BATCH_GPU = 1024


def prepare_scoring_data(evaluation: BatchSource, calibration: BatchSource | None) -> ScoringData:
    """Scoring data over two fixed sources, prepared once (`nas.data.PreparedBatches`): their own
    batches (recalibration, batch-statistics scoring), and the evaluation images again in the
    batches and layout eval-mode scoring runs fastest in on their device."""
    if evaluation.device.type == "cpu":
        height, width = evaluation.images.shape[-2:]
        batch = max(1, PER_IMAGE_BATCH_CPU_PIXELS // (height * width))
        per_image = PreparedBatches(evaluation, batch, channels_last=True)
    else:
        per_image = PreparedBatches(evaluation, PER_IMAGE_BATCH_GPU)
    return ScoringData(PreparedBatches(evaluation),
                       None if calibration is None else PreparedBatches(calibration), per_image)


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


def build_problem(space: SpaceConfig, data: DataConfig, seed: int, device: str) -> SearchProblem:
    device = resolve_device(device)
    images = load_data(data.path)
    skeleton = Skeleton(in_channels=images.in_channels, num_classes=images.num_classes,
                        image_size=images.image_size, width=space.width, cells=space.cells)
    return SearchProblem(get_space(space.name, skeleton), make_splits(images, data, seed, device),
                         device)


@dataclass(frozen=True)
class TrainedSupernet:
    """A trained supernet with the method that trained it, which also scores its paths."""

    problem: SearchProblem
    supernet: Supernet
    method: TrainingMethod

    def score(self, arch: Architecture) -> float:
        """Validation accuracy (%) of `arch` with inherited weights, as the method scores it."""
        return self.method.score(self.supernet, arch, self.problem.scoring_data())


def supernet_settings(space: SpaceConfig, data: DataConfig, train_config: TrainConfig,
                      method: str, method_options: Mapping[str, Any]) -> dict[str, Any]:
    if train_config.compile:
        raise ConfigError("--compile compiles stand-alone models (nas train); a supernet's "
                          "graph changes with every path it trains")
    method_class = METHODS.get(method)
    method_config = parse_options(method_class.config_class,
                                  [f"{k}={v}" for k, v in method_options.items()], "method option")
    return {"space": asdict(space), "data": asdict(data), "train": asdict(train_config),
            "method": {"name": method, "options": method_config.to_dict()}}


def _checkpoint_header(problem: SearchProblem, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": SUPERNET_FORMAT, "space": problem.space.name,
            "skeleton": asdict(problem.space.skeleton), "method_name": settings["method"]["name"]}


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


def build_method(settings: Mapping[str, Any], space: SearchSpace) -> TrainingMethod:
    """The training method a run's settings name, with its recorded options."""
    method_class = METHODS.get(settings["method"]["name"])
    try:
        config = method_class.config_class(**settings["method"]["options"])
    except TypeError as error:
        raise ConfigError(f"the run's method options do not fit {method_class.name}: {error}") from None
    return method_class(space, config, seed=int(settings["train"]["seed"]))


def train_supernet_in(run: RunDir, settings: Mapping[str, Any],
                      problem: SearchProblem) -> TrainedSupernet:
    """Train (or resume training) the supernet of `settings` into `run/supernet.pt`."""
    train_config = TrainConfig(**settings["train"])
    method = build_method(settings, problem.space)
    torch.manual_seed(train_config.seed)  # initial weights are part of what --seed fixes
    supernet = method.build_supernet().to(problem.device)
    header = _checkpoint_header(problem, settings)
    path = run / SUPERNET_FILE
    resume_from = None
    if path.exists():
        resume_from = load_checkpoint(path, SUPERNET_FORMAT)
        _check_header(resume_from, header, path)
    splits = problem.splits
    train_batches, validation, context = splits.train, splits.val_stream, None
    if torchrun.is_launched():
        from supernets.ddp import DistributedContext

        rank, world_size = torchrun.rank_and_world_size()
        train_batches = splits.train.shard(rank, world_size)
        validation = splits.val_stream.shard(rank, world_size)
        context = DistributedContext(validation)
    if torchrun.is_main():
        _drop_snapshots_after(run, int((resume_from or {}).get("steps_done", 0)))
    # Only the main process writes: checkpoints (the loop asks context.is_main), TensorBoard.
    log_scalar = run.tensorboard() if torchrun.is_main() else None
    try:
        train(supernet, method, train_batches, train_config, validation=validation,
              context=context, resume_from=resume_from,
              save_checkpoint=lambda state: atomic_torch_save(path, {**header, **state}),
              keep_checkpoint=lambda state: atomic_torch_save(
                  run / KEPT_DIR / f"step-{state['steps_done']:07d}.pt", {**header, **state}),
              log_scalar=log_scalar, description=f"supernet {problem.space.name}/{method.name}")
    finally:
        if log_scalar is not None:
            log_scalar.close()
    return TrainedSupernet(problem, supernet, method)


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
    settings = run.settings()
    return supernet_run_dir(settings["supernet_run"]) if "supernet_run" in settings else run


def kept_checkpoints(run_path: str | Path) -> list[Path]:
    """The run's snapshots along training (`--keep-checkpoints`), in step order."""
    return sorted((supernet_run_dir(run_path) / KEPT_DIR).glob("step-*.pt"))


def load_supernet(run_path: str | Path, device: str = "auto") -> TrainedSupernet:
    """The trained supernet of a `nas supernet` or `nas search` run directory, with its method."""
    run = supernet_run_dir(run_path)
    settings = with_added_defaults(run.settings())
    if "method" not in settings:
        raise ConfigError(f"{run.path} holds no supernet (it is a {settings.get('kind')} run)")
    train_config = TrainConfig(**settings["train"])
    problem = build_problem(SpaceConfig(**settings["space"]), DataConfig(**settings["data"]),
                            train_config.seed, device)
    method = build_method(settings, problem.space)
    path = run / SUPERNET_FILE
    state = load_checkpoint(path, SUPERNET_FORMAT)
    _check_header(state, _checkpoint_header(problem, settings), path)
    if not is_finished(state, train_config):
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
    return TrainedSupernet(problem, supernet.to(problem.device), method)
