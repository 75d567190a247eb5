"""A ground-truth table as a scorer: searchers compared without training anything.

`nas search --oracle TABLE --column C` looks each proposed architecture up in a table of trained
accuracies (NAS-Bench-201's, e.g. `cifar10_valid_12ep`, its low-fidelity validation signal, or a
`nas groundtruth` CSV), as the NAS-Bench-201 paper compares its searchers. The table must cover
the whole space, since a searcher may propose any architecture; that, and every row's
architecture, is checked before anything is written.
"""
from __future__ import annotations

from pathlib import Path

from nas.errors import DataError
from nas.ranking.correlate import read_ground_truth
from nas.runs import file_checksum
from search_spaces import Architecture, SearchSpace


class TableScorer:
    """Looks architectures up in a ground-truth table (module doc); a `Scorer`."""

    def __init__(self, path: str | Path, space: SearchSpace, column: str | None = None) -> None:
        self.path = Path(path)
        self.truth = read_ground_truth(path, space, column)
        self.column = self.truth.column
        if len(self.truth.accuracy) < space.size():
            raise DataError(f"{path} lists {len(self.truth.accuracy)} of the {space.size()} "
                            f"architectures of {space.name}; an oracle must list them all, since a "
                            f"searcher may propose any")

    def __call__(self, arch: Architecture) -> float:
        return float(self.truth.accuracy[str(arch)])

    def identity(self) -> str:
        return f"oracle sha1:{file_checksum(self.path)}"

    def parts(self, arch: Architecture) -> dict[str, float]:
        return {}  # a single scorer

    def redrawn(self) -> None:
        return None  # a table holds one value per architecture
