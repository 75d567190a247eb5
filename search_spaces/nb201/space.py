"""The NAS-Bench-201 search space: one 4-node cell, 6 edges, 5 ops each, 5^6 = 15,625 cells.

The canonical string is the benchmark's own (AutoDL `Structure.tostr`), e.g.
`|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`,
so architectures join with the NB201/NATS-Bench tables row for row.
"""
from __future__ import annotations

import functools
import itertools
from collections import Counter
from typing import Sequence

import networkx as nx
from torch import nn

from nas.errors import ArchitectureError, ConfigError
from search_spaces.base import Architecture, Choice, Decision, SearchSpace, Skeleton
from search_spaces.nb201.entangled import EntangledNB201Supernet
from search_spaces.nb201.model import NB201Model
from search_spaces.nb201.ops import EDGES, INCOMING, NODES, OP_NAMES
from search_spaces.nb201.supernet import NB201Supernet

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _show(text: str) -> str:
    """A token quoted on one line (repr escapes newlines), shortened if long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


class NB201Space(SearchSpace):
    """Decisions are the edges `1<-0 ... 3<-2` in string order; choices are `OP_NAMES` in AutoDL
    index order, so `from_indices` of the table's `ops` column gives its `arch`."""

    name = "nb201"
    default_width = 16  # C of NB201's CIFAR networks
    default_cells = 5  # N cells per stage
    weight_entanglement = "optional"  # `build_entangled_supernet`: the two convs share a kernel

    def __init__(self, skeleton: Skeleton | None = None) -> None:
        super().__init__(skeleton)
        # Two stride-2 reductions whose branches (conv pad 1, avg-pool 2x2) must agree in size.
        if self.skeleton.image_size % 4:
            raise ConfigError(f"nb201 needs an image size divisible by 4 (two stride-2 "
                              f"reductions), got {self.skeleton.image_size}")

    def _build_decisions(self) -> Sequence[Decision]:
        return [Decision(name, OP_NAMES) for name, _, _ in EDGES]

    # ---- strings ------------------------------------------------------------------------
    def format(self, values: tuple[Choice, ...]) -> str:
        return "+".join(
            "|" + "|".join(f"{values[e]}~{source}" for e, source in incoming) + "|"
            for incoming in INCOMING
        )

    def parse(self, text: str) -> Architecture:
        if not isinstance(text, str):
            raise ArchitectureError(
                f"nb201 architecture must be a string, got {type(text).__name__}")
        groups = text.strip().split("+")
        if len(groups) != NODES - 1:
            raise ArchitectureError(
                f"nb201 architecture needs {NODES - 1} nodes joined by '+', got {len(groups)} in "
                f"{_show(text.strip())}; e.g. {_EXAMPLE}")
        values: list[str] = []
        for node, (group, incoming) in enumerate(zip(groups, INCOMING), start=1):
            values.extend(self._parse_node(node, group, incoming))
        return self.architecture(values)

    def _parse_node(self, node: int, group: str,
                    incoming: tuple[tuple[int, int], ...]) -> list[str]:
        inputs = "|".join(f"op~{source}" for _, source in incoming)
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise ArchitectureError(
                f"node {node} {_show(group)} must be written between bars as |{inputs}|")
        tokens = group[1:-1].split("|")
        if len(tokens) != len(incoming):
            raise ArchitectureError(
                f"node {node} needs {len(incoming)} inputs |{inputs}|, got {len(tokens)} in "
                f"{_show(group)}")
        ops = []
        for token, (e, source) in zip(tokens, incoming):
            edge = EDGES[e][0]
            op, tilde, index = token.partition("~")
            if not tilde:
                raise ArchitectureError(f"edge {edge} token {_show(token)} lacks its input; "
                                        f"write op~{source}")
            if op not in OP_NAMES:
                raise ArchitectureError(f"unknown op {_show(op)} in edge {edge}; choose one of: "
                                        f"{', '.join(OP_NAMES)}")
            if index != str(source):
                raise ArchitectureError(
                    f"edge {edge} has input {_show('~' + index)}; node {node}'s inputs are "
                    f"~0..~{node - 1} in order, so write ~{source}")
            ops.append(op)
        return ops

    # ---- the sandwich rule's extremes -------------------------------------------------
    def largest(self) -> Architecture:
        """Every edge `nor_conv_3x3`: the most parameters and FLOPs of the 15,625 cells."""
        return self.architecture(["nor_conv_3x3"] * len(EDGES))

    def smallest(self) -> Architecture:
        """Every edge `skip_connect`: zero cell parameters and FLOPs, yet the cell passes its
        input on (node 3 sums four identity paths). `none` everywhere costs the same but
        outputs zeros, so the network would ignore its input and a student taught through it
        learns nothing; `avg_pool_3x3` is also free of both but does work skip does not."""
        return self.architecture(["skip_connect"] * len(EDGES))

    # ---- the continuous relaxation (search_spaces/relaxation.py) ------------------------
    def relaxed_decisions(self) -> tuple[Decision, ...]:
        """DARTS on NB201 relaxes the space's own decisions: each edge over all 5 ops."""
        return self.decisions

    def derive(self, probabilities: Sequence[Sequence[float]]) -> Architecture:
        """The strongest op of each edge, `none` included (NB201 cells may drop an edge):
        TangleNAS / DrNAS `genotype()` on NB201."""
        return self.architecture([OP_NAMES[max(range(len(OP_NAMES)), key=lambda i: row[i])]
                                  for row in probabilities])

    # ---- networks -----------------------------------------------------------------------
    def build_supernet(self) -> NB201Supernet:
        return NB201Supernet(self)

    def build_entangled_supernet(self) -> EntangledNB201Supernet:
        """Each edge's `nor_conv_1x1` is the centre of its `nor_conv_3x3` (TangleNAS)."""
        return EntangledNB201Supernet(self)

    def build_model(self, arch: Architecture) -> nn.Module:
        s = self.skeleton
        return NB201Model(self.check(arch).values, s.in_channels, s.num_classes, self.width,
                          self.cells)

    # ---- isomorphism --------------------------------------------------------------------
    def isomorphism_key(self, arch: Architecture) -> str:
        """One key per class of cells computing the same function of the cell input.

        Two cells get equal keys iff their `cell_graph`s are isomorphic (exact canonical form,
        see `_canonical_form`), e.g. `skip_connect` chains that deliver the same terms, or edges
        whose result never reaches the output. The 15,625 cells form 5,425 classes. NB201's
        `Structure.to_unique_str(consider_zero=True)` (6,466 classes, used by HW-NAS-Bench-360)
        differs: it unfolds shared nodes, so one conv read twice equals two convs, and it keeps
        nested sums as unsorted strings and `none` terms as '#', so equal sums can differ.
        """
        return _canonical_form(self.check(arch).values)

    def cell_graph(self, arch: Architecture) -> nx.DiGraph:
        """The DAG `isomorphism_key` canonicalises (see `_live_terms`), for inspection and for
        checking keys against `nx.is_isomorphic`. Vertices carry `label`, arcs `count`."""
        labels, inputs = _live_terms(self.check(arch).values)
        graph = nx.DiGraph()
        graph.add_nodes_from((v, {"label": label}) for v, label in labels.items())
        graph.add_edges_from((u, v, {"count": c}) for v, terms in inputs.items()
                             for u, c in terms.items())
        return graph


