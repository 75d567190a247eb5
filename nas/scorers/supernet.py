"""The trained supernet as a scorer: an architecture's validation accuracy with inherited
weights, as the method that trained the supernet scores it (its BatchNorm mode, calibration
batches), so one architecture gets one score from one run wherever it is scored."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from nas.problem import prepare_scoring_data
from nas.runs import file_checksum
from nas.training.supernet import TrainedSupernet
from search_spaces import Architecture
from supernets import ScoringData

COLUMN = "val_accuracy"  # the supernet's scores in trials.csv
REDRAW_SEED = 1  # seeds the second draw's order of images (trust's score noise)


def redrawn(source, seed: int):
    """The same evaluation-style batch source over its images in another seeded order: the
    batches a method takes first (calibration) or normalises together (batch statistics)
    become another draw of the same data."""
    other = copy.copy(source)
    generator = torch.Generator().manual_seed(seed)
    other.indices = source.indices[torch.randperm(len(source.indices), generator=generator)]
    return other


@dataclass(frozen=True)
class SupernetScorer:
    """A `Scorer`: validation accuracy (%) of an architecture with the supernet's weights.
    `data` None scores on the problem's own scoring data."""

    trained: TrainedSupernet
    data: ScoringData | None = field(default=None, repr=False)
    column: str = COLUMN

    def __call__(self, arch: Architecture) -> float:
        trained = self.trained
        data = self.data if self.data is not None else trained.problem.scoring_data()
        return trained.method.score(trained.supernet, arch, data)

    def identity(self) -> str:
        return f"supernet sha1:{file_checksum(self.trained.checkpoint)}"

    def parts(self, arch: Architecture) -> dict[str, float]:
        return {}  # a single scorer

    def redrawn(self) -> SupernetScorer:
        """Scores on other calibration images (recalibrating methods) and other evaluation
        batches (batch-statistics methods): the same images in another seeded order."""
        splits = self.trained.problem.splits
        second = prepare_scoring_data(redrawn(splits.val, REDRAW_SEED),
                                      redrawn(splits.calibration, REDRAW_SEED))
        return SupernetScorer(self.trained, second, self.column)
