"""The configuration dataclasses of every command, the typed record of a run's settings, and
`key=value` option parsing.

Components own their configs (`DataConfig` in nas.data, `TrainConfig` in supernets.loop, each
method's `MethodConfig`); this module adds the space and search configs, re-exports the rest,
and gathers one run's settings in a `RunRecord`, which the run directory writes as config.json
and reads back (older run directories included: `with_added_defaults`).
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass
from typing import Any, Iterable, TypeVar

from nas.data.batches import DataConfig
from nas.errors import ConfigError
from nas.scorers.scorer import ScorerSetting
from supernets.loop import TrainConfig
from supernets.methods import METHODS, MethodConfig

C = TypeVar("C")


DEFAULT_METHOD = "spos"  # the baseline every ranking figure is compared with
# The supernet budget of `nas supernet` / `nas search` (API and CLI alike), in optimiser steps
# because a single-path supernet needs steps, not passes over the data: every op trains only on
# the steps that sample it. On the embedded digits (3-cell DARTS skeleton, 1 CPU core) SPOS
# subnets score at chance for the first ~400 steps, at a median of 54% after 600 and 95% after
# 2,400 (results/main_job/README.md); 3,000 steps is about 5 minutes there. Protocol v2 on
# CIFAR-10 (results/ranking/v2/) shows the ranking still improving to about 8,000 steps, so
# larger data deserves --steps or --time-budget. `epochs` is only the upper bound of a
# --time-budget. `TrainConfig()` itself is the stand-alone budget of `nas train` /
# `nas groundtruth`. The learning rate stays 0.05: on protocol v2 (NB201, SPOS, 3,900 steps,
# 3 seeds) lr 0.1 ranked clearly better by the supernet alone (Kendall tau 0.40 against 0.19),
# but the same default on the main job's DARTS skeleton on digits left the training loss above
# chance for 1,000 steps (results/ranking/heuristics/README.md): `--lr 0.1` is advice for NB201
# cells, not a default for every space.
SUPERNET_TRAINING = TrainConfig(epochs=1000, steps=3000)


@dataclass(frozen=True)
class SpaceConfig:
    """A space and its skeleton. A width or depth not given is the space's default, resolved
    here so that a run records the skeleton it built, not "the default" of the day."""

    name: str = "darts"
    width: int | None = None  # None: the space's default (NB201 C=16, DARTS C=16, mobilenet 16)
    cells: int | None = None  # None: NB201 N=5, DARTS 3 layers, mobilenet 5 stages

    def __post_init__(self) -> None:
        from search_spaces import SPACES  # an unknown name is left for the space registry to refuse
        if self.name in SPACES.names():
            space_class = SPACES.get(self.name)
            if self.width is None:
                object.__setattr__(self, "width", space_class.default_width)
            if self.cells is None:
                object.__setattr__(self, "cells", space_class.default_cells)


@dataclass(frozen=True)
class SearchConfig:
    searcher: str = "tpe"
    trials: int = 100
    seed: int = 0
    # What scores an architecture (`nas.scorers.ScorerSetting`, as `scorer_setting`):
    # "supernet" (trained weight-sharing supernet), "proxy:NAME", a training-free proxy of
    # `nas.scorers.proxies`, a combination such as "supernet+naswot+params" or a named one
    # (`nas.scorers.combined`, recorded by its parts), or "oracle:PATH", a ground-truth table
    # looked up (`oracle_column`; None: the table's default column). The default combination
    # was chosen by protocol v2 (results/ranking/scorers.md).
    scorer: str = "default"
    oracle_column: str | None = None
    # `nas.search.objectives`: "accuracy" or e.g. "accuracy,flops" (accuracy first, costs minimised),
    # and which point of the result `best.txt` names: "accuracy" or e.g. "flops<=50".
    objectives: str = "accuracy"
    pick: str = "accuracy"
    # `nas.search.constraints`: limits every searched architecture meets, e.g. ("flops<=50",
    # "params<=0.5") (all hold); proposals that break one are not scored. Empty: none.
    constraints: tuple[str, ...] = ()
    # Stop the search after this many seconds spent scoring (the study's trial durations, so a
    # resumed search counts what it spent before), or at `trials`, whichever comes first.
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        from nas.search.objectives import Pick, parse_objectives  # torch; kept off the config import

        if self.trials < 0:
            raise ConfigError(f"trials must be >= 0, got {self.trials}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"a search time budget must be > 0 seconds, got "
                              f"{self.time_budget_s}")
        objectives = parse_objectives(self.objectives)
        object.__setattr__(self, "objectives", ",".join(objectives))
        pick = Pick.parse(self.pick)
        object.__setattr__(self, "pick", str(pick))
        from nas.search.constraints import parse_constraints

        # Recorded as a list in config.json, each in one spelling (e.g. flops<=50.0).
        object.__setattr__(self, "constraints",
                           tuple(map(str, parse_constraints(self.constraints))))
        from nas.searchers import MULTI_OBJECTIVE, SEARCHERS

        SEARCHERS.get(self.searcher)  # an unknown name fails before any training
        if len(objectives) > 1 and self.searcher not in MULTI_OBJECTIVE:
            raise ConfigError(f"{self.searcher} optimises one objective; with --objectives "
                              f"{self.objectives} use one of {', '.join(MULTI_OBJECTIVE)}")
        if pick.cost == "latency" and "latency" not in objectives:
            raise ConfigError("--pick latency<=... needs latency measured: add it to "
                              "--objectives (e.g. accuracy,latency)")
        # A malformed one fails here; a named combination is recorded by its parts, so a run
        # keeps its scorer when a later version names another default.
        object.__setattr__(self, "scorer", str(ScorerSetting.parse(self.scorer, self.oracle_column)))

    @property
    def scorer_setting(self) -> ScorerSetting:
        return ScorerSetting.parse(self.scorer, self.oracle_column)


@dataclass(frozen=True)
class MethodSetting:
    """A training method by name with its options, checked against its config class."""

    name: str
    options: MethodConfig

    @classmethod
    def parse(cls, name: str, options: dict[str, Any]) -> MethodSetting:
        """From `--method NAME --method-opt key=value` (values as text or typed)."""
        config_class = METHODS.get(name).config_class
        return cls(name, parse_options(config_class, [f"{k}={v}" for k, v in options.items()],
                                       "method option"))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MethodSetting:
        method_class = METHODS.get(values["name"])
        try:
            return cls(values["name"], method_class.config_class(**values["options"]))
        except TypeError as error:
            raise ConfigError(f"the run's method options do not fit {method_class.name}: "
                              f"{error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options.to_dict()}


@dataclass(frozen=True)
class RunRecord:
    """The settings of one run, as its config.json records them: what a resume must repeat and
    what every later command reads back. Sections a kind of run has not are None (and absent
    from the file): a supernet run has space, data, train and method; a search adds `search`,
    or names the run whose supernet it reuses (`supernet_run`) instead of training one; a
    training-free search has space, data and search; `nas train` has space, data, train, arch
    (and `init` unless from scratch); `nas groundtruth` has `sample` and `seeds`."""

    kind: str | None = None
    space: SpaceConfig | None = None
    data: DataConfig | None = None
    train: TrainConfig | None = None
    method: MethodSetting | None = None
    search: SearchConfig | None = None
    supernet_run: str | None = None
    arch: str | None = None
    init: dict[str, Any] | None = None  # {"name": ..., "teacher": ...}
    sample: int | None = None
    seeds: int | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            values[f.name] = (value.to_dict() if isinstance(value, MethodSetting)
                              else asdict(value) if dataclasses.is_dataclass(value) else value)
        return values

    @staticmethod
    def upgrade(settings: dict[str, Any]) -> dict[str, Any]:
        """Recorded settings as this platform records them (`with_added_defaults`)."""
        return with_added_defaults(settings)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> RunRecord:
        values = with_added_defaults(settings)
        sections = {"space": SpaceConfig, "data": DataConfig, "train": TrainConfig,
                    "search": SearchConfig}
        unknown = sorted(set(values) - _RECORD_FIELDS)
        if unknown:
            raise ConfigError(f"a run's settings hold {unknown[0]!r}, which this platform does "
                              f"not know; valid keys: {', '.join(sorted(_RECORD_FIELDS))}")
        typed = {key: sections[key](**value) if key in sections else value
                 for key, value in values.items() if key != "method"}
        if "method" in values:
            typed["method"] = MethodSetting.from_dict(values["method"])
        return cls(**typed)


_RECORD_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}


def to_dict(config: Any) -> dict[str, Any]:
    return asdict(config)


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    return cls(**values)


def _convert(text: str, annotation: Any, key: str) -> Any:
    if typing.get_origin(annotation) is typing.Literal:
        kinds = [annotation]  # its arguments are the allowed values, not types
    else:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if text.lower() == "none" and type(None) in typing.get_args(annotation):
        return None
    for kind in kinds:
        try:
            if kind is bool:
                if text.lower() in ("true", "1", "yes"):
                    return True
                if text.lower() in ("false", "0", "no"):
                    return False
                continue
            if kind in (int, float, str):
                return kind(text)
            if typing.get_origin(kind) is typing.Literal:
                if text in typing.get_args(kind):
                    return text
                continue
        except ValueError:
            continue
    if annotation is bool:
        raise ConfigError(f"option {key}={text!r} is not a valid bool; choose true or false")
    if typing.get_origin(annotation) is typing.Literal:
        raise ConfigError(f"option {key}={text!r} is not one of its values; choose "
                          f"{', '.join(map(str, typing.get_args(annotation)))}")
    names = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ConfigError(f"option {key}={text!r} is not a valid {names}")


def parse_options(cls: type[C], pairs: Iterable[str], what: str = "option") -> C:
    """Build `cls` from `key=value` strings, checking every key against its fields and types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"{what} {pair!r} must look like key=value")
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"unknown {what} {key!r}; valid keys: {valid}")
        values[key] = _convert(text.strip(), hints[key], key)
    return cls(**values)


