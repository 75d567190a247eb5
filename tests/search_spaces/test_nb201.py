"""NB201 space: strings, networks and isomorphism, checked against the NAS-Bench-201 table.

Ground truth: ../shared/data/nb201.csv.gz (NATS-Bench tss strings, AutoDL-convention params and
FLOPs, HW-NAS-Bench-360 isomorphism representatives); see its README.
"""
from __future__ import annotations

import collections
import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import ArchitectureError, ConfigError
from search_spaces import Skeleton, get_space
from search_spaces.nb201.model import InferCell
from search_spaces.nb201.ops import OP_NAMES

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = Skeleton(in_channels=3, num_classes=10, image_size=8, width=4, cells=1)


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


@pytest.fixture(scope="module")
def table(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "nb201.csv.gz")


def uniform(op: str):
    return get_space("nb201").architecture([op] * 6)


# ---- decisions and strings ------------------------------------------------------------------
def test_decisions_follow_benchmark_order(space):
    assert [d.name for d in space.decisions] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert all(d.choices == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                             "avg_pool_3x3") for d in space.decisions)
    assert (space.name, space.width, space.cells) == ("nb201", 16, 5)


def test_size_and_enumerate(space):
    archs = list(space.enumerate())
    assert space.size() == 15625 == len(archs) == len(set(archs)) == len({str(a) for a in archs})


@pytest.fixture(scope="module")
def archs(space, table) -> list:
    return [space.parse(text) for text in table["arch"]]


def test_every_table_string_parses_round_trips_and_matches_ops(space, table, archs):
    for arch, text, ops in zip(archs, table["arch"], table["ops"]):
        assert str(arch) == text
        assert arch == space.from_indices([int(i) for i in ops.split(",")])


def test_best_known_arch_is_row_9930(space, table):
    arch = space.parse(BEST)
    assert table["arch"][9930] == str(arch)
    assert arch["3<-0"] == "skip_connect" and arch["2<-1"] == "nor_conv_3x3"


@pytest.mark.parametrize("text, named", [
    ("", "got 1"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "got 2"),
    (BEST + "+|none~0|", "got 4"),
    ("nor_conv_3x3~0+|none~0|none~1|+|none~0|none~1|none~2|", "'nor_conv_3x3~0'"),
    ("|none~0+|none~0|none~1|+|none~0|none~1|none~2|", "'|none~0'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|", "got 4"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 1<-0 has input '~1'"),
    ("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|", "edge 3<-1 has input '~2'"),
    ("|none~0|+|none~0|nor_conv_4x4~1|+|none~0|none~1|none~2|",
     "unknown op 'nor_conv_4x4' in edge 2<-1; choose one of: none, skip_connect,"),
    ("|None~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'None'"),
    ("| none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op ' none'"),
    ("|none~0|+|none~0|none~1|+|none~0|skip_connect|none~2|", "edge 3<-1 token 'skip_connect'"),
    ("|none~0|+|none~0|none~1|+|none~0|none~01|none~2|", "'~01'"),
])
def test_malformed_strings_name_the_bad_token(space, text, named):
    with pytest.raises(ArchitectureError) as error:
        space.parse(text)
    message = str(error.value)
    assert named in message and "\n" not in message


def test_non_string_is_an_architecture_error(space):
    with pytest.raises(ArchitectureError, match="must be a string"):
        space.parse(None)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(OP_NAMES), min_size=6, max_size=6),
       st.sampled_from(["", " ", "\n\t"]))
def test_parse_round_trip(space, values, pad):
    arch = space.architecture(values)
    assert space.parse(pad + str(arch) + pad) == arch
    assert str(space.parse(str(arch))) == str(arch)


_FRAGMENTS = ["|", "+", "~", "~0", "~1", "~2", "0", "3", " ", "none", "skip_connect",
              "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "|none~0|", "\n", "é"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=120),
                 st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join)))
def test_arbitrary_text_raises_only_architecture_error(space, text):
    try:
        arch = space.parse(text)
    except ArchitectureError as error:
        assert "\n" not in str(error)
    else:  # the parser is strict: only the canonical string itself is accepted
        assert str(arch) == text.strip()


def test_image_size_must_survive_two_reductions():
    with pytest.raises(ConfigError, match="divisible by 4"):
        get_space("nb201", Skeleton(image_size=30))


# ---- networks -------------------------------------------------------------------------------
def test_params_and_flops_match_table(table):
    """One seeded row per distinct (params_m, flops_m) of the table, which covers its min and max:
    the counts depend only on how many 1x1 and 3x3 convs the cell holds."""
    space = get_space("nb201", Skeleton(in_channels=3, num_classes=10, image_size=32, width=16,
                                        cells=5))
    rng = np.random.default_rng(0)
    rows = [int(rng.choice(group.index)) for _, group in table.groupby(["params_m", "flops_m"])]
    rows += [int(table["params_m"].idxmin()), int(table["flops_m"].idxmax())]
    assert len(rows) >= 20
    for i in rows:
        arch = space.parse(table["arch"][i])
        assert space.params_m(arch) == pytest.approx(table["params_m"][i], rel=1e-6), i
        assert space.flops_m(arch) == pytest.approx(table["flops_m"][i], rel=1e-6), i


