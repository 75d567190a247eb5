"""DARTS CNN cell space (Liu et al., ICLR 2019), registered as "darts"."""
from __future__ import annotations

from search_spaces.darts.space import DartsSpace

__all__ = ["DartsSpace"]
