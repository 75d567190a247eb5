"""`nas` on the command line: argparse subcommands that build configs and call `nas.api`.

Every `NasError` becomes one line on stderr and exit code 2; nothing else is printed for it.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable, Sequence

from nas.config import (DEFAULT_METHOD, SUPERNET_TRAINING, DataConfig, SearchConfig,
                        SpaceConfig, TrainConfig)
from nas.ranking.correlate import DEFAULT_SAMPLE as CORRELATE_SAMPLE
from nas.training import torchrun
from nas.errors import NasError
from supernets.precision import PRECISIONS
from nas.ranking.groundtruth import DEFAULT_SAMPLE as GROUNDTRUTH_SAMPLE
from nas.ranking.groundtruth import DEFAULT_SEEDS as GROUNDTRUTH_SEEDS
from nas.scorers.proxies import PROXIES, parse_proxy_names
from nas.searchers import SEARCHERS
from search_spaces import SPACES
from supernets import METHODS

# Every default below is read from the config it fills (one place for each): the supernet
# commands train `SUPERNET_TRAINING`, the stand-alone ones `TrainConfig()`.
_STANDALONE_TRAINING = TrainConfig()


def _names(registry) -> str:
    return ", ".join(registry.names())


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the rule, the value, what is valid), exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_positive, _non_negative = _whole_number(1), _whole_number(0)


def _duration(text: str) -> float:
    from supernets.budget import parse_duration

    try:
        return parse_duration(text)
    except NasError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="a .npz file or a cifar-10-batches-py directory "
                             "(default: the embedded handwritten digits)")
    parser.add_argument("--batch-size", type=_positive, default=DataConfig.batch_size)
    parser.add_argument("--train-subset", type=_positive, default=None, metavar="N",
                        help="use a seeded subset of N training images (default: all)")
    parser.add_argument("--val-images", type=_positive, default=None, metavar="N",
                        help="score architectures on N training images outside --train-subset "
                             "(default: hold out a fifth of the subset)")
    parser.add_argument("--seed", type=_non_negative, default=TrainConfig.seed)
    parser.add_argument("--device", default=TrainConfig.device,
                        help=f"auto, cpu or cuda[:N] (default: {TrainConfig.device})")


def _add_space(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--space", required=required, default=None,
                        help=f"search space: {_names(SPACES)}"
                             + ("" if required else f" (default {SpaceConfig.name})"))
    parser.add_argument("--width", type=_positive, default=None, metavar="C",
                        help="skeleton width (NB201/DARTS C; mobilenet first-conv width)")
    parser.add_argument("--cells", type=_positive, default=None, metavar="N",
                        help="skeleton depth (NB201 cells per stage; DARTS layers; mobilenet stages)")


def _add_training(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    # The budget options default to None so that a stated one replaces the default budget
    # whole (the supernet default is a number of steps; --epochs 50 must not be capped by it).
    parser.set_defaults(training_defaults=defaults)
    default_budget = (f"{defaults.steps} steps" if defaults.steps is not None
                      else f"{defaults.epochs} epochs")
    parser.add_argument("--epochs", type=_non_negative, default=None,
                        help=f"training epochs (default budget: {default_budget}; with "
                             f"--time-budget the upper bound, default {defaults.epochs})")
    parser.add_argument("--lr", type=_positive_float, default=defaults.lr,
                        help=f"initial learning rate (default {defaults.lr})")
    parser.add_argument("--lr-schedule", choices=("cosine", "linear", "constant"),
                        default=defaults.lr_schedule,
                        help=f"learning-rate decay per step (default {defaults.lr_schedule})")
    parser.add_argument("--warmup-epochs", type=_non_negative, default=defaults.warmup_epochs,
                        metavar="N", help=f"linear learning-rate warm-up epochs (default "
                                          f"{defaults.warmup_epochs})")
    parser.add_argument("--checkpoint-every", type=_non_negative,
                        default=defaults.checkpoint_every_steps, metavar="STEPS",
                        help="checkpoint every STEPS steps as well as every epoch (0: epochs only; "
                             f"default {defaults.checkpoint_every_steps})")
    parser.add_argument("--steps", type=_positive, default=None, metavar="N",
                        help="train exactly N optimiser steps instead of --epochs")
    parser.add_argument("--time-budget", type=_duration, default=None,
                        metavar="TIME", help="train as many steps as fit in TIME (90s, 10m, "
                                             "1h30m); --epochs is then the upper bound")
    parser.add_argument("--precision", default=defaults.precision,
                        choices=PRECISIONS,
                        help="training arithmetic: fp32, or bf16/fp16 autocast (fp16 with loss "
                             "scaling); auto: bf16 (or fp16) on a GPU, fp32 on a CPU")
    parser.add_argument("--channels-last", default=None, choices=("on", "off"),
                        help="channels-last memory format for model and batches (default: on "
                             "for CUDA, off on a CPU)")
    parser.add_argument("--keep-checkpoints", default=defaults.keep_checkpoints, metavar="N|S,S",
                        help="keep snapshots along the run for ranking-versus-budget curves: N "
                             "evenly spaced, or at steps such as 1000,5000 (default: none)")


def _add_shared(parser: argparse.ArgumentParser, *, is_space_required: bool,
                defaults: TrainConfig) -> None:
    """The options of every command that trains: space and skeleton, data, training, --out."""
    _add_space(parser, required=is_space_required)
    _add_data(parser)
    _add_training(parser, defaults)
    parser.add_argument("--out", default=None, metavar="RUN_DIR")


def _add_method(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        help=f"supernet training method: {_names(METHODS)} "
                             f"(default {DEFAULT_METHOD})")
    parser.add_argument("--method-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="a method option, checked against the method's settings; repeatable")


def _configs(args: argparse.Namespace, with_training: bool = True):
    from nas.data.datasets import check_data_path

    data = DataConfig(path=str(Path(check_data_path(args.data)).resolve())
                      if args.data is not None else None,
                      train_subset=args.train_subset,
                      **({"batch_size": args.batch_size, "val_images": args.val_images}
                         if with_training else {}))
    train = _train_config(args) if with_training else None
    space = SpaceConfig(args.space, args.width, args.cells) if args.space is not None else None
    return space, data, train


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The training options; a stated budget (--epochs, --steps, --time-budget) replaces the
    command's default budget whole."""
    defaults: TrainConfig = args.training_defaults
    if args.epochs is None and args.steps is None and args.time_budget is None:
        epochs, steps, time_budget = defaults.epochs, defaults.steps, defaults.time_budget_s
    else:
        epochs = args.epochs if args.epochs is not None else defaults.epochs
        steps, time_budget = args.steps, args.time_budget
    return TrainConfig(epochs=epochs, seed=args.seed, device=args.device,
                       checkpoint_every_steps=args.checkpoint_every,
                       lr_schedule=args.lr_schedule, warmup_epochs=args.warmup_epochs,
                       lr=args.lr, steps=steps, time_budget_s=time_budget,
                       keep_checkpoints=args.keep_checkpoints, precision=args.precision,
                       compile=getattr(args, "compile", False),
                       channels_last=(None if args.channels_last is None
                                      else args.channels_last == "on"))


