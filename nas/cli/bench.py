"""`nas bench`: every speed figure against its baseline, measured in the same run."""
from __future__ import annotations

import argparse

from nas import api
from nas.bench import DEFAULT_OUT, PRODUCERS

NAME = "bench"
HELP = ("Measure every speed figure against its baseline in the same run "
        "(bench.csv, machine.json, README.md).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"where the files go (default {DEFAULT_OUT})")
    parser.add_argument("--only", default=None, metavar="NAME[,NAME]",
                        help=f"run these producers: {', '.join(p.name for p in PRODUCERS)} "
                             f"(default: all, in that order)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 2 steps, 1 repeat: checks the command in seconds; "
                             "its figures are not measurements")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="data the scoring producer scores batches of (default: its own)")


def run(args: argparse.Namespace) -> None:
    rows = api.bench(args.out, args.only, args.quick, args.data)
    missed = [f"{r['figure']} ({r['space']})" for r in rows if r["met"] is False]
    print(f"{len(rows)} figures written to {args.out}"
          + (f"; goal missed: {', '.join(missed)}" if missed else ""))
