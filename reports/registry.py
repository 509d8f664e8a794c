"""One registry mechanism for every pluggable part: sources, rule conditions, renderers, channels.

A built-in part registers itself on import exactly as a third-party one would, so adding a
source, condition, format or channel is one module that calls `register` (and its test).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from reports.errors import HeraldError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named parts of one kind, in the order they registered."""

    def __init__(self, kind: str, key: Callable[[T], str | tuple[str, ...]]) -> None:
        self.kind = kind  # what one part is called in messages, e.g. "source type"
        self._key = key  # reads the name (or names) a part registers under
        self._parts: dict[str, T] = {}

    def register(self, part: T) -> T:
        """Add `part` under its name(s); usable as a class decorator."""
        names = self._key(part)
        for name in (names,) if isinstance(names, str) else names:
            self._parts[name] = part
        return part

    def __getitem__(self, name: str) -> T:
        if name not in self._parts:
            close = difflib.get_close_matches(name, self._parts, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise HeraldError(f"unknown {self.kind} '{name}'", f"{hint}use one of: {', '.join(self._parts)}")
        return self._parts[name]

    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def items(self) -> list[tuple[str, T]]:
        return list(self._parts.items())

    def names(self) -> list[str]:
        return list(self._parts)

    def as_dict(self) -> dict[str, T]:
        return dict(self._parts)
