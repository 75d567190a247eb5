"""SPOS's path-sampling heuristics: FairNAS strict fairness, `none` down-weighting and
de-isomorphic sampling; their exact path weights, resumable state, and their method options."""
from __future__ import annotations

import copy
import io
import math
from collections import Counter

import numpy as np
import pytest
import torch

from nas.config import MethodSetting
from nas.errors import ConfigError
from search_spaces import Skeleton, get_space
from search_spaces.fair import StrictFairSampler
from search_spaces.isomorphism import IsomorphismClassSampler
from search_spaces.nb201.ops import EDGES, OP_NAMES
from search_spaces.nb201.supernet import SupernetCell
from search_spaces.importance import WeightedChoiceSampler
from search_spaces.uniform import UniformSampler
from supernets.methods.spos import SPOS, SPOSConfig

TINY = Skeleton(1, 10, 8, width=4, cells=1)
NONE = OP_NAMES.index("none")


@pytest.fixture(scope="module")
def nb201():
    return get_space("nb201", TINY)


@pytest.fixture(scope="module")
def darts():
    return get_space("darts", Skeleton(1, 10, 8, width=4, cells=3))


def _assert_strictly_fair(space, paths, allowed=None):
    """Per decision, every aligned block of K'_d consecutive paths holds each allowed
    candidate exactly once (FairNAS strict fairness)."""
    for d, decision in enumerate(space.decisions):
        choices = allowed[d] if allowed else list(range(len(decision.choices)))
        k = len(choices)
        column = [path[d] for path in paths]
        assert len(column) % k == 0
        for start in range(0, len(column), k):
            assert sorted(column[start:start + k]) == sorted(choices), (decision.name, start)


# ---- strict fairness ---------------------------------------------------------------------
def test_fair_visits_every_op_of_every_edge_once_per_cycle(nb201):
    one_a_step = StrictFairSampler(nb201, seed=3)
    steps = [one_a_step.ask_indices(1)[0] for _ in range(5 * 6)]  # 6 cycles, a path a step
    _assert_strictly_fair(nb201, steps)
    cycles = StrictFairSampler(nb201, seed=3)
    batched = [p for _ in range(6) for p in cycles.ask_indices(5)]  # FairNAS: K paths a step
    assert batched == steps  # the same stream however it is cut into steps
    assert len({tuple(p) for p in steps}) > 5  # the permutations are redrawn each cycle
    assert cycles.path_weight(steps[0]) == 1.0


def test_fair_cycles_each_decision_of_its_own_size(darts):
    sampler = StrictFairSampler(darts, seed=0)
    sizes = {len(d.choices) for d in darts.decisions}
    assert len(sizes) > 1  # darts: input pairs of 1, 3, 6, 10 and 7 ops
    paths = sampler.ask_indices(math.lcm(*sizes) * 2)
    _assert_strictly_fair(darts, paths)


def test_fair_leaves_excluded_choices_out(nb201):
    sampler = StrictFairSampler(nb201, seed=1, exclude=("none",))
    paths = [p for _ in range(5) for p in sampler.ask_indices(4)]
    assert all(NONE not in p for p in paths)
    ops = [i for i in range(len(OP_NAMES)) if i != NONE]
    _assert_strictly_fair(nb201, paths, [ops] * len(EDGES))
    assert sampler.path_weight(paths[0]) == pytest.approx((5 / 4) ** -len(EDGES))
    assert sampler.path_weight((NONE,) * len(EDGES)) == math.inf


def test_spos_fair_with_none_weight_zero_excludes_none(nb201):
    method = SPOS(nb201, SPOSConfig(sampling="fair", none_weight=0.0), seed=0)
    assert isinstance(method.sampler, StrictFairSampler)
    assert all(NONE not in p for p in method.sampler.ask_indices(40))


# ---- none down-weighted ------------------------------------------------------------------
@pytest.mark.parametrize("w", [0.2, 0.5])
def test_weighted_frequencies_and_path_weight(nb201, w):
    sampler = WeightedChoiceSampler(nb201, seed=0, none_weight=w)
    paths = np.array(sampler.ask_indices(20_000))  # 120,000 edge draws
    counts = np.bincount(paths.ravel(), minlength=len(OP_NAMES)) / paths.size
    k = len(OP_NAMES)
    want = [(w if i == NONE else 1.0) / (k - 1 + w) for i in range(k)]
    np.testing.assert_allclose(counts, want, atol=0.005)
    for path in map(tuple, paths[:50]):
        q = math.prod(want[i] for i in path)
        assert sampler.path_weight(path) == pytest.approx((1 / k) ** len(EDGES) / q, rel=1e-12)


