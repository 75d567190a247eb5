"""The Python API; `nas` on the command line is a thin layer over these functions.

    from nas import api
    result = api.search(api.SpaceConfig("nb201", width=8, cells=1),
                        search_config=api.SearchConfig(trials=50))
    api.export(result.run_dir, "best.pt2")
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from torch import nn

from nas.config import (DEFAULT_METHOD, SUPERNET_TRAINING, DataConfig, SearchConfig,
                        SpaceConfig, TrainConfig, with_added_defaults)
from nas import torchrun
from nas.derived import write_derived
from nas.errors import ConfigError
from nas.export import ExportedFiles, save_model
from nas.results import RunDir, atomic_write_json
from nas.ranking.proxies import PROXIES
from nas.searchers import SEARCHERS
from nas.search_run import BEST_FILE, SUPERNET_COLUMN, TRIALS_FILE
from nas.search_workers import Parallel, check_shared, search_in, training_free_scorer
from nas.standalone import StandaloneStep, check_standalone_training, train_model
from nas.trust import Audit, Trust, assess, audit as audit_search
from nas.supernet_run import (SearchProblem, TrainedSupernet, build_method, build_problem,
                              check_method_data, check_training, load_supernet,
                              supernet_run_dir, supernet_settings, train_supernet_in)
from nas.weight_selection import load_teacher, select_weights, skipped_keys
from search_spaces import Architecture, SearchSpace
from supernets.methods.gradient import GradientMethod

__all__ = ["DataConfig", "INITS", "Initialisation", "Parallel", "SearchConfig", "SpaceConfig",
           "TrainConfig", "export", "initial_state", "search", "supernet", "train"]


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    best: Architecture | None
    best_val_accuracy: float | None
    params_m: float | None = None
    flops_m: float | None = None
    median_val_accuracy: float | None = None  # over all trials: how well the supernet is trained
    chance_accuracy: float | None = None      # 100 / classes
    scorer: str = "supernet"                  # or "proxy:NAME": then best_val_accuracy is its score
    trust: Trust | None = None                # score noise and size bias (supernet searches)
    audit: Audit | None = None                # stand-alone check of the shortlist (--audit K)
    derived_by: str | None = None             # a gradient-based method's derived architecture


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    arch: Architecture
    metrics: dict[str, float] = field(default_factory=dict)
    exported: ExportedFiles | None = None


def _normalisation(problem: SearchProblem) -> dict[str, Any]:
    source = problem.splits.train
    return {"mean": source.mean.flatten().tolist(), "std": source.std.flatten().tolist(),
            "scale": "pixels / 255, then (x - mean) / std"}


def supernet(space: SpaceConfig = SpaceConfig(), data: DataConfig = DataConfig(),
             train_config: TrainConfig = SUPERNET_TRAINING, method: str = DEFAULT_METHOD,
             method_options: Mapping[str, Any] | None = None,
             out: str | Path | None = None) -> Path:
    """Train a supernet into a run directory (resuming it if it holds the same settings)."""
    settings = {"kind": "supernet",
                **supernet_settings(space, data, train_config, method, method_options or {})}
    problem = build_problem(space, data, train_config.seed, train_config.device)
    # options that do not fit the space, or data the method cannot train on, fail before any file
    check_method_data(build_method(settings, problem.space), problem)
    check_training(train_config, problem, len(problem.splits.train))
    torchrun.start(problem.device)
    run = torchrun.open_run(out or RunDir.default_path(f"supernet-{space.name}"), settings,
                            with_added_defaults)
    train_supernet_in(run, settings, problem)
    return run.path


def search(space: SpaceConfig | None = None, data: DataConfig = DataConfig(),
           train_config: TrainConfig = SUPERNET_TRAINING,
           search_config: SearchConfig = SearchConfig(),
           method: str = DEFAULT_METHOD, method_options: Mapping[str, Any] | None = None,
           supernet_run: str | Path | None = None, out: str | Path | None = None,
           audit: int = 0, audit_epochs: int = TrainConfig().epochs,
           parallel: Parallel = Parallel()) -> SearchResult:
    """Train a supernet (or reuse `supernet_run`'s), then search it; see `nas search --help`.
    `parallel` puts the study in a shared storage and/or runs K local workers on it.
    With `search_config.scorer` "proxy:NAME" or "oracle:TABLE" no supernet is trained: a
    training-free proxy, or a ground-truth table, scores each architecture. A supernet search also judges its ranking (`nas.trust`), and
    with `audit` K trains its K best and K random architectures stand-alone to check it."""
    SEARCHERS.get(search_config.searcher)  # an unknown name fails before any training
    if audit < 0 or audit_epochs < 1:
        raise ConfigError(f"--audit takes a number of architectures >= 0 and --audit-epochs a "
                          f"number >= 1; got {audit} and {audit_epochs}")
    if audit and search_config.trials == 0:
        raise ConfigError("--audit checks a search's best architectures; --trials 0 searches none")
    if audit and search_config.scorer != "supernet":
        raise ConfigError("--audit checks a supernet's ranking; use it with --scorer supernet")
    if torchrun.is_launched():
        _check_distributed_search(search_config, supernet_run, parallel)
    if search_config.scorer != "supernet":
        trains = replace(train_config, seed=SUPERNET_TRAINING.seed,
                         device=SUPERNET_TRAINING.device) != SUPERNET_TRAINING
        if trains or method != DEFAULT_METHOD or method_options:
            raise ConfigError(f"--scorer {search_config.scorer} trains nothing; drop the training "
                              f"and method options, or use --scorer supernet")
        return _search_without_training(space or SpaceConfig(), data, train_config,
                                        search_config, supernet_run, out, parallel)
    if supernet_run is not None:
        trained = load_supernet(supernet_run, train_config.device)
        if space is not None and space.name != trained.problem.space.name:
            raise ConfigError(f"the supernet in {supernet_run} is a {trained.problem.space.name!r} "
                              f"supernet, but --space {space.name} was given")
        settings = {"kind": "search", "supernet_run": str(Path(supernet_run).resolve()),
                    "search": asdict(search_config)}
        check_shared(parallel, trained.problem, search_config, SUPERNET_COLUMN)
        run = RunDir(out or RunDir.default_path(trained.problem.space.name))
        run.open(settings, fill_defaults=with_added_defaults)
    else:
        space = space or SpaceConfig()
        settings = {"kind": "search", "search": asdict(search_config),
                    **supernet_settings(space, data, train_config, method, method_options or {})}
        problem = build_problem(space, data, train_config.seed, train_config.device)
        # options that do not fit the space, or the data, fail first
        check_method_data(build_method(settings, problem.space), problem)
        check_training(train_config, problem, len(problem.splits.train))
        check_shared(parallel, problem, search_config, SUPERNET_COLUMN)
        torchrun.start(problem.device)
        run = torchrun.open_run(out or RunDir.default_path(space.name), settings,
                                with_added_defaults)
        trained = train_supernet_in(run, settings, problem)
        if not torchrun.is_main():
            return SearchResult(run.path, None, None)  # the main process searches alone
    problem = trained.problem
    derives = isinstance(trained.method, GradientMethod)  # no searcher: its own architecture
    if derives:
        print(f"{trained.method.name} derives its architecture from its learned weights; "
              f"the {search_config.searcher} searcher is not run")
        found = write_derived(run, trained)
    else:
        found = search_in(run, problem, trained.score, search_config, SUPERNET_COLUMN, parallel,
                          train_config.device)
    if found is None:
        return SearchResult(run.path, None, None)
    best, score = found
    trials = pd.read_csv(run / TRIALS_FILE)
    trust = assess(run, trained, trials) if len(trials) >= 2 else None
    stand_alone = TrainConfig(epochs=audit_epochs, seed=search_config.seed,
                              device=train_config.device)
    checked = audit_search(run, trained, trials, audit, stand_alone) if audit else None
    return SearchResult(run.path, best, score, problem.space.params_m(best),
                        problem.space.flops_m(best), float(trials["val_accuracy"].median()),
                        100.0 / problem.space.skeleton.num_classes, trust=trust, audit=checked,
                        derived_by=trained.method.name if derives else None)


def _check_distributed_search(search_config: SearchConfig, supernet_run: str | Path | None,
                              parallel: Parallel) -> None:
    """What torchrun can do for a search: train its supernet on every process."""
    if search_config.scorer != "supernet" or supernet_run is not None:
        raise ConfigError("torchrun trains a supernet on several processes, and this search "
                          "trains none; run it without torchrun")
    if parallel.workers > 1 or parallel.storage is not None:
        raise ConfigError("under torchrun the main process searches alone; for many search "
                          "workers run nas search --workers K or --storage without torchrun, "
                          "after training with torchrun")


def _search_without_training(space: SpaceConfig, data: DataConfig, train_config: TrainConfig,
                             search_config: SearchConfig, supernet_run: str | Path | None,
                             out: str | Path | None, parallel: Parallel) -> SearchResult:
    """A zero-training search: a proxy scores fresh models (seeded by the search seed), or an
    oracle looks architectures up in a ground-truth table."""
    if search_config.proxy is not None:
        PROXIES.get(search_config.proxy)
    if supernet_run is not None:
        raise ConfigError(f"--scorer {search_config.scorer} scores without a supernet; drop "
                          f"--supernet, or use --scorer supernet")
    problem = build_problem(space, data, search_config.seed, train_config.device)
    scorer, column = training_free_scorer(problem, search_config)
    label = "oracle" if search_config.oracle is not None else search_config.proxy
    if search_config.oracle is not None:
        search_config = replace(search_config, oracle_column=column)
    settings = {"kind": "search", "search": asdict(search_config), "space": asdict(space),
                "data": asdict(data)}
    check_shared(parallel, problem, search_config, column)
    run = RunDir(out or RunDir.default_path(f"{space.name}-{label}"))
    run.open(settings, fill_defaults=with_added_defaults)
    found = search_in(run, problem, scorer, search_config, column, parallel,
                      train_config.device)
    if found is None:
        return SearchResult(run.path, None, None, scorer=search_config.scorer)
    best, score = found
    return SearchResult(run.path, best, score, problem.space.params_m(best),
                        problem.space.flops_m(best), scorer=search_config.scorer)


def _best_of(run_path: Path) -> str:
    best_file = Path(run_path) / BEST_FILE
    if not best_file.is_file():
        raise ConfigError(f"{run_path} has no {BEST_FILE} (no search ran there); pass --arch")
    return best_file.read_text().strip()


INITS = ("inherit", "scratch", "weight-selection")  # where a model's first weights come from


@dataclass(frozen=True)
class Initialisation:
    """A model's first weights: `state_dict` None means the fresh ones of the seed.
    `metadata` is what the model's files record of where they came from."""

    init: str
    state_dict: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _check_init(init: str, teacher: str | Path | None, teacher_kind: Mapping[str, str]) -> None:
    """`teacher_kind[init]` names what the teacher of `init` is; inits absent from it take none."""
    if init not in INITS:
        raise ConfigError(f"unknown --init {init!r}; choose one of: {', '.join(INITS)}")
    if init in teacher_kind and teacher is None:
        raise ConfigError(f"--init {init} needs --teacher {teacher_kind[init]}")
    if init not in teacher_kind and teacher is not None:
        raise ConfigError(f"--teacher is for --init {' or '.join(teacher_kind)}; drop it with "
                          f"--init {init}")


def _inherited_state(trained: TrainedSupernet, arch: Architecture,
                     model: nn.Module) -> dict[str, Any]:
    """`arch`'s supernet weights for `model`, with BatchNorm statistics recalibrated for `arch`
    (a plain model normalises with running statistics, whatever mode the method scores in)."""
    trained.method.calibrate(trained.supernet, arch, trained.problem.scoring_data())
    return trained.supernet.subnet_state_dict(arch, model)


def initial_state(space: SearchSpace, arch: Architecture, model: nn.Module, init: str,
                  teacher: str | Path | None = None,
                  device: str = TrainConfig.device) -> Initialisation:
    """The first weights of `model = space.build_model(arch)` (whose fresh values fill what
    the init leaves, such as a classifier for other classes): "scratch" its own,
    "weight-selection" selected from the exported model `teacher` (`nas.weight_selection`),
    "inherit" the supernet of run `teacher`, which must have `space`'s name and skeleton."""
    _check_init(init, teacher, {"weight-selection": "FILE.pt2", "inherit": "RUN_DIR"})
    if init == "scratch":
        return Initialisation(init)
    if init == "weight-selection":
        source = load_teacher(teacher)
        state = select_weights(source.state_dict, source.space, space, model)
        skipped = skipped_keys(source.space, space, list(state))
        return Initialisation(init, state, {**source.metadata(), "fresh_keys": skipped})
    trained = load_supernet(teacher, device)
    other = trained.problem.space
    if (other.name, other.skeleton, other.width, other.cells) != (
            space.name, space.skeleton, space.width, space.cells):
        raise ConfigError(f"the supernet in {teacher} is {other.name} with skeleton "
                          f"{asdict(other.skeleton)}; --init inherit needs the student's space "
                          f"{space.name} and skeleton {asdict(space.skeleton)}")
    state = _inherited_state(trained, other.parse(str(arch)), model)
    return Initialisation(init, state, {"teacher": str(Path(teacher).resolve())})


def _recorded_problem(run_dir: str | Path, device: str) -> SearchProblem:
    """The space, skeleton and data splits a run recorded, without its supernet's weights
    (a search over another run's supernet: that run's)."""
    settings = with_added_defaults(supernet_run_dir(run_dir).settings())
    seed = settings["train"]["seed"] if "train" in settings else settings["search"]["seed"]
    return build_problem(SpaceConfig(**settings["space"]), DataConfig(**settings["data"]), seed,
                         device)


def export(run_dir: str | Path, out: str | Path, arch: str | None = None, init: str = "inherit",
           overwrite: bool = False, device: str = TrainConfig.device,
           teacher: str | Path | None = None) -> ExportedFiles:
    """Export `arch` (default: the run's best) from a run's supernet as a standalone model.

    With inherited weights the model carries BatchNorm statistics recalibrated for `arch`
    (a plain model normalises with running statistics, whatever mode the method scores in).
    `OUT.json` records `val_accuracy`, the exported model's own validation accuracy, and the
    method's score of `arch` (`supernet_score`, in its `bn_mode`): equal under "recalibrate".
    "scratch" gives fresh weights, "weight-selection" weights selected from the exported model
    `teacher`; neither uses the supernet's.
    """
    _check_init(init, teacher, {"weight-selection": "FILE.pt2"})
    settings = with_added_defaults(RunDir(run_dir).settings())
    scorer = settings.get("search", {}).get("scorer", "supernet")
    metadata: dict[str, Any] = {"init": init, "source_run": str(Path(run_dir).resolve())}
    if init != "inherit":
        problem = _recorded_problem(run_dir, device)
        arch_obj = problem.space.parse(arch if arch is not None else _best_of(Path(run_dir)))
        model = problem.space.build_model(arch_obj)
        start = initial_state(problem.space, arch_obj, model, init, teacher)
        if start.state_dict is not None:
            model.load_state_dict(start.state_dict)
        return save_model(model, problem.space, arch_obj, out,
                          {**metadata, "normalization": _normalisation(problem), **start.metadata},
                          overwrite=overwrite)
    if scorer != "supernet":
        raise ConfigError(f"{run_dir} was searched with {scorer}, which trains no weights to "
                          f"inherit; export with --init scratch")
    trained = load_supernet(run_dir, device)
    problem, net, method = trained.problem, trained.supernet, trained.method
    arch_obj = problem.space.parse(arch if arch is not None else _best_of(Path(run_dir)))
    model = problem.space.build_model(arch_obj)
    metadata["normalization"] = _normalisation(problem)
    data = problem.scoring_data()
    metadata["supernet_score"] = method.score(net, arch_obj, data)
    metadata["bn_mode"] = method.config.bn_mode
    model.load_state_dict(_inherited_state(trained, arch_obj, model))
    model.to(problem.device)
    metadata["val_accuracy"] = StandaloneStep().score(model, arch_obj, data)
    return save_model(model, problem.space, arch_obj, out, metadata, overwrite=overwrite)


def train(space: SpaceConfig, arch: str, data: DataConfig = DataConfig(),
          train_config: TrainConfig = TrainConfig(), out: str | Path | None = None,
          init: str = "scratch", teacher: str | Path | None = None) -> TrainResult:
    """Train one architecture stand-alone; report and save its test accuracy and model.

    It starts from fresh weights ("scratch"), from weights selected from the exported model
    `teacher` ("weight-selection"), or from the supernet of run `teacher` ("inherit"); see
    `initial_state`. A resumed run continues from its checkpoint instead.
    """
    problem = build_problem(space, data, train_config.seed, train_config.device)
    arch_obj = problem.space.parse(arch)
    check_standalone_training(train_config, problem)
    torch.manual_seed(train_config.seed)  # the fresh weights `train_model` builds, too
    start = initial_state(problem.space, arch_obj, problem.space.build_model(arch_obj), init,
                          teacher, train_config.device)
    settings = {"kind": "train", "space": asdict(space), "data": asdict(data),
                "train": asdict(train_config), "arch": str(arch_obj)}
    if init != "scratch":  # runs from before initialisations record none: scratch
        settings["init"] = {"name": init, "teacher": start.metadata["teacher"]}
    run = RunDir(out or RunDir.default_path(f"train-{space.name}"))
    run.open(settings, fill_defaults=with_added_defaults)
    model, metrics = train_model(run, arch_obj, problem, train_config, start.state_dict)
    metrics = {**metrics, "params_m": problem.space.params_m(arch_obj),
               "flops_m": problem.space.flops_m(arch_obj)}
    atomic_write_json(run / "metrics.json", {"arch": str(arch_obj), **metrics})
    files = save_model(model, problem.space, arch_obj, run / "model.pt2",
                       {"init": f"{init}-trained", **start.metadata,
                        "normalization": _normalisation(problem), **metrics}, overwrite=True)
    return TrainResult(run.path, arch_obj, metrics, files)
