"""What several `nas` subcommands share, defined once: the parser that fails on one line,
argument types, the space/data/training/method options, and their turning into configs.

Every default is read from the config it fills (one place for each): the supernet commands
train `SUPERNET_TRAINING`, the stand-alone ones `TrainConfig()`.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from nas.config import DEFAULT_METHOD, DataConfig, SpaceConfig, TrainConfig
from nas.errors import NasError
from search_spaces import SPACES
from supernets import METHODS
from supernets.precision import PRECISIONS

STANDALONE_TRAINING = TrainConfig()


def names(registry) -> str:
    return ", ".join(registry.names())


class Parser(argparse.ArgumentParser):
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


positive, non_negative = _whole_number(1), _whole_number(0)


def duration(text: str) -> float:
    from supernets.budget import parse_duration

    try:
        return parse_duration(text)
    except NasError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct whole numbers >= 0 such as 0,1,2; "
                                         f"got {text!r}")
    return seeds


def add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, metavar="PATH|NAME",
                        help="a folder of images with one subfolder per class (DIR/train and "
                             "DIR/val or DIR/test give the splits), a .npz file, a "
                             "cifar-10-batches-py directory, or a dataset name: cifar10, "
                             "cifar100, svhn, mnist, fashion-mnist, downloaded once into $NAS_DATA "
                             "or ~/.cache/nas/data; default: the embedded handwritten digits")
    add_image_options(parser)
    parser.add_argument("--flip", choices=("auto", "yes", "no"), default=DataConfig.flip,
                        help="flip training images horizontally; auto: for photos and image "
                             "folders, not for digits, MNIST or SVHN (default auto)")
    parser.add_argument("--batch-size", type=positive, default=DataConfig.batch_size)
    parser.add_argument("--train-subset", type=positive, default=None, metavar="N",
                        help="use a seeded subset of N training images (default: all)")
    parser.add_argument("--val-images", type=positive, default=None, metavar="N",
                        help="score architectures on N training images outside --train-subset "
                             "(default: hold out a fifth of the subset)")
    parser.add_argument("--seed", type=non_negative, default=TrainConfig.seed)
    parser.add_argument("--device", default=TrainConfig.device,
                        help=f"auto, cpu or cuda[:N] (default: {TrainConfig.device})")


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """How an image folder given as --data is read."""
    parser.add_argument("--image-size", type=_whole_number(4), default=DataConfig.image_size,
                        metavar="S", help="resize an image folder's images to SxS (default: their "
                                          "own size when they all share it, else 32)")
    parser.add_argument("--in-memory", choices=("auto", "yes", "no"), default=DataConfig.in_memory,
                        help="hold an image folder decoded in memory, or stream it from its "
                             "files batch by batch (no); auto holds it when it takes at most a "
                             "quarter of the available memory; the batches are the same")


def add_space(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--space", required=required, default=None,
                        help=f"search space: {names(SPACES)}"
                             + ("" if required else f" (default {SpaceConfig.name})"))
    parser.add_argument("--width", type=positive, default=None, metavar="C",
                        help="skeleton width (NB201/DARTS C; mobilenet first-conv width)")
    parser.add_argument("--cells", type=positive, default=None, metavar="N",
                        help="skeleton depth (NB201 cells per stage; DARTS layers; mobilenet stages)")


def add_training(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    # The budget options default to None so that a stated one replaces the default budget
    # whole (the supernet default is a number of steps; --epochs 50 must not be capped by it).
    parser.set_defaults(training_defaults=defaults)
    default_budget = (f"{defaults.steps} steps" if defaults.steps is not None
                      else f"{defaults.epochs} epochs")
    parser.add_argument("--epochs", type=non_negative, default=None,
                        help=f"training epochs (default budget: {default_budget}; with "
                             f"--time-budget the upper bound, default {defaults.epochs})")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr,
                        help=f"initial learning rate (default {defaults.lr})")
    parser.add_argument("--weight-decay", type=non_negative_float, default=defaults.weight_decay,
                        metavar="WD", help=f"SGD weight decay of the weights (default "
                                           f"{defaults.weight_decay})")
    parser.add_argument("--grad-clip", type=non_negative_float, default=defaults.grad_clip_norm,
                        metavar="NORM", help=f"clip the gradient norm to NORM, 0: no clipping "
                                             f"(default {defaults.grad_clip_norm})")
    parser.add_argument("--lr-schedule", choices=("cosine", "linear", "constant"),
                        default=defaults.lr_schedule,
                        help=f"learning-rate decay per step (default {defaults.lr_schedule})")
    parser.add_argument("--warmup-epochs", type=non_negative, default=defaults.warmup_epochs,
                        metavar="N", help=f"linear learning-rate warm-up epochs (default "
                                          f"{defaults.warmup_epochs})")
    parser.add_argument("--checkpoint-every", type=non_negative,
                        default=defaults.checkpoint_every_steps, metavar="STEPS",
                        help="checkpoint every STEPS steps as well as every epoch (0: epochs only; "
                             f"default {defaults.checkpoint_every_steps})")
    parser.add_argument("--steps", type=positive, default=None, metavar="N",
                        help="train exactly N optimiser steps instead of --epochs")
    parser.add_argument("--time-budget", type=duration, default=None,
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


def add_shared(parser: argparse.ArgumentParser, *, is_space_required: bool,
               defaults: TrainConfig) -> None:
    """The options of every command that trains: space and skeleton, data, training, --out."""
    add_space(parser, required=is_space_required)
    add_data(parser)
    add_training(parser, defaults)
    parser.add_argument("--out", default=None, metavar="RUN_DIR")


def add_method(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        help=f"supernet training method: {names(METHODS)} "
                             f"(default {DEFAULT_METHOD})")
    parser.add_argument("--method-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="a method option, checked against the method's settings; repeatable")


def configs(args: argparse.Namespace, with_training: bool = True):
    """The space, data and training configs the shared options describe."""
    data = DataConfig(path=data_path(args.data), train_subset=args.train_subset,
                      image_size=args.image_size, in_memory=args.in_memory,
                      **({"batch_size": args.batch_size, "val_images": args.val_images,
                          "flip": args.flip} if with_training else {}))
    train = train_config(args) if with_training else None
    space = SpaceConfig(args.space, args.width, args.cells) if args.space is not None else None
    return space, data, train


def data_path(text: str | None) -> str | None:
    """What a run records of `--data`: an absolute path, or a dataset's name (a name that is
    also an existing path is the path)."""
    from nas.data.datasets import check_data_path
    from nas.data.named import NAMED_DATASETS

    if text is None or (text in (*NAMED_DATASETS, "digits") and not Path(text).exists()):
        return text
    return str(Path(check_data_path(text)).resolve())


def train_config(args: argparse.Namespace) -> TrainConfig:
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
                       lr=args.lr, weight_decay=args.weight_decay,
                       grad_clip_norm=args.grad_clip, steps=steps, time_budget_s=time_budget,
                       keep_checkpoints=args.keep_checkpoints, precision=args.precision,
                       compile=getattr(args, "compile", False),
                       channels_last=(None if args.channels_last is None
                                      else args.channels_last == "on"))


def method_options(args: argparse.Namespace) -> dict[str, str]:
    options = {}
    for pair in args.method_opt:
        key, sep, value = pair.partition("=")
        if not sep:
            raise NasError(f"--method-opt {pair!r} must look like key=value")
        options[key] = value
    return options


def add_ground_truth(parser: argparse.ArgumentParser, default_sample: int) -> None:
    """The ground truth a ranking is judged against, and which of its architectures to score."""
    add = parser.add_argument
    add("--ground-truth", required=True, metavar="CSV",
        help="arch,accuracy CSV (nas groundtruth) or a NAS-Bench-201 table")
    add("--column", default=None, help="accuracy column (default: accuracy, or "
        "cifar10_test for a NAS-Bench-201 table)")
    add("--archs", default=None, metavar="FILE", help="architectures to score, one a line")
    add("--sample", type=positive, default=default_sample,
        help=f"architectures without --archs (default {default_sample})")