def _method_options(args: argparse.Namespace) -> dict[str, str]:
    options = {}
    for pair in args.method_opt:
        key, sep, value = pair.partition("=")
        if not sep:
            raise NasError(f"--method-opt {pair!r} must look like key=value")
        options[key] = value
    return options


def _run_supernet(args: argparse.Namespace) -> None:
    from nas import api

    space, data, train = _configs(args)
    run = api.supernet(space, data, train, args.method, _method_options(args), args.out)
    if torchrun.is_main():
        print(f"supernet: {run / 'supernet.pt'}\nrun directory: {run}")


def _run_search(args: argparse.Namespace) -> None:
    from nas import api

    space, data, train = _configs(args)
    scorer = args.scorer
    if args.oracle is not None:
        if args.scorer != SearchConfig.scorer:
            raise NasError(f"--oracle scores by table lookup; drop --scorer {args.scorer}")
        scorer = f"oracle:{Path(args.oracle).resolve()}"
    search = SearchConfig(searcher=args.searcher, trials=args.trials, seed=args.seed,
                          scorer=scorer, oracle_column=args.column, objectives=args.objectives,
                          pick=args.pick, time_budget_s=args.search_time)
    if args.audit_epochs is not None and not args.audit:
        raise NasError("--audit-epochs sets the audit's training; give --audit K too")
    result = api.search(space, data, train, search, args.method, _method_options(args),
                        args.supernet, args.out, audit=args.audit,
                        audit_epochs=args.audit_epochs or TrainConfig().epochs,
                        parallel=api.Parallel(args.storage, args.study, args.workers))
    if not torchrun.is_main():
        return  # the main process reports
    if result.best is None:
        print(f"no search (--trials 0); run directory {result.run_dir}")
        return
    if result.scorer != "supernet":
        print(f"best architecture by {result.scorer} (no training): {result.best}")
        print(f"  score {result.best_val_accuracy:.6g}, {result.params_m:.4f} M params, "
              f"{result.flops_m:.3f} MFLOPs")
        print(f"run directory: {result.run_dir}  (trials.csv, best.txt, study.db, tb/)")
        print(f"next: nas train --space {result.best.space}{_skeleton_flags(result.run_dir)} --arch "
              f"\"{result.best}\"   |   "
              f"nas export {result.run_dir} --init scratch --out best.pt2")
        return
    print(f"best architecture: {result.best}")
    print(f"  validation accuracy {result.best_val_accuracy:.2f}% (supernet weights), "
          f"{result.params_m:.4f} M params, {result.flops_m:.3f} MFLOPs")
    if result.derived_by is not None:
        print(f"  derived by {result.derived_by} from its learned mixing weights "
              f"(architecture_weights.csv / .png; chance {result.chance_accuracy:.2f}%)")
    else:
        print(f"  median over {args.trials} trials {result.median_val_accuracy:.2f}% "
              f"(chance {result.chance_accuracy:.2f}%)")
    if result.derived_by is None and result.median_val_accuracy < 2 * result.chance_accuracy:
        print("  warning: the supernet scores most architectures close to chance, so its ranking is "
              "weak; train it longer (--steps, --time-budget) or on a smaller skeleton (--width, --cells)")
    for line in [*(result.trust.lines() if result.trust else []),
                 *(result.audit.lines() if result.audit else [])]:
        print(line)
    if result.audit is None:
        print("  check it: --audit K trains the K best and K random architectures stand-alone")
    print(f"run directory: {result.run_dir}  (trials.csv, best.txt, study.db, tb/, supernet.pt)")
    print(f"next: nas export {result.run_dir} --out best.pt2   |   "
          f"nas train --space {result.best.space}{_skeleton_flags(result.run_dir)} --arch \"{result.best}\"")


