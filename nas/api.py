"""The Python API; `nas` on the command line is a thin layer over these functions.

    from nas import api
    result = api.search(api.SpaceConfig("nb201", width=8, cells=1),
                        search_config=api.SearchConfig(trials=50))
    api.export(result.run_dir, "best.pt2")

Each function builds what its command needs from the rooms of `nas/` and hands results on:
`nas.training` trains, `nas.scorers` scores, `nas.search` searches, `nas.export` exports.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from nas.config import (DEFAULT_METHOD, SUPERNET_TRAINING, DataConfig, RunRecord, SearchConfig,
                        SpaceConfig, TrainConfig)
from nas.errors import ConfigError
from nas.export import ExportedFiles
from nas.export.from_run import export_run
from nas.export.initial_weights import INITS, Initialisation, initial_state
from nas.problem import SearchProblem, build_problem
from nas.ranking.ablation import Recipe, Study, run_study, variants
from nas.reports.ablation_report import write_report
from nas.runs import RunDir
from nas.scorers import Scorer, build_scorer
from nas.scorers.combined import DEFAULT_WITH_SUPERNET
from nas.search.constraints import check_satisfiable, parse_constraints
from nas.search.derived import write_derived
from nas.search.loop import SearchOutcome
from nas.search.trust import Audit, Trust, assess, audit as audit_search
from nas.search.workers import Parallel, check_shared, search_in
from nas.training import torchrun
from nas.training.standalone import TrainResult, train_architecture
from nas.training.supernet import (TrainedSupernet, build_method, check_method_data,
                                   check_training, load_supernet, supernet_record,
                                   train_supernet_in)
from search_spaces import Architecture
from supernets import TrainingMethod

__all__ = ["DataConfig", "INITS", "Initialisation", "Parallel", "Recipe", "SearchConfig",
           "SearchResult", "SpaceConfig", "Study", "TrainConfig", "TrainResult", "ablate",
           "bench", "compare_correlations", "correlate", "correlate_budget", "correlate_proxies",
           "export", "groundtruth", "initial_state", "search", "supernet", "train", "variants"]


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
    score: float | None = None                # the best's score by `scorer` (a combination's too)
    rejected: int | None = None               # proposals that broke --constraint (None: none given)


def _prepare_training(record: RunRecord) -> tuple[SearchProblem, TrainingMethod]:
    """The problem and the method of a supernet run, built once; options that do not fit the
    space, or data the method cannot train on, fail here, before any file is written."""
    problem = build_problem(record.space, record.data, record.train.seed, record.train.device)
    method = build_method(record, problem.space)
    check_method_data(method, problem)
    check_training(record.train, problem, len(problem.splits.train))
    return problem, method


def supernet(space: SpaceConfig = SpaceConfig(), data: DataConfig = DataConfig(),
             train_config: TrainConfig = SUPERNET_TRAINING, method: str = DEFAULT_METHOD,
             method_options: Mapping[str, Any] | None = None,
             out: str | Path | None = None) -> Path:
    """Train a supernet into a run directory (resuming it if it holds the same settings)."""
    record = supernet_record("supernet", space, data, train_config, method, method_options or {})
    problem, training_method = _prepare_training(record)
    torchrun.start(problem.device)
    run = torchrun.open_run(out or RunDir.default_path(f"supernet-{space.name}"), record)
    train_supernet_in(run, record.train, training_method, problem)
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
    With a scorer that trains nothing (`search_config.scorer` "proxy:NAME" or "oracle:TABLE")
    no supernet is trained: a training-free proxy, or a ground-truth table, scores each
    architecture. A supernet search also judges its ranking (`nas.search.trust`), and with
    `audit` K trains its K best and K random architectures stand-alone to check it."""
    asks_for_supernet = supernet_run is not None or _asks_for_training(
        train_config, method, method_options)
    if asks_for_supernet and search_config.scorer == SearchConfig().scorer:
        # The default trains nothing; a supernet given, or training asked for, joins its parts.
        search_config = replace(search_config, scorer=DEFAULT_WITH_SUPERNET)
    setting = search_config.scorer_setting  # parsed: an unknown proxy has failed already
    _check_audit(audit, audit_epochs, search_config)
    if torchrun.is_launched():
        torchrun.check_search(setting.trains_supernet and supernet_run is None, parallel)
    trained = None
    if not setting.trains_supernet:
        _check_trains_nothing(search_config, train_config, method, method_options, supernet_run)
        run, problem, scorer, search_config = _open_training_free(
            space or SpaceConfig(), data, train_config.device, search_config, out, parallel)
    else:
        if supernet_run is not None:
            run, trained = _reuse_supernet(space, search_config, supernet_run, out, parallel,
                                           train_config.device)
        else:
            record = supernet_record("search", space or SpaceConfig(), data, train_config,
                                     method, method_options or {})
            run, trained = _train_for_search(replace(record, search=search_config), out,
                                             parallel)
            if not torchrun.is_main():
                return SearchResult(run.path, None, None)  # the main process searches alone
        problem = trained.problem
        scorer = build_scorer(setting, problem, trained=trained, reference_dir=run.path)
    derived = trained.method.derive() if trained is not None else None
    if derived is not None:  # a gradient method learned its architecture: no searcher
        print(f"{trained.method.name} derives its architecture from its learned weights; "
              f"the {search_config.searcher} searcher is not run")
        found = write_derived(run, trained, scorer, derived)
    else:
        found = search_in(run, problem, scorer, search_config, parallel, train_config.device)
    if found is None:
        return SearchResult(run.path, None, None, scorer=str(setting))
    return _judged(run, problem, scorer, found, search_config, audit, audit_epochs,
                   train_config.device, trained.method.name if derived is not None else None)


