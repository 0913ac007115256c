"""The iTrack client core: subscribe actions out, typed events in, on top of Atmosphere."""

from __future__ import annotations

from typing import cast

from .._core import CoreBase
from .._errors import LocalProtocolError
from ..atmosphere import (
    DEFAULT_FRAMEWORK,
    AtmosphereClient,
    AtmosphereEvent,
    ClientState,
    Closed,
    InactivityTimeout,
    Opened,
    Reopened,
)
from ._codec import JsonDumps, JsonLoads, dumps, encode_action, message_parser
from ._events import ITrackEvent
from ._models import Action, check_hash
from ._subscriptions import Subscriptions

__all__ = ["DEFAULT_MAX_HELD", "ClientEvent", "ITrackClient", "subscription_url"]

_OPEN = ClientState.OPEN

ClientEvent = ITrackEvent | AtmosphereEvent
"""What :class:`ITrackClient` produces: application events and the transport's own."""

DEFAULT_MAX_HELD = 1024
"""How many actions may wait for the handshake before :meth:`ITrackClient.send` refuses."""


def subscription_url(base_url: str) -> str:
    """The WebSocket endpoint under an API base URL (``https://api.itrack.live/v2/``)."""
    return base_url.rstrip("/") + "/event/subscription"


class ITrackClient(CoreBase[ClientEvent]):
    """Sans-IO iTrack client for one session (one hash), across Atmosphere reconnects.

    ``url`` is the ``event/subscription`` endpoint (see :func:`subscription_url`) and
    ``session_hash`` the 32-character hash from ``user/auth`` or an API key.  Actions passed to
    :meth:`send` before the Atmosphere handshake are held and written, in order, when it
    arrives; after a reconnect the client re-sends what it is subscribed to.  A ``logout``
    event ends the session: nothing is resubscribed and :meth:`send` refuses.  Server messages
    are decoded with ``loads`` (stdlib :func:`json.loads` unless replaced).
    """

    __slots__ = (
        "_closed",
        "_dumps",
        "_held",
        "_logged_out",
        "_sent_any",
        "hash",
        "max_held",
        "subscriptions",
        "transport",
    )

    def __init__(
        self,
        url: str,
        session_hash: str,
        *,
        transport: AtmosphereClient | None = None,
        content_type: str = "application/json",
        framework: str = DEFAULT_FRAMEWORK,
        loads: JsonLoads | None = None,
        dumps: JsonDumps = dumps,
        max_held: int = DEFAULT_MAX_HELD,
    ) -> None:
        super().__init__()
        self.hash = check_hash(session_hash)
        self.transport = transport or AtmosphereClient(
            url, content_type=content_type, framework=framework
        )
        """The Atmosphere client underneath (build your own to change its options)."""
        # Messages become iTrack events inside the transport, in one step, and both cores
        # share one event queue: the hot path touches no second queue.
        self.transport.message_factory = message_parser(loads, self._logout)
        self._events = cast("list[ClientEvent]", self.transport._events)
        self.subscriptions = Subscriptions()
        """What the server has been asked for, net of unsubscribes; re-sent after reconnects."""
        self.max_held = max_held
        self._dumps = dumps
        self._held: list[str] = []
        self._sent_any = False
        self._logged_out = False
        self._closed = False

    # -- introspection ---------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """The transport's state (see :attr:`logged_out` for the session's)."""
        return self.transport.state

    @property
    def logged_out(self) -> bool:
        """The server sent ``logout``: the hash is dead."""
        return self._logged_out

    @property
    def resumable(self) -> bool:
        """A reconnect makes sense: not logged out, not closed for good."""
        return not (self._logged_out or self._closed)

    @property
    def url_to_open(self) -> str:
        return self.transport.url_to_open

    @property
    def held(self) -> int:
        """How many actions wait for the handshake."""
        return len(self._held)

    # -- inputs ----------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        start = len(self._events)
        try:
            self.transport.connection_made(now)
        finally:
            self._review(start)

    def receive(self, data: str, now: float) -> None:
        """Feed one WebSocket text message."""
        transport = self.transport
        if transport._machine.state is _OPEN:  # (its state property, without the call)
            # Open stays open on receive (or raises): only messages and heartbeats come out,
            # and the message factory already made them iTrack events.
            transport.receive(data, now)
            return
        start = len(self._events)
        try:
            transport.receive(data, now)
        finally:
            self._review(start)

    def receive_eof(self, now: float) -> None:
        start = len(self._events)
        try:
            self.transport.receive_eof(now)
        finally:
            self._review(start)

    def _review(self, start: int) -> None:
        """React to the transport events queued since index ``start``."""
        events = self._events
        for index in range(start, len(events)):
            event = events[index]
            kind = type(event)
            if kind is Opened or kind is Reopened:
                self._flush()
            elif kind is Closed and self._logged_out:
                events[index] = Closed(False)
            elif kind is InactivityTimeout:
                self._closed = True

    def _logout(self) -> None:
        self._logged_out = True
        self._held.clear()
        self.subscriptions.clear()
        # The hash is dead: close the transport, so the stack ends the WebSocket (1000) and
        # no driver reconnects.  No close request: the server already ended the session.
        transport = self.transport
        if transport.state is not ClientState.CLOSED:
            transport.close(transport.last_received)

    def _flush(self) -> None:
        """The transport (re)opened: write held actions, or re-send the subscriptions."""
        if self._logged_out or self.transport.state is not ClientState.OPEN:
            # Logged out; or the frame that opened it went on to corrupt the stream, whose
            # RemoteProtocolError is on its way: the actions wait for the reconnect.
            return
        if self._sent_any:
            # Held actions are already part of the subscriptions being re-sent.
            frames = [self._encode(a) for a in self.subscriptions.actions()]
            self._held.clear()
        else:
            frames = self._held
            self._held = []
        for frame in frames:
            self.transport.send(frame)
        if frames:
            self._sent_any = True

    # -- outputs ---------------------------------------------------------------------------

    def _encode(self, action: Action) -> str:
        return self._dumps(encode_action(action, self.hash))

    def send(self, item: Action, now: float | None = None) -> None:
        """Queue a subscribe or unsubscribe; held until the handshake when it has not come yet.

        Raises :class:`LocalProtocolError` after a logout, after :meth:`close` or an
        inactivity timeout, and when ``max_held`` actions already wait.
        """
        if self._logged_out:
            raise LocalProtocolError("the session logged out; authenticate again", state=self.state)
        if self._closed:
            raise LocalProtocolError("the session was closed", state=self.state)
        frame = self._encode(item)
        if self.transport.state is ClientState.OPEN and not self._held:
            self.transport.send(frame)
            self._sent_any = True
        elif len(self._held) >= self.max_held:
            raise LocalProtocolError(
                f"{self.max_held} actions already wait for the handshake", state=self.state
            )
        else:
            self._held.append(frame)
        self.subscriptions.apply(item)

    def data_to_send(self) -> list[str]:
        return self.transport.data_to_send()

    def close(self, now: float, *, timestamp_ms: int | None = None) -> str | None:
        """End the session for good; returns the Atmosphere HTTP close request URL, if any."""
        self._closed = True
        self._held.clear()
        return self.transport.close(now, timestamp_ms=timestamp_ms)

    def reconnect(self) -> None:
        """Prepare the next connection after the socket ended; refused after a logout."""
        if self._logged_out:
            raise LocalProtocolError("the session logged out; authenticate again", state=self.state)
        self.transport.reconnect()

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.transport.next_deadline()

    def handle_timer(self, now: float) -> None:
        start = len(self._events)
        try:
            self.transport.handle_timer(now)
        finally:
            self._review(start)
