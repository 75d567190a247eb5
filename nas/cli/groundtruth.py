"""`nas groundtruth`: sampled architectures trained stand-alone, the ground truth of
`nas correlate`."""
from __future__ import annotations

import argparse

from nas import api
from nas.cli import options
from nas.cli.options import positive
from nas.ranking.groundtruth import DEFAULT_SAMPLE, DEFAULT_SEEDS, GROUNDTRUTH_FILE

NAME = "groundtruth"
HELP = "Train sampled architectures stand-alone (K seeds each) as ground truth for nas correlate."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_shared(parser, is_space_required=True, defaults=options.STANDALONE_TRAINING)
    parser.add_argument("--sample", type=positive, default=DEFAULT_SAMPLE,
                        help=f"architectures (default {DEFAULT_SAMPLE})")
    parser.add_argument("--seeds", type=positive, default=DEFAULT_SEEDS,
                        help=f"seeds per architecture (default {DEFAULT_SEEDS})")


def run(args: argparse.Namespace) -> None:
    space, data, train = options.configs(args)
    run_dir = api.groundtruth(space, data, train, args.sample, args.seeds, args.out)
    print(f"ground truth: {run_dir / GROUNDTRUTH_FILE}  (one row per architecture and seed)")