def _check_constraints(problem: SearchProblem, search_config: SearchConfig,
                       method: TrainingMethod | None = None) -> None:
    """Before any training: constraints no architecture of the space meets, or a method that
    derives its architecture without a searcher for them to steer, fail here."""
    if not search_config.constraints or search_config.trials == 0:
        return
    if method is not None and method.derive() is not None:
        raise ConfigError(f"--constraint steers a searcher, but {method.name} derives its "
                          f"architecture from learned weights without one; drop --constraint "
                          f"or use a single-path method (e.g. --method {DEFAULT_METHOD})")
    check_satisfiable(problem.space, parse_constraints(search_config.constraints))


def _check_audit(audit: int, audit_epochs: int, search_config: SearchConfig) -> None:
    if audit < 0 or audit_epochs < 1:
        raise ConfigError(f"--audit takes a number of architectures >= 0 and --audit-epochs a "
                          f"number >= 1; got {audit} and {audit_epochs}")
    if audit and search_config.trials == 0:
        raise ConfigError("--audit checks a search's best architectures; --trials 0 searches none")


def _asks_for_training(train_config: TrainConfig, method: str,
                       method_options: Mapping[str, Any] | None) -> bool:
    """Whether any training or method option differs from the defaults."""
    trains = replace(train_config, seed=SUPERNET_TRAINING.seed,
                     device=SUPERNET_TRAINING.device) != SUPERNET_TRAINING
    return trains or method != DEFAULT_METHOD or bool(method_options)


def _check_trains_nothing(search_config: SearchConfig, train_config: TrainConfig, method: str,
                          method_options: Mapping[str, Any] | None,
                          supernet_run: str | Path | None) -> None:
    """A scorer that trains nothing takes no training options, and no supernet."""
    if _asks_for_training(train_config, method, method_options):
        raise ConfigError(f"--scorer {search_config.scorer} trains nothing; drop the training "
                          f"and method options, or use --scorer supernet")
    if supernet_run is not None:
        raise ConfigError(f"--scorer {search_config.scorer} scores without a supernet; drop "
                          f"--supernet, or use --scorer supernet")


def _open_training_free(space: SpaceConfig, data: DataConfig, device: str,
                        search_config: SearchConfig, out: str | Path | None, parallel: Parallel
                        ) -> tuple[RunDir, SearchProblem, Scorer, SearchConfig]:
    """A zero-training search's run: a proxy scores fresh models (seeded by the search seed),
    or a table is looked up; the run records the table's column it resolved."""
    problem = build_problem(space, data, search_config.seed, device)
    _check_constraints(problem, search_config)
    setting = search_config.scorer_setting
    run = RunDir(out or RunDir.default_path(f"{space.name}-{setting.label}"))
    # A proxy or a table is built before anything is written (the table's column resolved,
    # a shared study of another scorer refused); a combination scores its reference sample
    # into the run, so it is built, and checked, once the run is open.
    early = None if setting.keeps_reference else build_scorer(setting, problem, search_config.seed)
    if early is not None:
        setting = setting.resolved(early)
    search_config = replace(search_config, scorer=str(setting), oracle_column=setting.column)
    check_shared(parallel, problem, search_config, early, setting.column_name)
    run.open(RunRecord("search", space, data, search=search_config))
    problem.record_data(run)
    if early is not None:
        return run, problem, early, search_config
    scorer = build_scorer(setting, problem, search_config.seed, reference_dir=run.path)
    check_shared(parallel, problem, search_config, scorer, scorer.column)
    return run, problem, scorer, search_config