def _skeleton_flags(run_dir: Path) -> str:
    """The options a stand-alone training needs to build the searched skeleton on the same data,
    read from what the run recorded (a search over another run's supernet: from that run)."""
    from nas.runs.run_dir import RunDir

    settings = RunDir(run_dir).settings()
    if "supernet_run" in settings:
        settings = RunDir(settings["supernet_run"]).settings()
    space, data = settings.get("space", {}), settings.get("data", {})
    flags = [("width", space.get("width")), ("cells", space.get("cells")),
             ("data", data.get("path")), ("train-subset", data.get("train_subset")),
             ("val-images", data.get("val_images"))]
    return "".join(f" --{name} {shlex.quote(str(value))}" for name, value in flags
                   if value is not None)


def _run_export(args: argparse.Namespace) -> None:
    from nas import api

    files = api.export(args.run_dir, args.out, args.arch, args.init, args.overwrite, args.device,
                       args.teacher)
    print(f"exported: {files.program} (torch.export), {files.state_dict} (weights), "
          f"{files.metadata} (architecture)")


def _run_train(args: argparse.Namespace) -> None:
    from nas import api

    space, data, train = _configs(args)
    result = api.train(space, args.arch, data, train, args.out, args.init, args.teacher)
    m = result.metrics
    print(f"test accuracy {m['test_accuracy']:.2f}% ({m['params_m']:.4f} M params, "
          f"{m['flops_m']:.3f} MFLOPs): {result.arch}")
    print(f"run directory: {result.run_dir}  (metrics.json, model.pt2)")


def _run_groundtruth(args: argparse.Namespace) -> None:
    from nas.ranking.groundtruth import GROUNDTRUTH_FILE, groundtruth

    space, data, train = _configs(args)
    run = groundtruth(space, data, train, args.sample, args.seeds, args.out)
    print(f"ground truth: {run / GROUNDTRUTH_FILE}  (one row per architecture and seed)")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct whole numbers >= 0 such as 0,1,2; "
                                         f"got {text!r}")
    return seeds


