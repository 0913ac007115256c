"""What every server driver shares: connection limits, one connection's failure, and the
server and connection objects apart from how they wait.

The drivers (:mod:`trio <trackwire.drivers._trio>`, :mod:`asyncio
<trackwire.drivers._asyncio_server>`) differ only in how they wait; the policy lives here, so
both refuse, isolate and log the same way:

- :class:`AdmissionControl` counts live connections overall and per peer address and says
  whether one more may be served;
- :func:`failure_output` is what a connection whose core or handler raised still gets
  (HTTP 500 before the upgrade, a 1011 close frame after it), and :func:`log_failure`
  records it without secrets;
- :class:`ServerBase` and :class:`ConnectionBase` are what the drivers' ``Server`` and
  ``ServerConnection`` have in common (options, bookkeeping, ``flush(cores)``, ``send``,
  ``close``, event dispatch); :func:`drop_events` ends a stack without a close handshake.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from trackwire import Event, LocalProtocolError, RemoteProtocolError
from trackwire._redact import redact
from trackwire.ws import (
    Connected,
    ConnectionClosed,
    CoreFactory,
    HandshakeFailed,
    HttpHandler,
    ServerStack,
    StackState,
    TextCore,
)

__all__ = [
    "ABNORMAL",
    "ABORTED",
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_PER_ADDRESS",
    "INTERNAL_ERROR",
    "MAX_REFUSING",
    "REFUSE_LINGER",
    "SERVICE_UNAVAILABLE",
    "AdmissionControl",
    "ConnectionBase",
    "RefusedHead",
    "ServerBase",
    "drop_events",
    "failure_events",
    "failure_output",
    "log_failure",
    "logger",
    "peer_host",
]

DEFAULT_MAX_CONNECTIONS = 4096
"""Connections a server serves at once; more are refused (503, then closed)."""
DEFAULT_MAX_PER_ADDRESS = 256
"""Connections one peer address may have open at once; more are refused (503, then
closed), so one host cannot take every slot of :data:`DEFAULT_MAX_CONNECTIONS`."""
MAX_REFUSING = 64
"""Refused connections kept at once to be answered 503 (each for at most a second); past
that a refused connection is closed at once, so a flood of them costs no more than this."""
INTERNAL_ERROR = 1011
"""The WebSocket close code a connection whose core or handler raised is closed with."""
DEFAULT_MAX_BUFFER = 4 << 20
"""Bytes a server connection may have waiting to be written before it is aborted."""
REFUSE_LINGER = 1.0
"""Seconds a refused connection is kept to deliver its 503 (reading and dropping input)."""
ABNORMAL = 1006
"""The close code reported for a connection dropped without a close handshake."""
ABORTED = 1008
"""The close code reported (not sent: the peer is not reading) for a connection aborted
because its outgoing buffer overflowed."""

SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nconnection: close\r\n\r\ntoo many connections"
)
"""The whole answer of a connection refused by :class:`AdmissionControl` (written before
its request is read: the client sees it as the response to whatever it sends)."""
_SERVER_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 22\r\nconnection: close\r\n\r\ninternal server error\n"
)
_CLOSE_REASON = b"internal error"

logger = logging.getLogger("trackwire.server")
"""Where the server drivers report connections they had to end for an internal error."""


def peer_host(peer: object) -> str:
    """The address part of a socket's peer name (``""`` when it has none)."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return ""


