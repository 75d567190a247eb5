"""`nas search`: train a supernet (or reuse one, or train nothing) and search for the best
architecture; prints the result, how far it can be trusted, and what to do next."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from nas import api
from nas.cli import options
from nas.cli.options import duration, names, non_negative, positive
from nas.config import SUPERNET_TRAINING, RunRecord, SearchConfig, TrainConfig
from nas.errors import NasError
from nas.runs import RunDir
from nas.scorers import ScorerSetting
from nas.scorers.combined import COMBINATIONS, DEFAULT_WITH_SUPERNET
from nas.scorers.proxies import PROXIES
from nas.searchers import SEARCHERS
from nas.training import torchrun

NAME = "search"
HELP = "Train a supernet (or reuse one) and search it for the best architecture."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_shared(parser, is_space_required=False, defaults=SUPERNET_TRAINING)
    options.add_method(parser)
    add = parser.add_argument
    add("--supernet", default=None, metavar="RUN_DIR",
        help="reuse the supernet of this run instead of training one")
    add("--searcher", default=SearchConfig.searcher,
        help=f"{names(SEARCHERS)} (default {SearchConfig.searcher})")
    add("--trials", type=non_negative, default=SearchConfig.trials,
        help=f"architectures to score (default {SearchConfig.trials}; 0 = no search)")
    add("--scorer", default=SearchConfig.scorer, metavar="SCORER",
        help=f"what scores an architecture: supernet, a training-free proxy "
             f"({names(PROXIES)}; no training at all), a combination of them joined by + "
             f"(e.g. supernet+naswot+params; mean: before it for the mean of quantiles), "
             f"az_nas, or default ({COMBINATIONS['default']}, chosen by protocol v2; "
             f"with --supernet: {DEFAULT_WITH_SUPERNET})")
    add("--oracle", default=None, metavar="TABLE",
        help="score by looking architectures up in a ground-truth table covering "
             "the whole space (e.g. the NAS-Bench-201 CSV): compares searchers "
             "without training")
    add("--column", default=None, metavar="C",
        help="with --oracle: the table's accuracy column (default cifar10_test, else accuracy)")
    add("--objectives", default=SearchConfig.objectives, metavar="O[,O]",
        help="accuracy (default) or accuracy with any of params, flops, latency "
             "(ms, measured here), e.g. accuracy,flops: a Pareto search "
             "(pareto.csv, pareto.png) with --searcher nsga2, tpe or random")
    add("--pick", default=SearchConfig.pick, metavar="RULE",
        help="which architecture best.txt names: accuracy (the most accurate, "
             "default) or the most accurate under a limit, e.g. flops<=50, "
             "params<=0.5, latency<=2")
    add("--constraint", action="append", default=[], metavar="RULE",
        help="search only architectures within a limit, in --pick's form (e.g. "
             "flops<=50, params<=0.5, latency<=2); repeat for several, all hold. "
             "Others are not scored and do not count toward --trials")
    add("--search-time", type=duration, default=None, metavar="TIME",
        help="stop the search after TIME spent scoring (e.g. 10m), or at --trials, "
             "whichever comes first; a resumed search counts what it spent, and "
             "workers sharing a study spend it together")
    add("--storage", default=None, metavar="URL",
        help="search in a study shared with other processes on any machines: "
             "postgresql://USER@HOST/DB; default: SQLite in the run directory, one process")
    add("--study", default="search", metavar="NAME",
        help="the shared study's name (default search)")
    add("--workers", type=positive, default=1, metavar="K",
        help="search with K local processes on one study (a journal file in the "
             "run directory, or --storage); --trials counts them all")
    add("--audit", type=non_negative, default=0, metavar="K",
        help="afterwards, train the K best and K random architectures stand-alone "
             "(the nas train budget) and report whether the found one beats "
             "random ones (audit.csv; default 0: no audit)")
    add("--audit-epochs", type=positive, default=None, metavar="E",
        help=f"stand-alone epochs of each audited architecture "
             f"(default {TrainConfig().epochs}, as nas train)")


def _search_config(args: argparse.Namespace) -> SearchConfig:
    scorer = args.scorer
    if args.oracle is not None:
        if args.scorer != SearchConfig.scorer:
            raise NasError(f"--oracle scores by table lookup; drop --scorer {args.scorer}")
        scorer = str(ScorerSetting("oracle", str(Path(args.oracle).resolve())))
    return SearchConfig(searcher=args.searcher, trials=args.trials, seed=args.seed,
                        scorer=scorer, oracle_column=args.column, objectives=args.objectives,
                        pick=args.pick, constraints=tuple(args.constraint),
                        time_budget_s=args.search_time)


def run(args: argparse.Namespace) -> None:
    space, data, train = options.configs(args)
    search = _search_config(args)
    if args.audit_epochs is not None and not args.audit:
        raise NasError("--audit-epochs sets the audit's training; give --audit K too")
    result = api.search(space, data, train, search, args.method, options.method_options(args),
                        args.supernet, args.out, audit=args.audit,
                        audit_epochs=args.audit_epochs or TrainConfig().epochs,
                        parallel=api.Parallel(args.storage, args.study, args.workers))
    if not torchrun.is_main():
        return  # the main process reports
    if result.best is None:
        print(f"no search (--trials 0); run directory {result.run_dir}")
    elif ScorerSetting.parse(result.scorer).trains_supernet:
        _report_supernet_search(result, args.trials)
    else:
        _report_training_free_search(result)


def _report_training_free_search(result: api.SearchResult) -> None:
    print(f"best architecture by {result.scorer} (no training): {result.best}")
    print(f"  score {result.best_val_accuracy:.6g}, {result.params_m:.4f} M params, "
          f"{result.flops_m:.3f} MFLOPs")
    _print_checks(result)
    print(f"run directory: {result.run_dir}  (trials.csv, best.txt, study.db, tb/)")
    print(f"next: nas train --space {result.best.space}{skeleton_flags(result.run_dir)} --arch "
          f"\"{result.best}\"   |   "
          f"nas export {result.run_dir} --init scratch --out best.pt2")


def _print_checks(result: api.SearchResult) -> None:
    """What the constraints cost the searcher, how far the ranking can be trusted, and the
    audit's verdict or how to get one."""
    if result.rejected is not None:
        print(f"  {result.rejected} proposals broke --constraint and were not scored "
              f"(pruned trials in the study)")
    for line in [*(result.trust.lines() if result.trust else []),
                 *(result.audit.lines() if result.audit else [])]:
        print(line)
    if result.audit is None:
        print("  check it: --audit K trains the K best and K random architectures stand-alone")


