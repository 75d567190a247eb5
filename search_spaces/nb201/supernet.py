"""The NB201 weight-sharing supernet: every candidate op on every edge, one path run per call.

Same macro network and module names as `model.py`, so the standalone model's state_dict keys
are a subset of the supernet's and `Supernet.subnet_state_dict` copies weights by key.
`forward(x, mixture)` runs DARTS's continuous relaxation instead (`search_spaces/relaxation.py`):
every edge outputs the weighted sum of its candidates, `none` adding nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

import torch
from torch import nn

from search_spaces.base import Architecture, Supernet
from search_spaces.nb201.ops import (EDGES, INCOMING, OP_NAMES, ResNetBasicBlock, build_head,
                                     build_op, build_stem, stage_plan)
from search_spaces.relaxation import Mixture

if TYPE_CHECKING:
    from search_spaces.nb201.space import NB201Space

EDGE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in EDGES)


class SupernetCell(nn.Module):
    """`edges[e][op]` holds edge e's candidate op; `none` has no module (the edge is skipped)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(self.build_edge(channels) for _ in EDGES)

    def build_edge(self, channels: int) -> nn.ModuleDict:
        """One edge's candidate modules (`run_op` and `mixed_edge` read them)."""
        return nn.ModuleDict({name: build_op(name, channels) for name in OP_NAMES
                              if name != "none"})

    def forward(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:  # (B, C, H, W)
        # Same summation order as `model.InferCell`, so both give bit-identical outputs.
        nodes = [x]
        for incoming in INCOMING:
            total = None
            for e, source in incoming:
                name = ops[e]
                if name == "none":
                    continue
                out = self.run_op(e, name, nodes[source])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]

    def run_op(self, e: int, name: str, x: torch.Tensor) -> torch.Tensor:
        """Candidate `name` of edge e on x (a path's op)."""
        return self.edges[e][name](x)

    def mixed_edge(self, e: int, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum over ops of weights[op] * op(x), in `OP_NAMES` order; `none` contributes zero."""
        total = None
        for index, name in enumerate(OP_NAMES):
            if name == "none":
                continue
            out = weights[index] * self.edges[e][name](x)
            total = out if total is None else total + out
        return total

    def mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The relaxed cell: `weights` (6 edges, 5 ops), node j = sum of its mixed edges."""
        nodes = [x]
        for incoming in INCOMING:
            nodes.append(sum(self.mixed_edge(e, nodes[source], weights[e])
                             for e, source in incoming))
        return nodes[-1]


class NB201Supernet(Supernet):
    """TinyNetwork with a `SupernetCell` (or `cell_class`) in place of each searched cell; all
    cells share `arch` (NB201 repeats one cell everywhere)."""

    def __init__(self, space: NB201Space, cell_class: type[nn.Module] = SupernetCell) -> None:
        super().__init__(space)
        skeleton = space.skeleton
        self.stem = build_stem(skeleton.in_channels, space.width)
        blocks: list[nn.Module] = []
        previous = space.width
        for channels, is_reduction in stage_plan(space.width, space.cells):
            blocks.append(ResNetBasicBlock(previous, channels) if is_reduction
                          else cell_class(channels))
            previous = channels
        self.cells = nn.ModuleList(blocks)
        self._is_reduction = tuple(r for _, r in stage_plan(space.width, space.cells))
        self.head = build_head(previous, skeleton.num_classes)

    def candidate_ops(self) -> Iterator[nn.Module]:
        """Every edge's candidates in every searched cell (not the fixed ResNet reductions)."""
        for cell, is_reduction in zip(self.cells, self._is_reduction):
            if not is_reduction:
                for edge in cell.edges:
                    yield from edge.values()

    def forward(self, x: torch.Tensor, arch: Architecture | Mixture) -> torch.Tensor:
        x = self.stem(x)  # (B, C, H, W)
        if isinstance(arch, Mixture):
            weights = arch.stacked(EDGE_NAMES)  # (6, 5)
            for cell, is_reduction in zip(self.cells, self._is_reduction):
                x = cell(x) if is_reduction else cell.mixed(x, weights)
            return self.head(x)
        ops = self.space.check(arch).values
        for cell, is_reduction in zip(self.cells, self._is_reduction):
            x = cell(x) if is_reduction else cell(x, ops)
        return self.head(x)  # (B, num_classes)
