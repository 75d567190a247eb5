"""The mobilenet space: OFA skeleton facts, canonical strings, slicing inheritance, dynamic BN."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nas.errors import ArchitectureError, ConfigError
from search_spaces import SPACES
from search_spaces.base import Skeleton
from search_spaces.mobilenet.model import MBConv
from search_spaces.mobilenet.ops import DynamicBatchNorm2d, make_divisible, mid_channels
from search_spaces.mobilenet.space import MobileNetSpace

TINY = Skeleton(in_channels=3, num_classes=5, image_size=8, width=4, cells=2)


@pytest.fixture(scope="module")
def space() -> MobileNetSpace:
    return MobileNetSpace(TINY)


def _randomise_bn(net: nn.Module, seed: int) -> None:
    """BN at its init (weight 1, bias 0, mean 0, var 1) would hide slicing mistakes."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                for t, low, high in ((m.weight, 0.5, 1.5), (m.bias, -0.5, 0.5),
                                     (m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 1.5)):
                    t.copy_(torch.rand(t.shape, generator=g) * (high - low) + low)


@pytest.fixture(scope="module")
def supernet(space: MobileNetSpace) -> nn.Module:
    torch.manual_seed(0)
    net = space.build_supernet()
    _randomise_bn(net, seed=1)
    return net


# ---- skeleton ------------------------------------------------------------------------------
def test_registered() -> None:
    assert SPACES.get("mobilenet") is MobileNetSpace


def test_make_divisible_matches_tf_slim_rule() -> None:
    # 10 -> 8 would lose more than 10 %, so it goes up to 16.
    assert [make_divisible(v) for v in (16, 24, 10, 4, 60, 36.5)] == [16, 24, 16, 8, 64, 40]
    assert mid_channels(24, 3) == 72 and mid_channels(40, 4) == 160 and mid_channels(8, 3) == 24


def test_default_skeleton_is_ofa_w1() -> None:
    plan = MobileNetSpace(Skeleton(image_size=224, num_classes=1000)).plan
    assert (plan.stem_width, plan.first_block_width) == (16, 16)
    assert [s.out_channels for s in plan.stages] == [24, 40, 80, 112, 160]
    assert [s.stride for s in plan.stages] == [2, 2, 2, 1, 2]
    assert [s.use_se for s in plan.stages] == [False, True, False, True, True]
    assert (plan.final_expand_width, plan.feature_mix_width, plan.first_stride) == (960, 1280, 2)
    assert MobileNetSpace(Skeleton(image_size=32)).plan.first_stride == 1


@pytest.mark.parametrize("image_size, expected", [
    (224, (128, 160, 192, 224)), (32, (18, 23, 27, 32)), (8, (5, 6, 7, 8)), (1, (1,))])
def test_resolutions_scale_ofa_choices(image_size: int, expected: tuple[int, ...]) -> None:
    assert MobileNetSpace(Skeleton(image_size=image_size)).resolutions == expected


@pytest.mark.parametrize("cells", [6, 9])
def test_cells_out_of_range(cells: int) -> None:
    with pytest.raises(ConfigError, match="1..5"):
        MobileNetSpace(Skeleton(cells=cells))


def test_decision_order(space: MobileNetSpace) -> None:
    names = [d.name for d in space.decisions]
    assert names[:4] == ["resolution", "stage1.depth", "stage1.block1.kernel",
                         "stage1.block1.expand"]
    assert names[-1] == "stage2.block4.expand" and len(names) == 1 + 2 * 9


# ---- canonical values and strings ----------------------------------------------------------
def test_inactive_blocks_are_canonicalised(space: MobileNetSpace) -> None:
    base = space.smallest().values
    other = list(base)
    other[6:10] = [7, 6, 5, 4]  # stage1 blocks 3 and 4: beyond depth 2
    a, b = space.architecture(base), space.architecture(other)
    assert a == b and hash(a) == hash(b) and str(a) == str(b)
    other[2] = 5  # stage1 block1 is active
    assert space.architecture(other) != a


def test_size_counts_distinct_canonical_values() -> None:
    one = MobileNetSpace(Skeleton(image_size=8, width=4, cells=1))
    choices = [d.choices for d in one.decisions]
    distinct = {one.canonical_values(v) for v in itertools.product(*choices)}
    assert one.size() == len(distinct) == 4 * (9**2 + 9**3 + 9**4)
    assert MobileNetSpace(TINY).size() == 4 * 7371**2