def _report_supernet_search(result: api.SearchResult, trials: int) -> None:
    print(f"best architecture: {result.best}")
    print(f"  validation accuracy {result.best_val_accuracy:.2f}% (supernet weights), "
          f"{result.params_m:.4f} M params, {result.flops_m:.3f} MFLOPs")
    if result.score != result.best_val_accuracy:  # ranked by a combination
        print(f"  score by {result.scorer}: {result.score:.4g} (trials.csv has each part)")
    if result.derived_by is not None:
        print(f"  derived by {result.derived_by} from its learned mixing weights "
              f"(architecture_weights.csv / .png; chance {result.chance_accuracy:.2f}%)")
    else:
        print(f"  median over {trials} trials {result.median_val_accuracy:.2f}% "
              f"(chance {result.chance_accuracy:.2f}%)")
    if result.derived_by is None and result.median_val_accuracy < 2 * result.chance_accuracy:
        print("  warning: the supernet scores most architectures close to chance, so its ranking is "
              "weak; train it longer (--steps, --time-budget) or on a smaller skeleton (--width, --cells)")
    _print_checks(result)
    print(f"run directory: {result.run_dir}  (trials.csv, best.txt, study.db, tb/, supernet.pt)")
    print(f"next: nas export {result.run_dir} --out best.pt2   |   "
          f"nas train --space {result.best.space}{skeleton_flags(result.run_dir)} --arch \"{result.best}\"")


def skeleton_flags(run_dir: Path) -> str:
    """The options a stand-alone training needs to build the searched skeleton on the same data,
    read from what the run recorded (a search over another run's supernet: from that run)."""
    record = RunDir(run_dir).record(RunRecord)
    if record.supernet_run is not None:
        record = RunDir(record.supernet_run).record(RunRecord)
    space, data = record.space, record.data
    flags = [("width", space.width), ("cells", space.cells), ("data", data.path),
             ("image-size", data.image_size), ("flip", None if data.flip == "auto" else data.flip),
             ("train-subset", data.train_subset), ("val-images", data.val_images)]
    return "".join(f" --{name} {shlex.quote(str(value))}" for name, value in flags
                   if value is not None)
