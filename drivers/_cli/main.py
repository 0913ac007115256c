"""The entry point of the ``trackwire`` console script: exit codes, signals, missing extras.

Exit codes: 0 done, 1 failed (one line on stderr), 2 bad usage (one line), 130 interrupted
(Ctrl-C, ``SIGINT``), 143 terminated (``SIGTERM``).  Both signals end every command the same
way: ``SIGTERM`` is handed to whatever handles ``SIGINT`` (trio's handler inside a run,
Python's ``KeyboardInterrupt`` outside one), so the command unwinds as after a Ctrl-C, and the
interrupt is found even inside trio's exception groups.

This module needs only the standard library: without the ``cli`` extra (trio), the command
says what to install instead of failing on an import.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any, TextIO

__all__ = ["INSTALL_HINT", "Fatal", "main"]

INSTALL_HINT = "trackwire: the command line needs trio: pip install 'trackwire[cli]'"


class Fatal(Exception):
    """The command cannot go on (no connection, login refused): one line on stderr, exit 1."""


class _Signals:
    """While entered (on the main thread): ``SIGTERM`` acts as ``SIGINT``, and
    :attr:`received` says which of the two came last.  Left by an interrupt, both signals
    are ignored from then on (the process is ending); otherwise ``SIGTERM`` is restored."""

    __slots__ = ("_previous", "received")

    def __init__(self) -> None:
        self.received = int(signal.SIGINT)
        self._previous: Any = None

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        self.received = int(signal.SIGTERM)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # trio's handler raises or delivers at a checkpoint
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._terminate)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._previous is None:
            return
        if exc is not None and _find(exc, KeyboardInterrupt) is not None:
            # The command ends because of a signal: another one (a second Ctrl-C, a
            # SIGTERM after it) changes nothing and must not cut the exit short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGTERM, self._previous)


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception of type ``kind`` inside its exception groups."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None


def _failure_of(exc: BaseException) -> str | None:
    """The one line to print for an expected failure (inside exception groups too)."""
    found = _find(exc, Fatal) or _find(exc, OSError)
    if isinstance(found, OSError):
        return found.strerror or str(found)
    return None if found is None else str(found)


def _run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        import trio  # noqa: F401  (the one dependency of the cli extra)
    except ModuleNotFoundError as exc:
        if exc.name != "trio" and not str(exc.name).startswith("trio."):
            raise
        print(INSTALL_HINT, file=err, flush=True)
        return 1
    from .args import parse

    args = parse(argv)
    if args.command == "serve":
        from .servers import run_serve

        return run_serve(args, out)
    if args.command == "conformance":
        from trackwire.conformance import run_cli

        return run_cli(args, out)
    from .watch import run_watch

    return run_watch(args, out, err)


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``trackwire`` console script; returns the exit code."""
    stream = out or sys.stdout
    errors = err or sys.stderr
    signals = _Signals()
    try:
        with signals:
            return _run(argv, stream, errors)
    except BaseException as exc:
        if _find(exc, KeyboardInterrupt) is not None:
            return 128 + signals.received
        if _find(exc, BrokenPipeError) is not None and stream is sys.stdout:
            # The reader went away (``trackwire … | head``): stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        reason = _failure_of(exc)
        if reason is None or isinstance(exc, SystemExit):
            raise
        print(f"trackwire: {' '.join(reason.split())}", file=errors, flush=True)
        return 1
