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

from typing import Callable, Mapping, Sequence

from search_spaces.base import Architecture, Choice, Decision, SearchSpace
from search_spaces.darts.genotype import (CELL_TYPES, NODES, Genotype, format_genotype,
                                          genotype_of, input_pairs, parse_genotype)
from search_spaces.darts.model import DartsModel
from search_spaces.darts.ops import OP_NAMES

RELAXED_OPS: tuple[str, ...] = ("none", *OP_NAMES)  # DARTS `PRIMITIVES`, `none` first
from search_spaces.darts.supernet import DartsSupernet


class DartsSpace(SearchSpace):
    """DARTS cells in DARTS's search-network skeleton: C = `width` (16), `cells` layers (3 by
    default, 8 in DARTS's search network).

    Reduction cells sit at positions cells//3 and 2*cells//3; with 1 or 2 cells every cell is
    a reduction cell and the normal-cell decisions have no effect (see `model.reduction_cells`).
    """

    name = "darts"
    default_width = 16  # DARTS search: C = 16 (`train_search.py --init_channels`)
    # 3 layers (normal, reduce, reduce), not DARTS's 8 (`train_search.py --layers`, which
    # `--cells 8` gives): a single-path supernet of 8 layers is still at chance after 600 steps
    # on the embedded digits where 3 layers reach a 95% median in 2,400 (results/main_job/).
    default_cells = 3

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

    split_edge_criterion = "within"  # GM-NAS `mincut_split_darts`

    def split_decisions(self) -> list[int]:
        """The normal cell's operation decisions: the GM-NAS paper splits only those in the DARTS
        space (14 edges); Few-Shot NAS's DARTS baseline splits one edge, the first."""
        return [i for i, d in enumerate(self.decisions)
                if d.name.startswith("normal.") and ".op" in d.name and len(d.choices) > 1]

    def largest(self) -> Architecture:
        """Every op `sep_conv_5x5`, node k reading (k-2, k-1): the deepest cell of the op with
        the most parameters and FLOPs (two stacked depthwise-5x5 + pointwise layers). `params_m`
        on Skeleton(3, 10, 8, width=4, cells=3): 19,670 all-`sep_conv_5x5` vs 10,934 for the
        runner-up `dil_conv_5x5`. For `sep_conv_5x5` the input pairs change neither count (a
        stride-2 op on a reduction cell's input costs what a stride-1 op on a reduced node
        does), so the chain is chosen for depth: four separable convolutions in sequence."""
        return self._uniform(lambda k: (k - 2, k - 1), {"normal": "sep_conv_5x5",
                                                        "reduce": "sep_conv_5x5"})

    def smallest(self) -> Architecture:
        """Every node reads the two cell inputs (0, 1); normal cells `skip_connect` (identity),
        reduction cells `max_pool_3x3`. Both cost zero parameters and zero counted FLOPs, so the
        network holds only stem, preprocessing and classifier. In a reduction cell every edge
        from (0, 1) has stride 2, where `skip_connect` is a FactorizedReduce with C^2 weights
        (same skeleton: 5,142 parameters all-skip vs 2,198 here), so max-pooling is the
        free op that still passes information; `avg_pool_3x3` ties on both counts and would do
        as well. `skip_connect` is kept in normal cells: identity does no work at all, where
        pooling still does (uncounted) comparisons."""
        return self._uniform(lambda k: (0, 1), {"normal": "skip_connect",
                                                "reduce": "max_pool_3x3"})

    def _uniform(self, pair: Callable[[int], tuple[int, int]],
                 ops: Mapping[str, str]) -> Architecture:
        """One op per cell type on both inputs of every node, inputs `pair(k)` for node k."""
        return self.architecture([value for cell in CELL_TYPES for k in NODES
                                  for value in (pair(k), ops[cell], ops[cell])])

    # ---- the continuous relaxation (search_spaces/relaxation.py) ------------------------
    def relaxed_decisions(self) -> tuple[Decision, ...]:
        """DARTS's alphas: per cell type, each of the 14 edges "k<-i" over the 8 ops with
        `none` (`RELAXED_OPS`), in DARTS's order (node 2's edges from 0 and 1, then node 3's...)."""
        return tuple(Decision(f"{cell}.{k}<-{i}", RELAXED_OPS)
                     for cell in CELL_TYPES for k in NODES for i in range(k))

    def derive(self, probabilities: Sequence[Sequence[float]]) -> Architecture:
        """DARTS's discretisation (quark0/darts `model_search.py` `genotype()._parse`): each node
        keeps its 2 inputs whose strongest non-`none` op weighs most, each with that op."""
        rows = iter(probabilities)
        values: list = []
        for _cell in CELL_TYPES:
            for k in NODES:
                best = {}  # input -> (weight, op) of its strongest op other than none
                for i in range(k):
                    row = next(rows)
                    index = max(range(1, len(RELAXED_OPS)), key=lambda j: row[j])
                    best[i] = (row[index], RELAXED_OPS[index])
                i, j = sorted(sorted(best, key=lambda i: -best[i][0])[:2])
                values.extend([(i, j), best[i][1], best[j][1]])
        return self.architecture(values)

    def build_supernet(self) -> DartsSupernet:
        return DartsSupernet(self)

    def build_model(self, arch: Architecture) -> DartsModel:
        return DartsModel(self, self.check(arch))
