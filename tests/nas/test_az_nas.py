"""AZ-NAS components: each formula against a hand-computed value, then on the project's models."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.scorers.az_nas import (az_nas_components, block_trainability, feature_blocks,
                                log_rank_aggregate, map_entropy, progressivity, trainability)
from search_spaces import Skeleton, get_space

NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|"
              "nor_conv_3x3~1|avg_pool_3x3~2|")


def _entropy(p: list[float]) -> float:
    return -sum(q * math.log(q + 1e-8) for q in p)


def _conv1x1(weight: list[list[float]], stride: int = 1) -> nn.Conv2d:
    weight_t = torch.tensor(weight)
    conv = nn.Conv2d(weight_t.shape[1], weight_t.shape[0], 1, stride=stride, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight_t[:, :, None, None])
    return conv


# ---- expressivity and progressivity --------------------------------------------------------
def _hadamard_map() -> torch.Tensor:
    """B=1, 2x2 pixels, three centred orthogonal channels with variances 4, 2, 2."""
    signs = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])
    x = signs * torch.tensor([2.0, math.sqrt(2), math.sqrt(2)])  # (pixels, C)
    return x.T.reshape(1, 3, 2, 2)


def test_map_entropy_is_the_entropy_of_the_normalised_covariance_eigenvalues():
    # Sigma = diag(4, 2, 2) -> p = (1/2, 1/4, 1/4)
    assert map_entropy(_hadamard_map()) == pytest.approx(_entropy([0.5, 0.25, 0.25]), rel=1e-5)
    # an offset per channel is centred away
    assert map_entropy(_hadamard_map() + 7.0) == pytest.approx(_entropy([0.5, 0.25, 0.25]),
                                                               rel=1e-5)


def test_map_entropy_uses_eigenvalues_not_channel_variances():
    """Rotating channels 0 and 1 correlates them (variances 3, 3, 2) but keeps the spectrum."""
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    rotation = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    rotated = torch.einsum("dc,bchw->bdhw", rotation, _hadamard_map())
    assert map_entropy(rotated) == pytest.approx(_entropy([0.5, 0.25, 0.25]), rel=1e-5)
    assert map_entropy(rotated) != pytest.approx(_entropy([3 / 8, 3 / 8, 2 / 8]), rel=1e-3)


def test_progressivity_is_the_smallest_step_between_consecutive_maps():
    assert progressivity([1.0, 3.0, 2.5, 4.0]) == pytest.approx(-0.5)
    assert progressivity([0.0, 1.0, 3.0]) == pytest.approx(1.0)


# ---- trainability --------------------------------------------------------------------------
@pytest.mark.parametrize("stride, size", [(1, 4), (2, 4), (2, 5)])
def test_trainability_of_a_1x1_conv_is_the_norm_of_its_weight(stride, size):
    """With one output channel g_out^2 = 1 at every pixel, so M = W^T exactly (whatever the
    draw): sigma = ||(3, 4)|| = 5, t = -5 - 1/5 + 2. Strides (odd size: padded) only move
    zeros into more channels of g_in."""
    torch.manual_seed(0)
    f_in = torch.randn(3, 2, size, size, requires_grad=True)
    f_out = _conv1x1([[3.0, 4.0]], stride)(f_in)
    expected = -5 - 1 / (5 + 1e-6) + 2
    assert block_trainability(f_in, f_out) == pytest.approx(expected, rel=1e-5)
    assert trainability([f_in, f_out]) == pytest.approx(expected, rel=1e-5)


def test_trainability_averages_blocks_and_an_identity_block_makes_it_minus_inf():
    """The official code appends -inf for a block whose g_in equals g_out, then takes the mean."""
    torch.manual_seed(0)
    f0 = torch.randn(2, 2, 3, 3, requires_grad=True)
    f1 = _conv1x1([[3.0, 4.0]])(f0)  # t = -3.2
    f2 = _conv1x1([[0.5]])(f1)  # sigma 0.5: t = -0.5 - 2 + 2 = -0.5
    assert trainability([f0, f1, f2]) == pytest.approx((-3.2 - 0.5) / 2, rel=1e-5)
    assert block_trainability(f1, f1.clone()) == -math.inf
    assert trainability([f0, f1, f1.clone()]) == -math.inf


def test_a_block_not_reading_its_input_has_zero_gradient():
    f_in = torch.randn(2, 2, 3, 3, requires_grad=True)
    t = block_trainability(f_in, torch.zeros(2, 1, 3, 3))  # sigma 0
    assert t == pytest.approx(-1 / 1e-6 + 2)


# ---- on models -----------------------------------------------------------------------------
class _Chain(nn.Module):
    def __init__(self, *cells: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.cells = nn.ModuleList(cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return x


def test_components_reinitialise_a_copy_and_an_identity_cell_gives_minus_inf():
    model = _Chain(nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)), nn.Identity())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    parts = az_nas_components(model, torch.zeros(2, 3, 6, 6), torch.zeros(2, dtype=torch.long))
    assert parts["trainability"] == -math.inf
    # the identity map repeats its input's entropy: one step of 0
    assert math.isfinite(parts["expressivity"]) and parts["progressivity"] <= 1e-6
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_feature_blocks_refuses_a_model_without_stem_and_cells():
    with pytest.raises(ConfigError, match="stem"):
        feature_blocks(nn.Sequential(nn.Conv2d(3, 4, 1)))


def _nb201_model(arch: str = NB201_ARCH) -> nn.Module:
    space = get_space("nb201", Skeleton(3, 10, 8, width=4, cells=1))
    torch.manual_seed(0)
    return space.build_model(space.parse(arch))


def test_components_of_a_tiny_nb201_model_are_finite_and_seed_deterministic():
    model, images = _nb201_model(), torch.randn(2, 3, 8, 8)
    labels = torch.zeros(2, dtype=torch.long)
    assert len(feature_blocks(model)) == 1 + 3 * 1 + 2
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(az_nas_components(model, images, labels))
    assert set(runs[0]) == {"expressivity", "progressivity", "trainability"}
    assert all(math.isfinite(v) for v in runs[0].values())
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_an_nb201_cell_of_only_none_makes_expressivity_minus_inf():
    """Zero maps have 0/0 eigenvalue shares: NaN, reported as -inf as officially."""
    model = _nb201_model("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    torch.manual_seed(0)
    parts = az_nas_components(model, torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    assert parts["expressivity"] == -math.inf and parts["progressivity"] == -math.inf
    assert parts["trainability"] < -1e4  # zero gradients: sigma 0


@pytest.mark.parametrize("name, skeleton, arch, blocks", [
    ("darts", Skeleton(3, 10, 8, width=4, cells=3), None, 1 + 3),
    # resolution 7: the first stride-2 stage maps 7x7 to 4x4, so g_in is padded to 8x8
    ("mobilenet", Skeleton(3, 10, 8, width=4, cells=2), "r7-s1:k3e4,k5e6-s2:k7e3,k5e4,k3e3",
     1 + 2 + 3)])
def test_components_of_tiny_darts_and_mobilenet_models_are_finite(name, skeleton, arch, blocks):
    space = get_space(name, skeleton)
    arch = space.sample(np.random.default_rng(0)) if arch is None else space.parse(arch)
    torch.manual_seed(0)
    model = space.build_model(arch)
    assert len(feature_blocks(model)) == blocks
    parts = az_nas_components(model, torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    assert all(math.isfinite(v) for v in parts.values()), parts


# ---- population aggregation ----------------------------------------------------------------
def test_log_rank_aggregate_sums_log_rank_shares_with_averaged_ties():
    """Ranks (1, 2.5, 2.5, 4) and (4, 1, 2.5, 2.5) out of N = 4."""
    scores = log_rank_aggregate([[1.0, 2.0, 2.0, 5.0], [3.0, 1.0, 2.0, 2.0]])
    expected = [math.log(1 / 4) + math.log(4 / 4), math.log(2.5 / 4) + math.log(1 / 4),
                math.log(2.5 / 4) + math.log(2.5 / 4), math.log(4 / 4) + math.log(2.5 / 4)]
    assert scores == pytest.approx(expected)
    # -inf ranks lowest
    assert log_rank_aggregate([[-math.inf, 0.0]]) == pytest.approx([math.log(0.5), 0.0])
    with pytest.raises(ConfigError):
        log_rank_aggregate([[1.0, 2.0], [1.0]])