def _live_terms(ops: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Counter[str]]]:
    """The cell as op instances the output depends on: (label of each vertex, multiset of the
    vertices summed into its input), both in topological order.

    Vertices are "input", "output" and one per conv/pool edge, named after the edge.
    `skip_connect` is contracted (a node's terms pass through unchanged), `none` is dropped, and
    an op fed only zeros is dropped too: that treats ReLU-Conv-BN(0), a learned BN bias, as zero,
    as NB201's `to_unique_str(consider_zero=True)` does for node 1. Finally only vertices with a
    path to the output are kept.
    """
    labels = {"input": "input"}
    inputs: dict[str, Counter[str]] = {"input": Counter()}
    terms: list[Counter[str]] = [Counter({"input": 1})]  # cell node -> multiset of summed vertices
    for incoming in INCOMING:
        total: Counter[str] = Counter()
        for e, source in incoming:
            op = ops[e]
            if op == "none" or not terms[source]:
                continue
            if op == "skip_connect":
                total.update(terms[source])
                continue
            vertex = EDGES[e][0]
            labels[vertex], inputs[vertex] = op, terms[source]
            total[vertex] += 1
        terms.append(total)
    labels["output"], inputs["output"] = "output", terms[-1]
    live = {"output"}
    for v in reversed(labels):  # reverse topological order: readers come before their inputs
        if v in live:
            live.update(inputs[v])
    return ({v: label for v, label in labels.items() if v in live},
            {v: terms for v, terms in inputs.items() if v in live})


@functools.lru_cache(maxsize=None)
def _canonical_form(ops: tuple[str, ...]) -> str:
    """Lexicographically least encoding of the `_live_terms` graph over the vertex orders that
    respect an isomorphism invariant: exact (a canonical form, not a hash), and cheap because
    at most 6 op vertices exist and few tie under the invariant."""
    labels, inputs = _live_terms(ops)
    down: dict[str, str] = {}  # how a vertex is computed from the input
    for v in labels:
        parts = sorted(f"{down[u]}*{c}" for u, c in inputs[v].items())
        down[v] = f"{labels[v]}({','.join(parts)})"
    readers: dict[str, list[tuple[str, int]]] = {v: [] for v in labels}
    for v, terms in inputs.items():
        for u, c in terms.items():
            readers[u].append((v, c))
    up: dict[str, str] = {}  # how a vertex's result is used on the way to the output
    for v in reversed(labels):
        up[v] = "[" + ",".join(sorted(f"{down[w]}{up[w]}*{c}" for w, c in readers[v])) + "]"
    vertices = sorted((v for v in labels if v not in ("input", "output")),
                      key=lambda v: (down[v], up[v]))
    groups = [list(g) for _, g in itertools.groupby(vertices, key=lambda v: (down[v], up[v]))]
    best = None
    for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [*itertools.chain.from_iterable(choice), "output"]
        names = {"input": "x", **{v: f"v{i}" for i, v in enumerate(order[:-1])}}
        text = ";".join(
            f"{labels[v]}({','.join(sorted(f'{names[u]}*{c}' for u, c in inputs[v].items()))})"
            for v in order)
        best = text if best is None or text < best else best
    return best
