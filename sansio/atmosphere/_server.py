"""The Atmosphere server core: what ``atmosphere-runtime`` writes to one WebSocket client."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable

from .._core import CoreBase, StateMachine
from ._events import (
    AtmosphereEvent,
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
    Reopened,
)
from ._framing import utf16_len
from ._url import OpenRequest, parse_open_request

__all__ = ["RECONNECT_PADDING", "AtmosphereServer", "ServerState"]

RECONNECT_PADDING = " " * 2048 + "\n"
"""What the Java server writes first on a reconnect; the client trims it away but it fires
``onReopen``."""

DEFAULT_SERVER_HEARTBEAT = 60.0


class ServerState(enum.Enum):
    """Where one client connection of an Atmosphere server stands."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


class _Input(enum.Enum):
    SOCKET_OPEN = enum.auto()
    RECEIVE = enum.auto()
    SEND = enum.auto()
    EOF = enum.auto()
    CLOSE = enum.auto()


_S = ServerState
_I = _Input

TRANSITIONS: dict[tuple[ServerState, _Input], ServerState] = {
    (_S.CONNECTING, _I.SOCKET_OPEN): _S.OPEN,
    (_S.CONNECTING, _I.EOF): _S.CLOSED,
    (_S.CONNECTING, _I.CLOSE): _S.CLOSED,
    (_S.OPEN, _I.RECEIVE): _S.OPEN,
    (_S.OPEN, _I.SEND): _S.OPEN,
    (_S.OPEN, _I.EOF): _S.CLOSED,
    (_S.OPEN, _I.CLOSE): _S.CLOSED,
    (_S.CLOSED, _I.EOF): _S.CLOSED,
    (_S.CLOSED, _I.CLOSE): _S.CLOSED,
}
"""Every legal (state, input) pair; anything else raises :class:`LocalProtocolError`."""


_JAVA_TRIMMED = "".join(map(chr, range(0x21)))


def _passes_unprefixed(message: str) -> bool:
    """Writes the Java TrackMessageSize interceptor leaves alone: empty, or a space first and
    nothing but whitespace after (the reconnect padding); ``"\\n"`` alone does get a prefix."""
    return not message or (message[0] == " " and not message.strip(_JAVA_TRIMMED))


class AtmosphereServer(CoreBase[AtmosphereEvent]):
    """Sans-IO server side of one Atmosphere WebSocket connection.

    Built from the client's request target (or an :class:`OpenRequest`).  On
    :meth:`connection_made` it queues the handshake (spec §1 decides whether), or the
    reconnect padding when the client comes back with its tracking id.  ``heartbeat_interval_ms``
    is announced to the client; ``server_heartbeat`` is the write-inactivity heartbeat in
    seconds (the client may lengthen it with ``X-Heartbeat-Server`` or turn it off, never
    shorten it).  ``idle_timeout`` closes a silent client when set (off by default).
    """

    __slots__ = (
        "_last_received",
        "_last_write",
        "_machine",
        "_now",
        "delimiter",
        "heartbeat_interval_ms",
        "idle_timeout",
        "padding",
        "request",
        "server_heartbeat",
        "track_message_length",
        "uuid",
    )

    def __init__(
        self,
        request: OpenRequest | str,
        *,
        heartbeat_interval_ms: int = 0,
        padding: str = "X",
        server_heartbeat: float = DEFAULT_SERVER_HEARTBEAT,
        uuid_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
        idle_timeout: float | None = None,
        delimiter: str = "|",
    ) -> None:
        super().__init__()
        if isinstance(request, str):
            request = parse_open_request(request)
        if heartbeat_interval_ms < 0 or server_heartbeat < 0:
            raise ValueError("heartbeat intervals must be >= 0")
        self.request = request
        self.padding = padding
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.delimiter = delimiter
        self.track_message_length = request.track_message_length
        asked = request.heartbeat_server
        if asked == 0:
            server_heartbeat = 0.0
        elif asked is not None and asked > server_heartbeat:
            server_heartbeat = float(asked)
        self.server_heartbeat = server_heartbeat
        self.idle_timeout = idle_timeout
        self.uuid = request.tracking_id if request.is_reconnect else uuid_factory()
        self._machine: StateMachine[ServerState, _Input] = StateMachine(_S.CONNECTING, TRANSITIONS)
        self._now = 0.0
        self._last_write = 0.0
        self._last_received = 0.0

    @property
    def state(self) -> ServerState:
        return self._machine.state

    @property
    def handshake_frame(self) -> str:
        """``uuid|interval|padding|`` (length-prefixed when the client asked)."""
        d = self.delimiter
        return self._frame(f"{self.uuid}{d}{self.heartbeat_interval_ms}{d}{self.padding}{d}")

    def _frame(self, message: str) -> str:
        if self.track_message_length and not _passes_unprefixed(message):
            return f"{utf16_len(message)}{self.delimiter}{message}"
        return message

    def connection_made(self, now: float) -> None:
        self._machine.fire(_I.SOCKET_OPEN)
        self._now = self._last_write = self._last_received = now
        if self.request.is_reconnect:
            # A frame right away is what fires the client's onReopen; no second handshake.
            self._out.append(RECONNECT_PADDING)
            self._events.append(Reopened(self.uuid))
        elif self.request.wants_handshake:
            self._out.append(self.handshake_frame)
            self._events.append(Opened(self.uuid, self.heartbeat_interval_ms, self.padding))
        else:
            self._events.append(Opened(self.uuid, 0, self.padding))

    def receive(self, data: str, now: float) -> None:
        """Feed one client frame: exactly the padding is a heartbeat, anything else a message.

        As in the Java server, the padding is swallowed only when client heartbeats were
        asked for (``heartbeat_interval_ms`` > 0); otherwise it is application data.
        """
        if self._machine.state is not _S.OPEN:
            self._machine.fire(_I.RECEIVE)
        self._now = self._last_received = now
        if data == self.padding and self.heartbeat_interval_ms > 0:
            self._events.append(Heartbeat())
        else:
            self._events.append(Message(data))

    def receive_eof(self, now: float) -> None:
        before = self._machine.state
        self._machine.fire(_I.EOF)
        self._now = now
        if before is not _S.CLOSED:
            self._events.append(Closed(resumable=True))

    def send(self, item: str, now: float | None = None) -> None:
        """Queue one message (length-prefixed when the client asked for TrackMessageSize)."""
        if self._machine.state is not _S.OPEN:
            self._machine.fire(_I.SEND)
        if now is not None:
            self._now = now
        self._last_write = self._now
        self._out.append(self._frame(item) if self.track_message_length else item)

    def close(self) -> None:
        """Stop serving this connection (idempotent)."""
        self._machine.fire(_I.CLOSE)

    def next_deadline(self) -> float | None:
        if self._machine.state is not _S.OPEN:
            return None
        deadline = None
        if self.server_heartbeat:
            deadline = self._last_write + self.server_heartbeat
        if self.idle_timeout:
            idle = self._last_received + self.idle_timeout
            if deadline is None or idle < deadline:
                deadline = idle
        return deadline

    def handle_timer(self, now: float) -> None:
        self._now = max(self._now, now)
        if self._machine.state is not _S.OPEN:
            return
        if self.idle_timeout and now >= self._last_received + self.idle_timeout:
            self._machine.fire(_I.CLOSE)
            self._events.append(InactivityTimeout(close_url=None))
            return
        if self.server_heartbeat and now >= self._last_write + self.server_heartbeat:
            self._last_write = now
            self._out.append(self._frame(self.padding))
