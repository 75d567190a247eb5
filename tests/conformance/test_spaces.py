"""Every registered search space, checked for the same contract (a new space is tested for free).

Tiny skeletons: 4 channels, 1-3 cells or 2 stages, 8x8 inputs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import ArchitectureError
from nas.export import load_model, load_program, save_model
from search_spaces import SPACES, SearchSpace, Skeleton, get_space
from supernets import recalibrate_batchnorm

TINY = {"nb201": Skeleton(3, 10, 8, width=4, cells=1),
        "darts": Skeleton(3, 10, 8, width=4, cells=3),
        "mobilenet": Skeleton(3, 10, 8, width=4, cells=2)}

# How many distinct architectures each space has at its TINY skeleton, counted from what the
# space is (its paper's definition), not from its code.
DISTINCT = {
    # 6 edges, 5 ops each
    "nb201": 5 ** 6,
    # normal and reduction cell; node k = 2..5 reads 2 of its k predecessors (C(k, 2) pairs)
    # with one of 7 ops on each input
    "darts": math.prod(math.comb(k, 2) * 7 ** 2 for k in range(2, 6)) ** 2,
    # 4 resolutions for 8-px images (5, 6, 7, 8); per stage (2 here) 2, 3 or 4 active blocks,
    # each one of 3 kernels x 3 expand ratios; inactive blocks' choices are no difference
    "mobilenet": 4 * sum((3 * 3) ** depth for depth in (2, 3, 4)) ** 2,
}

# A space whose `canonical_values` merges architectures (so `size()` is not the product of its
# decisions' choice counts) gives a variant small enough to enumerate: `size()` must equal the
# distinct strings of that enumeration.
SMALL_VARIANT = {
    "mobilenet": lambda cls: type("SmallMobileNet", (cls,), {"kernels": (3, 5), "expands": (3,)}),
}


def test_every_registered_space_has_a_tiny_skeleton_here():
    assert set(SPACES.names()) == set(TINY) == set(DISTINCT)


@pytest.fixture(params=sorted(TINY), scope="module")
def space(request):
    return get_space(request.param, TINY[request.param])


@pytest.fixture(scope="module")
def trained(space):
    """A supernet after a few SGD steps on random paths, so weights and BN are not at init."""
    torch.manual_seed(0)
    net = space.build_supernet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, space.sample(rng)), y).backward()
        optimizer.step()
    return net


def _inherit(space, net, arch, x):
    recalibrate_batchnorm(net, lambda b: net(b, arch), [(x,)], 1)
    model = space.build_model(arch)
    model.load_state_dict(net.subnet_state_dict(arch, model))
    return model.eval()


def test_sampling_is_seeded(space):
    first = [space.sample(np.random.default_rng(7)) for _ in range(5)]
    again = [space.sample(np.random.default_rng(7)) for _ in range(5)]
    assert first == again
    many = {space.sample(np.random.default_rng(s)) for s in range(30)}
    assert len(many) > 20  # distinct seeds explore the space


def test_size_is_at_least_what_sampling_finds(space):
    assert space.size() > 1000
    assert space.size() == DISTINCT[space.name]
    choices = [len(d.choices) for d in space.decisions]
    if type(space).canonical_values is SearchSpace.canonical_values:
        assert space.size() == math.prod(choices)  # every index tuple is its own architecture
    else:
        assert space.size() < math.prod(choices)
    rng = np.random.default_rng(6)
    indices = [tuple(int(rng.integers(n)) for n in choices) for _ in range(400)]
    sampled = [space.from_indices(i) for i in indices]
    distinct = set(sampled)
    assert len(distinct) <= space.size()
    # the canonical string tells architectures apart exactly: one string per distinct value tuple
    assert len({str(a) for a in sampled}) == len(distinct) == len({a.values for a in sampled})
    if type(space).canonical_values is SearchSpace.canonical_values:
        assert len(distinct) == len(set(indices))
    if math.prod(choices) <= 20_000:  # small enough to enumerate (nb201)
        every = set(space.enumerate())
        assert len(every) == len({str(a) for a in every}) == space.size()
        assert distinct <= every


def test_size_counts_what_enumeration_finds_where_choices_can_be_inactive(space):
    if type(space).canonical_values is SearchSpace.canonical_values:
        assert space.name not in SMALL_VARIANT  # size() is the product (test above)
        return
    assert space.name in SMALL_VARIANT, "give an enumerable variant of this space here"
    small = SMALL_VARIANT[space.name](type(space))(TINY[space.name])
    raw = math.prod(len(d.choices) for d in small.decisions)
    assert raw <= 20_000
    archs = set(small.enumerate())
    strings = {str(a) for a in archs}
    # equal networks are equal architectures: as many as strings, and fewer than index tuples
    assert len(archs) == len(strings) == small.size() < raw
    assert {small.parse(text) for text in strings} == archs


def test_largest_and_smallest_are_the_extremes_of_a_sample(space):
    """Every space defines the sandwich rule's two paths (the base class's raise is a failure),
    and they have the most / fewest parameters and FLOPs of a seeded sample."""
    largest, smallest = space.largest(), space.smallest()
    for arch in (largest, smallest):
        assert space.check(arch) is arch and space.parse(str(arch)) == arch
    assert largest != smallest
    rng = np.random.default_rng(8)
    sample = [space.sample(rng) for _ in range(30)]
    params = [space.params_m(a) for a in sample]
    flops = [space.flops_m(a) for a in sample]
    assert space.params_m(largest) >= max(params) and space.flops_m(largest) >= max(flops)
    assert space.params_m(smallest) <= min(params) and space.flops_m(smallest) <= min(flops)
    assert space.params_m(largest) > space.params_m(smallest)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parse_inverts_str(space, data):
    indices = [data.draw(st.integers(0, len(d.choices) - 1)) for d in space.decisions]
    arch = space.from_indices(indices)
    parsed = space.parse(str(arch))
    assert parsed == arch and hash(parsed) == hash(arch) and str(parsed) == str(arch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text_raises_only_architecture_error(space, text):
    try:
        arch = space.parse(text)
    except ArchitectureError as error:
        assert "\n" not in str(error)
    else:
        assert space.parse(str(arch)) == arch


def test_exported_model_equals_supernet(space, trained):
    rng = np.random.default_rng(1)
    x = torch.randn(6, 3, 8, 8)
    for arch in [space.sample(rng) for _ in range(4)]:
        model = _inherit(space, trained, arch, x)
        trained.eval()
        with torch.no_grad():
            expected, got = trained(x, arch), model(x)
        assert (expected - got).abs().max().item() < 1e-5, str(arch)


def test_saved_program_and_state_dict_reproduce_the_model(space, trained, tmp_path):
    arch = space.sample(np.random.default_rng(2))
    x = torch.randn(3, 3, 8, 8)
    model = _inherit(space, trained, arch, x)
    files = save_model(model, space, arch, tmp_path / "m.pt2", {"init": "inherit"})
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(load_program(files.program)(x), expected, atol=1e-5)
        reloaded, reloaded_arch = load_model(files.state_dict)
        assert reloaded_arch == arch
        assert torch.equal(reloaded(x), expected)


def test_onnx_model_equals_supernet(space, trained, tmp_path):
    """The ONNX file computes the supernet's subnet under onnxruntime, at batch sizes it was not
    traced with (2), and records its metadata inside."""
    onnxruntime = pytest.importorskip("onnxruntime")  # an optional extra

    from nas.export import read_onnx_metadata

    arch = space.sample(np.random.default_rng(5))
    x = torch.randn(5, 3, 8, 8)
    model = _inherit(space, trained, arch, x)
    files = save_model(model, space, arch, tmp_path / "m.onnx", {"init": "inherit"})
    trained.eval()
    with torch.no_grad():
        expected = trained(x, arch).numpy()
    assert np.abs(expected - expected.mean(0)).max() > 1e-3  # the logits depend on the input
    session = onnxruntime.InferenceSession(str(files.program), providers=["CPUExecutionProvider"])
    for batch in (x, x[:1]):
        got = session.run(["logits"], {"images": batch.numpy()})[0]
        assert np.abs(got - expected[:len(batch)]).max() < 1e-4, str(arch)
    metadata = read_onnx_metadata(files.program)
    assert (metadata["space"], metadata["arch"]) == (space.name, str(arch))
    assert metadata["input_shape"] == [3, 8, 8]


def test_model_forward_has_no_supernet_code(space, trained):
    torch.manual_seed(3)
    arch = space.sample(np.random.default_rng(3))
    model = space.build_model(arch)
    program = torch.export.export(model.eval(), (torch.randn(2, 3, 8, 8),))
    modules = {type(m).__module__ for m in model.modules()}
    assert not any("supernet" in name for name in modules), modules
    assert program.graph_module is not None
    # The exported graph computes what the eager model does, on inputs it was not traced with;
    # with trained weights and BatchNorm statistics (at init, mobilenet's logits barely depend
    # on the input, so equal logits would prove little).
    x = torch.randn(4, 3, 8, 8)
    model = _inherit(space, trained, arch, x)
    program = torch.export.export(model, (torch.randn(4, 3, 8, 8),))
    with torch.no_grad():
        expected, got = model(x), program.module()(x)
    assert got.shape == expected.shape == (4, space.skeleton.num_classes)
    assert (expected - expected.mean(0)).abs().max() > 1e-3  # the logits depend on the input
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()


def test_every_supernet_parameter_gets_a_gradient(space):
    """Over random paths (up to 600: DARTS has 294 edge/op pairs in 3 cells), every weight trains."""
    torch.manual_seed(0)
    net = space.build_supernet()
    rng = np.random.default_rng(4)
    names = {n for n, _ in net.named_parameters()}
    touched: set[str] = set()
    extra = [space.smallest(), space.largest()]  # every space has both (test above)
    for i in range(600):
        arch = extra.pop() if extra else space.sample(rng)
        net.zero_grad(set_to_none=True)
        net(torch.randn(4, 3, 8, 8), arch).sum().backward()
        touched |= {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        if touched == names:
            break
    assert sorted(names - touched) == []


def test_supernet_refuses_another_spaces_architecture(space, trained):
    other_name = next(n for n in sorted(TINY) if n != space.name)
    other = get_space(other_name, TINY[other_name])
    with pytest.raises(ArchitectureError):
        trained(torch.randn(2, 3, 8, 8), other.sample(np.random.default_rng(0)))


def test_costs_are_positive_and_grow_with_the_skeleton(space):
    arch = space.sample(np.random.default_rng(5))
    assert space.params_m(arch) > 0 and space.flops_m(arch) > 0
    bigger = get_space(space.name, Skeleton(3, 10, 8, width=8, cells=space.cells))
    big_arch = bigger.parse(str(arch))
    assert bigger.params_m(big_arch) > space.params_m(arch)
