"""TangleNAS superposition: one op on superposed weights equals the weighted sum of its candidates.

Checked against explicit candidate ops (each candidate run on its own slice, zero-padded, weighted
and summed, as DARTS mixing would run them) for NB201's entangled conv and every layer of a
mobilenet block; one-hot mixtures against single paths; and the memory the superposition saves,
counted as the bytes autograd keeps for backward.
"""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from search_spaces.base import Skeleton
from search_spaces.mobilenet.ops import ElasticMBConv
from search_spaces.mobilenet.space import MobileNetSpace
from search_spaces.mobilenet.supernet import MobileNetSupernet
from search_spaces.nb201.entangled import EntangledReLUConvBN
from search_spaces.nb201.space import NB201Space
from search_spaces.relaxation import Mixture
from tests.search_spaces.test_mobilenet import _randomise_bn

MOBILENET = Skeleton(3, 10, 16, width=8, cells=2)
NB201 = Skeleton(3, 10, 8, width=4, cells=1)
TOLERANCE = 1e-5


# ---- helpers ---------------------------------------------------------------------------------
def _simplex(n: int, seed: int) -> torch.Tensor:
    """Mixing weights with distinct entries, as a method would pass them, with a gradient."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, generator=g), 0).requires_grad_()


def _random_mixture(decisions, seed: int) -> Mixture:
    return Mixture(tuple(d.name for d in decisions),
                   tuple(_simplex(len(d.choices), seed + i) for i, d in enumerate(decisions)))


def _pad_channels(t: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) zero-padded along C to `channels`: a narrow candidate in a wide sum."""
    return F.pad(t, (0, 0, 0, 0, 0, channels - t.shape[1]))


def _centre(weight: torch.Tensor, k: int) -> torch.Tensor:
    """The centre k x k of a (..., K, K) kernel: a smaller kernel choice."""
    start = (weight.shape[-1] - k) // 2
    return weight[..., start:start + k, start:start + k]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and (a - b).abs().max().item() < TOLERANCE


def _saved_bytes(fn) -> int:
    """Bytes autograd saves for backward while `fn()` runs, each storage counted once."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    assert out.requires_grad
    return sum(storages.values())


@pytest.fixture(scope="module")
def mobilenet() -> MobileNetSpace:
    return MobileNetSpace(MOBILENET)


@pytest.fixture(scope="module")
def supernet(mobilenet: MobileNetSpace) -> MobileNetSupernet:
    torch.manual_seed(0)
    net = mobilenet.build_entangled_supernet()
    _randomise_bn(net, seed=1)
    return net


def _block(use_se: bool, seed: int, in_channels: int = 8) -> ElasticMBConv:
    """A residual block (stride 1, in == out) with random BN, as in the supernet's stages."""
    torch.manual_seed(seed)
    block = ElasticMBConv(in_channels, in_channels, 1, "h_swish", use_se, (3, 5, 7), (3, 4, 6))
    _randomise_bn(block, seed)
    return block


# ---- NB201: the entangled 1x1 / 3x3 conv -----------------------------------------------------
def test_nb201_superposed_conv_equals_both_convs_and_their_gradients() -> None:
    torch.manual_seed(0)
    op = EntangledReLUConvBN(4)
    x = torch.randn(2, 4, 8, 8)
    grad_out = torch.randn(2, 4, 8, 8)
    w_super, w_explicit = _simplex(2, 1), _simplex(2, 1)
    superposed = op.superposed_conv(x, w_super)
    relu, weight = F.relu(x), op.conv.weight
    explicit = (w_explicit[0] * F.conv2d(relu, weight[:, :, 1:2, 1:2], padding=0)
                + w_explicit[1] * F.conv2d(relu, weight, padding=1))
    assert _close(superposed, explicit)
    (superposed * grad_out).sum().backward()
    (explicit * grad_out).sum().backward()
    assert _close(w_super.grad, w_explicit.grad)


def test_nb201_superposed_conv_saves_less_than_both_convs() -> None:
    torch.manual_seed(0)
    op = EntangledReLUConvBN(32)
    x = torch.randn(16, 32, 32, 32)
    w = _simplex(2, 1)
    weight = op.conv.weight

    def explicit() -> torch.Tensor:
        relu = F.relu(x)
        return (w[0] * F.conv2d(relu, weight[:, :, 1:2, 1:2])
                + w[1] * F.conv2d(relu, weight, padding=1))

    superposed, activation = _saved_bytes(lambda: op.superposed_conv(x, w)), x.numel() * 4
    # superposed keeps relu(x) (and weight-sized tensors); explicit also both convs' outputs,
    # which the mixing weights' gradients need
    assert superposed < 1.1 * activation < 3 * activation <= _saved_bytes(explicit)


