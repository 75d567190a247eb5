"""The Python API; `nas` on the command line is a thin layer over these functions.

    from nas import api
    result = api.search(api.SpaceConfig("nb201", width=8, cells=1), trials=50)
    api.export(result.run_dir, "best.pt2")
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from nas.config import DataConfig, SearchConfig, SpaceConfig, TrainConfig
from nas.errors import ConfigError
from nas.export import ExportedFiles, save_model
from nas.results import RunDir, atomic_write_json
from nas.searchers import SEARCHERS
from nas.search_run import BEST_FILE, TRIALS_FILE, run_search
from nas.standalone import train_model
from nas.supernet_run import (Context, build_context, build_method, calibrate_for,
                              load_supernet, score_architecture, supernet_settings,
                              train_supernet_in)
from search_spaces import Architecture

__all__ = ["DataConfig", "SearchConfig", "SpaceConfig", "TrainConfig", "export", "search",
           "supernet", "train"]


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    best: Architecture | None
    best_val_accuracy: float | None
    params_m: float | None = None
    flops_m: float | None = None
    median_val_accuracy: float | None = None  # over all trials: how well the supernet is trained
    chance_accuracy: float | None = None      # 100 / classes


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    arch: Architecture
    metrics: dict[str, float] = field(default_factory=dict)
    exported: ExportedFiles | None = None


def _normalisation(context: Context) -> dict[str, Any]:
    source = context.splits.train
    return {"mean": source.mean.flatten().tolist(), "std": source.std.flatten().tolist(),
            "scale": "pixels / 255, then (x - mean) / std"}


def supernet(space: SpaceConfig = SpaceConfig(), data: DataConfig = DataConfig(),
             train_config: TrainConfig = TrainConfig(), method: str = "spos",
             method_options: Mapping[str, Any] | None = None,
             out: str | Path | None = None) -> Path:
    """Train a supernet into a run directory (resuming it if it holds the same settings)."""
    settings = {"kind": "supernet",
                **supernet_settings(space, data, train_config, method, method_options or {})}
    context = build_context(space, data, train_config.seed, train_config.device)
    build_method(settings, context.space)  # options that do not fit the space fail before any file
    run = RunDir(out or RunDir.default_path(f"supernet-{space.name}"))
    run.open(settings)
    train_supernet_in(run, settings, context)
    return run.path


def search(space: SpaceConfig | None = None, data: DataConfig = DataConfig(),
           train_config: TrainConfig = TrainConfig(), search_config: SearchConfig = SearchConfig(),
           method: str = "spos", method_options: Mapping[str, Any] | None = None,
           supernet_run: str | Path | None = None, out: str | Path | None = None) -> SearchResult:
    """Train a supernet (or reuse `supernet_run`'s), then search it; see `nas search --help`."""
    SEARCHERS.get(search_config.searcher)  # an unknown name fails before any training
    if supernet_run is not None:
        context, net, source = load_supernet(supernet_run, train_config.device)
        if space is not None and space.name != context.space.name:
            raise ConfigError(f"the supernet in {supernet_run} is a {context.space.name!r} supernet, "
                              f"but --space {space.name} was given")
        settings = {"kind": "search", "supernet_run": str(Path(supernet_run).resolve()),
                    "search": asdict(search_config)}
        run = RunDir(out or RunDir.default_path(context.space.name))
        run.open(settings)
    else:
        space = space or SpaceConfig()
        settings = {"kind": "search", "search": asdict(search_config),
                    **supernet_settings(space, data, train_config, method, method_options or {})}
        context = build_context(space, data, train_config.seed, train_config.device)
        build_method(settings, context.space)  # options that do not fit the space fail first
        run = RunDir(out or RunDir.default_path(space.name))
        run.open(settings)
        net = train_supernet_in(run, settings, context)
    found = run_search(run, context, net, search_config)
    if found is None:
        return SearchResult(run.path, None, None)
    best, score = found
    median = float(pd.read_csv(run / TRIALS_FILE)["val_accuracy"].median())
    return SearchResult(run.path, best, score, context.space.params_m(best),
                        context.space.flops_m(best), median,
                        100.0 / context.space.skeleton.num_classes)


def _best_of(run_path: Path) -> str:
    best_file = Path(run_path) / BEST_FILE
    if not best_file.is_file():
        raise ConfigError(f"{run_path} has no {BEST_FILE} (no search ran there); pass --arch")
    return best_file.read_text().strip()


def export(run_dir: str | Path, out: str | Path, arch: str | None = None, init: str = "inherit",
           overwrite: bool = False, device: str = "auto",
           calibration_batches: int | None = None) -> ExportedFiles:
    """Export `arch` (default: the run's best) from a run's supernet as a standalone model."""
    if init not in ("inherit", "scratch"):
        raise ConfigError(f"unknown --init {init!r}; choose inherit or scratch")
    context, net, settings = load_supernet(run_dir, device)
    arch_obj = context.space.parse(arch if arch is not None else _best_of(Path(run_dir)))
    model = context.space.build_model(arch_obj)
    metadata: dict[str, Any] = {"init": init, "source_run": str(Path(run_dir).resolve()),
                                "normalization": _normalisation(context)}
    if init == "inherit":
        batches = calibration_batches or RunDir(run_dir).settings().get(
            "search", asdict(SearchConfig()))["calibration_batches"]
        metadata["val_accuracy"] = score_architecture(net, arch_obj, context, batches)
        calibrate_for(net, arch_obj, context, batches)
        model.load_state_dict(net.subnet_state_dict(arch_obj, model))
    return save_model(model, context.space, arch_obj, out, metadata, overwrite=overwrite)


def train(space: SpaceConfig, arch: str, data: DataConfig = DataConfig(),
          train_config: TrainConfig = TrainConfig(), out: str | Path | None = None) -> TrainResult:
    """Train one architecture from scratch; report and save its test accuracy and model."""
    context = build_context(space, data, train_config.seed, train_config.device)
    arch_obj = context.space.parse(arch)
    settings = {"kind": "train", "space": asdict(space), "data": asdict(data),
                "train": asdict(train_config), "arch": str(arch_obj)}
    run = RunDir(out or RunDir.default_path(f"train-{space.name}"))
    run.open(settings)
    model, metrics = train_model(run, arch_obj, context, train_config)
    metrics = {**metrics, "params_m": context.space.params_m(arch_obj),
               "flops_m": context.space.flops_m(arch_obj)}
    atomic_write_json(run / "metrics.json", {"arch": str(arch_obj), **metrics})
    files = save_model(model, context.space, arch_obj, run / "model.pt2",
                       {"init": "scratch-trained", "normalization": _normalisation(context),
                        **metrics}, overwrite=True)
    return TrainResult(run.path, arch_obj, metrics, files)
