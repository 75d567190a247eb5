"""GM-NAS (Hu et al., ICLR 2022): split the supernet where candidates disagree on the shared weights.

Gradient matching (official skhu101/GM-NAS `split_supernet`, `utils.match_loss`, RSPS mode).
For a region and one of its decisions, on each of `score_batches` batches: draw a random path
inside the region, force each candidate c of the decision in turn, and take the gradient of the
cross-entropy with respect to the weights every candidate's path uses (the official code takes
all shared weights except the decision's own edge; here "shared" is found, for any space, as
the parameters that receive a gradient under every candidate, which leaves out a candidate's own
weights). The distance of two candidates is 1 - cosine of their gradients, averaged over batches.

Partition (`mincut_split_201` / `mincut_split_darts`): the candidates become a networkx graph
with distances as edge weights; every bipartition with groups of at least 2 (when k >= 4) is
scored, and the one with the least within-group distance (equivalently the heaviest cut) wins:
candidates that would update the shared weights the same way stay together. Among a region's
unsplit decisions the split goes to the one whose best partition has the heaviest cut (NB201
code) or the least within-group distance (DARTS code); `edge_criterion` picks, "auto" follows
the space. Splits are binary (split_num 2) and every sub-supernet splits at each split epoch.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from search_spaces.base import SearchSpace, Supernet
from supernets.methods.base import MethodConfig
from supernets.methods.splitting import SplitTraining, parse_fractions
from supernets.partitioned import PartitionedSupernet, Region


@dataclass(frozen=True)
class GMNASConfig(MethodConfig):
    # Split epochs as fractions of the run: NB201 GM+DARTS splits at epochs 15 and 30 of 60
    # (2 rounds of binary splits: 4 sub-supernets); the DARTS-space script at 2, 4, 6 of 21.
    split_at: str = "0.25,0.5"
    score_batches: int = 100  # official: gradients averaged over 100 batches per candidate
    # Which decisions may be split. "auto": the space's `split_decisions()` (DARTS: the normal
    # cell's ops, the paper's DARTS setting; others: every always-active multi-choice decision).
    # Otherwise comma-separated decision-name prefixes, e.g. "normal." or "1<-0,2<-0".
    decisions: str = "auto"
    edge_criterion: Literal["auto", "cut", "within"] = "auto"  # auto: the space's own
    # The batches gradients are matched on: "train" (official `split_supernet`: a training
    # batch; it also draws a validation batch but never uses it) or "validation" (the run's
    # search-validation batches, through the step context).
    score_data: Literal["train", "validation"] = "train"

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_fractions(self.split_at, "split_at")
        if self.score_batches < 1:
            raise ConfigError(f"score_batches must be >= 1, got {self.score_batches}")
        if self.edge_criterion not in ("auto", "cut", "within"):
            raise ConfigError(f"unknown edge_criterion {self.edge_criterion!r}; choose auto, cut "
                              f"or within")
        if self.score_data not in ("train", "validation"):
            raise ConfigError(f"unknown score_data {self.score_data!r}; choose train or validation")


def cosine_distances(gradients: Sequence[torch.Tensor]) -> np.ndarray:
    """1 - cos between every pair of flattened gradients (official `match_loss`, dis 'cos')."""
    g = torch.stack([v.double() for v in gradients])
    norms = g.norm(dim=1)
    cos = (g @ g.T) / (norms[:, None] * norms[None, :] + 1e-6)
    distances = (1.0 - cos).cpu().numpy()
    np.fill_diagonal(distances, 0.0)
    return distances


def best_bipartition(distances: np.ndarray) -> tuple[list[list[int]], float, float]:
    """The bipartition of candidates with the least within-group distance: (groups, within, cut).

    Group sizes run from 2 to k // 2 when k >= 4 (official), else from 1. Exhaustive: k is at
    most a handful of candidates, where brute force is exact and cheap.
    """
    k = len(distances)
    graph = nx.Graph()
    graph.add_nodes_from(range(k))
    graph.add_weighted_edges_from((i, j, float(distances[i, j]))
                                  for i, j in itertools.combinations(range(k), 2))
    total = graph.size(weight="weight")
    best: tuple[list[list[int]], float, float] | None = None
    for size in range(2 if k >= 4 else 1, k // 2 + 1):
        for group in itertools.combinations(range(k), size):
            rest = [i for i in range(k) if i not in group]
            if size * 2 == k and 0 not in group:
                continue  # the same bipartition as its complement
            cut = nx.cut_size(graph, group, rest, weight="weight")
            if best is None or total - cut < best[1] - 1e-12:
                best = ([list(group), rest], total - cut, cut)
    if best is None:
        raise ConfigError(f"cannot split {k} candidate(s) into two groups")
    return best


def _batches_forever(batches, start_epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for epoch in itertools.count(start_epoch):
        for images, labels, _ in batches.epoch(epoch):
            yield images, labels


class GMNAS(SplitTraining):
    name = "gmnas"
    config_class = GMNASConfig

    def __init__(self, space: SearchSpace, config=None, seed: int = 0) -> None:
        super().__init__(space, config, seed)
        self.fractions = parse_fractions(self.config.split_at, "split_at")
        self.candidates = self._candidate_decisions()
        if not self.candidates:
            raise ConfigError(f"no decision of {space.name} matches decisions="
                              f"{self.config.decisions!r}")

    def _candidate_decisions(self) -> list[int]:
        return [i for i in self._named_decisions() if self.space.is_always_active(i)]

    def _named_decisions(self) -> list[int]:
        if self.config.decisions == "auto":
            return self.space.split_decisions()
        prefixes = tuple(p.strip() for p in self.config.decisions.split(",") if p.strip())
        return [i for i, d in enumerate(self.space.decisions)
                if len(d.choices) > 1 and d.name.startswith(prefixes)]

    def capacity(self) -> int:
        return 2 ** len(self.fractions)

    def split_fractions(self) -> Sequence[float]:
        return self.fractions

    def criterion(self) -> str:
        if self.config.edge_criterion != "auto":
            return self.config.edge_criterion
        return self.space.split_edge_criterion

    def plan_split(self, supernet: PartitionedSupernet, region_index: int,
                   level: int) -> tuple[int, list[list[int]]] | None:
        region = supernet.regions[region_index]
        # Every decision of the region is scored on the same batches (as "train" draws them).
        batches = (None if self.config.score_data == "train" else
                   [next(self.context.validation_batches())[:2]
                    for _ in range(self.config.score_batches)])
        best = None
        for decision in self.candidates:
            if decision in region.allowed or len(region.choices(self.space, decision)) < 2:
                continue  # already split in this region (the official code splits an edge once)
            distances = self.gradient_distances(supernet, region, decision, level, region_index,
                                                batches)
            groups, within, cut = best_bipartition(distances)
            choices = region.choices(self.space, decision)
            key = -cut if self.criterion() == "cut" else within
            if best is None or key < best[0] - 1e-12:
                best = (key, decision, [[choices[i] for i in g] for g in groups])
        return None if best is None else (best[1], best[2])

    def gradient_distances(self, supernet: PartitionedSupernet, region: Region, decision: int,
                           level: int, region_index: int,
                           batches: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None
                           ) -> np.ndarray:
        """The averaged candidate-by-candidate gradient distance matrix of one decision, on
        `batches` (default: `score_batches` training batches of the (level, region))."""
        part: Supernet = supernet.parts[region.part]
        parameters = list(part.parameters())
        choices = region.choices(self.space, decision)
        # A generator per (seed, level, region, decision): a resumed run recomputes the same split.
        rng = np.random.default_rng([self.seed, level, region_index, decision])
        data = (iter(batches) if batches is not None else
                _batches_forever(self.batches, 1_000_000 + 1000 * level + region_index))
        total, used = np.zeros((len(choices), len(choices))), 0
        for _ in range(self.config.score_batches):
            images, labels = next(data)
            base = region.sample(self.space, rng)
            indices = [d.index(v) for d, v in zip(self.space.decisions, base.values)]
            gradients = []
            for choice in choices:
                indices[decision] = choice
                arch = self.space.from_indices(indices)
                loss = F.cross_entropy(part(images, arch), labels)
                gradients.append(torch.autograd.grad(loss, parameters, allow_unused=True))
            shared = [i for i in range(len(parameters)) if all(g[i] is not None for g in gradients)]
            if not shared:
                continue  # nothing in common to compare: no evidence for either grouping
            total += cosine_distances([torch.cat([g[i].reshape(-1) for i in shared])
                                       for g in gradients])
            used += 1
        # Under torchrun each rank matched gradients on its shard of the batches: the mean over
        # every rank's batches, so every rank splits alike.
        sums = self.context.all_reduce(torch.from_numpy(np.append(total.ravel(), used)))
        total, used = sums[:-1].numpy().reshape(total.shape), float(sums[-1])
        return total / max(used, 1)
