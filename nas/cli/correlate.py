"""`nas correlate`: rank architectures with trained supernets (or training-free proxies, or
every snapshot a run kept) and set the ranking against ground truth."""
from __future__ import annotations

import argparse
from pathlib import Path

from nas import api
from nas.cli import options
from nas.cli.options import names, non_negative, positive, seed_list
from nas.config import TrainConfig
from nas.errors import NasError
from nas.ranking.correlate import DEFAULT_SAMPLE, format_report
from nas.scorers import ScorerSetting
from nas.scorers.proxies import PROXIES

NAME = "correlate"
HELP = ("Rank architectures with trained supernets and compare with ground truth (Kendall tau, "
        "Spearman, Pearson, top-k precision, regret).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("run_dirs", nargs="*", metavar="RUN_DIR")
    options.add_ground_truth(parser, DEFAULT_SAMPLE)
    add("--seed", type=non_negative, default=0)
    add("--out", default=None, metavar="DIR",
        help="across-run results (several runs); with --proxy, where each proxy's "
             "results go (DIR/proxy-NAME-seedK/)")
    add("--overwrite", action="store_true")
    add("--device", default=TrainConfig.device)
    add("--budget", action="store_true",
        help="score every snapshot the runs kept (--keep-checkpoints) and their "
             "final weights: Kendall tau against training steps and wall time "
             "(DIR/budget.csv, budget.png)")
    add("--references", default=None, metavar="DIR",
        help="with --budget: draw the proxies scored into DIR (nas correlate "
             "--proxy ... --out DIR) as reference lines")
    add("--scorer", default=None, metavar="S",
        help="rank each run with S: supernet, a proxy, or a combination such as "
             "supernet+naswot+params (default: what nas search scores with, 'default'; "
             "a combination's report shows each part beside it)")
    add("--proxy", default=None, metavar="NAME[,NAME]",
        help=f"score with training-free proxies instead of supernets: {names(PROXIES)}")
    add("--proxy-seeds", type=seed_list, default=[0], metavar="K[,K]",
        help="with --proxy: seeds of the fresh models and the scored batch (default 0)")
    options.add_space(parser, required=False)
    add("--data", default=None, metavar="PATH",
        help="with --proxy: the data the proxies score batches of (default: the embedded digits)")
    add("--train-subset", type=positive, default=None, metavar="N",
        help="with --proxy: as the ground truth was trained")
    options.add_image_options(parser)


def run(args: argparse.Namespace) -> None:
    if args.proxy is not None:
        _run_proxies(args)
        return
    if not args.run_dirs:
        raise NasError("give one or more RUN_DIRs to score with their supernets, or --proxy "
                       "NAME[,NAME] with --space to score with training-free proxies")
    if args.space is not None or args.data is not None or args.train_subset is not None:
        raise NasError("--space, --data and --train-subset are for --proxy; a run directory "
                       "knows its own space and data")
    if args.scorer is not None:
        ScorerSetting.parse(args.scorer)  # a malformed one fails before anything is loaded
    if args.budget:
        if args.scorer is not None:
            raise NasError("--budget scores each snapshot with its supernet alone; drop --scorer")
        _run_budget(args)
        return
    if len(args.run_dirs) > 1 and args.out is None:
        raise NasError("several runs need --out DIR for their across-run comparison")
    reports = []
    for run_dir, report in zip(args.run_dirs, api.correlate(
            args.run_dirs, args.ground_truth, args.column, args.archs, args.sample, args.seed,
            args.overwrite, args.device, args.scorer)):
        print(f"{run_dir}: {report['architectures']} architectures vs {report['column']} of "
              f"{report['ground_truth']}\n{format_report(report)}\nwritten to {report['out']}")
        reports.append(report)
    if len(reports) > 1:
        summary = api.compare_correlations(reports, args.out)
        print("across runs: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if k != "runs"))


def _run_budget(args: argparse.Namespace) -> None:
    if args.out is None:
        raise NasError("--budget needs --out DIR for budget.csv and budget.png")
    means = api.correlate_budget(args.run_dirs, args.ground_truth, args.out, args.column,
                                 args.archs, args.sample, args.seed, args.references,
                                 args.device)
    for row in means.itertuples():
        print(f"{row.method} at {row.steps:.0f} steps ({row.elapsed_s:.0f} s): Kendall tau "
              f"{row.kendall_tau:.3f} over {row.runs} run(s)")
    print(f"written to {Path(args.out) / 'budget.csv'} and budget.png")


def _run_proxies(args: argparse.Namespace) -> None:
    if args.run_dirs:
        raise NasError("--proxy scores without a supernet; drop the RUN_DIRs (or --proxy)")
    if args.space is None or args.out is None:
        raise NasError("--proxy needs --space (and --width/--cells/--data as the ground truth "
                       "was trained) and --out DIR for the proxies' results")
    space, data, _ = options.configs(args, with_training=False)
    for report in api.correlate_proxies(args.proxy, space, data, args.ground_truth, args.out,
                                        args.column, args.archs, args.sample, args.seed,
                                        args.proxy_seeds, args.overwrite, args.device):
        print(f"{report['proxy']} (seed {report['proxy_seed']}, {report['wall_s']:.1f} s): "
              f"{report['architectures']} architectures vs {report['column']} of "
              f"{report['ground_truth']}\n{format_report(report)}\nwritten to {report['out']}")
