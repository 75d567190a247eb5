"""`nas export`: a run's architecture (its best, or any other) as model files, with the run's
supernet weights, fresh ones, or ones selected from a larger exported model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.config import RunRecord, TrainConfig
from nas.errors import ConfigError
from nas.export.files import (ExportedFiles, check_export, export_paths, load_model,
                              read_metadata, save_model)
from nas.export.initial_weights import check_init, data_metadata, inherited_state, initial_state
from nas.problem import SearchProblem, build_problem
from nas.runs import RunDir
from nas.scorers import ScorerSetting, build_scorer
from nas.search.loop import BEST_FILE
from nas.training.standalone import StandaloneStep
from nas.training.supernet import load_supernet, supernet_run_dir
from search_spaces import Skeleton, get_space

TRAINED_MODEL = "model.pt2"  # where `nas train` writes its model


def best_of(run_path: str | Path) -> str:
    """The canonical string of the architecture a search picked (best.txt)."""
    best_file = Path(run_path) / BEST_FILE
    if not best_file.is_file():
        raise ConfigError(f"{run_path} has no {BEST_FILE} (no search ran there); pass --arch")
    return best_file.read_text().strip()


def recorded_problem(run_dir: str | Path, device: str) -> SearchProblem:
    """The space, skeleton and data splits a run recorded, without its supernet's weights
    (a search over another run's supernet: that run's)."""
    record = supernet_run_dir(run_dir).record(RunRecord)
    seed = record.train.seed if record.train is not None else record.search.seed
    return build_problem(record.space, record.data, seed, device)


def export_run(run_dir: str | Path, out: str | Path, arch: str | None = None,
               init: str = "inherit", overwrite: bool = False,
               device: str = TrainConfig.device,
               teacher: str | Path | None = None, format: str | None = None) -> ExportedFiles:
    """Export `arch` (default: the run's best) of a run as a standalone model (`nas.api.export`)."""
    check_init(init, teacher, {"weight-selection": "FILE.pt2"})
    check_export(out, format)
    record = RunRecord.from_dict(RunDir(run_dir).settings())
    if record.kind == "train" and init == "inherit":  # the run's trained weights
        return _export_trained(run_dir, record, out, arch, overwrite, format)
    setting = record.search.scorer_setting if record.search is not None else ScorerSetting()
    metadata: dict[str, Any] = {"init": init, "source_run": str(Path(run_dir).resolve())}
    if init != "inherit":
        problem = recorded_problem(run_dir, device)
        arch_obj = problem.space.parse(arch if arch is not None else best_of(run_dir))
        model = problem.space.build_model(arch_obj)
        start = initial_state(problem.space, arch_obj, model, init, teacher)
        if start.state_dict is not None:
            model.load_state_dict(start.state_dict)
        return save_model(model, problem.space, arch_obj, out,
                          {**metadata, **data_metadata(problem), **start.metadata},
                          overwrite=overwrite, format=format)
    if not setting.trains_supernet:
        raise ConfigError(f"{run_dir} was searched with {setting}, which trains no weights to "
                          f"inherit; export with --init scratch")
    trained = load_supernet(run_dir, device)
    problem = trained.problem
    arch_obj = problem.space.parse(arch if arch is not None else best_of(run_dir))
    model = problem.space.build_model(arch_obj)
    metadata.update(data_metadata(problem))
    metadata["supernet_score"] = build_scorer(ScorerSetting(), problem, trained=trained)(arch_obj)
    metadata["bn_mode"] = trained.method.config.bn_mode
    model.load_state_dict(inherited_state(trained, arch_obj, model))
    model.to(problem.device)
    metadata["val_accuracy"] = StandaloneStep().score(model, arch_obj, problem.scoring_data())
    return save_model(model, problem.space, arch_obj, out, metadata, overwrite=overwrite,
                      format=format)


def _export_trained(run_dir: str | Path, record: RunRecord, out: str | Path, arch: str | None,
                    overwrite: bool, format: str | None) -> ExportedFiles:
    """A `nas train` run's trained model again, in `out`'s format: its weights and what the
    run's own export recorded (normalisation, class names, accuracies)."""
    if arch is not None and arch != record.arch:
        raise ConfigError(f"{run_dir} trained {record.arch}, not {arch}; drop --arch, or give "
                          f"--init scratch for a fresh model of another architecture")
    trained = Path(run_dir) / TRAINED_MODEL
    model, arch_obj = load_model(export_paths(trained).state_dict)
    metadata = read_metadata(trained)
    space = get_space(metadata["space"], Skeleton(**metadata["skeleton"]))
    metadata["source_run"] = str(Path(run_dir).resolve())
    return save_model(model, space, arch_obj, out, metadata, overwrite=overwrite, format=format)
