"""What `nas bench` writes: bench.csv (the rows), machine.json (where and how they were
measured) and README.md (a table made from the rows), each atomically, so a killed run keeps
every producer's rows that finished."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from nas.bench.rows import ROW_KEYS
from nas.runs import atomic_write_csv, atomic_write_json, atomic_write_text

CSV_FILE, MACHINE_FILE, README_FILE = "bench.csv", "machine.json", "README.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass  # not Linux: the platform's own, vaguer name
    return platform.processor() or platform.machine()


def describe_machine(command: str) -> dict:
    """The machine as the figures depend on it, the date and the command that measured them."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": _cpu_model(), "cpu_cores": os.cpu_count(), "cpu_cores_usable": usable,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": load_average(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": command}


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: a busy machine's figures are noisier."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _number(value: float) -> str:
    return f"{value:.4g}"


def _met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def _readme(rows: list[dict], machine: dict, statuses: list[tuple[str, str]]) -> str:
    gpu = f", {machine['cuda_device']}" if machine["cuda_device"] else ", no CUDA device"
    lines = ["# nas bench", "",
             "Every speed figure as a ratio against its baseline, both measured in this run.", "",
             f"Machine: {machine['cpu_model']}, {machine['cpu_cores_usable']} of "
             f"{machine['cpu_cores']} CPU cores usable, torch {machine['torch']} with "
             f"{machine['torch_threads']} intra-op threads{gpu}; load average at start "
             f"{machine['load_average_at_start']}; {machine['date']}. Command:", "",
             f"    {machine['command']}", "",
             *(["--quick: tiny sizes, 2 steps, 1 repeat; these figures check the command, "
                "they are not measurements.", ""] if machine.get("quick") else []),
             "| figure | space | baseline | measured | unit | ratio | goal | met | detail |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['space']} | {_number(r['baseline'])} | "
              f"{_number(r['measured'])} | {r['unit']} | {r['ratio']:.3f} | {r['goal']} | "
              f"{_met(r['met'])} | {r['detail']} |" for r in rows]
    lines += ["", "Producers:", ""] + [f"- {name}: {status}" for name, status in statuses]
    return "\n".join(lines) + "\n"


def keep_earlier_run(out: Path) -> Path | None:
    """Move an earlier run's files in `out` to `out/earlier/<its date>/`, so that a new run
    (e.g. `--only ddp`) never overwrites figures it does not measure again; returns where."""
    out = Path(out)
    files = [out / name for name in (CSV_FILE, MACHINE_FILE, README_FILE)]
    if not files[0].exists():
        return None
    try:
        stamp = pd.read_json(files[1], typ="series")["date"]
    except (ValueError, KeyError, OSError):
        stamp = datetime.datetime.fromtimestamp(files[0].stat().st_mtime).isoformat()
    target = out / "earlier" / str(stamp).replace(":", "")
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        if file.exists():
            file.replace(target / file.name)
    return target


def write_report(out: Path, rows: list[dict], machine: dict,
                 statuses: list[tuple[str, str]]) -> None:
    out = Path(out)
    atomic_write_csv(out / CSV_FILE, pd.DataFrame(rows, columns=list(ROW_KEYS)))
    atomic_write_json(out / MACHINE_FILE, machine)
    atomic_write_text(out / README_FILE, _readme(rows, machine, statuses))
