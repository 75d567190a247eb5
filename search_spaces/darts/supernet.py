"""Weight-sharing DARTS supernet: every op on every edge, a single path per forward.

Unlike DARTS's search network (a softmax-weighted sum of all ops on all 14 edges,
quark0/darts `cnn/model_search.py` `MixedOp`), `forward(x, arch)` runs only the architecture's
8 (edge, op) pairs per cell: node k = op0(state[i]) + op1(state[j]), as the derived network
of DARTS `cnn/model.py` computes it. `forward(x, mixture)` runs DARTS's search network itself
(`search_spaces/relaxation.py`): node k = sum over its 14-edge inputs i and all 8 ops
(`none` adds nothing) of weight * op(state[i]), the weights per cell type. Modules live at the paths `DartsModel` uses
(`cells.<n>.edges.<k><-<i>.<op>`), so the default copy-by-key `subnet_state_dict` fits the model.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from search_spaces.base import Architecture, SearchSpace, Supernet
from search_spaces.darts.genotype import CELL_TYPES
from search_spaces.darts.genotype import NODES
from search_spaces.darts.model import EDGE_KEYS, EdgeOps, add_network, cell_wiring, run_network
from search_spaces.darts.ops import OP_NAMES
from search_spaces.relaxation import Mixture

# All 14 edges "k<-i" of a cell, each holding all 7 candidate ops.
_EVERY_EDGE: EdgeOps = {key: OP_NAMES for key in EDGE_KEYS.values()}


class DartsSupernet(Supernet):
    """Stem, cells of all (edge, op) pairs, classifier; no architecture is stored in the net."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        add_network(self, space, lambda cell_type: _EVERY_EDGE)

    def candidate_ops(self) -> Iterator[nn.Module]:
        """Every op on every edge of every cell, normal and reduction (both are searched); the
        cells' input preprocessing, the stem and the classifier are not candidates."""
        for cell in self.cells:
            for edge in cell.edges.values():
                yield from edge.values()

    def forward(self, x: torch.Tensor, arch: Architecture | Mixture) -> torch.Tensor:
        if isinstance(arch, Mixture):
            return self._mixed_forward(x, arch)
        values = self.space.check(arch).values
        wirings = {cell: cell_wiring(values, cell) for cell in CELL_TYPES}
        return run_network(self, x, wirings)

    def _mixed_forward(self, x: torch.Tensor, mixture: Mixture) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        for cell in self.cells:
            s0, s1 = s1, _mixed_cell(cell, s0, s1, mixture)
        return self.classifier(self.pool(s1).flatten(1))  # (B, num_classes)


def _mixed_cell(cell, s0: torch.Tensor, s1: torch.Tensor, mixture: Mixture) -> torch.Tensor:
    """DARTS `model_search.py` `Cell.forward` with `MixedOp`s on this cell's modules; the
    mixture's index 0 is `none` (RELAXED_OPS), which computes nothing."""
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    for k in NODES:
        total = None
        for i in range(k):
            key = EDGE_KEYS[k, i]
            weights = mixture[f"{cell.cell_type}.{key}"]
            for index, name in enumerate(OP_NAMES, start=1):
                out = weights[index] * cell.edges[key][name](states[i])
                total = out if total is None else total + out
        states.append(total)
    return torch.cat(states[2:], dim=1)  # (B, 4C, H', W')
