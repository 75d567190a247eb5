"""Few-Shot NAS (Zhao et al., ICML 2021): split the supernet exhaustively on one decision.

A decision with k candidates gives k sub-supernets, sub-supernet i owning the architectures
that choose candidate i there; each is warm-started from the one-shot supernet trained so far
("weight transferring", official aoiang/few-shot-NAS) and trained on its own architectures.

Budget. The official NB201 recipe trains the one-shot supernet 600 epochs, then every
sub-supernet 300 epochs: each sub-supernet gets half the one-shot's training. At a fixed total
number of steps, with k sub-supernets sharing the steps after the split, that ratio puts the
split at 2 / (k + 2) of the run (2/7 for NB201's 5 ops), the default of `split_at`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nas.errors import ConfigError
from supernets.methods.base import MethodConfig
from supernets.methods.splitting import SplitTraining, find_decision
from supernets.partitioned import PartitionedSupernet, require_splittable


@dataclass(frozen=True)
class FewShotConfig(MethodConfig):
    # The decision to split on. "" = the first of the space's `split_decisions()`: NB201's first
    # edge 1<-0, as the official NB201 code; DARTS normal.node2.op0 (one edge, as the
    # DARTS-space Few-Shot baseline); mobilenet its resolution.
    decision: str = ""
    # Fraction of the run before the split; None = 2 / (k + 2), the official budget ratio above.
    split_at: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split_at is not None and not 0 <= self.split_at < 1:
            raise ConfigError(f"split_at must lie in [0, 1), got {self.split_at}")


class FewShot(SplitTraining):
    name = "fewshot"
    config_class = FewShotConfig

    def __init__(self, space, config=None, seed: int = 0) -> None:
        super().__init__(space, config, seed)
        if self.config.decision:
            self.decision = find_decision(space, self.config.decision)
        else:
            splittable = space.split_decisions()
            if not splittable:
                raise ConfigError(f"{space.name} has no decision with more than one candidate")
            self.decision = splittable[0]
        require_splittable(space, self.decision)  # now, not when the split comes mid-run
        self.k = len(space.decisions[self.decision].choices)
        if self.k < 2:
            raise ConfigError(f"decision {space.decisions[self.decision].name} has one candidate; "
                              f"choose one with several")

    def capacity(self) -> int:
        return self.k

    def split_fractions(self) -> Sequence[float]:
        return [self.config.split_at if self.config.split_at is not None else 2 / (self.k + 2)]

    def plan_split(self, supernet: PartitionedSupernet, region_index: int,
                   level: int) -> tuple[int, list[list[int]]]:
        return self.decision, [[i] for i in range(self.k)]
