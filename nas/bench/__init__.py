"""`nas bench`: every speed figure of the platform as a ratio against a baseline measured in
the same run, written to bench.csv, machine.json and README.md.

`PRODUCERS` registers the producers; they run in registration order. Each is a function
`(quick: bool) -> list[dict]` whose rows `nas.bench.rows.make_row` builds; `quick` shrinks
everything (tiny skeletons, 2 steps, 1 repeat) so that a test runs in seconds.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from nas.bench.rows import ROW_KEYS, check_row, goal_met, make_row
from nas.bench.runner import Producer, check_data, run_bench, select_producers
from nas.registry import Registry

DEFAULT_OUT = "results/bench"

PRODUCERS: Registry[Producer] = Registry("producer")
PRODUCERS.register(Producer(
    "steps", "nas.bench.step_speed", "step_rows",
    "supernet single-path step / stand-alone subnet step (nb201, darts)"))
PRODUCERS.register(Producer(
    "methods", "nas.bench.method_speed", "method_rows",
    "PA&DA epoch / SPOS epoch; AlphaNet sandwich step / its subnets' steps"))
PRODUCERS.register(Producer(
    "scoring", "nas.bench.scoring_speed", "scoring_rows",
    "architectures scored per second, fast / naive", takes_data=True))
PRODUCERS.register(Producer(
    "ddp", "nas.bench.ddp_speed", "ddp_rows",
    "DDP 2-process throughput efficiency"))
PRODUCERS.register(Producer(
    "precision", "nas.bench.precision_speed", "precision_rows",
    "images/s with / without mixed precision (GPU)"))


def bench(out: str | Path = DEFAULT_OUT, only: str | None = None, quick: bool = False,
          data: str | None = None) -> list[dict]:
    """Run the producers `only` names (all for None) and write their rows to `out`."""
    producers = select_producers(PRODUCERS, only)
    check_data(producers, data)
    command = shlex.join(["nas", "bench", "--out", str(out)]
                         + (["--only", ",".join(p.name for p in producers)] if only else [])
                         + (["--quick"] if quick else []) + (["--data", data] if data else []))
    return run_bench(producers, out, quick=quick, data=data, command=command)


__all__ = ["DEFAULT_OUT", "PRODUCERS", "ROW_KEYS", "Producer", "bench", "check_row",
           "goal_met", "make_row", "run_bench", "select_producers"]
