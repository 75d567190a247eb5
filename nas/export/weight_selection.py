"""Weight selection: initialise a model with evenly spaced elements of a larger trained one.

Xu et al., "Initializing Models with Larger Ones", ICLR 2024 (OscarXZQ/weight-selection
`weight_selection.py` `uniform_element_selection`, with the rounding fix of its PR #8). Along
every dimension of every tensor, a teacher size T is cut to the student size S by taking every
(T/S)-th element when S divides T, else `round(linspace(0, T-1, S))`. The indices depend on
(T, S) only, so every layer keeps the same channels: a residual sum, a concatenation or a
BatchNorm after a conv sees the channels the conv kept (residual streams stay aligned).

Layers are matched by name, as in the official code. Blocks are matched by (stage, position in
stage), so a shallower student takes the first N blocks of each of the teacher's stages (the
paper's "first-N layer selection"). The teacher is a model exported by this platform
(`nas.export`): same space, at least as wide, as deep and as large in every tensor, with every
op the student has. A classifier for another number of classes is left freshly initialised, as
the official code skips heads.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from nas.errors import CheckpointError, ConfigError
from nas.export import MODEL_FORMAT, export_paths
from nas.runs import load_checkpoint
from search_spaces import Architecture, SearchSpace, Skeleton, get_space
from search_spaces.darts.model import reduction_cells
from search_spaces.nb201.ops import stage_plan

_STATE_DICT_SUFFIX = ".state_dict.pt"


# ---- the per-dimension rule ----------------------------------------------------------------
def element_indices(teacher_size: int, student_size: int) -> torch.Tensor:
    """The `student_size` teacher indices kept along one dimension, evenly spaced from 0.

    Divisible sizes take every (T/S)-th index, so the kept elements are exactly one of the
    teacher's strided sub-grids (a concatenation of equal parts keeps the same part of each).
    Otherwise `round(linspace(0, T-1, S))`: the first and last elements and evenly spaced ones
    between (the official code's unrounded `linspace(0, T, S)` indexed out of range).
    """
    if not 1 <= student_size <= teacher_size:
        raise ConfigError(f"weight selection keeps 1 to {teacher_size} of a teacher's "
                          f"{teacher_size} elements, not {student_size}")
    if teacher_size % student_size == 0:
        return torch.arange(student_size) * (teacher_size // student_size)
    return torch.round(torch.linspace(0, teacher_size - 1, student_size)).long()


def select_tensor(teacher: torch.Tensor, student_shape: Sequence[int],
                  name: str = "tensor") -> torch.Tensor:
    """`teacher` cut to `student_shape` by `element_indices` along every dimension; the tensor
    itself when the shapes are equal. `name` labels the errors."""
    student_shape = tuple(student_shape)
    if teacher.dim() != len(student_shape):
        raise ConfigError(f"teacher layer {name} has {teacher.dim()} dimensions "
                          f"{tuple(teacher.shape)}, the student's {len(student_shape)} "
                          f"{student_shape}; weight selection needs the same layer types")
    if tuple(teacher.shape) == student_shape:
        return teacher
    for dim, (t, s) in enumerate(zip(teacher.shape, student_shape)):
        if t < s:
            raise ConfigError(f"teacher layer {name} has shape {tuple(teacher.shape)}, smaller "
                              f"than the student's {student_shape} in dimension {dim}; weight "
                              f"selection needs a teacher at least as large in every dimension")
    selected = teacher
    for dim, (t, s) in enumerate(zip(teacher.shape, student_shape)):
        if t != s:
            selected = torch.index_select(selected, dim, element_indices(t, s))
    return selected


# ---- which teacher layer a student layer comes from -----------------------------------------
@dataclass(frozen=True)
class _Layout:
    """How a space names its layers. `blocks` is the key prefix of its indexed blocks
    (`cells.` in `cells.3.edges...`), None when its keys already say (stage, position);
    `is_reduction(space)` flags each block; `classifier` prefixes the final Linear."""

    blocks: str | None
    is_reduction: Callable[[SearchSpace], list[bool]] | None
    classifier: str


_LAYOUTS: dict[str, _Layout] = {
    # TinyNetwork: N cells, reduction block, N cells, reduction block, N cells.
    "nb201": _Layout("cells.", lambda s: [r for _, r in stage_plan(s.width, s.cells)],
                     "head.classifier."),
    # DARTS: reduction cells at cells//3 and 2*cells//3.
    "darts": _Layout("cells.", lambda s: [i in reduction_cells(s.cells) for i in range(s.cells)],
                     "classifier."),
    # `stages.{s}.{b}`: block b of stage s is the same name in every depth.
    "mobilenet": _Layout(None, None, "head.classifier."),
}


def _layout(space: SearchSpace) -> _Layout:
    if space.name not in _LAYOUTS:
        raise ConfigError(f"weight selection knows the layers of {', '.join(sorted(_LAYOUTS))}, "
                          f"not of space {space.name}")
    return _LAYOUTS[space.name]


def _stage_positions(is_reduction: Sequence[bool]) -> list[tuple[int, int]]:
    """(stage, position in stage) of each block: a reduction block opens the next stage, so
    reductions map to reductions and cells to cells of the same stage."""
    positions, stage, position = [], 0, 0
    for reduces in is_reduction:
        if reduces:
            stage, position = stage + 1, 0
        positions.append((stage, position))
        position += 1
    return positions


def teacher_keys(teacher_space: SearchSpace, student_space: SearchSpace,
                 student_keys: Sequence[str]) -> dict[str, str]:
    """The teacher key each student key is selected from: block (stage, p) of the student from
    block (stage, p) of the teacher (first-N per stage), every other key by its own name."""
    layout = _layout(student_space)
    if layout.blocks is None:
        return {key: key for key in student_keys}
    student = _stage_positions(layout.is_reduction(student_space))
    teacher_positions = _stage_positions(layout.is_reduction(teacher_space))
    teacher = {position: i for i, position in enumerate(teacher_positions)}
    pattern = re.compile(re.escape(layout.blocks) + r"(\d+)\.(.*)")
    result = {}
    for key in student_keys:
        match = pattern.fullmatch(key)
        if match is None:
            result[key] = key
            continue
        stage, position = student[int(match.group(1))]
        if (stage, position) not in teacher:
            depth = sum(1 for s, _ in teacher_positions if s == stage)
            raise ConfigError(
                f"student block {layout.blocks}{match.group(1)} (stage {stage}, position "
                f"{position}) has no teacher block: the teacher's stage {stage} has {depth}; "
                f"weight selection needs a teacher at least as deep in every stage")
        result[key] = f"{layout.blocks}{teacher[stage, position]}.{match.group(2)}"
    return result


def skipped_keys(teacher_space: SearchSpace, student_space: SearchSpace,
                 student_keys: Sequence[str]) -> list[str]:
    """The student keys left freshly initialised: the classifier when the numbers of classes
    differ (its rows are other classes; the official code skips every `head` key)."""
    if teacher_space.skeleton.num_classes == student_space.skeleton.num_classes:
        return []
    prefix = _layout(student_space).classifier
    return [key for key in student_keys if key.startswith(prefix)]


def select_weights(teacher_state: Mapping[str, torch.Tensor], teacher_space: SearchSpace,
                   student_space: SearchSpace, student_model: nn.Module) -> dict[str, torch.Tensor]:
    """A full state_dict for `student_model` (a `student_space` model): each tensor selected
    from its teacher layer; `skipped_keys` keep the student's own fresh values."""
    if teacher_space.name != student_space.name:
        raise ConfigError(f"teacher is a {teacher_space.name} model; weight selection needs a "
                          f"teacher of the student's space {student_space.name}")
    own = student_model.state_dict()
    skipped = set(skipped_keys(teacher_space, student_space, list(own)))
    sources = teacher_keys(teacher_space, student_space, [k for k in own if k not in skipped])
    result = {}
    for key, target in own.items():
        if key in skipped:
            result[key] = target.detach().clone()
            continue
        source = sources[key]
        if source not in teacher_state:
            shown = key if source == key else f"{key} (teacher {source})"
            raise ConfigError(f"student layer {shown}: the teacher's architecture has no such "
                              f"layer; weight selection needs a teacher with every layer of the "
                              f"student (the same ops, at least as deep)")
        result[key] = select_tensor(teacher_state[source], target.shape, source).detach().clone()
    return result


# ---- the teacher: a model exported by this platform ------------------------------------------
@dataclass(frozen=True)
class Teacher:
    """An exported model (`nas.export`): its `.pt2` path, space with skeleton, architecture and
    weights."""

    path: Path
    space: SearchSpace
    arch: Architecture
    state_dict: dict[str, torch.Tensor]

    def metadata(self) -> dict[str, Any]:
        """What an initialised model records of its teacher."""
        return {"teacher": str(self.path), "teacher_space": self.space.name,
                "teacher_arch": str(self.arch), "teacher_skeleton": asdict(self.space.skeleton)}


def load_teacher(path: str | Path) -> Teacher:
    """Read `FILE.pt2`'s weights from its sibling `FILE.state_dict.pt` (either path may be
    given), safely: `weights_only` loading, no pickled code runs."""
    path = Path(path).resolve()
    if path.name.endswith(_STATE_DICT_SUFFIX):
        program = path.with_name(path.name[:-len(_STATE_DICT_SUFFIX)] + ".pt2")
    elif path.suffix == ".pt2":
        program = path
    else:
        raise ConfigError(f"--teacher {path} is not an exported model; give its FILE.pt2 or "
                          f"FILE{_STATE_DICT_SUFFIX} (written by nas export or nas train)")
    weights = export_paths(program).state_dict
    if not weights.is_file():
        raise CheckpointError(f"no teacher weights at {weights}; an exported model FILE.pt2 "
                              f"keeps them beside it in FILE{_STATE_DICT_SUFFIX}")
    state = load_checkpoint(weights, MODEL_FORMAT)
    try:
        space = get_space(state["space"], Skeleton(**state["skeleton"]))
        arch = space.parse(state["arch"])
        weights_of = dict(state["state_dict"])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{weights} lacks an exported model's space, skeleton, "
                              f"architecture or weights ({type(error).__name__}: {error})"
                              ) from None
    if not all(isinstance(t, torch.Tensor) for t in weights_of.values()):
        raise CheckpointError(f"{weights} holds weights that are not tensors")
    return Teacher(program, space, arch, weights_of)