def test_cell_sums_edges_and_none_gives_zeros():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    # skip everywhere: n1 = x, n2 = x + n1, n3 = x + n1 + n2 = 4x
    assert torch.equal(InferCell(4, ["skip_connect"] * 6)(x), 4 * x)
    assert torch.equal(InferCell(4, ["none"] * 6)(x), torch.zeros_like(x))
    # avg_pool_3x3 excludes padding (count_include_pad=False): a constant map stays constant
    ones = torch.ones(1, 4, 8, 8)
    pooled = InferCell(4, ["avg_pool_3x3", "none", "none", "none", "skip_connect", "none"])(ones)
    assert torch.equal(pooled, ones)


def _paths():
    space = get_space("nb201", TINY)
    rng = np.random.default_rng(1)
    return [space.parse(BEST), *(uniform(op) for op in OP_NAMES),
            *(space.sample(rng) for _ in range(4))]


def test_model_inherits_supernet_weights_and_matches_its_output():
    space = get_space("nb201", TINY)
    torch.manual_seed(0)
    supernet = space.build_supernet()
    supernet.train()
    x = torch.randn(2, 3, 8, 8)
    for arch in _paths():  # move BN running statistics away from their initial values
        supernet(x, arch)
    supernet.eval()
    for arch in _paths():
        model = space.build_model(arch)
        model.load_state_dict(supernet.subnet_state_dict(arch, model))
        model.eval()
        with torch.no_grad():
            assert torch.equal(model(x), supernet(x, arch)), str(arch)


def test_every_supernet_parameter_is_reachable():
    space = get_space("nb201", TINY)
    supernet = space.build_supernet()
    x = torch.randn(2, 3, 8, 8)
    for op in ("nor_conv_1x1", "nor_conv_3x3"):  # the only ops with weights
        supernet(x, uniform(op)).square().mean().backward()
    missing = [name for name, p in supernet.named_parameters() if p.grad is None]
    assert missing == []


# ---- isomorphism ----------------------------------------------------------------------------
def test_dead_and_redundant_structure_shares_a_key(space):
    key = space.isomorphism_key
    # edge 2<-1 feeds node 2, which nothing reads (3<-2 is none): its op does not matter
    dead = [space.parse(f"|nor_conv_3x3~0|+|none~0|{op}~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
            for op in OP_NAMES]
    assert len({key(a) for a in dead}) == 1
    # conv(x) reached through a skip_connect chain or directly
    chain = space.parse("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|")
    direct = space.parse("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert key(chain) == key(direct)
    # every output path crosses a none edge: the cell outputs zeros
    assert key(uniform("none")) == key(
        space.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|none~2|"))


def test_distinct_cells_have_distinct_keys(space):
    key = space.isomorphism_key
    archs = [uniform(op) for op in OP_NAMES] + [space.parse(BEST)]
    assert len({key(a) for a in archs}) == len(archs)
    # one conv used twice (tied weights) differs from two convs of the same shape
    tied = space.parse(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|")
    two = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|")
    assert key(tied) != key(two)


@pytest.fixture(scope="module")
def keys(space, archs) -> list[str]:
    return [space.isomorphism_key(arch) for arch in archs]


def _label_multiset(space, arch) -> tuple[str, ...]:
    graph = space.cell_graph(arch)
    return tuple(sorted(graph.nodes[v]["label"] for v in graph))


def test_keys_are_exact_graph_isomorphism(space, archs, keys):
    """Equal keys <=> isomorphic cell graphs, on seeded hard cases: members of one class, and
    cells with the same live ops but different keys."""
    match = dict(node_match=lambda a, b: a["label"] == b["label"],
                 edge_match=lambda a, b: a["count"] == b["count"])
    rng = np.random.default_rng(2)
    classes = [m for m in _groups(keys).values() if len(m) > 1]
    for k in rng.choice(len(classes), 40, replace=False):
        members = rng.choice(classes[k], min(3, len(classes[k])), replace=False)
        graphs = [space.cell_graph(archs[i]) for i in members]
        assert all(nx.is_isomorphic(graphs[0], g, **match) for g in graphs[1:])
    by_ops = _groups([_label_multiset(space, archs[i]) for i in range(0, 15625, 7)])
    checked = 0
    for members in by_ops.values():
        for i, j in itertools.combinations([m * 7 for m in members[:6]], 2):
            if keys[i] != keys[j]:
                checked += 1
                assert not nx.is_isomorphic(space.cell_graph(archs[i]), space.cell_graph(archs[j]),
                                            **match)
    assert checked > 100


def _groups(labels) -> dict:
    groups = collections.defaultdict(list)
    for i, label in enumerate(labels):
        groups[label].append(i)
    return groups


def test_classes_against_hw_nas_bench_360(space, table, archs, keys):
    """HW-NAS-Bench-360's 6,466 classes are NB201's `to_unique_str(consider_zero=True)`. Ours
    (5,425) differ both ways, for reasons shown on real rows:"""
    hw = table["hw360_rep_idx"]
    assert hw.nunique() == 6466 and len(set(keys)) == 5425
    # NB201 joins a node's terms as one unsorted string, so the same sum written in another
    # order, x + pool(x) + conv(n1) + conv(n1), lands in two classes; we merge them.
    assert hw[1947] != hw[12832] and keys[1947] == keys[12832]
    # NB201 unfolds shared nodes, so one conv read twice equals two convs: one class with
    # different parameter counts. We split such classes, and only between cells whose live op
    # instances differ (genuinely different networks).
    assert hw[645] == hw[13930] and keys[645] != keys[13930]
    assert table["params_m"][645] != table["params_m"][13930]
    for members in _groups(hw).values():
        pieces = _groups([keys[i] for i in members])
        if len(pieces) > 1:
            ops = [_label_multiset(space, archs[members[p[0]]]) for p in pieces.values()]
            assert len(set(ops)) == len(ops)
