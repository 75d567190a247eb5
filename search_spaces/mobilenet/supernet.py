"""The weight-entangled mobilenet supernet (OFA MobileNetV3, `elastic_nn/networks/ofa_mbv3.py`).

Every stage holds its maximal 4 blocks as `ElasticMBConv`s; `forward(x, arch)` runs the first
`depth` blocks of each stage at the chosen kernel and expand ratio on slices of the maximal
weights. Stem and head are fixed and are the standalone model's own modules.

`forward(x, mixture)` runs TangleNAS's relaxation (Sukthanker et al., AutoML-Conf 2024) over the
space's `relaxed_decisions`: at the largest resolution, every block runs once on its superposed
(kernel, expand) weights (`ElasticMBConv.mixed`), and a stage outputs sum_d w_d * (output after
block d) over its depth choices (TangleNAS `forward_depth`). The space is entangled already, so
this one supernet serves both single paths and the relaxation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from nas.errors import ConfigError
from search_spaces.base import Architecture, Supernet
from search_spaces.mobilenet.model import Head, Stem, resize
from search_spaces.mobilenet.ops import ElasticMBConv
from search_spaces.relaxation import Mixture

if TYPE_CHECKING:
    from search_spaces.mobilenet.space import MobileNetSpace


def _crop(source: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`source` cut to `shape`: leading entries along channel dims (0, 1), the centre along
    spatial dims (2, 3), i.e. exactly what the elastic ops slice in `forward`."""
    if source.dim() != len(shape) or any(t > s for t, s in zip(shape, source.shape)):
        raise KeyError(f"cannot cut a weight of shape {tuple(source.shape)} to {tuple(shape)}")
    index = []
    for dim, (size, full) in enumerate(zip(shape, source.shape)):
        start = (full - size) // 2 if dim >= 2 else 0
        index.append(slice(start, start + size))
    return source[tuple(index)]


class MobileNetSupernet(Supernet):
    """OFA's elastic MobileNetV3 over the first `space.cells` stages."""

    def __init__(self, space: "MobileNetSpace") -> None:
        super().__init__(space)
        plan = space.plan
        self.stem = Stem(plan)
        stages = []
        in_channels = plan.first_block_width
        for stage in plan.stages:
            blocks = []
            for i in range(max(space.depths)):
                blocks.append(ElasticMBConv(
                    in_channels, stage.out_channels, stage.stride if i == 0 else 1,
                    stage.activation, stage.use_se, space.kernels, space.expands))
                in_channels = stage.out_channels
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.head = Head(in_channels, plan)

    def forward(self, x: torch.Tensor, arch: Architecture | Mixture) -> torch.Tensor:
        if isinstance(arch, Mixture):
            return self.mixed(x, arch)
        resolution, blocks = self.space.blocks(self.space.check(arch))
        x = self.stem(resize(x, resolution))
        for stage, stage_blocks in zip(self.stages, blocks):
            for block, (kernel, expand) in zip(stage, stage_blocks):
                x = block(x, kernel, expand)
        return self.head(x)

    def mixed(self, x: torch.Tensor, mixture: Mixture) -> torch.Tensor:
        """The relaxed network (module doc); `mixture` weighs `space.relaxed_decisions()`."""
        self._check_mixture(mixture)
        x = self.stem(resize(x, max(self.space.resolutions)))
        for s, stage in enumerate(self.stages, 1):
            after = []  # after[b - 1]: the output of block b
            for b, block in enumerate(stage, 1):
                x = block.mixed(x, mixture[f"stage{s}.block{b}.kernel"],
                                mixture[f"stage{s}.block{b}.expand"])
                after.append(x)
            x = sum(w * after[depth - 1]
                    for w, depth in zip(mixture[f"stage{s}.depth"], self.space.depths))
        return self.head(x)

    def _check_mixture(self, mixture: Mixture) -> None:
        for decision in self.space.relaxed_decisions():
            weights = mixture[decision.name]
            if weights.shape != (len(decision.choices),):
                raise ConfigError(
                    f"mixture weights of {decision.name} must have shape "
                    f"({len(decision.choices)},) for choices {decision.choices}, got "
                    f"{tuple(weights.shape)}")

    def subnet_state_dict(self, arch: Architecture, model: nn.Module) -> dict[str, torch.Tensor]:
        """Slice every supernet weight and buffer to the standalone model's shape, key by key.

        The model's modules carry the supernet's names (model.py), so key k of the model is the
        slice of the supernet's key k that `forward(x, arch)` uses; `num_batches_tracked` is
        copied. Raises KeyError when `model` is not a subnet of this supernet.
        """
        self.space.check(arch)
        own = self.state_dict()
        result = {}
        for key, target in model.state_dict().items():
            if key not in own:
                raise KeyError(f"supernet has no weight {key!r}")
            result[key] = _crop(own[key], target.shape).detach().clone()
        return result
