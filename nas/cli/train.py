"""`nas train`: one architecture trained stand-alone, its test accuracy reported."""
from __future__ import annotations

import argparse

from nas import api
from nas.cli import options

NAME = "train"
HELP = "Train one architecture stand-alone and report test accuracy."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_shared(parser, is_space_required=True, defaults=options.STANDALONE_TRAINING)
    parser.add_argument("--arch", required=True, help="architecture string of the space")
    parser.add_argument("--init", default="scratch",
                        choices=["scratch", "weight-selection", "inherit"],
                        help="first weights: fresh (scratch, default), selected from a larger "
                             "exported model (weight-selection), or a supernet's (inherit)")
    parser.add_argument("--teacher", default=None, metavar="FILE.pt2|RUN_DIR",
                        help="with --init weight-selection an exported model FILE.pt2; with "
                             "--init inherit a supernet run of the same space and skeleton")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model's forward (faster steps on a GPU after a "
                             "compilation of tens of seconds)")


def run(args: argparse.Namespace) -> None:
    space, data, train = options.configs(args)
    result = api.train(space, args.arch, data, train, args.out, args.init, args.teacher)
    m = result.metrics
    print(f"test accuracy {m['test_accuracy']:.2f}% ({m['params_m']:.4f} M params, "
          f"{m['flops_m']:.3f} MFLOPs): {result.arch}")
    print(f"run directory: {result.run_dir}  (metrics.json, model.pt2)")