class AdmissionControl:
    """Live connections, overall and per peer address, against their limits.

    :meth:`admit` counts a connection in (or says no); :meth:`release` counts it out.
    An address with no live connection is forgotten, so the table is as large as the
    number of addresses connected right now.
    """

    __slots__ = (
        "_by_address",
        "live",
        "max_connections",
        "max_per_address",
        "refused",
        "refusing",
    )

    def __init__(self, max_connections: int, max_per_address: int | None) -> None:
        if max_connections < 1 or (max_per_address is not None and max_per_address < 1):
            raise ValueError("max_connections and max_connections_per_address must be >= 1")
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.live = 0
        self.refused = 0
        """Connections refused so far (either limit)."""
        self.refusing = 0
        """Refused connections being answered 503 right now (at most :data:`MAX_REFUSING`)."""
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address`` in; ``False`` (and counted as refused)
        when the server or that address is at its limit."""
        held = self._by_address.get(address, 0)
        limit = self.max_per_address
        if self.live >= self.max_connections or (limit is not None and held >= limit):
            self.refused += 1
            return False
        self.live += 1
        self._by_address[address] = held + 1
        return True

    def start_refusal(self) -> bool:
        """Whether a refused connection may be kept to be answered 503 (then
        :meth:`end_refusal` when it is gone), or must be closed at once."""
        if self.refusing >= MAX_REFUSING:
            return False
        self.refusing += 1
        return True

    def end_refusal(self) -> None:
        """A refused connection kept by :meth:`start_refusal` is gone."""
        self.refusing -= 1

    def release(self, address: str) -> None:
        """An admitted connection from ``address`` ended."""
        self.live -= 1
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)

    def count(self, address: str) -> int:
        """Live connections from ``address``."""
        return self._by_address.get(address, 0)


class RefusedHead:
    """Waits for the end of a refused connection's request head (or 8 KiB of it), so that
    the 503 is an answer to a request."""

    __slots__ = ("_done", "_seen", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._seen = 0
        self._done = False

    def feed(self, data: bytes | bytearray) -> bool:
        """Some more of the request; returns :attr:`complete`."""
        self._seen += len(data)
        if b"\r\n\r\n" in self._tail + bytes(data[:3]) or b"\r\n\r\n" in data:
            self._done = True
        self._tail = (self._tail + bytes(data[-3:]))[-3:]
        return self.complete

    @property
    def complete(self) -> bool:
        """The head ended (or is long enough to answer anyway)."""
        return self._done or self._seen >= 8192


def _close_frame() -> bytes:
    payload = INTERNAL_ERROR.to_bytes(2, "big") + _CLOSE_REASON
    return bytes((0x88, len(payload))) + payload


def failure_output(stack: ServerStack[Any]) -> bytes:
    """The last bytes for a connection whose core or handler raised.

    Before the upgrade: what the stack had queued (earlier pipelined answers) and a 500.
    On an open WebSocket: what the stack had queued (asked once more; if that raises too,
    it is lost) and a close frame 1011.  After a close frame went out, or once closed:
    what is queued, nothing more.  Never raises.
    """
    state = stack.state
    try:
        queued = stack.data_to_send()
    except Exception:  # the same failure again: what it queued is lost
        queued = b""
    if state is StackState.IDLE or state is StackState.CONNECTING:
        return queued + _SERVER_ERROR
    if stack.state is StackState.OPEN:
        return queued + _close_frame()
    return queued


def failure_events(stack: ServerStack[Any], error: LocalProtocolError, now: float) -> list[Event]:
    """Let the core learn that its connection is gone (an end of input, whatever it raises
    now), and the one event the application gets for the failed connection."""
    state = stack.state
    try:
        if state is StackState.OPEN or state is StackState.CLOSING:
            stack.receive_eof(now)
    except Exception:
        with contextlib.suppress(Exception):
            stack.core.close()
    with contextlib.suppress(Exception):
        stack.events()  # whatever the core still had to say is dropped with it
    with contextlib.suppress(Exception):
        stack.close()
    if state is StackState.OPEN or state is StackState.CLOSING:
        return [ConnectionClosed(INTERNAL_ERROR, "internal error", by_peer=False, error=error)]
    if state is StackState.CLOSED:
        return []
    return [HandshakeFailed(error)]


def log_failure(peer: str, exc: BaseException) -> LocalProtocolError:
    """Log that the connection from ``peer`` raised ``exc`` (type, redacted message and
    where it was raised: no frame data, password, hash or ghostId); returns the error the
    application's events carry."""
    try:
        message = redact(str(exc)[:400])
    except Exception:  # an exception whose text itself fails
        message = "?"
    if len(message) > 200:
        message = message[:200] + "…"
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
    where = ""
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        last = tb[-1]
        where = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
    description = f"{type(exc).__name__}: {message}{where}"
    logger.error("connection from %s failed, closed: %s", peer or "?", description)
    return LocalProtocolError(f"internal error ({description})")


def drop_events(
    stack: ServerStack[Any], code: int, reason: str, error: RemoteProtocolError | None, now: float
) -> list[Event]:
    """End ``stack`` without a close handshake (the core learns it as an end of input);
    returns the events the application gets for it, the ``ConnectionClosed`` among them
    reporting ``code``, ``reason`` and ``error``."""
    state = stack.state
    if state is StackState.OPEN or state is StackState.CLOSING:
        stack.receive_eof(now)
        return [
            ConnectionClosed(code, reason, by_peer=False, error=error)
            if isinstance(event, ConnectionClosed)
            else event
            for event in stack.events()
        ]
    if state is not StackState.CLOSED:
        stack.close()
        if error is not None:
            return [HandshakeFailed(error)]
    return []


