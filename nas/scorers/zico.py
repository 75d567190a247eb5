"""ZiCo: layers whose gradients are large and consistent across batches train faster.

Li et al., ICLR 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients"
(SLDGroup/ZiCo `ZeroShotProxy/compute_zico.py`, `getzico`, `getgrad`, `caculate_zico`; our own
implementation). For each of 2 training batches: zero the gradients, cross-entropy with the
labels, backward, keep every Conv2d/Linear weight's gradient (no biases, no BatchNorm). Per
layer, elementwise over the batches: sigma = population standard deviation (numpy's `np.std`,
ddof 0) of the signed gradient, mu = mean of |gradient|; over the entries with sigma != 0,
S_l = sum(mu / sigma) (the log of a sum, not a sum of logs); a layer with S_l = 0 is skipped;
ZiCo = sum_l ln S_l. Train mode (BatchNorm on each batch's own statistics), default init.

The caller gives one augmented batch (128 images); its two halves are the two batches (64 each,
as AZ-NAS's NB201 port of ZiCo). A layer the backward pass never reaches (its output unused)
has no gradient and is skipped: the official code would crash on it, and a layer whose gradients
are all zero (NAS-Bench-201's `none` edge multiplies by zero) is skipped by it anyway. The
statistics are taken in float64 (the official ones in float32).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError


def layer_gradients(model: nn.Module, images: torch.Tensor,
                    labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per Conv2d/Linear layer name, its weight gradients (2, weight numel), one row per half
    batch; layers the backward pass did not reach are left out."""
    if len(images) < 2:
        raise ConfigError(f"zico compares gradients of two half batches; got {len(images)} image")
    net = copy.deepcopy(model).train()
    layers = {name: m for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for half_images, half_labels in zip(images.chunk(2), labels.chunk(2)):
        net.zero_grad(set_to_none=True)  # each batch's gradient on its own, as `getzico`
        F.cross_entropy(net(half_images), half_labels).backward()
        for name, layer in layers.items():
            if layer.weight.grad is not None:
                rows[name].append(layer.weight.grad.detach().reshape(-1).double().cpu())
    return {name: torch.stack(r) for name, r in rows.items() if len(r) == 2}


def zico(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    score = 0.0
    for gradients in layer_gradients(model, images, labels).values():
        sigma = gradients.std(dim=0, correction=0)  # np.std: population standard deviation
        mu = gradients.abs().mean(dim=0)
        kept = sigma != 0  # an entry equal in both batches carries no signal-to-noise ratio
        total = float((mu[kept] / sigma[kept]).sum())
        if total != 0:  # `caculate_zico` skips such a layer instead of taking ln 0
            score += math.log(total)
    return score