def _run_correlate(args: argparse.Namespace) -> None:
    from nas.ranking.correlate import compare_runs, correlate_run, format_report

    if args.proxy is not None:
        _run_correlate_proxies(args)
        return
    if not args.run_dirs:
        raise NasError("give one or more RUN_DIRs to score with their supernets, or --proxy "
                       "NAME[,NAME] with --space to score with training-free proxies")
    if args.space is not None or args.data is not None or args.train_subset is not None:
        raise NasError("--space, --data and --train-subset are for --proxy; a run directory "
                       "knows its own space and data")
    if args.budget:
        _run_correlate_budget(args)
        return
    if len(args.run_dirs) > 1 and args.out is None:
        raise NasError("several runs need --out DIR for their across-run comparison")
    reports = []
    for run_dir in args.run_dirs:
        report = correlate_run(run_dir, args.ground_truth, args.column, args.archs, args.sample,
                               args.seed, overwrite=args.overwrite, device=args.device)
        print(f"{run_dir}: {report['architectures']} architectures vs {report['column']} of "
              f"{report['ground_truth']}\n{format_report(report)}\nwritten to {report['out']}")
        reports.append(report)
    if len(reports) > 1:
        summary = compare_runs(reports, args.out)
        print("across runs: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if k != "runs"))


def _run_correlate_budget(args: argparse.Namespace) -> None:
    from nas.ranking.budget_curve import correlate_budget, snapshot_means

    if args.out is None:
        raise NasError("--budget needs --out DIR for budget.csv and budget.png")
    table = correlate_budget(args.run_dirs, args.ground_truth, args.out, args.column, args.archs,
                             args.sample, args.seed, args.references, args.device)
    for row in snapshot_means(table).itertuples():
        print(f"{row.method} at {row.steps:.0f} steps ({row.elapsed_s:.0f} s): Kendall tau "
              f"{row.kendall_tau:.3f} over {row.runs} run(s)")
    print(f"written to {Path(args.out) / 'budget.csv'} and budget.png")


def _run_correlate_proxies(args: argparse.Namespace) -> None:
    from nas.ranking.correlate import correlate_proxies, format_report
    from nas.problem import build_problem

    if args.run_dirs:
        raise NasError("--proxy scores without a supernet; drop the RUN_DIRs (or --proxy)")
    if args.space is None or args.out is None:
        raise NasError("--proxy needs --space (and --width/--cells/--data as the ground truth "
                       "was trained) and --out DIR for the proxies' results")
    names = parse_proxy_names(args.proxy)
    space, data, _ = _configs(args, with_training=False)
    problem = build_problem(space, data, args.proxy_seeds[0], args.device)
    for report in correlate_proxies(problem, names, args.ground_truth, args.out, args.column,
                                    args.archs, args.sample, args.seed, args.proxy_seeds,
                                    overwrite=args.overwrite):
        print(f"{report['proxy']} (seed {report['proxy_seed']}, {report['wall_s']:.1f} s): "
              f"{report['architectures']} architectures vs {report['column']} of "
              f"{report['ground_truth']}\n{format_report(report)}\nwritten to {report['out']}")


def _run_bench(args: argparse.Namespace) -> None:
    from nas.bench import bench

    rows = bench(args.out, args.only, args.quick, args.data)
    missed = [f"{r['figure']} ({r['space']})" for r in rows if r["met"] is False]
    print(f"{len(rows)} figures written to {args.out}"
          + (f"; goal missed: {', '.join(missed)}" if missed else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Neural architecture search with "
                                     "weight-sharing supernets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Callable[[argparse.Namespace], None]):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    sup = command("supernet", "Train a weight-sharing supernet into a run directory.", _run_supernet)
    _add_shared(sup, is_space_required=True, defaults=SUPERNET_TRAINING)
    _add_method(sup)

    srch = command("search", "Train a supernet (or reuse one) and search it for the best "
                   "architecture.", _run_search)
    _add_shared(srch, is_space_required=False, defaults=SUPERNET_TRAINING)
    _add_method(srch)
    srch.add_argument("--supernet", default=None, metavar="RUN_DIR",
                      help="reuse the supernet of this run instead of training one")
    srch.add_argument("--searcher", default=SearchConfig.searcher,
                      help=f"{_names(SEARCHERS)} (default {SearchConfig.searcher})")
    srch.add_argument("--trials", type=_non_negative, default=SearchConfig.trials,
                      help=f"architectures to score (default {SearchConfig.trials}; 0 = no search)")
    srch.add_argument("--scorer", default=SearchConfig.scorer, metavar="SCORER",
                      help=f"what scores an architecture: supernet (default) or proxy:NAME, a "
                           f"training-free proxy ({_names(PROXIES)}): no training at all")
    srch.add_argument("--oracle", default=None, metavar="TABLE",
                      help="score by looking architectures up in a ground-truth table covering "
                           "the whole space (e.g. the NAS-Bench-201 CSV): compares searchers "
                           "without training")
    srch.add_argument("--column", default=None, metavar="C",
                      help="with --oracle: the table's accuracy column (default cifar10_test, "
                           "else accuracy)")
    srch.add_argument("--objectives", default=SearchConfig.objectives, metavar="O[,O]",
                      help="accuracy (default) or accuracy with any of params, flops, latency "
                           "(ms, measured here), e.g. accuracy,flops: a Pareto search "
                           "(pareto.csv, pareto.png) with --searcher nsga2, tpe or random")
    srch.add_argument("--pick", default=SearchConfig.pick, metavar="RULE",
                      help="which architecture best.txt names: accuracy (the most accurate, "
                           "default) or the most accurate under a limit, e.g. flops<=50, "
                           "params<=0.5, latency<=2")
    srch.add_argument("--search-time", type=_duration, default=None, metavar="TIME",
                      help="stop the search after TIME spent scoring (e.g. 10m), or at --trials, "
                           "whichever comes first; a resumed search counts what it spent, and "
                           "workers sharing a study spend it together")
    srch.add_argument("--storage", default=None, metavar="URL",
                      help="search in a study shared with other processes on any machines: "
                           "postgresql://USER@HOST/DB; default: SQLite in the run directory, "
                           "one process")
    srch.add_argument("--study", default="search", metavar="NAME",
                      help="the shared study's name (default search)")
    srch.add_argument("--workers", type=_positive, default=1, metavar="K",
                      help="search with K local processes on one study (a journal file in the "
                           "run directory, or --storage); --trials counts them all")
    srch.add_argument("--audit", type=_non_negative, default=0, metavar="K",
                      help="afterwards, train the K best and K random architectures stand-alone "
                           "(the nas train budget) and report whether the found one beats "
                           "random ones (audit.csv; default 0: no audit)")
    srch.add_argument("--audit-epochs", type=_positive, default=None,
                      metavar="E", help=f"stand-alone epochs of each audited architecture "
                                        f"(default {TrainConfig().epochs}, as nas train)")

    exp = command("export", "Export an architecture as a standalone PyTorch model.", _run_export)
    exp.add_argument("run_dir", metavar="RUN_DIR")
    exp.add_argument("--arch", default=None, help="architecture string (default: the run's best)")
    exp.add_argument("--out", required=True, metavar="FILE.pt2")
    exp.add_argument("--init", default="inherit",
                     choices=["inherit", "scratch", "weight-selection"],
                     help="weights from the supernet (inherit), freshly initialised (scratch), or "
                          "selected from a larger trained model (weight-selection, --teacher)")
    exp.add_argument("--teacher", default=None, metavar="FILE.pt2",
                     help="with --init weight-selection: an exported model of the same space, "
                          "at least as wide and deep (Xu et al., ICLR 2024)")
    exp.add_argument("--overwrite", action="store_true", help="replace existing output files")
    exp.add_argument("--device", default=TrainConfig.device)

    trn = command("train", "Train one architecture stand-alone and report test accuracy.",
                  _run_train)
    _add_shared(trn, is_space_required=True, defaults=_STANDALONE_TRAINING)
    trn.add_argument("--arch", required=True, help="architecture string of the space")
    trn.add_argument("--init", default="scratch",
                     choices=["scratch", "weight-selection", "inherit"],
                     help="first weights: fresh (scratch, default), selected from a larger "
                          "exported model (weight-selection), or a supernet's (inherit)")
    trn.add_argument("--teacher", default=None, metavar="FILE.pt2|RUN_DIR",
                     help="with --init weight-selection an exported model FILE.pt2; with --init "
                          "inherit a supernet run of the same space and skeleton")
    trn.add_argument("--compile", action="store_true",
                     help="torch.compile the model's forward (faster steps on a GPU after a "
                          "compilation of tens of seconds)")

    gt = command("groundtruth", "Train sampled architectures stand-alone (K seeds each) as "
                 "ground truth for nas correlate.", _run_groundtruth)
    _add_shared(gt, is_space_required=True, defaults=_STANDALONE_TRAINING)
    gt.add_argument("--sample", type=_positive, default=GROUNDTRUTH_SAMPLE,
                    help=f"architectures (default {GROUNDTRUTH_SAMPLE})")
    gt.add_argument("--seeds", type=_positive, default=GROUNDTRUTH_SEEDS,
                    help=f"seeds per architecture (default {GROUNDTRUTH_SEEDS})")

    cor = command("correlate", "Rank architectures with trained supernets and compare with "
                  "ground truth (Kendall tau, Spearman, Pearson, top-k precision, regret).",
                  _run_correlate)
    cor.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    cor.add_argument("--ground-truth", required=True, metavar="CSV",
                     help="arch,accuracy CSV (nas groundtruth) or a NAS-Bench-201 table")
    cor.add_argument("--column", default=None, help="accuracy column (default: accuracy, or "
                     "cifar10_test for a NAS-Bench-201 table)")
    cor.add_argument("--archs", default=None, metavar="FILE", help="architectures to score, one a line")
    cor.add_argument("--sample", type=_positive, default=CORRELATE_SAMPLE,
                     help=f"architectures (default {CORRELATE_SAMPLE})")
    cor.add_argument("--seed", type=_non_negative, default=0)
    cor.add_argument("--out", default=None, metavar="DIR",
                     help="across-run results (several runs); with --proxy, where each proxy's "
                          "results go (DIR/proxy-NAME-seedK/)")
    cor.add_argument("--overwrite", action="store_true")
    cor.add_argument("--device", default=TrainConfig.device)
    cor.add_argument("--budget", action="store_true",
                     help="score every snapshot the runs kept (--keep-checkpoints) and their "
                          "final weights: Kendall tau against training steps and wall time "
                          "(DIR/budget.csv, budget.png)")
    cor.add_argument("--references", default=None, metavar="DIR",
                     help="with --budget: draw the proxies scored into DIR (nas correlate "
                          "--proxy ... --out DIR) as reference lines")
    cor.add_argument("--proxy", default=None, metavar="NAME[,NAME]",
                     help=f"score with training-free proxies instead of supernets: "
                          f"{_names(PROXIES)}")
    cor.add_argument("--proxy-seeds", type=_seed_list, default=[0], metavar="K[,K]",
                     help="with --proxy: seeds of the fresh models and the scored batch "
                          "(default 0)")
    _add_space(cor, required=False)
    cor.add_argument("--data", default=None, metavar="PATH",
                     help="with --proxy: the data the proxies score batches of (default: the "
                          "embedded digits)")
    cor.add_argument("--train-subset", type=_positive, default=None, metavar="N",
                     help="with --proxy: as the ground truth was trained")

    from nas.bench import DEFAULT_OUT, PRODUCERS  # the producers' names, for --only's help

    bch = command("bench", "Measure every speed figure against its baseline in the same run "
                  "(bench.csv, machine.json, README.md).", _run_bench)
    bch.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                     help=f"where the files go (default {DEFAULT_OUT})")
    bch.add_argument("--only", default=None, metavar="NAME[,NAME]",
                     help=f"run these producers: {', '.join(p.name for p in PRODUCERS)} "
                          f"(default: all, in that order)")
    bch.add_argument("--quick", action="store_true",
                     help="tiny sizes, 2 steps, 1 repeat: checks the command in seconds; "
                          "its figures are not measurements")
    bch.add_argument("--data", default=None, metavar="PATH",
                     help="data the scoring producer scores batches of (default: its own)")
    return parser


_DISTRIBUTED_COMMANDS = ("supernet", "search")  # what torchrun can run (nas/training/torchrun.py)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if torchrun.is_launched() and args.command not in _DISTRIBUTED_COMMANDS:
            raise NasError(f"nas {args.command} runs in one process; torchrun trains supernets "
                           f"(nas supernet, nas search): run it without torchrun")
        args.run(args)
    except NasError as error:
        print(f"nas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    finally:
        torchrun.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
