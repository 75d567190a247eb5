"""One figure of `nas bench`: a dict with exactly `ROW_KEYS`, built by `make_row`.

Every speed figure is a ratio against a baseline measured in the same run, on the same
machine, so a figure does not depend on how fast the machine is. `goal` reads "<= 1.05" or
">= 0.8" and is checked against `ratio`; `met` is None for a figure without a goal.
"""
from __future__ import annotations

import math
import operator

ROW_KEYS = ("figure", "space", "baseline", "measured", "unit", "ratio", "goal", "met", "detail")

_COMPARISONS = {"<=": operator.le, ">=": operator.ge}


def goal_met(ratio: float, goal: str) -> bool:
    """Whether `ratio` meets `goal` ("<= 1.05", ">= 0.8")."""
    comparison, _, bound = goal.partition(" ")
    if comparison not in _COMPARISONS:
        raise ValueError(f"goal {goal!r} must read '<= X' or '>= X'")
    return bool(_COMPARISONS[comparison](ratio, float(bound)))


def make_row(figure: str, space: str, baseline: float, measured: float, unit: str, *,
             goal: str = "", detail: str = "", ratio: float | None = None) -> dict:
    """A figure whose ratio is `measured / baseline` unless given (an efficiency ratio)."""
    if not (baseline > 0 and math.isfinite(baseline)):
        raise ValueError(f"{figure}: the baseline must be a positive number, got {baseline}")
    ratio = measured / baseline if ratio is None else ratio
    return {"figure": figure, "space": space, "baseline": float(baseline),
            "measured": float(measured), "unit": unit, "ratio": float(ratio), "goal": goal,
            "met": goal_met(ratio, goal) if goal else None, "detail": detail}


def check_row(row: dict, producer: str) -> None:
    """A producer's row has exactly the schema's keys, a positive baseline and a bool or None
    `met`; anything else is a bug in the producer, named here."""
    if not isinstance(row, dict) or set(row) != set(ROW_KEYS):
        found = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise ValueError(f"producer {producer!r} returned a row with keys {found}; a row has "
                         f"exactly {list(ROW_KEYS)} (nas.bench.rows.make_row builds one)")
    if not row["baseline"] > 0:
        raise ValueError(f"producer {producer!r}: {row['figure']} has baseline "
                         f"{row['baseline']}; a baseline is positive")
    if row["met"] not in (True, False, None):
        raise ValueError(f"producer {producer!r}: {row['figure']} has met={row['met']!r}; "
                         f"met is True, False or None (no goal)")