def test_largest_and_smallest_strings(space: MobileNetSpace) -> None:
    assert str(space.largest()) == "r8-s1:k7e6,k7e6,k7e6,k7e6-s2:k7e6,k7e6,k7e6,k7e6"
    assert str(space.smallest()) == "r5-s1:k3e3,k3e3-s2:k3e3,k3e3"
    arch = space.parse(" r6-s1:k5e4,k3e6,k7e3-s2:k3e3,k5e6 ")
    assert arch["stage1.depth"] == 3 and arch["stage1.block3.kernel"] == 7
    assert arch["stage2.block3.kernel"] == 3 and arch["resolution"] == 6


@pytest.mark.parametrize("text, token", [
    ("r8-s1:k4e3,k3e3-s2:k3e3,k3e3", "unknown kernel k4"),
    ("r8-s1:k3e5,k3e3-s2:k3e3,k3e3", "unknown expand e5"),
    ("r8-s1:k3e3-s2:k3e3,k3e3", "depth must be one of: 2, 3, 4"),
    ("r8-s1:k3e3,k3e3,k3e3,k3e3,k3e3-s2:k3e3,k3e3", "'s1:k3e3,k3e3,k3e3,k3e3,k3e3'"),
    ("r8-s1:k3e3,k3e3", "got 1"),
    ("r8-s1:k3e3,k3e3-s2:k3e3,k3e3-s3:k3e3,k3e3", "got 3"),
    ("r9-s1:k3e3,k3e3-s2:k3e3,k3e3", "choose one of: r5, r6, r7, r8"),
    ("r08-s1:k3e3,k3e3-s2:k3e3,k3e3", "'r08'"),
    ("r8-s2:k3e3,k3e3-s1:k3e3,k3e3", "must start with 's1:'"),
    ("r8-s1:k3e3,k3x3-s2:k3e3,k3e3", "'k3x3'"),
    ("", "resolution token"),
])
def test_parse_errors_name_the_token(space: MobileNetSpace, text: str, token: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        space.parse(text)
    assert token in str(info.value) and "\n" not in str(info.value)


_indices = st.lists(st.integers(0, 3), min_size=1 + 2 * 9, max_size=1 + 2 * 9)


@given(_indices)
@settings(max_examples=200, deadline=None)
def test_parse_round_trip(indices: list[int]) -> None:
    space = MobileNetSpace(TINY)
    arch = space.from_indices([i % len(d.choices) for i, d in zip(indices, space.decisions)])
    assert space.parse(str(arch)) == arch and str(space.parse(str(arch))) == str(arch)


@given(st.one_of(st.text(), st.text(alphabet="rske0123456789:,- \n")))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_raises_only_architecture_error(text: str) -> None:
    try:
        MobileNetSpace(TINY).parse(text)
    except ArchitectureError as error:
        assert "\n" not in str(error)


# ---- weight entanglement -------------------------------------------------------------------
def _archs(space: MobileNetSpace, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


def test_model_equals_supernet_after_inheritance(space: MobileNetSpace,
                                                 supernet: nn.Module) -> None:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    archs = _archs(space, 8, seed=3)
    supernet.train()
    with torch.no_grad():
        for arch in archs[:4]:  # moves (parts of) the running statistics away from the init
            supernet(x, arch)
    supernet.eval()
    for arch in archs:
        model = space.build_model(arch)
        model.load_state_dict(supernet.subnet_state_dict(arch, model))
        model.eval()
        with torch.no_grad():
            assert (model(x) - supernet(x, arch)).abs().max().item() < 1e-5, str(arch)


def test_small_kernel_is_centre_and_expand_is_leading_slice(space: MobileNetSpace,
                                                           supernet: nn.Module) -> None:
    arch = space.parse("r8-s1:k3e4,k5e3-s2:k7e3,k3e6")
    model = space.build_model(arch)
    model.load_state_dict(supernet.subnet_state_dict(arch, model))
    mid = mid_channels(space.plan.first_block_width, 4)
    big, small = supernet.stages[0][0], model.stages[0][0]
    assert small.depthwise.weight.shape == (mid, 1, 3, 3)
    assert torch.equal(small.depthwise.weight, big.depthwise.weight[:mid, :, 2:5, 2:5])
    five = model.stages[0][1].depthwise  # k5e3: 5x5 centre of the 7x7, first mid(e3) channels
    assert torch.equal(five.weight, supernet.stages[0][1].depthwise.weight[
        :mid_channels(space.plan.stages[0].out_channels, 3), :, 1:6, 1:6])
    assert torch.equal(small.expand.weight, big.expand.weight[:mid])
    assert torch.equal(small.project.weight, big.project.weight[:, :mid])


def test_model_is_plain_modules(space: MobileNetSpace) -> None:
    model = space.build_model(space.smallest())
    assert not any(isinstance(m, DynamicBatchNorm2d) for m in model.modules())
    assert isinstance(model.stages[1][0], MBConv) and len(model.stages[1]) == 2


def test_native_size_input_is_resized(space: MobileNetSpace) -> None:
    model = space.build_model(space.smallest()).eval()  # resolution 5 of 8
    x = torch.randn(2, 3, 8, 8)
    resized = nn.functional.interpolate(x, size=(5, 5), mode="bilinear", align_corners=False)
    assert torch.equal(model(x), model(resized))


def test_every_supernet_parameter_gets_a_gradient(space: MobileNetSpace) -> None:
    torch.manual_seed(4)
    net = space.build_supernet().train()
    x = torch.randn(2, 3, 8, 8)
    for arch in _archs(space, 3, seed=5):
        net(x, arch).square().sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_flops_grow_from_smallest_to_largest(space: MobileNetSpace) -> None:
    low, high = space.flops_m(space.smallest()), space.flops_m(space.largest())
    assert all(low <= space.flops_m(a) <= high for a in _archs(space, 4, seed=6))
    assert low < high


def test_model_exports(space: MobileNetSpace) -> None:
    model = space.build_model(space.smallest()).eval()
    x = torch.randn(2, 3, 8, 8)
    exported = torch.export.export(model, (x,))
    assert torch.equal(exported.module()(x), model(x))


# ---- dynamic BatchNorm ---------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, None])
def test_dynamic_bn_matches_batchnorm_on_leading_channels(momentum: float | None) -> None:
    torch.manual_seed(7)
    dynamic, reference = DynamicBatchNorm2d(8, momentum=momentum), nn.BatchNorm2d(5,
                                                                                  momentum=momentum)
    _randomise_bn(dynamic, seed=8)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(reference, name).copy_(getattr(dynamic, name)[:5])
    tail = dynamic.running_mean[5:].clone()
    for _ in range(3):  # cumulative average when momentum is None: 1/1, 1/2, 1/3
        x = torch.randn(4, 5, 3, 3)
        assert torch.allclose(dynamic(x), reference(x), atol=1e-6)
    assert torch.allclose(dynamic.running_mean[:5], reference.running_mean, atol=1e-7)
    assert torch.allclose(dynamic.running_var[:5], reference.running_var, atol=1e-7)
    assert int(dynamic.num_batches_tracked) == int(reference.num_batches_tracked) == 3
    assert torch.equal(dynamic.running_mean[5:], tail)  # untouched channels stay untouched
    dynamic.eval(), reference.eval()
    x = torch.randn(4, 5, 3, 3)
    assert torch.allclose(dynamic(x), reference(x), atol=1e-6)


def test_dynamic_bn_full_width_is_batchnorm() -> None:
    dynamic, reference = DynamicBatchNorm2d(6), nn.BatchNorm2d(6)
    x = torch.randn(3, 6, 2, 2)
    assert torch.equal(dynamic(x), reference(x))
    assert torch.equal(dynamic.running_var, reference.running_var)


def test_architecture_of_another_skeleton_is_refused(supernet: nn.Module) -> None:
    for skeleton in (Skeleton(image_size=8, width=4, cells=3), Skeleton(image_size=32, cells=2)):
        foreign = MobileNetSpace(skeleton).largest()
        with pytest.raises(ArchitectureError, match="another skeleton"):
            supernet(torch.zeros(1, 3, 8, 8), foreign)
