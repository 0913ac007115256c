"""Events the drivers add to those of the stack and the core: the life of a reconnecting client."""

from __future__ import annotations

from dataclasses import dataclass

from trackwire import Event
from trackwire._redact import redact, redact_target

__all__ = ["DriverEvent", "GaveUp", "ReconnectFailed", "Reconnecting", "Stalled"]


class DriverEvent(Event):
    """Base class of the events produced by a driver itself."""

    __slots__ = ()


@dataclass(slots=True)
class Reconnecting(DriverEvent):
    """Attempt ``attempt`` (1-based) starts after waiting ``delay`` seconds; it opens ``url``."""

    attempt: int
    delay: float
    url: str

    def __repr__(self) -> str:  # the URL may carry a FleetFreedom ghostId
        return (
            f"Reconnecting(attempt={self.attempt!r}, delay={self.delay!r}, "
            f"url={redact_target(self.url)!r})"
        )


@dataclass(slots=True)
class ReconnectFailed(DriverEvent):
    """Attempt ``attempt`` could not open a WebSocket (``error`` says why)."""

    attempt: int
    error: str

    def __repr__(self) -> str:
        return f"ReconnectFailed(attempt={self.attempt!r}, error={redact(self.error)!r})"


@dataclass(slots=True)
class GaveUp(DriverEvent):
    """No more attempts: the session ended for good or the policy ran out; always last."""

    reason: str


@dataclass(slots=True)
class Stalled(DriverEvent):
    """No application data (positions, object pieces, lifecycle events) for ``idle`` seconds
    while connected and subscribed (``stall_timeout`` of ``connect``); once per silence.
    A peer that vanished is found by the heartbeat and keep-alive timers, which reconnect."""

    idle: float
