"""DARTS space: decisions, Genotype notation, published genotypes, op math, supernet vs model."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nas.errors import ArchitectureError
from search_spaces import Skeleton, get_space
from search_spaces.base import Architecture
from search_spaces.darts.genotype import Genotype
from search_spaces.darts.model import reduction_cells
from search_spaces.darts.ops import OP_NAMES, FactorizedReduce

TINY = Skeleton(width=4, cells=3, image_size=8)  # cell 0 normal, cells 1 and 2 reduce

# Published genotypes, copied as written. DARTS_V1/V2: quark0/darts `cnn/genotypes.py` (the index
# holds the first commit, whose `DARTS` equals V1; V1 and V2 as below are in yuhuixu1993/PC-DARTS
# `genotypes.py`, which copies the official file). PC_DARTS_cifar: yuhuixu1993/PC-DARTS.
# GM-NAS: skhu101/GM-NAS `WS-GM/sota/cnn/genotypes.py`, the GM + DARTS (1st) cell the README
# reports at 97.65%.
DARTS_V1 = """Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"""  # noqa: E501
DARTS_V2 = """Genotype(
    normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1),
            ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0),
            ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"""  # noqa: E501
PC_DARTS_CIFAR = """Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"""  # noqa: E501
GM_NAS_DARTS_1ST = """Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 2), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 3), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('dil_conv_5x5', 2), ('sep_conv_3x3', 0), ('dil_conv_3x3', 3), ('skip_connect', 1), ('dil_conv_5x5', 4), ('sep_conv_5x5', 3)], reduce_concat=range(2, 6))"""  # noqa: E501
PUBLISHED = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "PC_DARTS_cifar": PC_DARTS_CIFAR,
             "GM_NAS": GM_NAS_DARTS_1ST}


@pytest.fixture(scope="module")
def space():
    return get_space("darts", TINY)


def _pairs(text: str) -> list[tuple[str, int]]:
    return [(op, int(i)) for op, i in re.findall(r"\(\s*['\"](\w+)['\"]\s*,\s*(\d+)\s*\)", text)]


def _node_sets(pairs: list[tuple[str, int]]) -> list[set]:
    return [set(pairs[n:n + 2]) for n in range(0, 8, 2)]


# ---- decisions and notation -------------------------------------------------------------
def test_decisions_and_size(space):
    assert space.default_width == 16 and space.default_cells == 3
    assert len(space.decisions) == 24
    inputs = [d.choices for d in space.decisions if d.name.startswith("normal.node")
              and d.name.endswith(".inputs")]
    assert [len(c) for c in inputs] == [1, 3, 6, 10]
    assert inputs[3] == ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4),
                         (3, 4))
    ops = [d for d in space.decisions if ".op" in d.name]
    assert len(ops) == 16 and all(d.choices == OP_NAMES for d in ops)
    assert OP_NAMES[0] == "max_pool_3x3" and "none" not in OP_NAMES
    assert space.size() == (1 * 3 * 6 * 10 * 7 ** 8) ** 2


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_round_trip_and_pair_order(space, data):
    indices = [data.draw(st.integers(0, len(d.choices) - 1)) for d in space.decisions]
    arch = space.from_indices(indices)
    text = str(arch)
    assert space.parse(text) == arch
    assert space.parse(repr(space.genotype(arch))) == arch  # DARTS's namedtuple repr
    # Swapping the two pairs of every node, as DARTS prints strongest-first, names the same cell.
    swapped = re.sub(r"(\('\w+', \d\)), (\('\w+', \d\))", r"\2, \1", text)
    assert swapped != text and space.parse(swapped) == arch


def test_canonical_form_sorts_pairs(space):
    arch = space.parse(DARTS_V1)
    genotype = space.genotype(arch)
    assert isinstance(genotype, Genotype) and genotype.normal_concat == [2, 3, 4, 5]
    for cell in (genotype.normal, genotype.reduce):
        assert all(cell[n][1] < cell[n + 1][1] for n in range(0, 8, 2))
    assert str(arch).startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    assert str(arch).endswith("reduce_concat=[2, 3, 4, 5])")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes(space, name):
    text = PUBLISHED[name]
    arch = space.parse(text)
    assert space.parse(str(arch)) == arch
    genotype = space.genotype(arch)
    published = _pairs(text)
    assert _node_sets(genotype.normal) == _node_sets(published[:8])
    assert _node_sets(genotype.reduce) == _node_sets(published[8:])


def test_published_values(space):
    v2 = space.parse(DARTS_V2)
    assert v2["normal.node5.inputs"] == (0, 2)
    assert (v2["normal.node5.op0"], v2["normal.node5.op1"]) == ("skip_connect", "dil_conv_3x3")
    assert v2["reduce.node3.inputs"] == (1, 2)
    assert (v2["reduce.node3.op0"], v2["reduce.node3.op1"]) == ("max_pool_3x3", "skip_connect")
    tabbed = "\n\t" + DARTS_V2.replace("'", '"').replace(", ", ",\n\t  # comment\n ") + "  \n"
    assert space.parse(tabbed) == v2
    positional = re.sub(r"\b(normal|reduce)(_concat)?=", "", V2_LINE)  # namedtuple field order
    assert "=" not in positional and space.parse(positional) == v2


# ---- parse errors -------------------------------------------------------------------------
V2_LINE = " ".join(DARTS_V2.split())


@pytest.mark.parametrize("text, needle", [
    (V2_LINE.replace("'dil_conv_3x3'", "'conv_7x1_1x7'"), "unknown op 'conv_7x1_1x7'"),
    (V2_LINE.replace("'dil_conv_3x3'", "'none'"), "'none' in normal node 5 is not in this space"),
    (V2_LINE.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "input 5 of normal node 5"),
    (V2_LINE.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', -1)"), "input -1 of normal node 5"),
    (V2_LINE.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 0)"), "node 5 takes input 0 twice"),
    (V2_LINE.replace(", ('dil_conv_3x3', 2)", ""), "normal has 7 (op, input) pairs"),
    (V2_LINE.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 2), ('skip_connect', 1)"),
     "normal has 9"),
    (V2_LINE.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 5, 6]"),
     "normal_concat must be [2, 3, 4, 5] or range(2, 6), got [2, 3, 4, 5, 6]"),
    (V2_LINE.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(2, 7)"), "range(2, 7)"),
    (V2_LINE.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[5, 4, 3, 2]"), "[5, 4, 3, 2]"),
    (V2_LINE.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(0, 10**99)"),
     "got range(0, 10**99)"),
    (V2_LINE.replace(", reduce_concat=[2, 3, 4, 5]", ""), "lacks keyword 'reduce_concat'"),
    (V2_LINE.replace("reduce_concat=", "normal_concat="), "'normal_concat' given twice"),
    (V2_LINE.replace("reduce_concat=", "reduce_cat="), "unknown keyword 'reduce_cat'"),
    (V2_LINE.replace("Genotype(", "Genome("), "Genotype(normal=[...]"),
    ("DARTS_V2 = " + V2_LINE, "not a Genotype(...) expression"),
    ("[('sep_conv_3x3', 0)] * 8", "got [('sep_conv_3x3', 0)] * 8"),
    ("", "empty"),
    ("x" * 30_000, "too long"),
    ("-" * 19_000 + "1", "nested too deeply"),
])
def test_parse_errors(space, text, needle):
    with pytest.raises(ArchitectureError) as info:
        space.parse(text)
    message = str(info.value)
    assert needle in message and "\n" not in message


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.text(max_size=80),
    st.text(alphabet="Genotype(normal_concat=[('sep_conv_3x3', 0)]),range 123456-\"", max_size=120),
    st.tuples(st.integers(0, len(V2_LINE)), st.integers(0, 20), st.text(max_size=3)).map(
        lambda t: V2_LINE[:t[0]] + t[2] + V2_LINE[t[0] + t[1]:]),
))
def test_arbitrary_text_raises_only_architecture_error(space, text):
    try:
        arch = space.parse(text)
    except ArchitectureError as error:
        assert "\n" not in str(error)
    else:
        assert space.parse(str(arch)) == arch


# ---- ops and macro ------------------------------------------------------------------------
def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _all_ops(space, op: str) -> Architecture:
    return space.architecture({d.name: (op if ".op" in d.name else d.choices[0])
                               for d in space.decisions})


def test_reduction_positions():
    assert [sorted(reduction_cells(n)) for n in (1, 2, 3, 8, 20)] == [[0], [0, 1], [1, 2], [2, 5],
                                                                      [6, 13]]


def test_params_against_hand_count(space):
    # Width C=4, cells [normal C=4, reduce C=8, reduce C=16 after a reduction]; pools add nothing.
    stem = 3 * 9 * 12 + 2 * 12
    cell0 = 2 * (12 * 4 + 2 * 4)  # two ReLUConvBN 12->4
    cell1 = (12 * 8 + 2 * 8) + (16 * 8 + 2 * 8)
    cell2 = (2 * 16 * 8 + 2 * 16) + (32 * 16 + 2 * 16)  # FactorizedReduce 16->16, ReLUConvBN 32->16
    classifier = 64 * 10 + 10
    pools = _all_ops(space, "max_pool_3x3")
    assert _params(space.build_model(pools)) == stem + cell0 + cell1 + cell2 + classifier == 2198
    c = 4  # one normal edge made sep_conv_3x3: 2 * (dw 9C + pw C*C + BN 2C)
    one_sep = space.architecture({**pools.as_dict(), "normal.node2.op0": "sep_conv_3x3"})
    assert _params(space.build_model(one_sep)) - 2198 == 2 * (9 * c + c * c + 2 * c) == 120
    one_dil = space.architecture({**pools.as_dict(), "normal.node2.op0": "dil_conv_5x5"})
    assert _params(space.build_model(one_dil)) - 2198 == 25 * c + c * c + 2 * c


def test_factorized_reduce_even_matches_darts_and_odd_works():
    torch.manual_seed(0)
    reduce = FactorizedReduce(6, 6).eval()
    x = torch.randn(2, 6, 8, 8)
    relu = torch.relu(x)
    darts = torch.cat([reduce.conv_1(relu), reduce.conv_2(relu[:, :, 1:, 1:])], dim=1)
    assert torch.equal(reduce(x), reduce.bn(darts))
    assert reduce(torch.randn(2, 6, 7, 9)).shape == (2, 6, 4, 5)
    assert FactorizedReduce(4, 5)(torch.randn(2, 4, 5, 5)).shape == (2, 5, 3, 3)


@pytest.mark.parametrize("image_size, cells", [(8, 1), (8, 2), (7, 3)])
def test_model_shapes_on_small_and_odd_inputs(image_size, cells):
    space = get_space("darts", Skeleton(width=4, cells=cells, image_size=image_size))
    arch = space.parse(GM_NAS_DARTS_1ST)
    out = space.build_model(arch)(torch.randn(2, 3, image_size, image_size))
    assert out.shape == (2, 10)


def test_cell_computes_the_genotype(space):
    # node 2 = p0 + p1, node 3 = avg_pool(p0) + node 2, node 4 = p1 + node 3,
    # node 5 = node 2 + node 4
    text = ("Genotype(normal=[('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 1), ('skip_connect', 3), ('skip_connect', 4), "
            "('skip_connect', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1)] * 4, reduce_concat=[2, 3, 4, 5])")
    with pytest.raises(ArchitectureError):  # `[...] * 4` is not a literal list
        space.parse(text)
    arch = space.parse(text.replace("('max_pool_3x3', 1)] * 4", "('max_pool_3x3', 1)" + (
        ", ('max_pool_3x3', 0), ('max_pool_3x3', 1)" * 3) + "]"))
    model = space.build_model(arch).eval()
    cell = model.cells[0]
    s0, s1 = torch.randn(2, 12, 8, 8), torch.randn(2, 12, 8, 8)
    p0, p1 = cell.preprocess0(s0), cell.preprocess1(s1)
    n2 = p0 + p1
    n3 = nn.AvgPool2d(3, 1, 1, count_include_pad=False)(p0) + n2
    n4 = p1 + n3
    n5 = n2 + n4
    expected = torch.cat([n2, n3, n4, n5], dim=1)
    assert torch.allclose(cell(s0, s1, model.wirings["normal"]), expected, atol=1e-6)


# ---- supernet and model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return space.build_supernet()


def test_model_equals_supernet(space, supernet):
    x = torch.randn(2, 3, 8, 8)
    archs = [space.parse(t) for t in PUBLISHED.values()] + [space.sample(np.random.default_rng(0))]
    for n, arch in enumerate(archs):
        model = space.build_model(arch)
        assert set(model.state_dict()) < set(supernet.state_dict())
        assert all(len(cell.edges) == 8 and all(len(e) == 1 for e in cell.edges.values())
                   for cell in model.cells)
        model.load_state_dict(supernet.subnet_state_dict(arch, model))
        if n == 0:  # batch statistics too: same ops, same sums
            supernet.train(), model.train()
            assert torch.equal(model(x), supernet(x, arch))
        supernet.eval(), model.eval()
        assert torch.equal(model(x), supernet(x, arch))


def _covering_archs(space) -> list[Architecture]:
    """21 architectures that together run every op on every edge of both cell types.

    Node k's inputs are covered by ceil(k/2) pairs; t % len(pairs) cycles them while t // 3
    steps through the 7 ops, so each (pair, op) occurs.
    """
    cover = {2: [(0, 1)], 3: [(0, 1), (1, 2)], 4: [(0, 1), (2, 3)], 5: [(0, 1), (2, 3), (0, 4)]}
    archs = []
    for t in range(3 * len(OP_NAMES)):
        values = {}
        for d in space.decisions:
            k = int(d.name.split(".")[1][len("node"):])
            values[d.name] = (OP_NAMES[t // 3] if ".op" in d.name
                              else cover[k][t % len(cover[k])])
        archs.append(space.architecture(values))
    return archs


def test_every_supernet_parameter_is_reachable(space, supernet):
    supernet.train()
    supernet.zero_grad(set_to_none=True)
    x = torch.randn(2, 3, 8, 8)
    for arch in _covering_archs(space):
        supernet(x, arch).square().mean().backward()
    unreached = [n for n, p in supernet.named_parameters()
                 if p.grad is None or not p.grad.abs().sum() > 0]
    assert unreached == []


def test_supernet_rejects_foreign_architecture(space, supernet):
    foreign = Architecture("nb201", ("skip_connect",), ("edge",), "|skip_connect~0|")
    with pytest.raises(ArchitectureError, match="space 'nb201' given to space 'darts'"):
        supernet(torch.randn(1, 3, 8, 8), foreign)

