"""A run is a directory: config.json, checkpoints, tables, TensorBoard logs, plots.

Every file is written atomically (a temporary file in the same directory, then `os.replace`),
so a crash leaves either the old file or the new one, never half of one. A run directory is
only ever reused by the same settings (a resume); other settings are refused.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import pandas as pd
import torch

from nas.errors import CheckpointError, ConfigError

CONFIG_FILE = "config.json"
R = TypeVar("R")


@contextlib.contextmanager
def exclusive_lock(path: Path, wait: bool):
    """Yield whether this process holds an exclusive lock on `path` (created if missing): the
    queue of work items that several processes of one command share (a lock per item, freed
    when its holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_csv(path: Path, table: pd.DataFrame) -> None:
    atomic_write_text(path, table.to_csv(index=False))


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, expected_format: str) -> dict[str, Any]:
    """Load a platform checkpoint with `weights_only=True`: no code in the file can run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch's unpickler warnings would add lines to ours
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or "
                              f"unsafe): {first_line}") from None
    if not isinstance(state, dict) or state.get("format") != expected_format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a {expected_format} checkpoint (found {found!r})")
    return state


def file_checksum(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunDir:
    """The directory of one run and the files in it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @staticmethod
    def default_path(kind: str, root: str | Path = "results") -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(root) / f"{kind}-{stamp}"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    def settings(self) -> dict[str, Any]:
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            raise ConfigError(f"{self.path} is not a run directory (no {CONFIG_FILE})")
        try:
            return json.loads(config_path.read_text())["settings"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ConfigError(f"{config_path} is corrupt: {error}") from None

    def record(self, record_class: type[R]) -> R:
        """The run's settings as a typed record (`nas.config.RunRecord`): `from_dict`."""
        return record_class.from_dict(self.settings())

    def open(self, settings: Any,
             fill_defaults: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> bool:
        """Start this run, or resume it when the directory holds the same settings.

        `settings` is a typed record (`nas.config.RunRecord`: its `to_dict`, and its `upgrade`
        as `fill_defaults`) or a plain dict. `fill_defaults` completes the recorded settings
        with fields added to the platform since they were written, so newer code resumes older
        runs. Returns True on a resume. A directory with other settings, or with files but no
        config.json, is never touched.
        """
        if hasattr(settings, "to_dict"):
            fill_defaults = fill_defaults or type(settings).upgrade
            settings = settings.to_dict()
        settings = json.loads(json.dumps(settings, default=str))  # as it will read back
        if self.exists():
            previous = self.settings()
            if fill_defaults is not None:
                previous = fill_defaults(previous)
            if previous != settings:
                key, old, new = first_difference(previous, settings)
                raise ConfigError(f"{self.path} holds a run with other settings ({key}: {old!r} "
                                  f"there, {new!r} now); "
                                  f"choose a new --out, or repeat the same command to resume it")
            return True
        # Another process's half-written file (atomic writes' hidden .tmp) does not make the
        # directory someone else's: ground-truth workers may open one directory at once.
        if self.path.exists() and any(not (f.name.startswith(".") and f.name.endswith(".tmp"))
                                      for f in self.path.iterdir()):
            raise ConfigError(f"{self.path} exists and is not an empty run directory; "
                              f"choose a new --out")
        atomic_write_json(self.path / CONFIG_FILE, {
            "settings": settings, "argv": sys.argv,
            "created": _dt.datetime.now().isoformat(timespec="seconds")})
        return False

    def tensorboard(self) -> Callable[[str, float, int], None]:
        """A `log_scalar(tag, value, step)` writing TensorBoard events under `tb/`."""
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.path / "tb"))

        def log_scalar(tag: str, value: float, step: int) -> None:
            writer.add_scalar(tag, value, step)
            if step % 50 == 0:
                writer.flush()

        log_scalar.close = writer.close  # type: ignore[attr-defined]
        return log_scalar


def first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any]:
    """The first dotted key (in sorted order) where two nested settings differ, and its two
    values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return prefix.rstrip("."), old, new
