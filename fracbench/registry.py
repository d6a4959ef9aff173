"""One registry pattern for every name lookup (tasks, models, sites, ...).

An unknown name raises ``KeyError`` naming the closest matches and every valid
name; registering a name twice raises ``ValueError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping whose errors tell the user what to type instead."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # what the names denote, used in error messages ("task", "model")
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered; pick another name")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(unknown_name_message(self.kind, name, self._items)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)


def unknown_name_message(kind: str, name: str, valid: object) -> str:
    """``unknown task 'qoute_close'; did you mean 'quote_close'? valid: ...``"""
    valid_names = sorted(str(v) for v in valid)  # type: ignore[union-attr]
    close = difflib.get_close_matches(name, valid_names, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ";"
    return f"unknown {kind} {name!r}{hint} valid: {', '.join(valid_names)}"
