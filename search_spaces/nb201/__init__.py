"""NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020), registered as `nb201`."""
from search_spaces.nb201.space import NB201Space

__all__ = ["NB201Space"]
