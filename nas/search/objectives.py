"""What a search optimises (`--objectives`) and which point of a front it returns (`--pick`).

`accuracy` is the scorer's value (the supernet's validation accuracy, a proxy's score, or an
oracle table's accuracy) and is maximised; `params` (M), `flops` (MFLOPs) and `latency` (ms)
are minimised. Latency is measured on this machine for the stand-alone model the architecture
exports as (`space.build_model`, evaluation mode, batch 1, the skeleton's input): the median of
repeated timed forward passes after warm-up, measured once per architecture per run.
"""
from __future__ import annotations

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


@dataclass(frozen=True)
class Pick:
    """The point a search returns: the most accurate, optionally under a limit on one cost."""

    cost: str | None = None
    limit: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Pick":
        if text.strip() == "accuracy":
            return cls()
        match = re.fullmatch(r"\s*(params|flops|latency)\s*<=\s*([0-9.eE+-]+)\s*", text)
        try:
            limit = float(match.group(2)) if match else None
        except ValueError:
            limit = None
        if limit is None or not limit > 0:
            raise ConfigError(f"--pick takes accuracy (the most accurate) or COST<=LIMIT with "
                              f"COST params (M), flops (M) or latency (ms), e.g. flops<=50; "
                              f"got {text!r}")
        return cls(match.group(1), limit)

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
