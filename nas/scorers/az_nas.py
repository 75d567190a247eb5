"""AZ-NAS's three training-free components: expressivity, progressivity, trainability.

Lee & Ham, CVPR 2024, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search".
Our own implementation of the official code, cvlab-yonsei/AZ-NAS @5e6683a:
`NB201/ZeroShotProxy/compute_az_nas_score.py` (`compute_nas_score`, `init_model`,
`kaiming_normal_fanin_init`), `NB201/custom/tss_model.py` (`TinyNetwork.extract_cell_features`)
and `NB201/tss_general.ipynb` (batch size and the rank aggregation).

What is computed, on a copy of a freshly built stand-alone model in train mode:

- Re-initialisation (`kaiming_normal_fanin_init`): Conv2d and Linear weights Kaiming-normal with
  mode="fan_in", nonlinearity="relu", biases 0; affine BatchNorm2d/GroupNorm weight 1, bias 0.
- Input: Gaussian noise `randn(64, *image shape)`; 64 is the notebook's batch (the NB201
  weight-sharing config's batch_size). The images only give shape, dtype and device; labels unused.
- Feature maps f_0..f_L: the stem's output, then every block's (`extract_cell_features`: stem,
  then each of NB201's 3N + 2 cells including the two ResNet reductions; 18 maps for C=16, N=5).
- Expressivity: per map, X (B*H*W, C) centred, Sigma = X^T X / (B*H*W), eigenvalues s,
  p = s / sum(s), s_l = -sum p ln(p + 1e-8); E = sum_l s_l.
- Progressivity: P = min_l (s_l - s_{l-1}).
- Trainability: for l = L..1, g_out Rademacher of f_l's shape, g_in = d<f_l, g_out>/d f_{l-1};
  a block with g_in == g_out exactly (identity) scores -inf, so T is -inf: the official code
  appends -inf and takes np.mean, it does not leave the block out. If f_{l-1} is larger,
  g_in goes through PixelUnshuffle(H_in / H_out), which moves each stride x stride patch into
  channels; channels are otherwise left as they are, so M = g_in^T g_out / (B*H_out*W_out) is
  (C_in * stride^2, C_out). sigma = largest singular value of M;
  t_l = -sigma - 1/(sigma + 1e-6) + 2; T = mean_l t_l.
- A NaN component becomes -inf (infinities are kept, as in the official code).

Draws in the official order, all from torch's generators (the caller seeds them): the
re-initialisation, the noise, then one Rademacher tensor per block from the last block back.

Deviations and choices, none of which changes a result the official code produces:
- Spatial sizes that do not divide (MobileNet resolutions such as 23 -> 12): the official
  `int(H_in / H_out)` would give stride 1 and a shape error; here stride = ceil(H_in / H_out) and
  g_in is zero-padded at the bottom and right to stride * H_out first, pairing each output pixel
  with the input patch a strided kernel centred on it starts from.
- A block whose output does not depend on its input (an NB201 cell whose output node only sees
  `none`, built here without modules) gets g_in = 0, what AutoDL's `Zero` (x * 0) gives officially.
- DARTS (not in the official code): a cell reads f_{l-2} and f_{l-1}; g_in is the partial
  gradient with respect to f_{l-1} (f_{l-2} held fixed), except for the first cell, whose two
  inputs are both the stem output f_0, so its g_in sums both paths.
- MobileNet: the maps are the stem's (OFA's first conv and fixed first block) and every MBConv
  block's outputs. The official MobileNetV2 port (`ImageNet_MBV2/Masternet.py`
  `extract_layer_features_and_logit`) takes every ReLU's output inside the blocks instead.
- Gradients are taken with retain_graph=True (official: False); the values are the same.

The official AZ-NAS score is not a per-model number: it ranks a whole population on E, P, T and
FLOPs and sums ln(rank / N) (`log_rank_aggregate` here, the reference for the general combined
scorer).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import nn

from nas.errors import ConfigError
from nas.scorers.hooks import forward_hooks

BATCH_SIZE = 64  # NB201/tss_general.ipynb: the noise batch equals the loader's batch_size, 64
ENTROPY_EPS = 1e-8  # compute_az_nas_score.py: torch.log(prob_s + 1e-8)
SIGMA_EPS = 1e-6  # compute_az_nas_score.py: 1 / (s.max() + 1e-6)


# ---- the model's blocks and their feature maps ---------------------------------------------
def feature_blocks(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are AZ-NAS's feature maps, in forward order: the stem, then each
    cell (NB201, DARTS: `model.cells`) or each MBConv block of every stage (MobileNet)."""
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Module) and isinstance(getattr(model, "cells", None), nn.ModuleList):
        return [stem, *model.cells]
    if isinstance(stem, nn.Module) and isinstance(getattr(model, "stages", None), nn.ModuleList):
        return [stem, *(block for stage in model.stages for block in stage)]
    raise ConfigError(f"AZ-NAS reads the feature maps of a model's `stem` and `cells` or `stages`, "
                      f"but {type(model).__name__} has neither; use an NB201, DARTS or MobileNet "
                      f"stand-alone model")


