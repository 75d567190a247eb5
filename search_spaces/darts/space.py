"""The DARTS CNN cell space (Liu et al., ICLR 2019) as discretised cells: 24 categorical decisions.

For each cell type ("normal", "reduce") and intermediate node k in 2..5 (DARTS numbering:
0 = c_{k-2}, 1 = c_{k-1}), three decisions:

- `{cell}.node{k}.inputs`: the pair (i, j), i < j < k, of nodes it reads (1, 3, 6, 10 choices);
- `{cell}.node{k}.op0` / `.op1`: the op on input i / on input j, each one of 7 ops
  (DARTS `PRIMITIVES` without `none`).

This is exactly the set of cells DARTS's discretisation can produce (2 distinct strongest
inputs per node, each with its best non-`none` op; quark0/darts `cnn/model_search.py`
`genotype()`), so size() = (1*3*6*10 * 7**8)**2. The canonical string is DARTS's
`Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`
with each node's pairs sorted by input; `parse` also reads genotypes as published in code.
"""
from __future__ import annotations

from typing import Sequence

from search_spaces.base import Architecture, Choice, Decision, SearchSpace
from search_spaces.darts.genotype import (CELL_TYPES, NODES, Genotype, format_genotype,
                                          genotype_of, input_pairs, parse_genotype)
from search_spaces.darts.model import DartsModel
from search_spaces.darts.ops import OP_NAMES
from search_spaces.darts.supernet import DartsSupernet


class DartsSpace(SearchSpace):
    """DARTS cells in DARTS's search-network skeleton: C = `width` (16), `cells` layers (8).

    Reduction cells sit at positions cells//3 and 2*cells//3; with 1 or 2 cells every cell is
    a reduction cell and the normal-cell decisions have no effect (see `model.reduction_cells`).
    """

    name = "darts"
    default_width = 16  # DARTS search: C = 16 (`train_search.py --init_channels`)
    default_cells = 8  # DARTS search: 8 layers (`train_search.py --layers`)

    def _build_decisions(self) -> Sequence[Decision]:
        decisions = []
        for cell in CELL_TYPES:
            for k in NODES:
                decisions.append(Decision(f"{cell}.node{k}.inputs", input_pairs(k)))
                decisions.append(Decision(f"{cell}.node{k}.op0", OP_NAMES))
                decisions.append(Decision(f"{cell}.node{k}.op1", OP_NAMES))
        return decisions

    def format(self, values: tuple[Choice, ...]) -> str:
        return format_genotype(values)

    def parse(self, text: str) -> Architecture:
        """Read a `Genotype(...)` string; `range(2, 6)` concat and either pair order are fine."""
        return self.architecture(parse_genotype(text))

    def genotype(self, arch: Architecture) -> Genotype:
        """DARTS's `Genotype` namedtuple of `arch`, for code written against quark0/darts."""
        return genotype_of(self.check(arch).values)

    def build_supernet(self) -> DartsSupernet:
        return DartsSupernet(self)

    def build_model(self, arch: Architecture) -> DartsModel:
        return DartsModel(self, self.check(arch))
