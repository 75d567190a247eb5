"""Search spaces by name: `get_space("nb201", Skeleton(...))`.

Each space package registers its `SearchSpace` subclass in `SPACES` on import.
"""
from __future__ import annotations

from nas.registry import Registry
from search_spaces.base import Architecture, Decision, Sampler, SearchSpace, Skeleton, Supernet

SPACES: Registry[type[SearchSpace]] = Registry("space")


def get_space(name: str, skeleton: Skeleton | None = None) -> SearchSpace:
    return SPACES.get(name)(skeleton)


# Imported for their registration side effect, after SPACES exists.
from search_spaces import darts, mobilenet, nb201  # noqa: E402,F401

__all__ = ["SPACES", "Architecture", "Decision", "Sampler", "SearchSpace", "Skeleton", "Supernet",
           "get_space"]
