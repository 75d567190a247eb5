"""Weight-sharing DARTS supernet: every op on every edge, a single path per forward.

Unlike DARTS's search network (a softmax-weighted sum of all ops on all 14 edges,
quark0/darts `cnn/model_search.py` `MixedOp`), `forward(x, arch)` runs only the architecture's
8 (edge, op) pairs per cell: node k = op0(state[i]) + op1(state[j]), as the derived network
of DARTS `cnn/model.py` computes it. Modules live at the paths `DartsModel` uses
(`cells.<n>.edges.<k><-<i>.<op>`), so the default copy-by-key `subnet_state_dict` fits the model.
"""
from __future__ import annotations

import torch

from search_spaces.base import Architecture, SearchSpace, Supernet
from search_spaces.darts.genotype import CELL_TYPES
from search_spaces.darts.model import EDGE_KEYS, EdgeOps, add_network, cell_wiring, run_network
from search_spaces.darts.ops import OP_NAMES

# All 14 edges "k<-i" of a cell, each holding all 7 candidate ops.
_EVERY_EDGE: EdgeOps = {key: OP_NAMES for key in EDGE_KEYS.values()}


class DartsSupernet(Supernet):
    """Stem, cells of all (edge, op) pairs, classifier; no architecture is stored in the net."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        add_network(self, space, lambda cell_type: _EVERY_EDGE)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        values = self.space.check(arch).values
        wirings = {cell: cell_wiring(values, cell) for cell in CELL_TYPES}
        return run_network(self, x, wirings)
