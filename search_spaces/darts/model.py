"""The DARTS macro network, its cell, and the standalone model of one architecture.

The macro is DARTS's *search* network (quark0/darts `cnn/model_search.py` `Network`): a 3x3
stem to 3C channels, `cells` cells with reductions at positions cells//3 and 2*cells//3
(channels doubled at each), global average pooling and a linear classifier. The supernet
(`supernet.py`) builds the same network with all 7 ops on all 14 edges; the model holds only its
8 chosen ops per cell type, under the same module paths, so weights copy over by key.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from search_spaces.base import Architecture, SearchSpace
from search_spaces.darts.genotype import CELL_TYPES, NODES, cell_nodes
from search_spaces.darts.ops import FactorizedReduce, ReLUConvBN, build_op

STEM_MULTIPLIER = 3  # DARTS `stem_multiplier`
MULTIPLIER = len(NODES)  # a cell outputs the concat of its 4 intermediate nodes

# One node's two summands: (input node, edge key "k<-i", op name), for its inputs i < j.
NodeWiring = tuple[tuple[int, str, str], tuple[int, str, str]]
Wiring = tuple[NodeWiring, ...]
EdgeOps = Mapping[str, Sequence[str]]  # edge key -> names of the ops that edge holds

EDGE_KEYS: dict[tuple[int, int], str] = {(k, i): f"{k}<-{i}" for k in NODES for i in range(k)}


def reduction_cells(cells: int) -> frozenset[int]:
    """Positions of reduction cells, DARTS's `i in [layers//3, 2*layers//3]`, as a set.

    With 1 cell both positions are 0: the only cell is a reduction cell. With 2 cells they are
    0 and 1: both cells reduce. In either case there is no normal cell, so the `normal.*`
    decisions still name distinct architectures but do not change the network.
    """
    return frozenset({cells // 3, 2 * cells // 3})


def cell_wiring(values: tuple, cell: str) -> Wiring:
    """Which edge and op feed each intermediate node of `cell`, from an architecture's values."""
    return tuple(((i, EDGE_KEYS[k, i], op_i), (j, EDGE_KEYS[k, j], op_j))
                 for k, ((i, j), op_i, op_j) in zip(NODES, cell_nodes(values, cell)))


class Cell(nn.Module):
    """One DARTS cell: preprocess both inputs to C channels, then node k = op(s_i) + op(s_j).

    `edges["k<-i"][op]` is the op on the edge from node i to node k; edges from the two input
    nodes stride 2 in a reduction cell. Which edges and ops exist is given by `edge_ops`; which
    run is given to `forward` by the wiring.
    """

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, cell_type: str,
                 is_reduction_prev: bool, edge_ops: EdgeOps) -> None:
        super().__init__()
        self.cell_type = cell_type
        # The input two cells back has twice the resolution of the last one after a reduction.
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels) if is_reduction_prev
                            else ReLUConvBN(c_prev_prev, channels))
        self.preprocess1 = ReLUConvBN(c_prev, channels)
        edges = {}
        for key, ops in edge_ops.items():
            source = int(key.split("<-")[1])
            stride = 2 if cell_type == "reduce" and source < 2 else 1
            edges[key] = nn.ModuleDict({op: build_op(op, channels, stride) for op in ops})
        self.edges = nn.ModuleDict(edges)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, wiring: Wiring) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # each (B, C, H', W')
        for (i, edge_i, op_i), (j, edge_j, op_j) in wiring:
            states.append(self.edges[edge_i][op_i](states[i]) + self.edges[edge_j][op_j](states[j]))
        return torch.cat(states[2:], dim=1)  # (B, 4C, H', W')


def add_network(net: nn.Module, space: SearchSpace, edge_ops: Callable[[str], EdgeOps]) -> None:
    """Give `net` the macro network's modules: `stem`, `cells`, `pool`, `classifier`.

    `edge_ops(cell_type)` says which ops each cell of that type holds. Channel bookkeeping as
    DARTS `Network.__init__`: C doubles at each reduction, a cell outputs 4C channels.
    """
    stem_channels = STEM_MULTIPLIER * space.width
    net.stem = nn.Sequential(
        nn.Conv2d(space.skeleton.in_channels, stem_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_channels, affine=True, track_running_stats=True),
    )
    reductions = reduction_cells(space.cells)
    c_prev_prev, c_prev, channels = stem_channels, stem_channels, space.width
    is_reduction_prev = False
    cells = []
    for position in range(space.cells):
        is_reduction = position in reductions
        channels *= 2 if is_reduction else 1
        cell_type = "reduce" if is_reduction else "normal"
        cells.append(Cell(c_prev_prev, c_prev, channels, cell_type, is_reduction_prev,
                          edge_ops(cell_type)))
        c_prev_prev, c_prev = c_prev, MULTIPLIER * channels
        is_reduction_prev = is_reduction
    net.cells = nn.ModuleList(cells)
    net.pool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(c_prev, space.skeleton.num_classes)


def run_network(net: nn.Module, x: torch.Tensor, wirings: Mapping[str, Wiring]) -> torch.Tensor:
    """Forward pass of a network built by `add_network`; `wirings[cell_type]` picks the ops."""
    s0 = s1 = net.stem(x)  # (B, 3C, H, W)
    for cell in net.cells:
        s0, s1 = s1, cell(s0, s1, wirings[cell.cell_type])
    return net.classifier(net.pool(s1).flatten(1))  # (B, num_classes)


class DartsModel(nn.Module):
    """The standalone network of one architecture: only the 8 chosen ops per cell, fixed wiring."""

    def __init__(self, space: SearchSpace, arch: Architecture) -> None:
        super().__init__()
        self.wirings = {cell: cell_wiring(arch.values, cell) for cell in CELL_TYPES}

        def chosen_ops(cell_type: str) -> EdgeOps:
            return {edge: (op,) for node in self.wirings[cell_type] for _, edge, op in node}

        add_network(self, space, chosen_ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_network(self, x, self.wirings)