def _reuse_supernet(space: SpaceConfig | None, search_config: SearchConfig,
                    supernet_run: str | Path, out: str | Path | None, parallel: Parallel,
                    device: str) -> tuple[RunDir, TrainedSupernet]:
    """`nas search --supernet RUN`: a search run over another run's trained supernet."""
    trained = load_supernet(supernet_run, device)
    if space is not None and space.name != trained.problem.space.name:
        raise ConfigError(f"the supernet in {supernet_run} is a {trained.problem.space.name!r} "
                          f"supernet, but --space {space.name} was given")
    _check_constraints(trained.problem, search_config, trained.method)
    check_shared(parallel, trained.problem, search_config, None,
                 search_config.scorer_setting.column_name)
    run = RunDir(out or RunDir.default_path(trained.problem.space.name))
    run.open(RunRecord("search", search=search_config,
                       supernet_run=str(Path(supernet_run).resolve())))
    return run, trained


def _train_for_search(record: RunRecord, out: str | Path | None, parallel: Parallel
                      ) -> tuple[RunDir, TrainedSupernet]:
    """Train (or resume) the supernet a search runs over, in the search's own run directory
    (every rank under torchrun)."""
    problem, method = _prepare_training(record)
    _check_constraints(problem, record.search, method)
    check_shared(parallel, problem, record.search, None, record.search.scorer_setting.column_name)
    torchrun.start(problem.device)
    run = torchrun.open_run(out or RunDir.default_path(record.space.name), record)
    return run, train_supernet_in(run, record.train, method, problem)


def _judged(run: RunDir, problem: SearchProblem, scorer: Scorer, found: SearchOutcome,
            search_config: SearchConfig, audit: int, audit_epochs: int, device: str,
            derived_by: str | None) -> SearchResult:
    """The search's result, with how far it can be trusted and, with `audit` K, its stand-alone
    check; a supernet's median score against chance says how well it was trained."""
    table, best = found.table, found.best
    trust = assess(run, problem, scorer, table) if len(table) >= 2 else None
    stand_alone = TrainConfig(epochs=audit_epochs, seed=search_config.seed, device=device)
    checked = audit_search(run, problem, scorer, table, audit, stand_alone) if audit else None
    setting = search_config.scorer_setting
    training, accuracy = {}, found.score
    if setting.trains_supernet:  # the best's own accuracy, a combination's supernet part
        accuracy = float(table.loc[table["arch"] == str(best), setting.supernet_column].iloc[0])
        training = {"median_val_accuracy": float(table[setting.supernet_column].median()),
                    "chance_accuracy": 100.0 / problem.space.skeleton.num_classes}
    return SearchResult(run.path, best, accuracy, problem.space.params_m(best),
                        problem.space.flops_m(best), scorer=str(setting), trust=trust,
                        audit=checked, derived_by=derived_by, score=found.score,
                        rejected=found.rejected if search_config.constraints else None,
                        **training)


def export(run_dir: str | Path, out: str | Path, arch: str | None = None, init: str = "inherit",
           overwrite: bool = False, device: str = TrainConfig.device,
           teacher: str | Path | None = None, format: str | None = None) -> ExportedFiles:
    """Export `arch` (default: the run's best) from a run's supernet as a standalone model.

    With inherited weights the model carries BatchNorm statistics recalibrated for `arch`
    (a plain model normalises with running statistics, whatever mode the method scores in), or
    under `bn_mode` "running" the supernet's own. `OUT.json` records `val_accuracy`, the
    exported model's own validation accuracy, and the method's score of `arch`
    (`supernet_score`, in its `bn_mode`): equal under "recalibrate" and "running".
    "scratch" gives fresh weights, "weight-selection" weights selected from the exported model
    `teacher`; neither uses the supernet's.
    The model is a torch.export program (`format` "pt2") or ONNX ("onnx", with the `onnx`
    extra installed); None takes the format `out`'s suffix names (`.pt2` or `.onnx`).
    """
    return export_run(run_dir, out, arch, init, overwrite, device, teacher, format)