def _initialise(module: nn.Module) -> None:
    """compute_az_nas_score.py `kaiming_normal_fanin_init`, applied to every module."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def feature_maps(net: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Run `net` on `inputs` and return each feature block's output, autograd graph kept."""
    blocks = feature_blocks(net)
    outputs: list[list[torch.Tensor]] = [[] for _ in blocks]
    hooks = [(block, lambda _m, _i, out, seen=seen: seen.append(out))
             for block, seen in zip(blocks, outputs)]
    with forward_hooks(hooks), torch.enable_grad():
        net(inputs)
    counts = [len(seen) for seen in outputs]
    if any(count != 1 for count in counts):
        raise ConfigError(f"AZ-NAS needs each feature block to run once per forward pass, got "
                          f"call counts {counts}")
    return [seen[0] for seen in outputs]


# ---- expressivity and progressivity --------------------------------------------------------
def map_entropy(feature: torch.Tensor) -> float:
    """s_l: the entropy of the normalised eigenvalues of a map's channel covariance."""
    b, c, h, w = feature.shape
    x = feature.detach().permute(0, 2, 3, 1).reshape(b * h * w, c)  # (N, C)
    x = x - x.mean(dim=0, keepdim=True)
    sigma = x.T @ x / x.shape[0]  # (C, C)
    s = torch.linalg.eigvalsh(sigma)
    p = s / s.sum()
    return float((-p * torch.log(p + ENTROPY_EPS)).sum())


def progressivity(entropies: list[float]) -> float:
    """P = min over consecutive maps of s_l - s_{l-1}."""
    return float(np.min(np.diff(np.asarray(entropies, dtype=np.float64))))


# ---- trainability --------------------------------------------------------------------------
def _to_output_grid(g_in: torch.Tensor, g_out: torch.Tensor) -> torch.Tensor:
    """g_in (B, C_in, H_in, W_in) -> (B, C_in * stride^2, H_out, W_out) by PixelUnshuffle."""
    (h_in, w_in), (h_out, w_out) = g_in.shape[2:], g_out.shape[2:]
    if (h_in, w_in) == (h_out, w_out):
        return g_in
    stride = math.ceil(h_in / h_out)
    pad_h, pad_w = stride * h_out - h_in, stride * w_out - w_in
    if h_in < h_out or pad_w < 0 or pad_w >= stride:
        raise ConfigError(f"AZ-NAS trainability pairs a map with the next one by a common stride, "
                          f"got sizes {h_in}x{w_in} -> {h_out}x{w_out}")
    return F.pixel_unshuffle(F.pad(g_in, (0, pad_w, 0, pad_h)), stride)


