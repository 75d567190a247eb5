"""The platform's error hierarchy.

Every error a user can cause is a `NasError` whose message is one line: the rule, the offending
value, and what would be valid. The CLI prints it and exits with code 2. Imports nothing from the
project, so every package may raise these.
"""
from __future__ import annotations


class NasError(Exception):
    """Base of all user-facing errors; `str(error)` is a single line."""


class UnknownNameError(NasError, KeyError):
    """A registry name (space, method, searcher) that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ArchitectureError(NasError, ValueError):
    """A malformed architecture string or value, or one that belongs to another space."""


class DataError(NasError):
    """Missing, unreadable or wrongly shaped data."""


class CheckpointError(NasError):
    """A checkpoint that is missing, truncated, foreign or incompatible with the run."""


class ConfigError(NasError, ValueError):
    """An option value out of range, or a run directory that would be overwritten."""


class TrainingError(NasError):
    """Training that cannot go on, such as a loss that became NaN or infinite."""