def train(space: SpaceConfig, arch: str, data: DataConfig = DataConfig(),
          train_config: TrainConfig = TrainConfig(), out: str | Path | None = None,
          init: str = "scratch", teacher: str | Path | None = None) -> TrainResult:
    """Train one architecture stand-alone; report and save its test accuracy and model.

    It starts from fresh weights ("scratch"), from weights selected from the exported model
    `teacher` ("weight-selection"), or from the supernet of run `teacher` ("inherit"); see
    `initial_state`. A resumed run continues from its checkpoint instead.
    """
    return train_architecture(space, arch, data, train_config, out, init, teacher)


def groundtruth(space: SpaceConfig, data: DataConfig = DataConfig(),
                train_config: TrainConfig = TrainConfig(), sample: int | None = None,
                seeds: int | None = None, out: str | Path | None = None) -> Path:
    """Train `sample` architectures stand-alone, `seeds` seeds each, as ground truth for
    `correlate` (`nas.ranking.groundtruth`; its defaults where None); resumable."""
    from nas.ranking import groundtruth as ground_truth

    return ground_truth.groundtruth(
        space, data, train_config,
        sample if sample is not None else ground_truth.DEFAULT_SAMPLE,
        seeds if seeds is not None else ground_truth.DEFAULT_SEEDS, out)


def correlate(run_dirs: Sequence[str | Path], ground_truth: str | Path,
              column: str | None = None, archs: str | None = None, sample: int | None = None,
              seed: int = 0, overwrite: bool = False, device: str = TrainConfig.device,
              scorer: str | None = None) -> Iterator[dict]:
    """Each run's ranking by `scorer` (None: the default `nas search` scores with) against
    `ground_truth`, written into the run and yielded as it is done (`nas.ranking.correlate`)."""
    from nas.ranking.correlate import DEFAULT_SAMPLE, correlate_run

    for run_dir in run_dirs:
        yield correlate_run(run_dir, ground_truth, column, archs,
                            sample if sample is not None else DEFAULT_SAMPLE, seed,
                            overwrite=overwrite, device=device, scorer=scorer)


def compare_correlations(reports: Sequence[dict], out: str | Path) -> dict:
    """Across runs scored on the same architectures: top-k overlap and score variance."""
    from nas.ranking.correlate import compare_runs

    return compare_runs(list(reports), out)


def correlate_budget(run_dirs: Sequence[str | Path], ground_truth: str | Path, out: str | Path,
                     column: str | None = None, archs: str | None = None,
                     sample: int | None = None, seed: int = 0, references: str | None = None,
                     device: str = TrainConfig.device) -> pd.DataFrame:
    """Kendall tau of every snapshot the runs kept, against steps and wall time
    (`nas.ranking.budget_curve`); returns each method's mean per snapshot."""
    from nas.ranking.budget_curve import correlate_budget as budget, snapshot_means
    from nas.ranking.correlate import DEFAULT_SAMPLE

    table = budget(run_dirs, ground_truth, out, column, archs,
                   sample if sample is not None else DEFAULT_SAMPLE, seed, references, device)
    return snapshot_means(table)


def correlate_proxies(proxies: str, space: SpaceConfig, data: DataConfig,
                      ground_truth: str | Path, out: str | Path, column: str | None = None,
                      archs: str | None = None, sample: int | None = None, seed: int = 0,
                      proxy_seeds: Sequence[int] = (0,), overwrite: bool = False,
                      device: str = TrainConfig.device) -> list[dict]:
    """Rank the ground truth's architectures with training-free proxies (`proxies`:
    comma-separated names), each (proxy, seed) written as a run under `out`."""
    from nas.ranking.correlate import DEFAULT_SAMPLE, correlate_proxies as score_proxies
    from nas.scorers.proxies import parse_proxy_names

    names = parse_proxy_names(proxies)
    problem = build_problem(space, data, proxy_seeds[0], device)
    return score_proxies(problem, names, ground_truth, out, column, archs,
                         sample if sample is not None else DEFAULT_SAMPLE, seed, proxy_seeds,
                         overwrite=overwrite)


def ablate(study: Study) -> dict:
    """Train the study's baseline recipe and its variants (several seeds each), rank each
    against ground truth, write the table and plot; see `nas ablate --help` and
    `nas.ranking.ablation`. Build `study` with `Recipe` and `variants`."""
    return write_report(study, run_study(study))


def bench(out: str | Path | None = None, only: str | None = None, quick: bool = False,
          data: str | None = None) -> list[dict]:
    """The speed figures (`nas.bench`), each against its baseline in the same run."""
    from nas.bench import DEFAULT_OUT, bench as run_bench

    return run_bench(out if out is not None else DEFAULT_OUT, only, quick, data)