def block_trainability(f_in: torch.Tensor, f_out: torch.Tensor) -> float:
    """t_l of the block mapping f_in to f_out: -sigma - 1/(sigma + 1e-6) + 2, or -inf for an
    identity block. Draws one Rademacher tensor of f_out's shape."""
    g_out = torch.bernoulli(torch.full_like(f_out, 0.5)) * 2 - 1  # (B, C_out, H_out, W_out)
    g_in = None
    if f_out.requires_grad and f_in.requires_grad:
        g_in = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)[0]
    if g_in is None:  # f_out does not depend on f_in (or f_in is a constant)
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    g_in = _to_output_grid(g_in, g_out)
    b, c_out, h, w = g_out.shape
    g_out = g_out.permute(0, 2, 3, 1).reshape(b * h * w, c_out)  # (N, C_out)
    g_in = g_in.permute(0, 2, 3, 1).reshape(b * h * w, -1)  # (N, C_in * stride^2)
    m = g_in.T @ g_out / (b * h * w)  # (C_in * stride^2, C_out)
    if not torch.isfinite(m).all():
        return math.nan
    sigma = float(torch.linalg.svdvals(m).max())
    return -sigma - 1 / (sigma + SIGMA_EPS) + 2


def trainability(features: list[torch.Tensor]) -> float:
    """T: the mean of t_l over the blocks, taken from the last block back."""
    scores = [block_trainability(features[i - 1], features[i])
              for i in reversed(range(1, len(features)))]
    return float(np.mean(scores))


# ---- the components ------------------------------------------------------------------------
def _finite_or_minus_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else float(value)


def az_nas_components(model: nn.Module, images: torch.Tensor,
                      labels: torch.Tensor) -> dict[str, float]:
    """AZ-NAS's expressivity, progressivity and trainability of `model` (higher is better).

    `model` itself is left untouched: a copy is re-initialised and run in train mode on
    Gaussian noise of `images`' shape (batch 64); `labels` are not used."""
    net = copy.deepcopy(model).train()
    net.apply(_initialise)
    dtype = images.dtype if images.is_floating_point() else torch.float32
    noise = torch.randn(BATCH_SIZE, *images.shape[1:], device=images.device, dtype=dtype)
    features = feature_maps(net, noise)
    if len(features) < 2:
        raise ConfigError(f"AZ-NAS compares consecutive feature maps, but the model has "
                          f"{len(features)}; it needs a stem and at least one block")
    entropies = [map_entropy(f) for f in features]
    return {"expressivity": _finite_or_minus_inf(float(np.sum(entropies))),
            "progressivity": _finite_or_minus_inf(progressivity(entropies)),
            "trainability": _finite_or_minus_inf(trainability(features))}


# ---- the population aggregation ------------------------------------------------------------
def log_rank_aggregate(columns: list[list[float]]) -> list[float]:
    """The official AZ-NAS score of each of N architectures (NB201/tss_general.ipynb):
    sum over columns of ln(rank / N), rank = scipy.stats.rankdata ascending with ties averaged.

    `columns` are the population's E, P, T and FLOPs (the official order; the sum does not
    depend on it), each listing one value per architecture. Higher values rank higher in every
    column, FLOPs included. -inf (a NaN component) ranks lowest; NaN itself is refused, since
    the official components never contain it."""
    if not columns:
        raise ConfigError("log_rank_aggregate needs one or more columns, got none")
    values = [np.asarray(column, dtype=np.float64) for column in columns]
    lengths = sorted({len(v) for v in values})
    if len(lengths) != 1 or lengths[0] == 0:
        raise ConfigError(f"log_rank_aggregate needs columns of one non-zero length, got lengths "
                          f"{[len(v) for v in values]}")
    if any(np.isnan(v).any() for v in values):
        raise ConfigError("log_rank_aggregate got NaN; pass -inf for a failed component")
    n = lengths[0]
    total = np.zeros(n)
    for v in values:
        total += np.log(rankdata(v) / n)
    return total.tolist()
