"""When and how a driver reconnects a client core; the same for every driver.

The decision is pure: the driver reports what happened (connected, connection lost, attempt
failed) and sleeps the delay it is given.  The core decides whether its session can resume
(``resumable``), the :class:`~trackwire.Backoff` how long to wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trackwire import Backoff, ClientCore, LocalProtocolError, ReconnectPolicy

from ._events import GaveUp, Reconnecting

__all__ = ["Reconnector"]


class Reconnector:
    """Drives the reconnect loop of one client core (``policy=None``: never reconnect)."""

    __slots__ = ("backoff", "core", "enabled")

    def __init__(
        self,
        core: ClientCore[Any, Any],
        policy: ReconnectPolicy | None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.core = core
        self.enabled = policy is not None
        self.backoff = Backoff(policy) if rng is None else Backoff(policy, rng)

    def connected(self) -> None:
        """A WebSocket opened: the next outage starts the backoff from the beginning."""
        self.backoff.reset()

    def next_attempt(self) -> Reconnecting | GaveUp:
        """After a connection ended or an attempt failed: what to do next.

        Returns :class:`Reconnecting` (sleep ``delay``, then open ``url``; the core has
        been prepared) or :class:`GaveUp`.
        """
        core = self.core
        if not self.enabled:
            return GaveUp("reconnecting is off")
        if not core.resumable:
            return GaveUp("the session ended for good")
        delay = self.backoff.next_delay()
        if delay is None:
            return GaveUp(f"no connection after {self.backoff.attempts} attempts")
        try:
            core.reconnect()
        except LocalProtocolError as exc:
            return GaveUp(f"the core refused to reconnect: {exc}")
        return Reconnecting(self.backoff.attempts, delay, core.url_to_open)
