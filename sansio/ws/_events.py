"""Events the WebSocket stack adds to those of the core it carries."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._core import Event
from .._errors import ProtocolError
from .._redact import redact, redact_headers, redact_target

__all__ = [
    "AtmosphereCloseRequested",
    "BinaryMessage",
    "Connected",
    "ConnectionClosed",
    "HandshakeFailed",
    "Headers",
    "HttpRequestHandled",
    "PongReceived",
    "Rejected",
    "WsEvent",
]

Headers = list[tuple[str, str]]
"""Header names lower-cased, names and values decoded as latin-1 (the HTTP wire charset)."""


class WsEvent(Event):
    """Base class of the events produced by the stack itself (not by the core)."""

    __slots__ = ()


@dataclass(slots=True)
class Connected(WsEvent):
    """The WebSocket handshake succeeded; the core has been told (``connection_made``).

    ``headers`` are the peer's handshake headers (the server's response for a client, the
    client's request for a server).
    """

    target: str
    subprotocol: str | None = None
    headers: Headers = field(default_factory=list)

    def __repr__(self) -> str:
        # A FleetFreedom ghostId may be in the target or be the subprotocol: hidden.
        subprotocol = None if self.subprotocol is None else redact_target(self.subprotocol)
        return (
            f"Connected(target={redact_target(self.target)!r}, subprotocol={subprotocol!r}, "
            f"headers={redact_headers(self.headers)!r})"
        )


@dataclass(slots=True)
class Rejected(WsEvent):
    """The upgrade was refused with an HTTP status: by the server (client side), or by the
    core factory (server side).  The connection is over; ``body`` is capped."""

    status_code: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""


@dataclass(slots=True)
class HandshakeFailed(WsEvent):
    """The HTTP part of the connection broke: garbage, a bad handshake, EOF or a timeout
    before the WebSocket opened.  The connection is over."""

    error: ProtocolError


@dataclass(slots=True)
class ConnectionClosed(WsEvent):
    """The open WebSocket ended; always the last event of a connection that was
    :class:`Connected`, emitted exactly once.

    ``code``/``reason`` come from the close frame that started the close (``1006`` when the
    stream ended without one); ``by_peer`` says who started it.  ``error`` is set when this
    side closed because the peer broke a rule (binary frame 1003, oversize 1009, bad frame
    1002/1007, or a :class:`RemoteProtocolError` from the core).
    """

    code: int
    reason: str = ""
    by_peer: bool = True
    error: ProtocolError | None = None


@dataclass(slots=True)
class PongReceived(WsEvent):
    """A pong arrived (the answer to :meth:`ping`, or an unsolicited one)."""

    payload: bytes


@dataclass(slots=True)
class BinaryMessage(WsEvent):
    """A binary message, reported only by a stack built with ``accept_binary=True``
    (the cores are text-only, so it never reaches them)."""

    data: bytes


@dataclass(slots=True)
class HttpRequestHandled(WsEvent):
    """A plain HTTP request (no upgrade) was answered on this connection (server side)."""

    method: str
    target: str
    headers: Headers
    body: bytes
    status_code: int

    def __repr__(self) -> str:
        # A user/auth form or query carries a password: hidden (the fields keep it).
        return (
            f"HttpRequestHandled(method={self.method!r}, target={redact_target(self.target)!r}, "
            f"headers={redact_headers(self.headers)!r}, body={redact(self.body)!r}, "
            f"status_code={self.status_code!r})"
        )


@dataclass(slots=True)
class AtmosphereCloseRequested(WsEvent):
    """An Atmosphere close request arrived (``X-Atmosphere-Transport=close``, GET or POST,
    spec atmosphere §6): the client closed tracking id ``tracking_id`` for good.

    It comes on its own HTTP connection, not on the WebSocket it closes; the server routes it
    by tracking id.  It was answered ``200`` with an empty body.
    """

    tracking_id: str
    target: str
