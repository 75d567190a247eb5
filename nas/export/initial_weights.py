"""A model's first weights: fresh ("scratch"), selected from a larger exported model
("weight-selection", `nas.export.weight_selection`), or inherited from a trained supernet
("inherit"), with BatchNorm statistics recalibrated for the architecture."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from nas.config import TrainConfig
from nas.errors import ConfigError
from nas.export.weight_selection import load_teacher, select_weights, skipped_keys
from nas.problem import SearchProblem
from nas.training.supernet import TrainedSupernet, load_supernet
from search_spaces import Architecture, SearchSpace


def normalisation(problem: SearchProblem) -> dict[str, Any]:
    """How a model's input is normalised, as its files record it."""
    source = problem.splits.train
    return {"mean": source.mean.flatten().tolist(), "std": source.std.flatten().tolist(),
            "scale": "pixels / 255, then (x - mean) / std"}


def data_metadata(problem: SearchProblem) -> dict[str, Any]:
    """What a model's files record of its data: the input normalisation, and the name of each
    output logit's class (`class_names[i]` for logit i)."""
    return {"normalization": normalisation(problem),
            "class_names": list(problem.splits.data.label_names())}


INITS = ("inherit", "scratch", "weight-selection")  # where a model's first weights come from


@dataclass(frozen=True)
class Initialisation:
    """A model's first weights: `state_dict` None means the fresh ones of the seed.
    `metadata` is what the model's files record of where they came from."""

    init: str
    state_dict: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def check_init(init: str, teacher: str | Path | None, teacher_kind: Mapping[str, str]) -> None:
    """`teacher_kind[init]` names what the teacher of `init` is; inits absent from it take none."""
    if init not in INITS:
        raise ConfigError(f"unknown --init {init!r}; choose one of: {', '.join(INITS)}")
    if init in teacher_kind and teacher is None:
        raise ConfigError(f"--init {init} needs --teacher {teacher_kind[init]}")
    if init not in teacher_kind and teacher is not None:
        raise ConfigError(f"--teacher is for --init {' or '.join(teacher_kind)}; drop it with "
                          f"--init {init}")


def inherited_state(trained: TrainedSupernet, arch: Architecture,
                     model: nn.Module) -> dict[str, Any]:
    """`arch`'s supernet weights for `model`, with BatchNorm statistics recalibrated for `arch`
    (a plain model normalises with running statistics, whatever mode the method scores in)."""
    trained.method.calibrate(trained.supernet, arch, trained.problem.scoring_data())
    return trained.supernet.subnet_state_dict(arch, model)


def initial_state(space: SearchSpace, arch: Architecture, model: nn.Module, init: str,
                  teacher: str | Path | None = None,
                  device: str = TrainConfig.device) -> Initialisation:
    """The first weights of `model = space.build_model(arch)` (whose fresh values fill what
    the init leaves, such as a classifier for other classes): "scratch" its own,
    "weight-selection" selected from the exported model `teacher` (`nas.export.weight_selection`),
    "inherit" the supernet of run `teacher`, which must have `space`'s name and skeleton."""
    check_init(init, teacher, {"weight-selection": "FILE.pt2", "inherit": "RUN_DIR"})
    if init == "scratch":
        return Initialisation(init)
    if init == "weight-selection":
        source = load_teacher(teacher)
        state = select_weights(source.state_dict, source.space, space, model)
        skipped = skipped_keys(source.space, space, list(state))
        return Initialisation(init, state, {**source.metadata(), "fresh_keys": skipped})
    trained = load_supernet(teacher, device)
    other = trained.problem.space
    if (other.name, other.skeleton, other.width, other.cells) != (
            space.name, space.skeleton, space.width, space.cells):
        raise ConfigError(f"the supernet in {teacher} is {other.name} with skeleton "
                          f"{asdict(other.skeleton)}; --init inherit needs the student's space "
                          f"{space.name} and skeleton {asdict(space.skeleton)}")
    state = inherited_state(trained, other.parse(str(arch)), model)
    return Initialisation(init, state, {"teacher": str(Path(teacher).resolve())})
