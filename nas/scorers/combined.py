"""A combination of scorers: the supernet and training-free proxies ranked as one.

Their errors differ, so together they rank better than each alone: NAS-Bench-Suite-Zero
(Krishnakumar et al., NeurIPS 2022) finds proxies used together beat every single one, and
AZ-NAS (Lee & Ham, CVPR 2024) is itself four scores put together. Scores on different scales
(accuracy in %, a log-determinant, millions of parameters) can only be combined by rank.

A search needs a value per architecture that does not depend on which other architectures
were scored, so a part's rank is taken against a fixed reference: `REFERENCE_SIZE`
architectures drawn uniformly from the space with `REFERENCE_SEED`, scored once by every part
and kept in the run directory (`reference.csv`, one column per part's identity), so a resumed
or parallel search sees the same values. An architecture's quantile in a part is its rank,
ties averaged, among the reference with it added, over their number (n + 1): AZ-NAS's rank/N
over that population, and unchanged by any monotone transform of the part.

Aggregations:
- `log_rank` (AZ-NAS, cvlab-yonsei/AZ-NAS `NB201/tss_general.ipynb`: sum over the scores of
  ln(rank / N)): rewards an architecture that no part ranks low. The default.
- `mean`: the mean quantile, the rank average of the zero-cost literature.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nas.errors import ConfigError
from nas.runs import atomic_write_csv
from search_spaces import Architecture, SearchSpace
from supernets.progress import Progress

COLUMN = "combined_score"  # a combination's scores in trials.csv
REFERENCE_FILE = "reference.csv"
REFERENCE_SIZE = 100  # quantiles to 1%; a supernet scores it in ~2 min at width 8 on CIFAR-10
REFERENCE_SEED = 0

# Named combinations (`--scorer NAME`): AZ-NAS as its paper combines it, and the default.
# The default trains nothing: on protocol v2 no scorer with a supernet ranked better within
# the cost of 5 stand-alone trainings, and of the free ones this pair has the best worst case
# over protocol v2 and NAS-Bench-201 (results/ranking/scorers.md).
COMBINATIONS = {
    "az_nas": "az_expressivity+az_progressivity+az_trainability+flops",
    "default": "jacov+meco",
}
DEFAULT_WITH_SUPERNET = f"supernet+{COMBINATIONS['default']}"  # where a supernet is trained
# already (`nas search --supernet RUN`, `nas correlate RUN`): it joins the default's parts


def quantile(reference: np.ndarray, value: float) -> float:
    """`value`'s rank among the sorted `reference` with it added (ties averaged, as
    scipy.stats.rankdata), over n + 1: in (0, 1], higher for a higher value."""
    value = -math.inf if math.isnan(value) else value
    below = int(np.searchsorted(reference, value, side="left"))
    equal = int(np.searchsorted(reference, value, side="right")) - below
    return (below + 0.5 * equal + 1.0) / (len(reference) + 1)


def aggregate(quantiles: Sequence[float], aggregation: str) -> float:
    if aggregation == "log_rank":
        return float(sum(math.log(q) for q in quantiles))
    if aggregation == "mean":
        return float(np.mean(quantiles))
    raise ConfigError(f"unknown aggregation {aggregation!r}; choose log_rank or mean")


def _sorted(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.sort(np.where(np.isnan(values), -np.inf, values))  # a failed score ranks last


def reference_scores(parts: Sequence, space: SearchSpace, folder: str | Path | None
                     ) -> pd.DataFrame:
    """Every part's scores of the reference sample: read from `folder`'s reference.csv where
    it holds them (columns named by the parts' identities), the missing ones scored and added."""
    from nas.ranking.groundtruth import sample_architectures

    archs = [str(a) for a in sample_architectures(space, min(REFERENCE_SIZE, space.size()),
                                                  REFERENCE_SEED)]
    path = Path(folder) / REFERENCE_FILE if folder is not None else None
    table = pd.read_csv(path) if path is not None and path.exists() else pd.DataFrame()
    if table.empty or table["arch"].tolist() != archs:  # another space or sample: start over
        table = pd.DataFrame({"arch": archs})
    missing = [p for p in parts if p.identity() not in table.columns]
    for part in missing:
        with Progress(len(archs), desc=f"reference sample: {part.column}", unit="arch") as bar:
            values = []
            for arch in archs:
                values.append(float(part(space.parse(arch))))
                bar.update(1)
        table[part.identity()] = values
        if path is not None:  # after each part, so an interrupted run keeps what it scored
            atomic_write_csv(path, table)
    return table


class CombinedScorer:
    """A `Scorer`: its parts' quantiles among the reference sample, aggregated (module doc)."""

    column = COLUMN

    def __init__(self, parts: dict[str, object], reference: dict[str, np.ndarray],
                 aggregation: str) -> None:
        self._parts, self.aggregation = parts, aggregation
        self.reference = {label: _sorted(values) for label, values in reference.items()}
        self._explained: dict[str, dict[str, float]] = {}

    @classmethod
    def over(cls, parts: Sequence, labels: Sequence[str], space: SearchSpace, aggregation: str,
             folder: str | Path | None = None) -> CombinedScorer:
        table = reference_scores(parts, space, folder)
        return cls(dict(zip(labels, parts)),
                   {label: table[p.identity()].to_numpy() for label, p in zip(labels, parts)},
                   aggregation)

    def parts(self, arch: Architecture) -> dict[str, float]:
        """Each part's score and its quantile, e.g. {"naswot": 231.4, "naswot_quantile": 0.8}."""
        key = str(arch)
        if key not in self._explained:
            explained = {}
            for label, part in self._parts.items():
                value = float(part(arch))
                explained[label] = value
                explained[f"{label}_quantile"] = quantile(self.reference[label], value)
            self._explained[key] = explained
        return self._explained[key]

    def __call__(self, arch: Architecture) -> float:
        explained = self.parts(arch)
        return aggregate([explained[f"{label}_quantile"] for label in self._parts],
                         self.aggregation)

    def identity(self) -> str:
        size = len(next(iter(self.reference.values())))
        return (f"{self.aggregation} of " + " + ".join(p.identity() for p in self._parts.values())
                + f" against {size} reference architectures (seed {REFERENCE_SEED})")

    def redrawn(self) -> CombinedScorer | None:
        """Each part with random parts redrawn, against the same reference."""
        second = {label: part.redrawn() for label, part in self._parts.items()}
        if all(s is None for s in second.values()):
            return None
        return CombinedScorer({label: second[label] or part
                               for label, part in self._parts.items()},
                              self.reference, self.aggregation)
