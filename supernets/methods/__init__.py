"""Supernet training methods by name (`--method`)."""
from __future__ import annotations

from nas.registry import Registry
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.methods.spos import SPOS

METHODS: Registry[type[TrainingMethod]] = Registry("method")
METHODS.register("spos")(SPOS)

__all__ = ["METHODS", "MethodConfig", "SPOS", "TrainingMethod"]
