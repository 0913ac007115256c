"""What ``watch`` shows: a live table on a terminal, plain lines or JSON records elsewhere.

stdout carries only data (one line per position, or one JSON object per application event);
status (connection changes, responses, lifecycle events) goes to the table's status line on a
terminal and to stderr otherwise, one line each.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from trackwire._json import json_safe

__all__ = ["Record", "Row", "View", "one_line"]

Record = dict[str, Any]
"""One application event as ``--json`` prints it: ``kind`` plus its fields and ``message``."""


def dump(record: Record) -> str:
    """One ``--json`` line: strict JSON whatever the peer sent (a ``1e999999`` speed is
    ``null``, a lone surrogate U+FFFD), so every line parses and prints."""
    return json.dumps(json_safe(record), ensure_ascii=False)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks folded into single spaces."""
    return " ".join(text.split())


@dataclass(slots=True)
class Row:
    """One vehicle's latest known position.

    ``id`` is what the platform calls the vehicle (iTrack: the tracker id, ``-`` if unknown;
    FleetFreedom: the asset id); ``source`` is the iTrack source id its states carry.
    """

    id: str
    name: str = ""
    lat: float | None = None
    lng: float | None = None
    speed: float | None = None
    heading: float | None = None
    status: str = ""
    seen: float = 0.0
    source: str = ""

    @property
    def key(self) -> str:
        """What identifies the vehicle in every update (the source id when there is one)."""
        return self.source or self.id


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class View:
    """Prints the watch: JSON records, plain lines, or a live table on a terminal.

    ``sources``: rows have an iTrack source id besides their id (a ``source`` column).
    """

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        as_json: bool,
        clock: Callable[[], float],
        max_events: int | None = None,
        err: TextIO | None = None,
        sources: bool = False,
    ):
        self.out = out
        self.err = err or sys.stderr
        self.live = live
        self.as_json = as_json
        self.clock = clock
        self.max_events = max_events
        self.sources = sources
        self.rows: dict[str, Row] = {}
        self.status = "connecting"
        self.events = 0
        self._rate_window: list[float] = []
        self._drawn_at = 0.0

    @property
    def done(self) -> bool:
        """``--count`` application events have been shown."""
        return self.max_events is not None and self.events >= self.max_events

    def record(self, record: Record, rows: Sequence[Row] = (), status: str | None = None) -> None:
        """One application event: print it (or its rows) and update the table; ``status``
        is the line it is worth on the status line (when it carries no position)."""
        if self.done:
            return
        self.events += 1
        now = self.clock()
        self._rate_window.append(now)
        for row in rows:
            row.seen = now
            known = self.rows.get(row.key)
            if known is not None and not row.name:
                row.name = known.name
            self.rows[row.key] = row
        if self.as_json:
            print(dump(record), file=self.out, flush=True)
        elif not self.live:
            for row in rows:
                print(self._line(row), file=self.out, flush=True)
        if status is not None:
            self.say(status)

    def notice(self, record: Record, status: str) -> None:
        """A change worth a record with ``--json`` as well as a status line (a refusal, a
        new login, a stall): not an application event, so ``--count`` leaves it out."""
        if self.as_json:
            print(dump(record), file=self.out, flush=True)
        self.say(status)

    def _line(self, row: Row) -> str:
        ids = f"{row.id:>8} {row.source:>8}" if self.sources else f"{row.id:>8}"
        return (
            f"{ids} {row.name[:24]:<24} {_fmt(row.lat, '.6f'):>11} "
            f"{_fmt(row.lng, '.6f'):>12} {_fmt(row.speed, '.1f'):>6} km/h "
            f"{_fmt(row.heading, '.0f'):>4}° {row.status}"
        )

    def say(self, status: str) -> None:
        """A change of status: the table's status line, or one line on stderr."""
        self.status = one_line(status)
        if not self.live:
            print(f"# {self.status}", file=self.err, flush=True)

    def rate(self) -> float:
        now = self.clock()
        self._rate_window = [t for t in self._rate_window if now - t <= 5.0]
        return len(self._rate_window) / 5.0

    def draw(self, force: bool = False) -> None:
        """Redraw the live table (at most a few times a second)."""
        if not self.live:
            return
        now = self.clock()
        if not force and now - self._drawn_at < 0.25:
            return
        self._drawn_at = now
        ids = f"{'tracker':>8}  {'source':>8}" if self.sources else f"{'id':>8}"
        lines = [
            f"{ids}  {'name':<24} {'lat':>11} {'lng':>12} {'km/h':>6} {'hdg':>4}  "
            f"{'status':<8} {'age':>5}"
        ]
        for row in sorted(self.rows.values(), key=lambda r: (r.id.zfill(12), r.key.zfill(12))):
            ids = f"{row.id:>8}  {row.source:>8}" if self.sources else f"{row.id:>8}"
            lines.append(
                f"{ids}  {row.name[:24]:<24} {_fmt(row.lat, '.6f'):>11} "
                f"{_fmt(row.lng, '.6f'):>12} {_fmt(row.speed, '.1f'):>6} "
                f"{_fmt(row.heading, '.0f'):>4}  {row.status[:8]:<8} {now - row.seen:>4.0f}s"
            )
        lines.append("")
        lines.append(
            f"[{self.status}] {len(self.rows)} vehicles, {self.events} events, "
            f"{self.rate():.1f} events/s  (Ctrl-C to quit)"
        )
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()
