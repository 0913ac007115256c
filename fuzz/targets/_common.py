"""What every fuzz target shares: cutting one input into frames, decoding text, the checks of
the error contract, and the libFuzzer entry point.

A target is a module with ``TestOneInput(data: bytes) -> None`` that returns for every input
the code under test accepts or rejects as documented and raises anything else (an assertion
of the target, or an exception the code should never let out).  The targets import nothing
from atheris, so the seed-corpus test runs them where atheris is not installed.

Two invariants hold in every target: only the documented errors leave a core (each target
catches exactly those, so a ``ValueError``, ``OverflowError`` or ``UnicodeEncodeError`` is a
finding), and every frame a core emits encodes as UTF-8 and parses as strict JSON where it
carries JSON (:func:`check_output`).  Long digit runs, which libFuzzer's input cap would
keep out of reach, are one byte pair away: see :func:`expand`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from trackwire import Event

__all__ = [
    "EXPAND",
    "SEPARATOR",
    "Flags",
    "check_events",
    "check_output",
    "drive_stack",
    "expand",
    "fuzz_main",
    "split",
    "strict_json",
    "text",
]

SEPARATOR = b"\xff"
"""Cuts one input into frames; never part of UTF-8 text, so frames stay readable."""


def split(data: bytes, limit: int = 64) -> list[bytes]:
    """The frames of one input (at most ``limit``, to keep each execution short)."""
    return data.split(SEPARATOR, limit)[:limit]


EXPAND = b"\xfe"
"""Followed by one byte ``n``: stands for ``n * 20`` nines (up to 5100 digits, past the 4300
digits Python's ``int`` converts).  Never part of UTF-8 text, like :data:`SEPARATOR`."""
_EXPANSION = re.compile(re.escape(EXPAND) + b"(.)", re.DOTALL)


def expand(chunk: bytes) -> bytes:
    """``chunk`` with every :data:`EXPAND` pair replaced by its run of digits."""
    if EXPAND not in chunk:
        return chunk
    return _EXPANSION.sub(lambda m: b"9" * (m.group(1)[0] * 20), chunk)


def text(chunk: bytes, wide: bool = False) -> str:
    """A frame as text: UTF-8 (bad bytes replaced, :func:`expand` applied), or with ``wide``
    UTF-16-LE where lone surrogates and astral characters are easy for the fuzzer to reach."""
    if wide:
        return chunk[: len(chunk) & ~1].decode("utf-16-le", "surrogatepass")
    return expand(chunk).decode("utf-8", "replace")


def _no_constant(name: str) -> Any:
    raise AssertionError(f"a core emitted {name}, which is not JSON")


def strict_json(body: str) -> Any:
    """Decode as a strict peer (``JSON.parse``) does: UTF-8 text, no ``NaN``/``Infinity``."""
    body.encode("utf-8")
    return json.loads(body, parse_constant=_no_constant)


_LENGTH_PREFIX = re.compile(r"[0-9]+#?\|")


def check_output(
    frames: Iterable[str], *, lines: bool = False, utf8: bool = True, json: bool = True
) -> None:
    """Every frame a core emitted encodes as UTF-8 (unless ``utf8`` is off: the input held
    lone surrogates the application echoed) and its JSON is strict.  iTrack frames carry
    JSON when they start with ``{`` (after a TrackMessageSize prefix); FleetFreedom ``lines``
    carry a JSON object after the name and one space; bare Atmosphere frames (``json`` off)
    carry any text."""
    for frame in frames:
        assert isinstance(frame, str), frame
        if utf8:
            frame.encode("utf-8")
        if not json:
            continue
        if lines:
            _, space, body = frame.partition(" ")
            if space:
                assert type(strict_json(body)) is dict, frame[:200]
            continue
        prefix = _LENGTH_PREFIX.match(frame)
        body = frame[prefix.end() :] if prefix else frame
        if body.startswith("{") and (utf8 or body.isascii()):
            strict_json(body)


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
