"""`nas supernet`: train a weight-sharing supernet into a run directory."""
from __future__ import annotations

import argparse

from nas import api
from nas.cli import options
from nas.config import SUPERNET_TRAINING
from nas.training import torchrun

NAME = "supernet"
HELP = "Train a weight-sharing supernet into a run directory."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_shared(parser, is_space_required=True, defaults=SUPERNET_TRAINING)
    options.add_method(parser)


def run(args: argparse.Namespace) -> None:
    space, data, train = options.configs(args)
    run_dir = api.supernet(space, data, train, args.method, options.method_options(args),
                           args.out)
    if torchrun.is_main():
        print(f"supernet: {run_dir / 'supernet.pt'}\nrun directory: {run_dir}")
