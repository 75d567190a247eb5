"""Search spaces by name: `get_space("nb201", Skeleton(...))`."""
from __future__ import annotations

from nas.registry import Registry
from search_spaces.base import Architecture, Decision, Sampler, SearchSpace, Skeleton, Supernet
from search_spaces.darts import DartsSpace
from search_spaces.mobilenet import MobileNetSpace
from search_spaces.nb201 import NB201Space

SPACES: Registry[type[SearchSpace]] = Registry("space")
SPACES.register(DartsSpace)
SPACES.register(MobileNetSpace)
SPACES.register(NB201Space)


def get_space(name: str, skeleton: Skeleton | None = None) -> SearchSpace:
    return SPACES.get(name)(skeleton)


__all__ = ["SPACES", "Architecture", "Decision", "DartsSpace", "MobileNetSpace", "NB201Space",
           "Sampler", "SearchSpace", "Skeleton", "Supernet", "get_space"]