def test_weighted_with_zero_never_draws_none(nb201):
    sampler = WeightedChoiceSampler(nb201, seed=0, none_weight=0.0)
    paths = np.array(sampler.ask_indices(5_000))
    assert NONE not in paths
    assert set(np.unique(paths)) == set(range(len(OP_NAMES))) - {NONE}
    assert sampler.path_weight(tuple(paths[0])) == pytest.approx((4 / 5) ** len(EDGES))
    assert sampler.path_weight((NONE,) * len(EDGES)) == math.inf


def test_weight_one_is_the_uniform_baseline_draw_for_draw(nb201):
    method = SPOS(nb201, SPOSConfig(none_weight=1.0), seed=5)
    assert type(method.sampler) is UniformSampler
    rng = np.random.default_rng(5)
    assert method.sampler.ask(20) == [nb201.sample(rng) for _ in range(20)]


def test_weighted_refuses_a_space_without_none():
    space = get_space("mobilenet", Skeleton(1, 10, 8, width=4, cells=2))
    with pytest.raises(ConfigError, match="has none"):
        SPOS(space, SPOSConfig(none_weight=0.5))
    with pytest.raises(ConfigError, match="has none"):
        SPOS(space, SPOSConfig(sampling="fair", none_weight=0.0))


# ---- de-isomorphic -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def deiso(nb201):
    return IsomorphismClassSampler(nb201, seed=0)


def _class_sizes(space) -> Counter:
    return Counter(space.isomorphism_key(a) for a in space.enumerate())


def test_deiso_has_5425_classes_and_exact_path_weights(nb201, deiso):
    sizes = _class_sizes(nb201)
    assert deiso.num_classes == len(sizes) == 5425 and deiso.table.total == 15625
    for arch in [nb201.parse("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"),
                 nb201.largest(), nb201.architecture(["none"] * len(EDGES))]:
        indices = tuple(d.index(v) for d, v in zip(nb201.decisions, arch.values))
        size = sizes[nb201.isomorphism_key(arch)]
        assert deiso.path_weight(indices) == 5425 * size / 15625
    assert max(sizes.values()) == 460


def test_deiso_draws_classes_uniformly_not_by_size(nb201):
    sampler = IsomorphismClassSampler(nb201, seed=1)
    draws = 200_000
    paths = sampler.ask_indices(draws)
    keys = Counter(nb201.isomorphism_key(nb201.from_indices(p)) for p in paths)
    sizes = _class_sizes(nb201)
    largest, size = sizes.most_common(1)[0]  # 460 cells computing one conv of the input
    zero = nb201.isomorphism_key(nb201.architecture(["none"] * len(EDGES)))  # 341 cells
    expected = draws / 5425  # ~37; uniform over cells would give draws * 460 / 15625 ~ 5,900
    for key in (largest, zero):
        assert abs(keys[key] - expected) < 5 * math.sqrt(expected), (key, keys[key])
    assert size / 15625 * draws > 100 * expected
    singletons = sum(1 for n in sizes.values() if n == 1)
    share = sum(keys[k] for k, n in sizes.items() if n == 1) / draws
    assert share == pytest.approx(singletons / 5425, abs=0.01)
    members = Counter(p for p in paths if nb201.isomorphism_key(nb201.from_indices(p)) == largest)
    assert len(members) > 20  # a member of the class, not its representative, is drawn


def test_deiso_needs_isomorphism_classes(darts):
    with pytest.raises(ConfigError, match="deiso sampling needs a space with isomorphism "
                                          "classes \\(nb201\\); darts has none"):
        SPOS(darts, SPOSConfig(sampling="deiso"))


# ---- resumable state ---------------------------------------------------------------------
SAMPLERS = {
    "fair": lambda s, seed: StrictFairSampler(s, seed),
    "fair-without-none": lambda s, seed: StrictFairSampler(s, seed, exclude=("none",)),
    "weighted": lambda s, seed: WeightedChoiceSampler(s, seed, none_weight=0.3),
    "deiso": lambda s, seed: IsomorphismClassSampler(s, seed),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_state_dict_round_trip_continues_the_same_draws(nb201, name):
    sampler = SAMPLERS[name](nb201, 4)
    sampler.ask_indices(7)  # mid-cycle for fair
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)  # as a checkpoint holds it
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    expected = sampler.ask_indices(23)
    resumed = SAMPLERS[name](nb201, 99)
    resumed.ask_indices(3)
    resumed.load_state_dict(copy.deepcopy(state))
    assert resumed.ask_indices(23) == expected


