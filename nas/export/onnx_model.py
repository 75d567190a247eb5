"""An exported model as ONNX, for runtimes other than PyTorch (onnxruntime and the like).

Written by torch's dynamo-based exporter (`torch.onnx.export(..., dynamo=True)`), which traces
the model with `torch.export` as the `.pt2` format does, with the same dynamic batch dimension
(the graph's input `images` and output `logits` have a first dimension named `batch`); it
needs the packages onnx and onnxscript (the project's `onnx` extra). The model's
`metadata_props` say what a deployment needs without the JSON beside it: `space` and `arch` as
plain text, and `skeleton`, `input_shape`, `normalization` and `class_names` as JSON text.
"""
from __future__ import annotations

import importlib
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from nas.errors import CheckpointError, ConfigError

ONNX_PACKAGES = ("onnx", "onnxscript")  # the dynamo-based exporter imports both
INPUT_NAME, OUTPUT_NAME = "images", "logits"
# The metadata a deployment reads from the model itself; the first two are plain text.
TEXT_KEYS = ("space", "arch")
JSON_KEYS = ("skeleton", "input_shape", "normalization", "class_names")


def require_onnx() -> None:
    """Fail with the install command when a package the ONNX export needs is missing."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"--format onnx needs the packages {' and '.join(ONNX_PACKAGES)} "
                          f"({', '.join(missing)} missing); install them with: "
                          f"pip install 'nas-platform[onnx]' (in a checkout: pip install -e "
                          f"'.[onnx]')")


class _DropTorchvisionNotice(logging.Filter):
    """The exporter warns, on every export, that it skips torchvision's detection ops when
    torchvision is absent; no model of this project uses them, so the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's deprecation warnings and torchvision notice, kept off the user's screen
    (they concern torch's own code, not the model); its errors still raise."""
    notice = logging.getLogger("torch.onnx._internal.exporter._registration")
    drop = _DropTorchvisionNotice()
    notice.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        notice.removeFilter(drop)


def onnx_bytes(model: nn.Module, example: torch.Tensor, dynamic_shapes: tuple,
               metadata: dict[str, Any]) -> bytes:
    """`model` (eval mode, on the CPU) as a serialised ONNX model whose `metadata_props` carry
    the keys of `metadata` named in TEXT_KEYS and JSON_KEYS (those it has)."""
    require_onnx()
    with _quiet_exporter():
        program = torch.onnx.export(model, (example,), dynamo=True, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=dynamic_shapes)
    proto = program.model_proto
    for key in (*TEXT_KEYS, *JSON_KEYS):
        if key in metadata:
            prop = proto.metadata_props.add()
            prop.key = key
            prop.value = metadata[key] if key in TEXT_KEYS else json.dumps(metadata[key])
    return proto.SerializeToString()


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The `metadata_props` of an ONNX model this project exported, with the JSON ones
    decoded; other properties as their text."""
    require_onnx()
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no ONNX model at {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises several types for a bad file; one answer
        raise CheckpointError(f"{path} is not a readable ONNX model: "
                              f"{type(error).__name__}") from None
    metadata = {}
    for prop in model.metadata_props:
        try:
            metadata[prop.key] = json.loads(prop.value) if prop.key in JSON_KEYS else prop.value
        except ValueError:
            raise CheckpointError(f"{path}: metadata {prop.key!r} is not JSON text: "
                                  f"{prop.value[:40]!r}") from None
    return metadata
