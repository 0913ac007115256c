"""What every fuzz target shares: cutting one input into frames, decoding text, the checks of
the error contract, and the libFuzzer entry point.

A target is a module with ``TestOneInput(data: bytes) -> None`` that returns for every input
the code under test accepts or rejects as documented and raises anything else (an assertion
of the target, or an exception the code should never let out).  The targets import nothing
from atheris, so the seed-corpus test runs them where atheris is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from trackwire import Event

__all__ = [
    "SEPARATOR",
    "Flags",
    "check_events",
    "drive_stack",
    "fuzz_main",
    "split",
    "text",
]

SEPARATOR = b"\xff"
"""Cuts one input into frames; never part of UTF-8 text, so frames stay readable."""


def split(data: bytes, limit: int = 64) -> list[bytes]:
    """The frames of one input (at most ``limit``, to keep each execution short)."""
    return data.split(SEPARATOR, limit)[:limit]


def text(chunk: bytes, wide: bool = False) -> str:
    """A frame as text: UTF-8 (bad bytes replaced), or with ``wide`` UTF-16-LE where lone
    surrogates and astral characters are easy for the fuzzer to reach."""
    if wide:
        return chunk[: len(chunk) & ~1].decode("utf-16-le", "surrogatepass")
    return chunk.decode("utf-8", "replace")


class Flags:
    """Option bits taken from the first byte of an input."""

    __slots__ = ("bits",)

    def __init__(self, data: bytes) -> None:
        self.bits = data[0] if data else 0

    def __getitem__(self, bit: int) -> bool:
        return bool(self.bits >> bit & 1)


def check_events(events: Iterable[object], base: type = Event) -> None:
    """Every event a core produced is a typed event of its protocol."""
    for event in events:
        assert isinstance(event, base), f"not a {base.__name__}: {event!r:.200}"
        repr(event)  # every event can be shown (reprs redact and must not fail)


def drive_stack(stack: Any, chunks: list[bytes], now: float) -> list[object]:
    """Feed a WebSocket stack its chunks (an empty one lets 30 s pass and runs the timers),
    end the input, and check the contract: typed events only, and the stack ends CLOSED."""
    from trackwire.ws import StackState

    events: list[object] = []
    for chunk in chunks:
        if stack.state is StackState.CLOSED:
            break
        if chunk:
            now += 1.0
            stack.receive(chunk, now)
        else:
            now += 30.0
            stack.handle_timer(now)
        stack.data_to_send()
        events.extend(stack.events())
    if stack.state is not StackState.CLOSED:
        stack.receive_eof(now)
        stack.data_to_send()
        events.extend(stack.events())
    check_events(events)
    assert stack.state is StackState.CLOSED, stack.state
    return events


def fuzz_main(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under libFuzzer (atheris); command-line flags are libFuzzer's."""
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