# ---- SPOS with FairNAS's K paths a step ---------------------------------------------------
def test_spos_fair_with_k_paths_trains_every_op_of_every_edge_in_one_step(nb201):
    method = SPOS(nb201, SPOSConfig(sampling="fair", paths=5), seed=2)
    torch.manual_seed(0)
    net = method.build_supernet()
    drawn, original = [], method.sampler.ask
    method.sampler.ask = lambda n=1: drawn.extend(original(n)) or drawn[-n:]
    calls = Counter()
    cells = [m for m in net.modules() if isinstance(m, SupernetCell)]
    for c, cell in enumerate(cells):
        for e, edge in enumerate(cell.edges):
            for op, module in edge.items():
                module.register_forward_hook(
                    lambda *_, key=(c, e, op): calls.update([key]))
    images, labels = torch.randn(16, 1, 8, 8), torch.arange(16) % 10
    method.train_step(net, images, labels, torch.arange(16))

    assert len(drawn) == 5
    for e in range(len(EDGES)):  # every op of every edge, `none` too, in exactly one path
        assert sorted(arch.values[e] for arch in drawn) == sorted(OP_NAMES)
    modules = {(c, e, op) for c, cell in enumerate(cells) for e, edge in enumerate(cell.edges)
               for op in edge}
    assert calls == Counter({key: 1 for key in modules})
    # Each conv learns unless its one path fed it zeros or dropped its output (released).
    params = dict(net.named_parameters())
    cell_names = [n for n, m in net.named_modules() if isinstance(m, SupernetCell)]
    for arch in drawn:
        live = set(nb201.cell_graph(arch))
        for e, op in enumerate(arch.values):
            if op not in ("nor_conv_1x1", "nor_conv_3x3"):
                continue
            for name in cell_names:
                grad = params[f"{name}.edges.{e}.{op}.conv.weight"].grad
                assert (grad is not None) == (EDGES[e][0] in live), (str(arch), e, op)


def test_spos_fair_without_none_gives_every_conv_a_gradient(nb201):
    """Without `none` every node is live, so each of the K' = 4 paths trains all its ops."""
    method = SPOS(nb201, SPOSConfig(sampling="fair", paths=4, none_weight=0.0), seed=2)
    torch.manual_seed(0)
    net = method.build_supernet()
    method.train_step(net, torch.randn(16, 1, 8, 8), torch.arange(16) % 10, torch.arange(16))
    candidates = {n: p for n, p in net.named_parameters() if ".edges." in n}
    assert candidates and [n for n, p in candidates.items() if p.grad is None] == []


# ---- options -----------------------------------------------------------------------------
def test_options_parse_from_the_command_line_form():
    options = MethodSetting.parse("spos", {"sampling": "fair", "paths": "5"}).options
    assert (options.sampling, options.paths, options.none_weight) == ("fair", 5, 1.0)
    assert MethodSetting.parse("spos", {"none_weight": "0.25"}).options.none_weight == 0.25


@pytest.mark.parametrize("options, message", [
    ({"sampling": "bogus"}, "sampling=.bogus. is not one of its values; choose uniform, fair, deiso"),
    ({"none_weight": "2"}, r"none_weight must lie in \[0, 1\], got 2.0"),
    ({"none_weight": "-0.5"}, r"none_weight must lie in \[0, 1\], got -0.5"),
    ({"none_weight": "nan"}, r"none_weight must lie in \[0, 1\], got nan"),
    ({"sampling": "fair", "none_weight": "0.5"}, "fair sampling permutes ops; none_weight must "
                                                 r"be 1 \(all ops\) or 0 \(without none\)"),
    ({"sampling": "deiso", "none_weight": "0"}, "none_weight must be 1, got 0.0"),
])
def test_invalid_options_are_refused_in_one_line(options, message):
    with pytest.raises(ConfigError, match=message) as error:
        MethodSetting.parse("spos", options)
    assert "\n" not in str(error.value)


def test_an_invalid_sampling_in_the_config_itself_is_refused():
    with pytest.raises(ConfigError, match="unknown sampling 'bogus'; choose uniform, fair or "
                                          "deiso"):
        SPOSConfig(sampling="bogus")
