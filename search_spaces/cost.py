"""FLOPs of a model, counted as NAS-Bench-201 does (AutoDL `flop_benchmark.py`).

Convolutions count kh*kw*(C_in/groups)*C_out multiply-accumulates per output position, plus
C_out per position for a bias; linear layers count in*out, plus out for a bias. Pooling,
BatchNorm, activations and additions are not counted.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_flops(module: nn.Conv2d, output: torch.Tensor) -> int:
    positions = output.shape[0] * output.shape[2] * output.shape[3]
    kh, kw = module.kernel_size
    per_position = kh * kw * (module.in_channels // module.groups) * module.out_channels
    bias = module.out_channels if module.bias is not None else 0
    return positions * (per_position + bias)


def _linear_flops(module: nn.Linear, output: torch.Tensor) -> int:
    rows = output.numel() // module.out_features
    bias = module.out_features if module.bias is not None else 0
    return rows * (module.in_features * module.out_features + bias)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of a single input of `input_shape` (C, H, W)."""
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_flops(module, output)
        elif isinstance(module, nn.Linear):
            total += _linear_flops(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(iter(model.parameters()), torch.empty(0)).device
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total
