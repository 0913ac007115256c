"""The server stack: plain HTTP through h11 until an upgrade, then a text core over wsproto."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Generic

import h11
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WsprotoRemoteError

from .._errors import LocalProtocolError, RemoteProtocolError
from .._redact import redact_headers, redact_target
from .._tables import SharedPairs
from ..atmosphere import parse_open_request
from ._events import (
    AtmosphereCloseRequested,
    Connected,
    HandshakeFailed,
    Headers,
    HttpRequestHandled,
    Rejected,
)
from ._stack import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    CoreT,
    StackBase,
)
from ._state import StackState, _Input

__all__ = [
    "DEFAULT_MAX_HTTP_BODY",
    "Accept",
    "CoreFactory",
    "HttpHandler",
    "HttpResponse",
    "Refuse",
    "ServerStack",
    "UpgradeRequest",
    "chain_handlers",
]

DEFAULT_MAX_HTTP_BODY = 64 * 1024
"""Largest plain HTTP request body accepted (larger ones get 413 and the connection ends)."""
DEFAULT_MAX_HTTP_HEADERS = 16 * 1024
"""Largest request head (request line and headers) accepted (larger ones get 431)."""

HttpResponse = tuple[int, Sequence[tuple[str, str]], bytes]
"""``(status, headers, body)``; ``Content-Length`` is added when missing."""
HttpHandler = Callable[[str, str, Headers, bytes], "HttpResponse | None"]
"""``handler(method, target, headers, body)`` answers a plain HTTP request, or returns
``None`` to pass (the request then gets 404).  Header names come lower-cased."""


@dataclass(slots=True)
class UpgradeRequest:
    """A valid WebSocket upgrade request, as the core factory sees it."""

    target: str
    host: str
    subprotocols: list[str] = field(default_factory=list)
    headers: Headers = field(default_factory=list)
    """Every request header, names lower-cased."""

    def __repr__(self) -> str:
        # A FleetFreedom ghostId may be in the target or among the subprotocols: hidden.
        return (
            f"UpgradeRequest(target={redact_target(self.target)!r}, host={self.host!r}, "
            f"subprotocols={[redact_target(p) for p in self.subprotocols]!r}, "
            f"headers={redact_headers(self.headers)!r})"
        )

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key == lowered:
                return value
        return None


@dataclass(slots=True)
class Accept(Generic[CoreT]):
    """The factory's yes: run ``core``, answer with ``subprotocol`` (one the client offered,
    e.g. a FleetFreedom ghostId) and extra response headers."""

    core: CoreT
    subprotocol: str | None = None
    headers: Sequence[tuple[str, str]] = ()


@dataclass(slots=True)
class Refuse:
    """The factory's no: answer the upgrade with this HTTP response and end the connection."""

    status_code: int = 403
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""


CoreFactory = Callable[[UpgradeRequest], "CoreT | Accept[CoreT] | Refuse"]
"""Builds the core for an upgrade request (a bare core means :class:`Accept` of it)."""


