"""The `nas` parser, built from the subcommand modules, and `main`, where every `NasError`
becomes one line on stderr and exit code 2."""
from __future__ import annotations

import sys
from typing import Sequence

from nas.cli import ablate, bench, correlate, export, groundtruth, search, supernet, train
from nas.cli.options import Parser
from nas.errors import NasError
from nas.training import torchrun

# Each module: NAME, HELP, add_arguments(parser) and run(args), in `nas --help`'s order.
COMMANDS = (supernet, search, export, train, groundtruth, correlate, ablate, bench)


def build_parser() -> Parser:
    parser = Parser(prog="nas", description="Neural architecture search with "
                                            "weight-sharing supernets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        sub.set_defaults(run=command.run)
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as typed, for the reports that quote it
    try:
        torchrun.check_command(args.command)
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
