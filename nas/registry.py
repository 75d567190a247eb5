"""Named registries: the one global state of the platform (spaces, methods, searchers,
proxies, `nas bench` producers).

Registry names are the CLI names. Imports nothing from the project but `nas.errors`.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from nas.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry dict that refuses duplicates and names the valid keys on a miss.

    `names()` lists the names sorted (CLI help, error messages); iterating yields the entries
    in registration order (`nas bench` runs its producers in that order)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add `entry` under the name it gives itself: a class's or an object's `name`
        attribute (spaces, methods, proxies), a function's `__name__` (searchers). Usable as a
        decorator."""
        name = getattr(entry, "name", None)
        if not isinstance(entry, type) and not isinstance(name, str):
            name = getattr(entry, "__name__", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} {entry!r} names itself nowhere; give the class a "
                             f"`name` attribute")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

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

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())