def _nb201_supernet() -> tuple[NB201Space, nn.Module]:
    space = NB201Space(NB201)
    torch.manual_seed(0)
    net = space.build_entangled_supernet()
    _randomise_bn(net, seed=1)
    return space, net.eval()


NB201_ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
)


@pytest.mark.parametrize("text", NB201_ARCHS)
def test_nb201_one_hot_mixture_is_the_single_path(text: str) -> None:
    space, net = _nb201_supernet()
    arch = space.parse(text)
    decisions = space.relaxed_decisions()
    mixture = Mixture.one_hot(decisions, [d.index(arch[d.name]) for d in decisions])
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _close(net(x, mixture), net(x, arch))


def test_nb201_entangled_subnet_exports_with_both_conv_sizes() -> None:
    space, net = _nb201_supernet()
    arch = space.parse(NB201_ARCHS[0])
    model = space.build_model(arch)
    model.load_state_dict(net.subnet_state_dict(arch, model))
    model.eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _close(model(x), net(x, arch))


# ---- mobilenet: each layer of a block against its candidates ---------------------------------
def test_superposed_expand_conv_is_the_sum_of_narrow_convs() -> None:
    block = _block(use_se=False, seed=0)
    x = torch.randn(2, 8, 6, 6)
    a, b = _simplex(3, 1), _simplex(3, 2)
    superposed = F.conv2d(x, block.superposed_weights(b, a).expand)
    explicit = sum(a_e * _pad_channels(F.conv2d(x, block.expand.weight[:block.widths[e][0]]),
                                       block.max_mid)
                   for a_e, e in zip(a, block.expands))
    assert _close(superposed, explicit)


