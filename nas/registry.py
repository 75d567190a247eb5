"""Named registries: the one global state of the platform (spaces, methods, searchers).

Registry names are the CLI names. Imports nothing from the project but `nas.errors`.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from nas.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry dict that refuses duplicates and names the valid keys on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
