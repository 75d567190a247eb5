"""The seven DARTS candidate operations and the 1x1 / factorized-reduce preprocessing layers.

Shapes and layer order follow the official DARTS code (quark0/darts `cnn/operations.py`, `OPS`),
with two deliberate differences:

- every BatchNorm is affine with running statistics (this platform's rule; DARTS's search network
  uses `affine=False`), and pooling has no BatchNorm after it (DARTS's search `MixedOp` adds one
  only to keep the weighted sum balanced, which single-path training does not need);
- `FactorizedReduce` also accepts odd spatial sizes (see its docstring).

`none` is not an operation here: the discretised DARTS cell never keeps it (`model_search.py`
`genotype()` skips it), so a single-path space over derived cells does not need it.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

# DARTS `PRIMITIVES` order, without `none` (quark0/darts `cnn/genotypes.py`).
OP_NAMES: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)


def _depthwise(channels: int, kernel: int, stride: int, dilation: int = 1) -> nn.Conv2d:
    # "same" padding for odd kernels: dilation * (kernel - 1) / 2, so stride 2 gives ceil(H / 2).
    padding = dilation * (kernel - 1) // 2
    return nn.Conv2d(channels, channels, kernel, stride, padding, dilation=dilation,
                     groups=channels, bias=False)


def _pointwise(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, bias=False)


class ReLUConvBN(nn.Sequential):
    """ReLU -> 1x1 conv -> BN: DARTS's `preprocess0/1`, which bring a cell input to C channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(OrderedDict(relu=nn.ReLU(), conv=_pointwise(c_in, c_out), bn=_bn(c_out)))


class SepConv(nn.Sequential):
    """Two stacked (ReLU, depthwise kxk, pointwise 1x1, BN); only the first depthwise strides."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__(OrderedDict(
            relu1=nn.ReLU(), dw1=_depthwise(channels, kernel, stride),
            pw1=_pointwise(channels, channels), bn1=_bn(channels),
            relu2=nn.ReLU(), dw2=_depthwise(channels, kernel, 1),
            pw2=_pointwise(channels, channels), bn2=_bn(channels),
        ))


class DilConv(nn.Sequential):
    """ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN (receptive field 5 or 9)."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__(OrderedDict(
            relu=nn.ReLU(), dw=_depthwise(channels, kernel, stride, dilation=2),
            pw=_pointwise(channels, channels), bn=_bn(channels),
        ))


class FactorizedReduce(nn.Module):
    """Halve H and W with two stride-2 1x1 convs, one on the input shifted by one pixel.

    As DARTS: ReLU, then `conv_1(x)` and `conv_2(x[:, :, 1:, 1:])` concatenated on channels, then
    BN. For an odd size H the shifted input has H - 1 rows and `conv_2` would give one row fewer
    than `conv_1`'s ceil(H / 2); so the shifted input is zero-padded by one row and column at the
    bottom/right, back to H x W. For even H the padded row sits at an odd offset that stride 2
    never samples, so the output equals DARTS's exactly; for odd H the last row/column of the
    shifted half sees only the zero padding.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        # DARTS requires an even c_out; the second half takes the remainder so any c_out works.
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, ⌈H/2⌉, ⌈W/2⌉)
        x = self.relu(x)
        shifted = F.pad(x, (-1, 1, -1, 1))  # negative pad crops the first row/column
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def build_op(name: str, channels: int, stride: int) -> nn.Module:
    """One candidate op, `channels` in and out; `stride` 2 on a reduction cell's input edges."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(channels, int(name[-1]), stride)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(channels, int(name[-1]), stride)
    raise KeyError(f"unknown DARTS op {name!r}; choose one of: {', '.join(OP_NAMES)}")
