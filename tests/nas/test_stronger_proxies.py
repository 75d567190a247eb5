"""jacov, ZiCo and MeCo: each against a value computed by hand or independently in numpy on a
tiny network, the official code's degenerate cases, and that each leaves the caller's model as
it was and gives the same score twice."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.scorers.jacov import jacov
from nas.scorers.meco import meco
from nas.scorers.zico import zico

K = 1e-5  # zero-cost-nas `eval_score`


def _set(layer: nn.Module, weight, bias=None) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return layer


def _official_jacov(jacobian: np.ndarray) -> float:
    """zero-cost-nas `eval_score`, written out: numpy corrcoef and the general `eig`."""
    v = np.real(np.linalg.eig(np.corrcoef(jacobian))[0])
    return float(-np.sum(np.log(v + K) + 1.0 / (v + K)))


# ---- jacov ---------------------------------------------------------------------------------
def test_jacov_of_a_linear_model_has_one_eigenvalue_b_and_the_rest_zero():
    """y = W x + b: every sample's d(sum y)/dx is 1^T W = (4, -1, 2), so corrcoef(J) is all ones,
    eigenvalues B (once) and 0 (B - 1 times): -(ln(B+k) + 1/(B+k) + (B-1)(ln k + 1/k))."""
    net = _set(nn.Linear(3, 2), [[1.0, 0.0, 2.0], [3.0, -1.0, 0.0]], [0.5, -0.5])
    b = 6
    expected = -(math.log(b + K) + 1 / (b + K) + (b - 1) * (math.log(K) + 1 / K))
    score = jacov(net, torch.randn(b, 3), torch.zeros(b, dtype=torch.long))
    assert score == pytest.approx(expected, rel=1e-9)


def test_jacov_of_a_tanh_network_matches_the_official_formula_on_a_hand_jacobian():
    """y = W2 tanh(W1 x + b1): d(sum y)/dx = W1^T ((1 - tanh^2(W1 x + b1)) * W2^T 1), in numpy."""
    gen = torch.Generator().manual_seed(3)
    w1, b1, w2 = (torch.randn(5, 8, generator=gen, dtype=torch.float64),
                  torch.randn(5, generator=gen, dtype=torch.float64),
                  torch.randn(2, 5, generator=gen, dtype=torch.float64))
    net = nn.Sequential(_set(nn.Linear(8, 5).double(), w1, b1), nn.Tanh(),
                        _set(nn.Linear(5, 2, bias=False).double(), w2))
    x = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    w1, b1, w2, xn = w1.numpy(), b1.numpy(), w2.numpy(), x.numpy()
    slope = 1 - np.tanh(xn @ w1.T + b1) ** 2  # (B, 5)
    jacobian = (slope * w2.sum(axis=0)) @ w1  # (B, 8)
    expected = _official_jacov(jacobian)
    assert jacov(net, x, torch.zeros(4, dtype=torch.long)) == pytest.approx(expected, rel=1e-10)
    assert expected > -4e5  # not the degenerate linear case: full-rank corrcoef


class _Disconnected(nn.Module):
    """Logits that ignore the input, as a NAS-Bench-201 cell of `none` edges."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.zeros_like(x))


def test_jacov_is_minus_inf_where_the_official_code_gives_nan():
    """Column sums (3, 3): each Jacobian row is constant, corrcoef is NaN, numpy's eig raises and
    zero-cost-nas returns NaN; here -inf, the lowest score. Likewise input-independent nets."""
    net = _set(nn.Linear(2, 2, bias=False), [[1.0, 2.0], [2.0, 1.0]])
    labels = torch.zeros(4, dtype=torch.long)
    assert jacov(net, torch.randn(4, 2), labels) == -math.inf
    blind = nn.Sequential(nn.Linear(2, 3), _set(nn.Linear(3, 2), torch.zeros(2, 3)))
    assert jacov(blind, torch.randn(4, 2), labels) == -math.inf
    disconnected = _Disconnected()  # no path from input to output at all: x.grad stays None
    assert jacov(disconnected, torch.randn(4, 2), labels) == -math.inf
    with pytest.raises(ConfigError, match="got 1 image"):
        jacov(net, torch.randn(1, 2), labels[:1])


# ---- ZiCo ----------------------------------------------------------------------------------
def _numpy_zico_gradients(w1, b1, w2, x, y):
    """Weight gradients of mean cross-entropy through y = W2 relu(W1 x + b1), by hand."""
    h_pre = x @ w1.T + b1
    h = np.maximum(h_pre, 0)
    logits = h @ w2.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d_logits = (p - np.eye(w2.shape[0])[y]) / len(x)
    d_h = (d_logits @ w2) * (h_pre > 0)
    return d_h.T @ x, d_logits.T @ h  # dL/dW1, dL/dW2 (biases are not scored)


def test_zico_matches_a_numpy_computation_on_two_half_batches():
    """Per entry with two batches: sigma = |g1 - g2| / 2, mu = (|g1| + |g2|) / 2, so
    mu / sigma = (|g1| + |g2|) / |g1 - g2|; ZiCo = sum over layers of ln(sum of that)."""
    gen = torch.Generator().manual_seed(0)
    w1, b1, w2 = torch.randn(4, 3, generator=gen), torch.randn(4, generator=gen), \
        torch.randn(3, 4, generator=gen)
    net = nn.Sequential(_set(nn.Linear(3, 4), w1, b1), nn.ReLU(),
                        _set(nn.Linear(4, 3, bias=False), w2))
    x, y = torch.randn(8, 3, generator=gen), torch.tensor([0, 1, 2, 0, 2, 2, 1, 0])
    halves = [_numpy_zico_gradients(*(t.double().numpy() for t in (w1, b1, w2, x[s])), y[s].numpy())
              for s in (slice(0, 4), slice(4, 8))]
    expected = 0.0
    for g1, g2 in zip(*halves):
        kept = g1 != g2
        expected += math.log(np.sum((np.abs(g1) + np.abs(g2))[kept] / np.abs(g1 - g2)[kept]))
    assert zico(net, x, y) == pytest.approx(expected, rel=1e-5)


