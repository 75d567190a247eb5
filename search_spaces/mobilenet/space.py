"""The `mobilenet` space: OFA's elastic MobileNetV3 (Cai et al., ICLR 2020), weight-entangled.

Decisions, in order: "resolution"; per stage s = 1..cells "stage{s}.depth" in {2, 3, 4}, then per
block b = 1..4 "stage{s}.block{b}.kernel" in {3, 5, 7} and "stage{s}.block{b}.expand" in {3, 4, 6}
(mit-han-lab/once-for-all `train_ofa_net.py`: ks_list 3,5,7; expand_list 3,4,6; depth_list 2,3,4).
Kernel and expand of blocks beyond a stage's depth do not exist in the network, so they are
canonicalised to the first choice (3, 3): equal networks are equal architectures.

Relaxation (TangleNAS, Sukthanker et al., AutoML-Conf 2024): every decision but the resolution is
relaxed; TangleNAS searches OFA at one fixed resolution, here the largest (see supernet.py).

Canonical string: `r32-s1:k3e4,k5e6-s2:k7e3,k5e4,k3e3`, the resolution, then each stage's active
blocks as k<kernel>e<expand>; a stage's depth is the number of blocks it lists.

Skeleton conventions (documented deviations from ImageNet OFA):
- widths: OFA's w1.0 widths scaled by width/16 and rounded with `make_divisible(v, 8)`, so the
  default width 16 is exactly OFA w1.0; only the first `cells` stages are used.
- resolution: OFA samples {128, 160, 192, 224} for 224-px ImageNet; here each is scaled to the
  skeleton, round(image_size * r / 224), deduplicated (32 px: 18, 23, 27, 32). Users feed images at
  the native size; model and supernet resize bilinearly to the architecture's resolution.
- first-conv stride: 2 (OFA) when image_size >= 64, else 1, so small images (CIFAR's 32 px) are not
  reduced to 1 x 1 before the last stage (the usual CIFAR adaptation of ImageNet MobileNets).
"""
from __future__ import annotations

import math
import re
from typing import Sequence

from torch import nn

from nas.errors import ArchitectureError, ConfigError
from search_spaces.base import Architecture, Choice, Decision, SearchSpace, Skeleton
from search_spaces.mobilenet.model import MacroPlan, MobileNetModel, StagePlan
from search_spaces.mobilenet.ops import make_divisible
from search_spaces.mobilenet.supernet import MobileNetSupernet

# OFA `OFAMobileNetV3.__init__`: base_stage_width [16, 16, 24, 40, 80, 112, 160, 960, 1280], the
# stride / activation / SE lists of its five elastic stages.
STEM_WIDTH, FIRST_BLOCK_WIDTH, FINAL_EXPAND_WIDTH, FEATURE_MIX_WIDTH = 16, 16, 960, 1280
STAGE_WIDTHS = (24, 40, 80, 112, 160)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTIVATIONS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_USE_SE = (False, True, False, True, True)
OFA_RESOLUTIONS = (128, 160, 192, 224)  # `train_ofa_net.py` image_size, for 224-px images
BLOCKS_PER_STAGE = 4
_PER_STAGE = 1 + 2 * BLOCKS_PER_STAGE  # decisions per stage: depth, then (kernel, expand) x 4

_RESOLUTION = re.compile(r"r([1-9][0-9]{0,4})")
_BLOCK = re.compile(r"k([1-9][0-9]{0,2})e([1-9][0-9]{0,2})")

Blocks = tuple[tuple[tuple[int, int], ...], ...]  # per stage, (kernel, expand) of active blocks


def scaled_resolutions(image_size: int) -> tuple[int, ...]:
    """OFA's resolutions scaled to `image_size`, deduplicated and ascending. floor(v + 0.5) is
    round-half-up; no tie occurs anyway since r / 224 is 4/7, 5/7, 6/7 or 1."""
    return tuple(sorted({max(1, math.floor(image_size * r / 224 + 0.5)) for r in OFA_RESOLUTIONS}))


