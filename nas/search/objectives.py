"""What a search optimises (`--objectives`), which point of a front it returns (`--pick`), and
the costs both (and `--constraint`, `nas.search.constraints`) read.

`accuracy` is the scorer's value (the supernet's validation accuracy, a proxy's score, or an
oracle table's accuracy) and is maximised; `params` (M), `flops` (MFLOPs) and `latency` (ms)
are minimised. Latency is measured on this machine for the stand-alone model the architecture
exports as (`space.build_model`, evaluation mode, batch 1, the skeleton's input): the median of
repeated timed forward passes after warm-up, measured once per architecture per run.
"""
from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nas.errors import ConfigError
from search_spaces import Architecture, SearchSpace

OBJECTIVES = {"accuracy": "maximize", "params": "minimize", "flops": "minimize",
              "latency": "minimize"}
COLUMNS = {"params": "params_m", "flops": "flops_m", "latency": "latency_ms"}
LATENCY_WARMUP, LATENCY_REPEATS = 3, 20


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names or len(set(names)) != len(names) or "accuracy" not in names:
        raise ConfigError(f"--objectives takes accuracy and any of params, flops, latency, "
                          f"comma-separated and each once (e.g. accuracy,flops); got {text!r}")
    return ("accuracy", *[n for n in names if n != "accuracy"])


# The one syntax of a limit on a cost, shared by --pick and --constraint.
LIMIT_FORM = "COST<=LIMIT with COST params (M), flops (M) or latency (ms), e.g. flops<=50"
_LIMIT = re.compile(r"\s*(params|flops|latency)\s*<=\s*([0-9.eE+-]+)\s*")


def parse_limit(text: str) -> tuple[str, float] | None:
    """(cost, limit) of a `COST<=LIMIT` text with a finite limit > 0, else None (the caller
    names its option in the error)."""
    match = _LIMIT.fullmatch(text) if isinstance(text, str) else None
    try:
        limit = float(match.group(2)) if match else None
    except ValueError:
        limit = None
    if limit is None or not (limit > 0 and math.isfinite(limit)):
        return None
    return match.group(1), limit


@dataclass(frozen=True)
class Pick:
    """The point a search returns: the most accurate, optionally under a limit on one cost."""

    cost: str | None = None
    limit: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Pick":
        if text.strip() == "accuracy":
            return cls()
        limit = parse_limit(text)
        if limit is None:
            raise ConfigError(f"--pick takes accuracy (the most accurate) or {LIMIT_FORM}; "
                              f"got {text!r}")
        return cls(*limit)

    def choose(self, table: pd.DataFrame, column: str) -> pd.Series | None:
        """The most accurate row within the limit (earliest trial on ties), or None."""
        rows = table if self.cost is None else table[table[COLUMNS[self.cost]] <= self.limit]
        if rows.empty:
            return None
        return rows.sort_values([column, "trial"], ascending=[False, True]).iloc[0]

    def __str__(self) -> str:
        return "accuracy" if self.cost is None else f"{self.cost}<={self.limit!r}"


def pareto_mask(values: np.ndarray, maximise: list[bool]) -> np.ndarray:
    """Rows no other row dominates (at least as good in every objective, better in one)."""
    signed = np.where(maximise, values, -values)  # larger is better in every column now
    keep = np.ones(len(values), dtype=bool)
    for i in range(len(values)):
        dominated = np.all(signed >= signed[i], axis=1) & np.any(signed > signed[i], axis=1)
        keep[i] = not dominated.any()
    return keep


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by (accuracy to maximise, cost to minimise) points, bounded by
    `reference` = (worst accuracy, worst cost)."""
    ref_acc, ref_cost = reference
    inside = points[(points[:, 0] > ref_acc) & (points[:, 1] < ref_cost)]
    if len(inside) == 0:
        return 0.0
    front = inside[pareto_mask(inside, [True, False])]
    front = front[np.argsort(front[:, 1])]  # by cost, ascending; accuracy then ascends
    area, best_acc = 0.0, ref_acc
    for i, (acc, cost) in enumerate(front):
        next_cost = front[i + 1, 1] if i + 1 < len(front) else ref_cost
        best_acc = max(best_acc, acc)
        area += (best_acc - ref_acc) * (next_cost - cost)
    return float(area)


class Latency:
    """Median forward time (ms) of an architecture's stand-alone model, measured once each."""

    def __init__(self, space: SearchSpace) -> None:
        self.space, self._cache = space, {}

    def seed(self, arch: str, value: float) -> None:
        self._cache[arch] = value

    def __call__(self, arch: Architecture) -> float:
        key = str(arch)
        if key not in self._cache:
            model = self.space.build_model(arch).eval()
            x = torch.zeros(1, *self.space.input_shape())
            times = []
            with torch.inference_mode():
                for i in range(LATENCY_WARMUP + LATENCY_REPEATS):
                    start = time.perf_counter()
                    model(x)
                    if i >= LATENCY_WARMUP:
                        times.append((time.perf_counter() - start) * 1e3)
            self._cache[key] = statistics.median(times)
        return self._cache[key]


class Costs:
    """An architecture's costs by objective name: `params` (M), `flops` (MFLOPs), `latency`
    (ms, `Latency`), each computed once per architecture."""

    def __init__(self, space: SearchSpace) -> None:
        self.space, self.latency, self._sizes = space, Latency(space), {}

    def sizes(self, arch: Architecture) -> tuple[float, float]:
        """(params_m, flops_m)."""
        key = str(arch)
        if key not in self._sizes:
            self._sizes[key] = (self.space.params_m(arch), self.space.flops_m(arch))
        return self._sizes[key]

    def __call__(self, arch: Architecture, name: str) -> float:
        if name == "latency":
            return self.latency(arch)
        params_m, flops_m = self.sizes(arch)
        return {"params": params_m, "flops": flops_m}[name]