class _WithUnusedLayer(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.unused = net, nn.Linear(3, 3)  # registered, never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_zico_skips_layers_without_signal_as_the_official_code():
    """Identical halves: every sigma is 0, every layer is skipped, ZiCo = 0. A layer never
    reached by the backward pass is skipped too (the official code would crash on it)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    assert zico(net, torch.cat([x, x]), torch.cat([y, y])) == 0.0
    x, y = torch.randn(8, 3), torch.tensor([0, 1, 2, 1, 0, 0, 2, 1])
    with_unused = _WithUnusedLayer(net)
    assert zico(with_unused, x, y) == zico(net, x, y) != 0.0
    with pytest.raises(ConfigError, match="got 1 image"):
        zico(net, x[:1], y[:1])


# ---- MeCo ----------------------------------------------------------------------------------
X1, X2 = [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]  # correlation r = 3 / 5 = 0.6


def _two_channel_image() -> torch.Tensor:
    return torch.tensor([X1, X2]).reshape(1, 2, 2, 2)


def test_meco_of_one_conv_is_one_minus_the_channel_correlation():
    """A 1x1 conv scaling and shifting each channel keeps r = 0.6; P = [[1, r], [r, 1]] has
    eigenvalues 1 +- r, so lambda_min = 0.4. Nested containers fire their own hooks on the same
    output: three modules, 3 x 0.4."""
    conv = _set(nn.Conv2d(2, 2, 1), [[[[2.0]], [[0.0]]], [[[0.0]], [[3.0]]]], [1.0, -7.0])
    labels = torch.zeros(1, dtype=torch.long)
    assert meco(conv, _two_channel_image(), labels) == pytest.approx(0.4, rel=1e-12)
    nested = nn.Sequential(nn.Sequential(conv))
    assert meco(nested, _two_channel_image(), labels) == pytest.approx(1.2, rel=1e-12)


def _lambda_min(features: np.ndarray) -> float:
    """The official hook in numpy: corrcoef over rows, NaN/inf zeroed, smallest eigenvalue."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(features)
    return float(np.linalg.eigvalsh(np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0))[0])


def test_meco_sums_every_module_and_counts_2d_outputs_as_zero():
    """conv -> ReLU -> Flatten -> Linear: numpy's lambda_min of the conv and of the ReLU outputs
    (the ReLU changes channels 0 and 2); Flatten, Linear and the Sequential itself give (1, K)
    outputs, which the official code turns into an all-NaN, zeroed matrix: 0 each."""
    conv = _set(nn.Conv2d(3, 3, 1, bias=False),
                [[[[1.0]], [[-1.0]], [[0.5]]], [[[0.5]], [[1.0]], [[0.0]]],
                 [[[2.0]], [[-1.5]], [[-1.0]]]])
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(27, 5))
    image = torch.randn(1, 3, 3, 3, generator=torch.Generator().manual_seed(2))
    out = conv.weight.detach()[:, :, 0, 0].double().numpy() @ image.double().numpy().reshape(3, 9)
    first, second = _lambda_min(out), _lambda_min(np.maximum(out, 0))
    assert 0.01 < first and 0.01 < second and abs(first - second) > 0.01  # both terms matter
    score = meco(net, image, torch.zeros(1, dtype=torch.long))
    assert score == pytest.approx(first + second, rel=1e-6)


def test_meco_zeroes_a_constant_channel_as_the_official_code():
    """A zero weight row makes channel 1 constant: its corrcoef row is NaN, zeroed, so
    P = [[1, 0], [0, 0]] and lambda_min = 0; the score stays a number."""
    conv = _set(nn.Conv2d(2, 2, 1), [[[[1.0]], [[2.0]]], [[[0.0]], [[0.0]]]], [0.0, 5.0])
    assert meco(conv, _two_channel_image(), torch.zeros(1, dtype=torch.long)) == 0.0


# ---- every proxy: the caller's model untouched, deterministic -----------------------------
PROXIES = {"jacov": (jacov, 6), "zico": (zico, 8), "meco": (meco, 1)}


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_leaves_the_model_untouched_and_is_deterministic(name):
    """An eval-mode model with gradients set: its mode, weights, BatchNorm statistics and
    gradients stay; the score is its train-mode score, the same on every call."""
    proxy, batch = PROXIES[name]
    net = _conv_net().eval()
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.25)
    state = {k: v.clone() for k, v in net.state_dict().items()}  # BN running stats included
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.randn(batch, 3, 6, 6, generator=gen), torch.arange(batch) % 3
    kept_images = images.clone()
    first, second = proxy(net, images, labels), proxy(net, images, labels)
    assert first == second and math.isfinite(first)
    assert first == proxy(_conv_net().train(), images, labels)  # scored in train mode, as official
    assert not net.training and all(not m.training for m in net.modules())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in net.parameters())
    assert torch.equal(images, kept_images) and images.grad is None and not images.requires_grad
