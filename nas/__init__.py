"""A neural architecture search platform: weight-sharing supernets, searchers, export.

`nas.api` is the Python API (the `nas` command is a thin layer over it). This module stays
import-light so that `nas.errors` and `nas.registry` can be imported from every package.
"""
__version__ = "0.1.0"
