"""MeCo: the minimum eigenvalue of each feature map's channel correlation, summed.

Jiang et al., NeurIPS 2023, "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via
Minimum Eigenvalue of Correlation" (HamsterMimi/MeCo `correlation/NAS_Bench_201.py` `get_score`,
and its Zero-Cost-PT port `correlation/foresight/pruners/measures/meco.py` `get_score`; our own
implementation). A forward hook on every module of `named_modules()` - the network itself and
the containers included, and once per call of a module - takes the first sample's output,
reshaped (C, H*W); P = corrcoef over the channels, NaN and inf entries set to 0 (a constant
channel); lambda_min = the smallest (real part of an) eigenvalue of P. MeCo = sum of lambda_min
over the hooks, NaN and inf dropped. One forward pass of one augmented training image (the
correlation script, batch 1), train mode, default init, no labels.

A 2-D output (B, K) such as the classifier's is reshaped (K, 1) by the same code: one observation
per row, so corrcoef is NaN everywhere, zeroed, and lambda_min = 0; a (1, C, 1, 1) output alike.
We add that 0 without building the matrix. An output that is not a tensor of at least 2
dimensions (a tuple, a scalar per sample) makes the official code raise; it is skipped here. So
does a one-channel output (torch's corrcoef is then 0-d, which `eig` refuses); here it is the
1 x 1 matrix [[1]], lambda_min = 1 (0 for a constant channel).
Eigenvalues in float64 with `eigvalsh` (P is symmetric; the official code uses float32 `eig`).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nas.scorers.hooks import forward_hooks


def channel_lambda_min(sample: torch.Tensor) -> float:
    """lambda_min of the channel correlation of one sample's output (C, ...) (official hook)."""
    rows = sample.detach().double().reshape(sample.shape[0], -1)
    if rows.shape[1] < 2:
        return 0.0  # corrcoef of single observations: all NaN -> zeroed -> eigenvalues 0
    corr = torch.atleast_2d(torch.corrcoef(rows))  # one channel: torch gives a 0-d [[1]]
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros_like(corr))
    return float(torch.linalg.eigvalsh((corr + corr.T) / 2)[0])  # ascending: [0] is the min


def meco(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    net = copy.deepcopy(model).train()
    lambdas: list[float] = []

    def hook(_module: nn.Module, _inputs: tuple, output) -> None:
        if torch.is_tensor(output) and output.dim() >= 2:
            lambdas.append(channel_lambda_min(output[0]))

    with forward_hooks((m, hook) for _, m in net.named_modules()), torch.no_grad():
        net(images)
    return float(sum(v for v in lambdas if math.isfinite(v)))  # official: NaN/inf dropped
