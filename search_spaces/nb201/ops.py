"""The NAS-Bench-201 cell vocabulary and its modules (Dong & Yang, ICLR 2020).

Facts follow AutoDL-Projects `xautodl/models/cell_operations.py` (ops), `cell_infers/cells.py`
(InferCell) and `cell_infers/tiny_network.py` (TinyNetwork). Both the supernet and the standalone
model are built from these pieces, so their modules, and hence their state_dict keys, coincide.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# Index order of AutoDL `NAS_BENCH_201`; the table's `ops` column encodes edges with it.
OP_NAMES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

# The six edges (name, target node, source node) in the order the benchmark string lists them:
# node 0 is the cell input, node 3 its output, and node j sums one edge from every i < j.
EDGES: tuple[tuple[str, int, int], ...] = (
    ("1<-0", 1, 0),
    ("2<-0", 2, 0), ("2<-1", 2, 1),
    ("3<-0", 3, 0), ("3<-1", 3, 1), ("3<-2", 3, 2),
)
NODES = 4

# For each computed node 1..3, the (edge index, source node) pairs summed into it, in edge order.
INCOMING: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((e, source) for e, (_, target, source) in enumerate(EDGES) if target == node)
    for node in range(1, NODES)
)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, pad k//2, no bias) -> BN: AutoDL `ReLUConvBN`, NB201's `nor_conv_kxk`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(OrderedDict(
            relu=nn.ReLU(inplace=False),
            conv=nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            bn=nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        ))


def build_op(name: str, channels: int) -> nn.Module:
    """One candidate op of a cell edge. `none` has no module: callers skip the edge instead,
    which equals AutoDL's `Zero` (x * 0) added into the node sum."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        # Cells keep C_in == C_out, so AutoDL's 1x1 preprocessing conv never appears here.
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"no module for op {name!r}; ops with modules: {', '.join(OP_NAMES[1:])}")


class ResNetBasicBlock(nn.Module):
    """The fixed reduction between stages: AutoDL `ResNetBasicblock` with stride 2.

    Two ReLUConvBN 3x3 (the first strided) plus a shortcut AvgPool(2, 2) -> Conv1x1 (no BN).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/2, W/2)
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def stage_plan(width: int, cells: int) -> list[tuple[int, bool]]:
    """(channels, is_reduction) of each of the 3N + 2 blocks after the stem, as TinyNetwork lists
    them: N cells at C, a reduction to 2C, N cells at 2C, a reduction to 4C, N cells at 4C."""
    plan: list[tuple[int, bool]] = []
    for stage, multiplier in enumerate((1, 2, 4)):
        if stage > 0:
            plan.append((width * multiplier, True))
        plan.extend((width * multiplier, False) for _ in range(cells))
    return plan


def build_stem(in_channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
        bn=nn.BatchNorm2d(width, affine=True, track_running_stats=True),
    ))


def build_head(channels: int, num_classes: int) -> nn.Sequential:
    """TinyNetwork's `lastact` (BN -> ReLU), global average pooling and the linear classifier."""
    return nn.Sequential(OrderedDict(
        bn=nn.BatchNorm2d(channels, affine=True, track_running_stats=True),
        relu=nn.ReLU(inplace=False),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(1),
        classifier=nn.Linear(channels, num_classes),
    ))
