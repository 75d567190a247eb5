"""An architecture as a standalone model, in three files.

`FILE.pt2` (format `pt2`, the default): a `torch.export` program (graph + weights;
`torch.export.load(FILE).module()`), or `FILE.onnx` (format `onnx`, `nas.export.onnx_model`):
the same graph as ONNX, for runtimes other than PyTorch; either with a dynamic batch dimension.
`FILE.state_dict.pt`: the weights, loadable with `torch.load(..., weights_only=True)` into
`space.build_model(arch)`. `FILE.json`: the architecture, the skeleton, the input
normalisation the model expects and the names of its classes.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from nas.errors import CheckpointError, ConfigError
from nas.export.onnx_model import onnx_bytes, require_onnx
from nas.runs import atomic_torch_save, atomic_write_bytes, atomic_write_json, load_checkpoint
from search_spaces import Architecture, SearchSpace

MODEL_FORMAT = "nas-model"
# The formats of the model program, each also the suffix of its file.
PROGRAM_FORMATS = {"pt2": "a torch.export program", "onnx": "an ONNX model"}


@dataclass(frozen=True)
class ExportedFiles:
    program: Path
    state_dict: Path
    metadata: Path


def program_format(out: str | Path, format: str | None = None) -> str:
    """The format `out` is written in: `format`, which `out`'s suffix must name, or when None
    the one its suffix names (`.pt2` or `.onnx`)."""
    suffix = Path(out).suffix.removeprefix(".")
    choices = ", ".join(sorted(PROGRAM_FORMATS))
    if format is not None and format not in PROGRAM_FORMATS:
        raise ConfigError(f"unknown --format {format!r}; choose one of: {choices}")
    if format is None and suffix not in PROGRAM_FORMATS:
        raise ConfigError(f"--out {out} must end in .pt2 (a torch.export program) or .onnx "
                          f"(an ONNX model, --format onnx)")
    if format is not None and suffix != format:
        raise ConfigError(f"--out {out} must end in .{format} for --format {format} "
                          f"({PROGRAM_FORMATS[format]})")
    return suffix


def export_paths(out: str | Path, format: str | None = None) -> ExportedFiles:
    """The three files of the model exported to `out` (checked by `program_format`)."""
    out = Path(out)
    program_format(out, format)
    return ExportedFiles(out, out.with_suffix(".state_dict.pt"), out.with_suffix(".json"))


def check_export(out: str | Path, format: str | None = None) -> str:
    """`out`'s format, with the packages it needs: the checks a command makes before any
    training or loading, so a bad `--out` costs nothing."""
    chosen = program_format(out, format)
    if chosen == "onnx":
        require_onnx()
    return chosen


def _program_bytes(model: nn.Module, space: SearchSpace, format: str,
                   metadata: dict[str, Any]) -> bytes:
    """`model` traced once in `format`, with any batch size (a dimension of size 2 traced, so
    torch treats it as symbolic rather than specialising to 1)."""
    example = torch.zeros(2, *space.input_shape())
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=65536)},)
    if format == "onnx":
        return onnx_bytes(model, example, dynamic_shapes, metadata)
    program = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def save_model(model: nn.Module, space: SearchSpace, arch: Architecture, out: str | Path,
               metadata: dict[str, Any], *, overwrite: bool = False,
               format: str | None = None) -> ExportedFiles:
    """Write the three files of an exported model, the program in `format` (None: as `out`'s
    suffix says); refuses to replace files unless `overwrite`."""
    chosen, files = check_export(out, format), export_paths(out, format)
    existing = [p for p in asdict(files).values() if Path(p).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    model = model.cpu().eval()
    metadata = {"space": space.name, "arch": str(arch), "skeleton": asdict(space.skeleton),
                "input_shape": list(space.input_shape()), "params_m": space.params_m(arch),
                "flops_m": space.flops_m(arch), **metadata}
    program = _program_bytes(model, space, chosen, metadata)
    atomic_write_bytes(files.program, program)
    atomic_torch_save(files.state_dict, {"format": MODEL_FORMAT, "space": space.name,
                                         "skeleton": asdict(space.skeleton), "arch": str(arch),
                                         "state_dict": model.state_dict()})
    atomic_write_json(files.metadata, metadata)
    return files


@contextmanager
def _weights_only_torch_load() -> Iterator[None]:
    """Force every `torch.load` inside to `weights_only=True`.

    `torch.export.load` retries a failed weights-only load with `weights_only=False`, which runs
    any pickled code in the file; torch reads TORCH_FORCE_WEIGHTS_ONLY_LOAD at each call.
    """
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ[names[0]] = "1"
    os.environ.pop(names[1], None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_program(path: str | Path) -> nn.Module:
    """The exported model as a callable module; only torch is needed, and no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no exported model at {path}")
    try:
        with _weights_only_torch_load(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path)).module()
    except Exception as error:  # torch raises many types for a bad archive; one answer for all
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path} is not a loadable exported model (corrupt or unsafe): "
                              f"{first_line}") from None


def load_model(state_dict_path: str | Path) -> tuple[nn.Module, Architecture]:
    """Rebuild the plain model from `FILE.state_dict.pt` (safe: weights only)."""
    from search_spaces import Skeleton, get_space

    state = load_checkpoint(Path(state_dict_path), MODEL_FORMAT)
    space = get_space(state["space"], Skeleton(**state["skeleton"]))
    arch = space.parse(state["arch"])
    model = space.build_model(arch)
    model.load_state_dict(state["state_dict"])
    return model.eval(), arch


def read_metadata(out: str | Path) -> dict[str, Any]:
    return json.loads(export_paths(out).metadata.read_text())