CoreT = TypeVar("CoreT", bound=TextCore)
ConnT = TypeVar("ConnT", bound="ConnectionBase[Any]")


class ConnectionBase(Generic[CoreT]):
    """What a driver's ``ServerConnection`` is apart from how it waits: the stack, its
    core and state, ``send``/``close`` (then :meth:`flush`), and event dispatch."""

    __slots__ = ()

    server: ServerBase[CoreT, Any]
    stack: ServerStack[CoreT]
    remote: str
    _failed: bool

    def _now(self) -> float:
        """The driver's clock (what the stack's deadlines are in)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write what the core queued and look at its events and timers again."""
        raise NotImplementedError

    @property
    def core(self) -> CoreT | None:
        """The core, once the factory accepted an upgrade (``None`` before, or for HTTP)."""
        try:
            return self.stack.core
        except LocalProtocolError:
            return None

    @property
    def state(self) -> StackState:
        return self.stack.state

    @property
    def failed(self) -> bool:
        """Whether the connection was ended because its core or handler raised."""
        return self._failed

    def send(self, item: Any) -> object:
        """Give ``item`` to the core (``send`` of the core) and flush; returns its handle."""
        handle = self.stack.send(item, self._now())
        self.flush()
        return handle

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (or drop the connection before the upgrade)."""
        self.stack.close(code, reason, self._now())
        self.flush()

    def _dispatch(self, events: Iterable[Event]) -> None:
        server = self.server
        handler: Callable[[Any, Event], None] | None = server.on_event
        for event in events:
            if isinstance(event, Connected):
                server._by_core[id(self.stack.core)] = self
            if handler is not None:
                handler(self, event)

    def _dispatch_quietly(self, events: Iterable[Event]) -> None:
        """:meth:`_dispatch` for a connection that is ending: a handler that raises is
        logged, the other events still go out."""
        for event in events:
            try:
                self._dispatch((event,))
            except Exception as exc:
                log_failure(self.remote, exc)


class ServerBase(Generic[CoreT, ConnT]):
    """What a driver's ``Server`` is apart from how it listens: its options, admission
    control, live connections and ``flush(cores)``."""

    def __init__(
        self,
        factory: CoreFactory[CoreT],
        *,
        http_handler: HttpHandler | None,
        on_event: Callable[[Any, Event], None] | None,
        max_connections: int,
        max_connections_per_address: int | None,
        max_buffer: int,
        max_message_size: int,
        handshake_timeout: float | None,
        close_timeout: float,
    ) -> None:
        self.factory = factory
        self.http_handler = http_handler
        self.on_event = on_event
        self.admission = AdmissionControl(max_connections, max_connections_per_address)
        """Live connections overall and per peer address, against the limits."""
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.max_buffer = max_buffer
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self.close_timeout = close_timeout
        self.connections: dict[ConnT, None] = {}
        """The live connections, in accept order."""
        self.failed = 0
        """Connections ended because their core or a handler raised."""
        self._by_core: dict[int, ConnT] = {}

    @property
    def refused(self) -> int:
        """Connections refused (503, then closed) because ``max_connections`` were being
        served, or ``max_connections_per_address`` from the same address."""
        return self.admission.refused

    @property
    def ports(self) -> list[int]:
        """The bound TCP ports (one per listening socket)."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The bound TCP port (of the first listening socket)."""
        return self.ports[0]

    def connection_of(self, core: object) -> ConnT | None:
        """The live connection carrying ``core``, if any."""
        return self._by_core.get(id(core))

    def flush(self, cores: Iterable[object] | None = None) -> None:
        """:meth:`ServerConnection.flush` the connections carrying ``cores`` (every live
        connection when ``None``), e.g. with what ``FleetFreedomHub.publish`` returned."""
        if cores is None:
            targets: Iterable[ConnT] = list(self.connections)
        else:
            found = (self._by_core.get(id(core)) for core in cores)
            targets = [conn for conn in found if conn is not None]
        for conn in targets:
            conn.flush()

    def _forget(self, conn: ConnT) -> None:
        """``conn`` ended: it is no longer live (nor found by its core), and counted as
        failed if it was."""
        self.connections.pop(conn, None)
        if conn.failed:
            self.failed += 1
        core = conn.core
        if core is not None and self._by_core.get(id(core)) is conn:
            del self._by_core[id(core)]
