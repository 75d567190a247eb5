"""Standalone MobileNetV3 subnet: plain nn.Conv2d / BatchNorm2d / Linear at the subnet's sizes.

The macro network is OFA's MobileNetV3 (mit-han-lab/once-for-all
`ofa/imagenet_classification/elastic_nn/networks/ofa_mbv3.py`, `networks/mobilenet_v3.py`):
stem conv 3x3 + BN + h-swish, a fixed MBConv(k3, expand 1, ReLU), the elastic stages, then the
MobileNetV3 head (final expand 1x1 + BN + h-swish, global pool, feature-mix 1x1 without BN or bias
+ h-swish, linear). Module names equal the supernet's, so a subnet's weights are slices of the
supernet's weights under the same keys. `Stem`, `Head` and `resize` are shared with the supernet.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mobilenet.ops import build_activation, mid_channels, se_channels


@dataclass(frozen=True)
class StagePlan:
    """One elastic stage: its output width, the stride of its first block, activation, SE."""

    out_channels: int
    stride: int
    activation: str
    use_se: bool


@dataclass(frozen=True)
class MacroPlan:
    """Every fixed size of the network; the space derives it from the skeleton."""

    in_channels: int
    num_classes: int
    first_stride: int
    stem_width: int
    first_block_width: int
    stages: tuple[StagePlan, ...]
    final_expand_width: int
    feature_mix_width: int


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Users feed native-size images; the architecture's resolution is reached by bilinear
    resizing here (OFA trains on random-resized crops of each resolution instead)."""
    if x.shape[-2] == resolution and x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


class SqueezeExcite(nn.Module):
    """OFA `SEModule`: mean-pool, 1x1 reduce + ReLU, 1x1 expand + h-sigmoid, channel gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, se_channels(channels), 1, bias=True)
        self.expand = nn.Conv2d(se_channels(channels), channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s


class MBConv(nn.Module):
    """Inverted residual (OFA `MBConvLayer` + `ResidualBlock`): [1x1 expand + BN + act], depthwise
    k x k + BN + act, [SE], 1x1 project + BN, identity shortcut when stride 1 and in == out.
    Expand ratio 1 has no expand conv, as in OFA. Same op order as `ElasticMBConv.forward`."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 expand: int, activation: str, use_se: bool) -> None:
        super().__init__()
        mid = mid_channels(in_channels, expand)
        self.is_residual = stride == 1 and in_channels == out_channels
        if expand == 1:
            self.expand = None
        else:
            self.expand = nn.Conv2d(in_channels, mid, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(mid)
        self.depthwise = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(mid)
        self.se = SqueezeExcite(mid) if use_se else None
        self.project = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.act = build_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.act(self.expand_bn(self.expand(x)))
        y = self.act(self.depthwise_bn(self.depthwise(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project(y))
        return y + x if self.is_residual else y


class Stem(nn.Module):
    """First conv 3x3 + BN + h-swish, then OFA's fixed first block MBConv(k3, e1, ReLU, no SE)."""

    def __init__(self, plan: MacroPlan) -> None:
        super().__init__()
        self.conv = nn.Conv2d(plan.in_channels, plan.stem_width, 3, plan.first_stride, 1,
                              bias=False)
        self.bn = nn.BatchNorm2d(plan.stem_width)
        self.act = nn.Hardswish()
        self.block = MBConv(plan.stem_width, plan.first_block_width, 3, 1, 1, "relu", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.act(self.bn(self.conv(x))))


class Head(nn.Module):
    """MobileNetV3 head: final expand 1x1 + BN + h-swish, global average pool, feature mix 1x1
    (no BN, no bias) + h-swish, linear classifier (OFA's dropout 0.1 is left out: no dropout
    on this platform)."""

    def __init__(self, in_channels: int, plan: MacroPlan) -> None:
        super().__init__()
        self.final_expand = nn.Conv2d(in_channels, plan.final_expand_width, 1, bias=False)
        self.final_expand_bn = nn.BatchNorm2d(plan.final_expand_width)
        self.feature_mix = nn.Conv2d(plan.final_expand_width, plan.feature_mix_width, 1,
                                     bias=False)
        self.classifier = nn.Linear(plan.feature_mix_width, plan.num_classes)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.final_expand_bn(self.final_expand(x)))
        x = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        x = self.act(self.feature_mix(x))
        return self.classifier(x.flatten(1))


class MobileNetModel(nn.Module):
    """One subnet: `blocks[s]` lists the (kernel, expand) of stage s's active blocks."""

    def __init__(self, plan: MacroPlan, resolution: int,
                 blocks: tuple[tuple[tuple[int, int], ...], ...]) -> None:
        super().__init__()
        self.resolution = resolution
        self.stem = Stem(plan)
        stages = []
        in_channels = plan.first_block_width
        for stage, stage_blocks in zip(plan.stages, blocks):
            layers = []
            for i, (kernel, expand) in enumerate(stage_blocks):
                stride = stage.stride if i == 0 else 1
                layers.append(MBConv(in_channels, stage.out_channels, kernel, stride, expand,
                                     stage.activation, stage.use_se))
                in_channels = stage.out_channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = Head(in_channels, plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(resize(x, self.resolution))
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
