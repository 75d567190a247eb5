"""The standalone NB201 network of one architecture: AutoDL's TinyNetwork with InferCells.

Module paths equal the supernet's (`cells.<i>.edges.<e>.<op>...`), so weights inherited from a
supernet load by key. The forward pass holds no architecture lookups: the wiring is fixed at
construction, which keeps the model exportable with `torch.export`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from search_spaces.nb201.ops import (INCOMING, ResNetBasicBlock, build_head, build_op, build_stem,
                                     stage_plan)


class InferCell(nn.Module):
    """One NB201 cell with its chosen ops (AutoDL `InferCell`). `none` edges get an empty slot,
    keeping edge indices aligned with the supernet's; a node with only `none` inputs is zeros."""

    def __init__(self, channels: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleDict({} if name == "none" else {name: build_op(name, channels)})
            for name in ops
        )
        self._wiring = tuple(
            tuple((e, ops[e], source) for e, source in incoming if ops[e] != "none")
            for incoming in INCOMING
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        nodes = [x]
        for incoming in self._wiring:
            total = None
            for e, name, source in incoming:
                out = self.edges[e][name](nodes[source])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]


class NB201Model(nn.Module):
    """stem -> [N cells, reduction, N cells, reduction, N cells] -> head, as in TinyNetwork."""

    def __init__(self, ops: Sequence[str], in_channels: int, num_classes: int, width: int,
                 cells: int) -> None:
        super().__init__()
        self.stem = build_stem(in_channels, width)
        blocks: list[nn.Module] = []
        previous = width
        for channels, is_reduction in stage_plan(width, cells):
            blocks.append(ResNetBasicBlock(previous, channels) if is_reduction
                          else InferCell(channels, ops))
            previous = channels
        self.cells = nn.ModuleList(blocks)
        self.head = build_head(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)
