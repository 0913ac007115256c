"""A small table of values that every connection repeats, shared between connections."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SharedPairs(dict[K, V], Generic[K, V]):
    """At most ``limit`` entries, forgotten all at once when full: no order to keep, and a
    peer that sends new values every time costs one clear per ``limit`` connections."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: K, value: V) -> None:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