def replace_options(config: C, pairs: Iterable[tuple[str, str]], what: str = "option") -> C:
    """`config` with the fields `pairs` (key, value as text) name replaced, each checked against
    the fields and their types, then the whole validated as the class validates itself."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
    values: dict[str, Any] = {}
    for key, text in pairs:
        if key not in fields:
            raise ConfigError(f"unknown {what} {key!r}; valid keys: {', '.join(sorted(fields))}")
        values[key] = _convert(text.strip(), hints[key], key)
    return dataclasses.replace(config, **values)


def with_added_defaults(previous: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded settings, plus every config field added since they were written, at
    its default (and any field that moved, moved): what that run ran with. So a newer platform
    still resumes and loads an older run when the command asks for nothing the run did not do
    (a non-default value still differs)."""
    result = json.loads(json.dumps(previous))
    # A field that moved: BN calibration batches, once a search setting, are the method's.
    # A default that changed: runs recorded before skeletons were resolved hold null for the
    # default, and DARTS's default was 8 layers then (3 since); the others are unchanged.
    space = result.get("space")
    if isinstance(space, dict) and {"name", "width", "cells"} <= set(space):
        if space["name"] == "darts" and space["cells"] is None:
            space["cells"] = 8
        space.update(asdict(SpaceConfig(**space)))
    search, method = result.get("search"), result.get("method")
    if isinstance(search, dict) and "calibration_batches" in search:
        moved = search.pop("calibration_batches")
        if isinstance(method, dict) and isinstance(method.get("options"), dict):
            method["options"].setdefault("calibration_batches", moved)
    sections: list[tuple[Any, type]] = [(result.get(key), cls) for key, cls in (
        ("train", TrainConfig), ("data", DataConfig), ("space", SpaceConfig),
        ("search", SearchConfig))]
    method = result.get("method")
    if isinstance(method, dict) and method.get("name") in METHODS:
        sections.append((method.get("options"), METHODS.get(method["name"]).config_class))
    for values, cls in sections:
        if not isinstance(values, dict):
            continue
        for f in dataclasses.fields(cls):
            if f.name not in values and f.default is not dataclasses.MISSING:
                values[f.name] = json.loads(json.dumps(f.default))
    return result


__all__ = ["DEFAULT_METHOD", "SUPERNET_TRAINING", "DataConfig", "MethodSetting", "RunRecord",
           "SearchConfig", "SpaceConfig", "TrainConfig", "from_dict", "parse_options",
           "replace_options", "to_dict", "with_added_defaults"]
