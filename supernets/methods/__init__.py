"""Supernet training methods by name (`--method`)."""
from __future__ import annotations

from nas.registry import Registry
from supernets.methods.alphanet import AlphaNet
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.methods.fewshot import FewShot
from supernets.methods.gmnas import GMNAS
from supernets.methods.gradient import DARTS, DrNAS
from supernets.methods.pada import PADA
from supernets.methods.spos import SPOS
from supernets.methods.tanglenas import TangleNAS

METHODS: Registry[type[TrainingMethod]] = Registry("method")
METHODS.register(SPOS)
METHODS.register(AlphaNet)
METHODS.register(FewShot)
METHODS.register(GMNAS)
METHODS.register(PADA)
METHODS.register(DARTS)
METHODS.register(DrNAS)
METHODS.register(TangleNAS)

__all__ = ["METHODS", "AlphaNet", "DARTS", "DrNAS", "FewShot", "GMNAS", "MethodConfig", "PADA",
           "SPOS", "TangleNAS", "TrainingMethod"]
