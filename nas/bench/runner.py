"""Run producers in order, print their rows as they come, and write the files after each.

A producer is a function `(quick: bool) -> list[dict]` in a module of this package, imported
only when it runs: a module that does not exist yet is reported as skipped, so the command
works while a producer is being written. Anything else a producer raises ends the run, after
the files record what finished and which producer failed.
"""
from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TextIO

from nas.bench.report import describe_machine, keep_earlier_run, load_average, write_report
from nas.bench.rows import check_row
from nas.errors import ConfigError, DataError, UnknownNameError
from nas.registry import Registry


@dataclass(frozen=True)
class Producer:
    name: str        # the --only name
    module: str      # where `function` lives, imported when the producer runs
    function: str
    about: str       # one line: what it measures
    takes_data: bool = False  # called with data=--data as well


def select_producers(producers: Registry[Producer], only: str | None) -> list[Producer]:
    """The producers `--only` names (comma-separated), in registration order; all for None."""
    if only is None:
        return list(producers)
    names = [name.strip() for name in only.split(",")]
    for name in names:
        if name not in producers:
            raise UnknownNameError(f"unknown producer {name!r} in --only {only!r}; choose from: "
                                   f"{', '.join(p.name for p in producers)}")
    return [p for p in producers if p.name in names]


def check_data(producers: Sequence[Producer], data: str | None) -> None:
    if data is None:
        return
    if not any(p.takes_data for p in producers):
        raise ConfigError(f"--data {data!r} is for the scoring producer, which this run does "
                          f"not include; add scoring to --only or drop --data")
    if not Path(data).exists():
        raise DataError(f"--data {data!r} does not exist; give a .npz file or a "
                        f"cifar-10-batches-py directory")


def _load(producer: Producer) -> Callable[..., list[dict]] | None:
    """The producer's function; None when its module does not exist (yet)."""
    try:
        module = importlib.import_module(producer.module)
    except ModuleNotFoundError as error:
        if error.name != producer.module:
            raise  # the module exists but something it imports does not: a real failure
        return None
    if not hasattr(module, producer.function):
        raise AttributeError(f"producer {producer.name!r}: {producer.module} has no "
                             f"{producer.function}(quick) -> list[dict]")
    return getattr(module, producer.function)


_COLUMNS = (("figure", 50), ("space", 9), ("baseline", 10), ("measured", 10), ("unit", 6),
            ("ratio", 7), ("goal", 8), ("met", 4))


def _line(values: Sequence[str]) -> str:
    return "  ".join(f"{v:<{width}}" for v, (_, width) in zip(values, _COLUMNS)).rstrip()


def format_row(row: dict) -> str:
    met = "" if row["met"] is None else ("yes" if row["met"] else "NO")
    return _line([row["figure"], row["space"], f"{row['baseline']:.4g}",
                  f"{row['measured']:.4g}", row["unit"], f"{row['ratio']:.3f}", row["goal"], met])


def _last_minute_load() -> str:
    averages = load_average()
    return "unknown" if averages is None else f"{averages[0]:.2f}"


def run_bench(producers: Sequence[Producer], out: str | Path, *, quick: bool = False,
              data: str | None = None, command: str = "nas bench",
              stream: TextIO | None = None) -> list[dict]:
    """Run `producers` in order; after each, (re)write bench.csv, machine.json and README.md
    in `out` with every row so far. Returns the rows."""
    stream = stream if stream is not None else sys.stdout
    machine = {**describe_machine(command), "quick": quick}
    rows: list[dict] = []
    statuses = [(p.name, "not run yet") for p in producers]
    kept = keep_earlier_run(Path(out))
    if kept is not None:
        print(f"the earlier run's files in {out} moved to {kept}", file=stream)
    write_report(Path(out), rows, machine, statuses)
    gpu = machine["cuda_device"] or "no CUDA device"
    print(f"{machine['cpu_model']}, {machine['cpu_cores_usable']} cores, torch "
          f"{machine['torch']}, {machine['torch_threads']} threads, {gpu}", file=stream)
    print(_line([name for name, _ in _COLUMNS]), file=stream, flush=True)
    for i, producer in enumerate(producers):
        print(f"[{i + 1}/{len(producers)}] {producer.name}: {producer.about}", file=stream,
              flush=True)
        start = time.perf_counter()
        try:
            function = _load(producer)
            if function is None:
                statuses[i] = (producer.name, f"skipped: no module {producer.module} yet")
                print(f"  skipped: no module {producer.module} yet", file=stream, flush=True)
            else:
                produced = function(quick, **({"data": data} if producer.takes_data else {}))
                for row in produced:
                    check_row(row, producer.name)
                    print(format_row(row), file=stream, flush=True)
                rows.extend(produced)
                done = f"{len(produced)} row{'' if len(produced) == 1 else 's'} in " \
                       f"{time.perf_counter() - start:.0f} s"
                statuses[i] = (producer.name, f"{done}, load average {_last_minute_load()} at "
                                              f"the end")
                print(f"  {producer.name}: {done}", file=stream, flush=True)
        except BaseException as error:  # recorded, then raised: the files say where it stopped
            statuses[i] = (producer.name, f"failed after {time.perf_counter() - start:.0f} s: "
                                          f"{type(error).__name__}: {error}")
            raise
        finally:
            write_report(Path(out), rows, machine, statuses)
    return rows