def chain_handlers(*handlers: HttpHandler) -> HttpHandler:
    """One handler that asks each of ``handlers`` in turn; the first answer wins."""

    def chained(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
        for handler in handlers:
            answer = handler(method, target, headers, body)
            if answer is not None:
                return answer
        return None

    return chained


_NOT_FOUND: HttpResponse = (404, [("content-type", "text/plain; charset=utf-8")], b"Not Found\n")


def _encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _is_websocket_upgrade(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


def _framed_twice(request: h11.Request) -> bool:
    """The request has both ``Content-Length`` and ``Transfer-Encoding``."""
    names = {name for name, _ in request.headers}
    return b"content-length" in names and b"transfer-encoding" in names


_SPENT = h11.Connection(h11.SERVER)
"""The parser every upgraded connection keeps in place of its own (a few KiB each)."""


class ServerStack(StackBase[CoreT]):
    """Server side of one accepted TCP connection.

    Plain HTTP requests (keep-alive honoured, as h11 decides from the request) go to
    ``http_handler``; an Atmosphere close request (``X-Atmosphere-Transport=close`` in the
    query, any method) is answered ``200`` by the stack itself and reported as
    :class:`AtmosphereCloseRequested` (turn off with ``atmosphere_close=False``); anything
    else gets 404.  A WebSocket upgrade goes to ``factory``, which returns the core to run
    (or :class:`Accept`/:class:`Refuse`).  Garbage, an invalid upgrade or an over-limit
    request is answered 4xx and ends in :class:`HandshakeFailed`.
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_h11",
        "_in_request",
        "_request",
        "atmosphere_close",
        "factory",
        "http_handler",
        "max_http_body",
        "request",
    )

    def __init__(
        self,
        factory: CoreFactory[CoreT],
        *,
        http_handler: HttpHandler | None = None,
        atmosphere_close: bool = True,
        max_http_body: int = DEFAULT_MAX_HTTP_BODY,
        max_http_headers: int = DEFAULT_MAX_HTTP_HEADERS,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        accept_binary: bool = False,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        close_with_core: bool = True,
    ) -> None:
        super().__init__(
            None,
            max_message_size=max_message_size,
            accept_binary=accept_binary,
            close_timeout=close_timeout,
            handshake_timeout=handshake_timeout,
            close_with_core=close_with_core,
        )
        self.factory = factory
        self.http_handler = http_handler
        self.atmosphere_close = atmosphere_close
        self.max_http_body = max_http_body
        self.request: UpgradeRequest | None = None
        """The accepted upgrade request (``None`` until then)."""
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_http_headers)
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._body_len = 0
        self._in_request = False

    def _start(self, now: float) -> None:
        pass

    # -- HTTP ------------------------------------------------------------------------

    def _receive_http(self, data: bytes, now: float) -> None:
        if data:
            self._in_request = True
        self._h11.receive_data(data)
        self._pump(now)

    def _http_eof(self, now: float) -> None:
        self._h11.receive_data(b"")
        self._pump(now, eof=True)

    def _http_timeout(self, now: float) -> None:
        if self._in_request:
            error = RemoteProtocolError(
                f"request not complete within {self.handshake_timeout} s", state=self.state
            )
            self._emit(HandshakeFailed(error))
        self._machine.fire(_Input.TIMEOUT)

    def _pump(self, now: float, *, eof: bool = False) -> None:
        conn = self._h11
        while self._machine.state is StackState.CONNECTING:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if eof:
                    self._bad_request(0, "connection closed in the middle of a request")
                else:
                    self._bad_request(exc.error_status_hint, f"bad HTTP request ({exc})")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._in_request = True
                self._request = event
                if _framed_twice(event):
                    # RFC 9112 §6.1: such a request may be read as chunked only if the
                    # connection closes after it; refusing it (400, then close) leaves no
                    # way to smuggle a second request past a proxy that read the length.
                    self._bad_request(400, "request has both Content-Length and Transfer-Encoding")
                    return
                self._body = []
                self._body_len = 0
                if conn.they_are_waiting_for_100_continue:
                    go_on = h11.InformationalResponse(status_code=100, headers=[])
                    self._out.append(conn.send(go_on) or b"")
            elif isinstance(event, h11.Data):
                self._body_len += len(event.data)
                if self._body_len > self.max_http_body:
                    self._bad_request(413, f"request body over {self.max_http_body} bytes")
                    return
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                request = self._request
                assert request is not None
                if _is_websocket_upgrade(request):
                    self._upgrade(request, now)
                    return
                self._answer(request)
                if not self._next_cycle(now):
                    return
            elif isinstance(event, h11.ConnectionClosed):
                # The client went away between requests: nothing was pending.
                self._machine.fire(_Input.EOF)
                self._deadline = None
                return

    def _next_cycle(self, now: float) -> bool:
        """After a response: keep the connection for the next request, or end it."""
        conn = self._h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._request = None
            self._in_request = bool(conn.trailing_data[0])
            if self.handshake_timeout is not None:
                self._deadline = now + self.handshake_timeout
            return True
        self._machine.fire(_Input.HTTP_DONE)
        self._deadline = None
        return False

    def _respond(
        self,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        close: bool = False,
    ) -> None:
        conn = self._h11
        raw = _encode_headers(headers)
        names = {name.lower() for name, _ in raw}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            raw.append((b"content-length", str(len(body)).encode()))
        if close and b"connection" not in names:
            raw.append((b"connection", b"close"))
        try:
            phrase = HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = b""
        out = self._out
        out.append(conn.send(h11.Response(status_code=status, headers=raw, reason=phrase)) or b"")
        head = self._request is not None and self._request.method == b"HEAD"
        if body and not head:
            out.append(conn.send(h11.Data(data=body)) or b"")
        out.append(conn.send(h11.EndOfMessage()) or b"")

    def _bad_request(self, status: int, reason: str) -> None:
        """The peer sent something unusable: answer ``status`` (0: no answer, the peer is
        gone) if a response can still be sent, then end."""
        conn = self._h11
        if status and conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            text = f"{reason}\n".encode("utf-8", "replace")
            self._respond(status, [("content-type", "text/plain; charset=utf-8")], text, close=True)
        error = RemoteProtocolError(reason, state=self.state)
        self._machine.fire(_Input.FAIL)
        self._deadline = None
        self._emit(HandshakeFailed(error))

    def _answer(self, request: h11.Request) -> None:
        method = request.method.decode("ascii")
        target = request.target.decode("latin-1")
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers]
        body = b"".join(self._body)
        self._body = []
        if self.atmosphere_close and "close" in target.lower():
            open_request = parse_open_request(target)
            if open_request.is_close:
                self._respond(200, [], b"")
                self._emit(AtmosphereCloseRequested(open_request.tracking_id, target))
                return
        answer = None
        if self.http_handler is not None:
            answer = self.http_handler(method, target, headers, body)
        status, response_headers, response_body = _NOT_FOUND if answer is None else answer
        self._respond(status, response_headers, response_body)
        self._emit(HttpRequestHandled(method, target, headers, body, status))

    # -- the upgrade -----------------------------------------------------------------

    def _upgrade(self, request: h11.Request, now: float) -> None:
        if request.method != b"GET":
            self._bad_request(400, "a WebSocket upgrade must use GET")
            return
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            handshake.initiate_upgrade_connection(list(request.headers), request.target)
            ws_request = next(iter(handshake.events()))
        except h11.ProtocolError as exc:  # an HTTP/1.0 upgrade without Host, for one
            self._bad_request(400, f"bad WebSocket upgrade ({exc})")
            return
        except WsprotoRemoteError as exc:
            hint = exc.event_hint
            status = hint.status_code if isinstance(hint, RejectConnection) else 400
            self._bad_request(status, f"bad WebSocket upgrade ({exc})")
            return
        assert isinstance(ws_request, Request)
        upgrade = UpgradeRequest(
            target=ws_request.target,
            host=ws_request.host,
            subprotocols=list(ws_request.subprotocols),
            headers=[_header(n, v) for n, v in request.headers],
        )
        decision = self.factory(upgrade)
        if isinstance(decision, Refuse):
            self._respond(decision.status_code, decision.headers, decision.body, close=True)
            self._machine.fire(_Input.REJECT)
            self._deadline = None
            headers = [(n.lower(), v) for n, v in decision.headers]
            self._emit(Rejected(decision.status_code, headers, decision.body))
            return
        accept = decision if isinstance(decision, Accept) else Accept(decision)
        if accept.subprotocol is not None and accept.subprotocol not in upgrade.subprotocols:
            raise LocalProtocolError(
                f"subprotocol {accept.subprotocol!r} was not offered by the client",
                state=self.state,
            )
        self.request = upgrade
        self._core = accept.core
        self._out.append(
            handshake.send(
                AcceptConnection(
                    subprotocol=accept.subprotocol,
                    extra_headers=_encode_headers(accept.headers),
                )
            )
        )
        connection = handshake.connection
        assert connection is not None
        trailing = self._h11.trailing_data[0]
        # Drop the request's buffers: past the upgrade HTTP is over for this connection, so
        # one idle parser shared by all of them stands in (never fed: the state is OPEN).
        self._h11 = _SPENT
        self._request = None
        connected = Connected(upgrade.target, accept.subprotocol, upgrade.headers)
        self._open(connection, connected, now, trailing)


_SHARED_HEADERS = frozenset(
    (b"host", b"upgrade", b"connection", b"sec-websocket-version", b"user-agent", b"origin")
)
"""Headers whose values every connection of a client repeats and nobody keeps secret: their
decoded pairs are shared between connections (the upgrade request stays with each)."""
_HEADERS_KEPT = 64
_HEADER_VALUE_KEPT = 256
_headers: SharedPairs[tuple[bytes, bytes], tuple[str, str]] = SharedPairs(_HEADERS_KEPT)


def _header(name: bytes, value: bytes) -> tuple[str, str]:
    """A header of the upgrade request, decoded: one shared (immutable) pair for those of
    ``_SHARED_HEADERS`` seen before, so an idle connection holds no copy of its own.  At
    most ``_HEADERS_KEPT`` pairs of short values are kept, forgotten all at once when full."""
    pair = _headers.get((name, value))
    if pair is None:
        pair = (name.decode("latin-1"), value.decode("latin-1"))
        if name in _SHARED_HEADERS and len(value) <= _HEADER_VALUE_KEPT:
            _headers.keep((name, value), pair)
    return pair