def test_superposed_depthwise_conv_is_the_sum_over_kernels_and_widths() -> None:
    block = _block(use_se=False, seed=0)
    y = torch.randn(2, block.max_mid, 9, 9)
    a, b = _simplex(3, 1), _simplex(3, 2)
    weight = block.depthwise.weight
    superposed = F.conv2d(y, block.superposed_weights(b, a).depthwise, None, 1, 3, 1,
                          block.max_mid)
    explicit = 0
    for a_e, e in zip(a, block.expands):
        mid = block.widths[e][0]
        for b_k, k in zip(b, block.kernels):
            out = F.conv2d(y[:, :mid], _centre(weight[:mid], k), None, 1, k // 2, 1, mid)
            explicit = explicit + a_e * b_k * _pad_channels(out, block.max_mid)
    assert _close(superposed, explicit)
    # with all weight on the widest expand, kernels alone: sum_k b_k conv(y, centre_k)
    one = torch.tensor([0.0, 0.0, 1.0])
    kernels_only = sum(b_k * F.conv2d(y, _centre(weight, k), None, 1, k // 2, 1, block.max_mid)
                       for b_k, k in zip(b, block.kernels))
    assert _close(F.conv2d(y, block.superposed_weights(b, one).depthwise, None, 1, 3, 1,
                           block.max_mid), kernels_only)


def test_superposed_project_conv_is_the_sum_of_narrow_convs() -> None:
    block = _block(use_se=False, seed=0)
    y = torch.randn(2, block.max_mid, 6, 6)
    a, b = _simplex(3, 1), _simplex(3, 2)
    explicit = sum(a_e * F.conv2d(y[:, :block.widths[e][0]],
                                  block.project.weight[:, :block.widths[e][0]])
                   for a_e, e in zip(a, block.expands))
    assert _close(F.conv2d(y, block.superposed_weights(b, a).project), explicit)


@pytest.mark.parametrize("training", [True, False])
def test_superposed_batchnorm_is_the_sum_of_narrow_batchnorms(training: bool) -> None:
    block = _block(use_se=False, seed=0)
    y = torch.randn(4, block.max_mid, 5, 5)
    a = _simplex(3, 1)
    scale = block.superposed_weights(_simplex(3, 2), a).scale
    superposed = copy.deepcopy(block.expand_bn).train(training).mixed(y, scale)
    explicit = 0
    for a_e, e in zip(a, block.expands):
        bn = copy.deepcopy(block.expand_bn).train(training)
        mid = block.widths[e][0]
        explicit = explicit + a_e * _pad_channels(bn(y[:, :mid]), block.max_mid)
    assert _close(superposed, explicit)


def test_superposed_squeeze_excite_convs_are_sums_of_narrow_convs() -> None:
    block = _block(use_se=True, seed=0)
    se, widths = block.se, [block.widths[e] for e in block.expands]
    a = _simplex(3, 1)
    reduce_w, reduce_b, expand_w, expand_b = se.superposed_params(widths, a)
    s = torch.randn(2, block.max_mid, 1, 1)
    t = torch.randn(2, se.reduce.out_channels, 1, 1)
    max_squeeze = se.reduce.out_channels
    reduce_explicit = sum(a_e * _pad_channels(F.conv2d(s[:, :mid], se.reduce.weight[:q, :mid],
                                                       se.reduce.bias[:q]), max_squeeze)
                          for a_e, (mid, q) in zip(a, widths))
    expand_explicit = sum(a_e * _pad_channels(F.conv2d(t[:, :q], se.expand.weight[:mid, :q],
                                                       se.expand.bias[:mid]), block.max_mid)
                          for a_e, (mid, q) in zip(a, widths))
    assert _close(F.conv2d(s, reduce_w, reduce_b), reduce_explicit)
    assert _close(F.conv2d(t, expand_w, expand_b), expand_explicit)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("use_se", [True, False])
def test_one_hot_block_is_the_sliced_block(training: bool, use_se: bool) -> None:
    block = _block(use_se, seed=3).train(training)
    x = torch.randn(4, 8, 7, 7, generator=torch.Generator().manual_seed(4))
    for (i, kernel), (j, expand) in itertools.product(enumerate(block.kernels),
                                                       enumerate(block.expands)):
        b, a = torch.zeros(3), torch.zeros(3)
        b[i], a[j] = 1.0, 1.0
        with torch.no_grad():
            assert _close(block.mixed(x, b, a), block(x, kernel, expand)), (kernel, expand)


def _mobilenet_block_memory(kind: str) -> tuple[int, int]:
    """Saved bytes of (superposed, explicit) expand or depthwise mixtures on a 32-channel,
    32 x 32 input of batch 16."""
    block = _block(use_se=False, seed=0, in_channels=32)
    a, b = _simplex(3, 1), _simplex(3, 2)
    widest = torch.tensor([0.0, 0.0, 1.0])  # the kernel mixture alone, at the widest expand
    if kind == "expand":
        x = torch.randn(16, 32, 32, 32)
    else:
        x = torch.randn(16, block.max_mid, 32, 32)

    def superposed() -> torch.Tensor:
        if kind == "expand":
            return F.conv2d(x, block.superposed_weights(b, a).expand)
        return F.conv2d(x, block.superposed_weights(b, widest).depthwise, None, 1, 3, 1,
                        block.max_mid)

    def explicit() -> torch.Tensor:
        if kind == "expand":
            return sum(a_e * _pad_channels(F.conv2d(x, block.expand.weight[:block.widths[e][0]]),
                                           block.max_mid) for a_e, e in zip(a, block.expands))
        return sum(b_k * F.conv2d(x, _centre(block.depthwise.weight, k), None, 1, k // 2, 1,
                                  block.max_mid) for b_k, k in zip(b, block.kernels))

    return _saved_bytes(superposed), _saved_bytes(explicit)


@pytest.mark.parametrize("kind", ["expand", "depthwise"])
def test_superposed_mobilenet_layer_saves_less_than_its_candidates(kind: str) -> None:
    superposed, explicit = _mobilenet_block_memory(kind)
    assert superposed < explicit
    # explicit keeps every candidate's output for its mixing weight; superposed only the input
    assert explicit - superposed > 16 * 32 * 32 * 4 * 32


def test_relaxed_supernet_saves_about_what_the_largest_path_saves(
        mobilenet: MobileNetSpace, supernet: MobileNetSupernet) -> None:
    """Memory that of the largest candidate: the relaxation keeps no more than 1.25x the bytes of
    the largest single path (the excess is superposed weights, masks and BN affine products)."""
    x = torch.randn(16, 3, 16, 16)
    mixture = _random_mixture(mobilenet.relaxed_decisions(), seed=5)
    net = copy.deepcopy(supernet).train()
    relaxed = _saved_bytes(lambda: net(x, mixture))
    largest = _saved_bytes(lambda: net(x, mobilenet.largest()))
    assert relaxed < 1.25 * largest


# ---- mobilenet: the relaxed supernet ---------------------------------------------------------
def test_relaxed_decisions_are_the_space_decisions_but_resolution(
        mobilenet: MobileNetSpace) -> None:
    relaxed = mobilenet.relaxed_decisions()
    assert relaxed == mobilenet.decisions[1:]
    assert [d.name for d in relaxed[:3]] == ["stage1.depth", "stage1.block1.kernel",
                                             "stage1.block1.expand"]
    assert isinstance(mobilenet.build_entangled_supernet(), MobileNetSupernet)
    assert mobilenet.weight_entanglement == "always"


def _features(net: nn.Module, x: torch.Tensor, arch) -> tuple[torch.Tensor, torch.Tensor]:
    """(the head's input, the logits): logits alone vary little between architectures."""
    seen = []
    handle = net.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        logits = net(x, arch)
    finally:
        handle.remove()
    return seen[0], logits


@pytest.mark.parametrize("training", [False, True])
def test_one_hot_mixture_is_the_single_path_at_the_largest_resolution(
        mobilenet: MobileNetSpace, supernet: MobileNetSupernet, training: bool) -> None:
    net = copy.deepcopy(supernet).train(training)
    rng = np.random.default_rng(6)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    decisions = mobilenet.relaxed_decisions()
    archs = [mobilenet.largest(), mobilenet.smallest()] + [mobilenet.sample(rng) for _ in range(4)]
    for sampled in archs:
        arch = mobilenet.architecture([max(mobilenet.resolutions), *sampled.values[1:]])
        mixture = Mixture.one_hot(decisions, [d.index(arch[d.name]) for d in decisions])
        with torch.no_grad():
            for relaxed, single in zip(_features(net, x, mixture), _features(net, x, arch)):
                assert _close(relaxed, single), str(arch)


def test_gradients_reach_every_mixing_weight_and_parameter(
        mobilenet: MobileNetSpace, supernet: MobileNetSupernet) -> None:
    net = copy.deepcopy(supernet).train()
    mixture = _random_mixture(mobilenet.relaxed_decisions(), seed=8)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    features, logits = _features(net, x, mixture)
    (features.square().mean() + logits.square().mean()).backward()
    for name, w in mixture:
        assert w.grad is not None and w.grad.abs().min() > 0, name
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


def test_mixture_of_the_wrong_size_is_refused(mobilenet: MobileNetSpace,
                                              supernet: MobileNetSupernet) -> None:
    decisions = mobilenet.relaxed_decisions()
    mixture = _random_mixture(decisions, seed=0)
    weights = list(mixture.weights)
    weights[1] = torch.ones(2)
    with pytest.raises(ConfigError, match=r"stage1.block1.kernel must have shape \(3,\)"):
        supernet(torch.randn(1, 3, 16, 16), Mixture(mixture.names, tuple(weights)))


def test_derive_takes_the_argmax_at_the_largest_resolution(mobilenet: MobileNetSpace) -> None:
    decisions = mobilenet.relaxed_decisions()
    rng = np.random.default_rng(10)
    probabilities = [rng.dirichlet(np.ones(len(d.choices))) for d in decisions]
    arch = mobilenet.derive(probabilities)
    expected = [max(mobilenet.resolutions)] + [d.choices[int(np.argmax(p))]
                                               for d, p in zip(decisions, probabilities)]
    assert arch == mobilenet.architecture(expected)
    assert arch["resolution"] == 16 == max(mobilenet.resolutions)
    # canonical: the kernels and expands of blocks beyond a depth-2 stage are the first choices
    probabilities[0] = np.array([1.0, 0.0, 0.0])
    probabilities[5:9] = [np.array([0.0, 0.0, 1.0])] * 4  # stage1 blocks 3, 4: k7, e6
    shallow = mobilenet.derive(probabilities)
    assert shallow["stage1.depth"] == 2 and shallow["stage1.block3.kernel"] == 3
    assert shallow == mobilenet.parse(str(shallow))
    with pytest.raises(ConfigError, match="one row per relaxed decision"):
        mobilenet.derive(probabilities[:-1])
    with pytest.raises(ConfigError, match="stage1.depth has 3 choices"):
        mobilenet.derive([[1.0, 0.0]] + probabilities[1:])
