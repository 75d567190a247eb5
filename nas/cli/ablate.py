"""`nas ablate`: supernet-training heuristics, each against the baseline recipe, ranked against
ground truth (`nas.ranking.ablation`)."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from nas import api
from nas.cli import options
from nas.cli.options import positive
from nas.config import SUPERNET_TRAINING
from nas.errors import ConfigError
from nas.ranking.ablation import DEFAULT_SEEDS
from nas.ranking.correlate import DEFAULT_SAMPLE
from nas.scorers.combined import DEFAULT_WITH_SUPERNET

NAME = "ablate"
HELP = ("Train the baseline recipe and variants of it (one heuristic changed at a time) with "
        "several seeds, and rank each against ground truth: the supernet alone and the "
        "default scorer, overall and within FLOPs terciles.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_shared(parser, is_space_required=True, defaults=SUPERNET_TRAINING)
    options.add_method(parser)
    options.add_ground_truth(parser, DEFAULT_SAMPLE)
    add = parser.add_argument
    add("--vary", action="append", default=[], metavar="KEY=V[,V]",
        help="one variant per value, changing KEY alone: a training option (lr, lr_schedule, "
             "warmup_epochs, weight_decay, grad_clip_norm, momentum, nesterov, steps), "
             "batch_size, or a method option (bn_mode, bn_affine, sampling, ...); repeatable")
    add("--combine", action="append", default=[], metavar="K=V,K=V",
        help="one variant changing all of these together; repeatable")
    add("--seeds", type=positive, default=DEFAULT_SEEDS,
        help=f"supernets per variant, seeds --seed, --seed+1, ... (default {DEFAULT_SEEDS})")
    add("--scorer", default=DEFAULT_WITH_SUPERNET, metavar="S",
        help=f"the combined scorer beside the supernet alone (default {DEFAULT_WITH_SUPERNET})")


def run(args: argparse.Namespace) -> None:
    space, data, train = options.configs(args)
    if args.out is None:
        raise ConfigError("nas ablate needs --out DIR, where its runs and its report go")
    recipe = api.Recipe(space, data, train, args.method, options.method_options(args))
    study = api.Study(recipe, tuple(api.variants(recipe, args.vary, args.combine)),
                      tuple(train.seed + k for k in range(args.seeds)), args.ground_truth,
                      Path(args.out), column=args.column, archs_file=args.archs,
                      sample=args.sample, scorer=args.scorer, device=train.device,
                      command=shlex.join(["nas", *args.argv]))
    report = api.ablate(study)
    print(f"ablation: {report['runs']} of {report['expected_runs']} runs scored; "
          f"{Path(args.out) / 'ablation.md'}, {Path(args.out) / 'ablation.png'}")