class MobileNetSpace(SearchSpace):
    """OFA MobileNetV3: resolution, per-stage depth, per-block kernel and expand ratio."""

    name = "mobilenet"
    default_width = 16  # first-conv width; 16 is OFA w1.0
    default_cells = 5  # elastic stages; OFA has 5
    kernels = (3, 5, 7)
    expands = (3, 4, 6)
    depths = (2, 3, 4)
    weight_entanglement = "always"  # kernels and expand ratios are slices of the largest (OFA)

    def __init__(self, skeleton: Skeleton | None = None) -> None:
        skeleton = skeleton or Skeleton()
        cells = skeleton.cells or self.default_cells
        if not 1 <= cells <= len(STAGE_WIDTHS):
            raise ConfigError(f"mobilenet cells (elastic stages) must be 1..{len(STAGE_WIDTHS)}, "
                              f"got {cells}")
        self.resolutions = scaled_resolutions(skeleton.image_size)
        super().__init__(skeleton)
        self.plan = self._macro_plan()

    def _scaled(self, channels: int) -> int:
        return make_divisible(channels * self.width / STEM_WIDTH)

    def _macro_plan(self) -> MacroPlan:
        stages = tuple(StagePlan(self._scaled(w), s, a, se) for w, s, a, se in zip(
            STAGE_WIDTHS, STAGE_STRIDES, STAGE_ACTIVATIONS, STAGE_USE_SE))[:self.cells]
        sk = self.skeleton
        return MacroPlan(sk.in_channels, sk.num_classes, 2 if sk.image_size >= 64 else 1,
                         self._scaled(STEM_WIDTH), self._scaled(FIRST_BLOCK_WIDTH), stages,
                         self._scaled(FINAL_EXPAND_WIDTH), self._scaled(FEATURE_MIX_WIDTH))

    def _build_decisions(self) -> Sequence[Decision]:
        decisions = [Decision("resolution", self.resolutions)]
        for s in range(1, self.cells + 1):
            decisions.append(Decision(f"stage{s}.depth", self.depths))
            for b in range(1, BLOCKS_PER_STAGE + 1):
                decisions.append(Decision(f"stage{s}.block{b}.kernel", self.kernels))
                decisions.append(Decision(f"stage{s}.block{b}.expand", self.expands))
        return decisions

    # ---- the network an architecture stands for --------------------------------------------
    def check(self, arch: Architecture) -> Architecture:
        """Also refuse a mobilenet architecture of another skeleton (other cells or image size),
        which would otherwise be read with the wrong stage count or resolution."""
        super().check(arch)
        if arch.names != self._names or arch.values[0] not in self.resolutions:
            raise ArchitectureError(
                f"architecture {arch} belongs to a mobilenet space with another skeleton; this one "
                f"has {self.cells} stages and resolutions {', '.join(map(str, self.resolutions))}")
        return arch

    def blocks(self, arch: Architecture) -> tuple[int, Blocks]:
        """(resolution, per stage the (kernel, expand) of its active blocks)."""
        return arch.values[0], _stage_blocks(arch.values)

    def canonical_values(self, values: tuple[Choice, ...]) -> tuple[Choice, ...]:
        result = list(values)
        for s in range(self.cells):
            start = 1 + s * _PER_STAGE
            depth = result[start]
            for b in range(depth, BLOCKS_PER_STAGE):
                result[start + 1 + 2 * b] = self.kernels[0]
                result[start + 2 + 2 * b] = self.expands[0]
        return tuple(result)

    def is_always_active(self, decision: int) -> bool:
        """Resolution and depths always are; a block's kernel and expand only within the
        shallowest depth (blocks beyond a stage's depth are canonicalised away)."""
        name = self.decisions[decision].name
        if not name.endswith((".kernel", ".expand")):
            return True
        block = int(name.split(".")[1].removeprefix("block"))  # 1-based
        return block <= min(self.depths)

    def size(self) -> int:
        per_stage = sum((len(self.kernels) * len(self.expands)) ** d for d in self.depths)
        return len(self.resolutions) * per_stage ** self.cells

    def largest(self) -> Architecture:
        return self._uniform(max(self.resolutions), max(self.depths), max(self.kernels),
                             max(self.expands))

    def smallest(self) -> Architecture:
        return self._uniform(min(self.resolutions), min(self.depths), min(self.kernels),
                             min(self.expands))

    def _uniform(self, resolution: int, depth: int, kernel: int, expand: int) -> Architecture:
        stage = [depth] + [kernel, expand] * BLOCKS_PER_STAGE
        return self.architecture([resolution] + stage * self.cells)

    # ---- the continuous relaxation (search_spaces/relaxation.py) -----------------------------
    def relaxed_decisions(self) -> tuple[Decision, ...]:
        """Every decision but the resolution, in the space's order: the relaxed network runs at
        the largest resolution, as TangleNAS searches OFA at a fixed one."""
        return self.decisions[1:]

    def derive(self, probabilities: Sequence[Sequence[float]]) -> Architecture:
        """The strongest choice of each relaxed decision (rows in `relaxed_decisions` order) at
        the largest resolution; kernels and expands beyond a stage's depth are canonicalised."""
        relaxed = self.relaxed_decisions()
        rows = list(probabilities)
        if len(rows) != len(relaxed):
            raise ConfigError(f"mobilenet derive needs one row per relaxed decision: "
                              f"{len(relaxed)} rows, got {len(rows)}")
        values: list[Choice] = [max(self.resolutions)]
        for decision, row in zip(relaxed, rows):
            row = [float(p) for p in row]
            if len(row) != len(decision.choices):
                raise ConfigError(f"{decision.name} has {len(decision.choices)} choices "
                                  f"{decision.choices}, got {len(row)} probabilities")
            values.append(decision.choices[max(range(len(row)), key=row.__getitem__)])
        return self.architecture(values)

    # ---- canonical string ------------------------------------------------------------------
    def format(self, values: tuple[Choice, ...]) -> str:
        stages = (",".join(f"k{k}e{e}" for k, e in blocks)
                  for blocks in _stage_blocks(values))
        return f"r{values[0]}-" + "-".join(f"s{s}:{text}" for s, text in enumerate(stages, 1))

    def parse(self, text: str) -> Architecture:
        if not isinstance(text, str):
            raise ArchitectureError(
                f"a mobilenet architecture is a string, got {type(text).__name__}")
        tokens = text.strip().split("-")
        values: list[Choice] = [self._parse_resolution(tokens[0])]
        if len(tokens) - 1 != self.cells:
            raise ArchitectureError(
                f"mobilenet with {self.cells} stages needs stage tokens s1..s{self.cells} after "
                f"the resolution, got {len(tokens) - 1} in {text.strip()!r}")
        for s, token in enumerate(tokens[1:], 1):
            values.extend(self._parse_stage(s, token))
        return self.architecture(values)

    def _parse_resolution(self, token: str) -> int:
        valid = ", ".join(f"r{r}" for r in self.resolutions)
        match = _RESOLUTION.fullmatch(token)
        if match is None:
            raise ArchitectureError(f"resolution token must be r<pixels>, got {token!r}; "
                                    f"choose one of: {valid}")
        resolution = int(match.group(1))
        if resolution not in self.resolutions:
            raise ArchitectureError(f"resolution {token!r} is not a choice for "
                                    f"{self.skeleton.image_size}-px images; choose one of: {valid}")
        return resolution

    def _parse_stage(self, s: int, token: str) -> list[int]:
        prefix = f"s{s}:"
        if not token.startswith(prefix):
            raise ArchitectureError(f"stage token {token!r} must start with {prefix!r}, "
                                    f"e.g. {prefix}k3e4,k5e6")
        parts = token[len(prefix):].split(",")
        if len(parts) not in self.depths:
            raise ArchitectureError(
                f"stage s{s} lists {len(parts)} blocks in {token!r}; depth must be one of: "
                f"{', '.join(map(str, self.depths))}")
        stage = [len(parts)]
        for part in parts:
            stage.extend(self._parse_block(s, part))
        return stage + [self.kernels[0], self.expands[0]] * (BLOCKS_PER_STAGE - len(parts))

    def _parse_block(self, s: int, part: str) -> tuple[int, int]:
        match = _BLOCK.fullmatch(part)
        if match is None:
            raise ArchitectureError(f"block token {part!r} in stage s{s} must be "
                                    f"k<kernel>e<expand>, e.g. k3e4")
        kernel, expand = int(match.group(1)), int(match.group(2))
        if kernel not in self.kernels:
            raise ArchitectureError(f"unknown kernel k{kernel} in block {part!r} of stage s{s}; "
                                    f"choose one of: {', '.join(f'k{k}' for k in self.kernels)}")
        if expand not in self.expands:
            raise ArchitectureError(f"unknown expand e{expand} in block {part!r} of stage s{s}; "
                                    f"choose one of: {', '.join(f'e{e}' for e in self.expands)}")
        return kernel, expand

    # ---- builders --------------------------------------------------------------------------
    def build_supernet(self) -> MobileNetSupernet:
        return MobileNetSupernet(self)

    def build_entangled_supernet(self) -> MobileNetSupernet:
        """The supernet itself: its kernels and expand ratios share their largest weights by
        slicing (OFA), and its `forward(x, mixture)` superposes them (TangleNAS)."""
        return self.build_supernet()

    def build_model(self, arch: Architecture) -> nn.Module:
        resolution, blocks = self.blocks(self.check(arch))
        return MobileNetModel(self.plan, resolution, blocks)


def _stage_blocks(values: tuple[Choice, ...]) -> Blocks:
    """Per stage, the (kernel, expand) of the first `depth` blocks, read from the value tuple."""
    stages = []
    for start in range(1, len(values), _PER_STAGE):
        depth = values[start]
        stages.append(tuple((values[start + 1 + 2 * b], values[start + 2 + 2 * b])
                            for b in range(depth)))
    return tuple(stages)
