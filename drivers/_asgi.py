"""Any server core, and plain HTTP, as an ASGI 3 application (uvicorn, hypercorn, Starlette).

The ASGI server owns the sockets, HTTP and the WebSocket framing; this module does what the
:class:`~trackwire.ws.ServerStack` does above wsproto: it builds the
:class:`~trackwire.ws.UpgradeRequest` the core factory decides on, answers Atmosphere close
requests, hands plain HTTP to the handler, feeds text messages to the core, writes what the
core queued and sleeps until the core's next deadline.  The clock is ``time.monotonic``;
the loop is asyncio's (uvicorn, and hypercorn's default worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Generic, Protocol, TypeVar

from trackwire import Event, LocalProtocolError, RemoteProtocolError
from trackwire._redact import redact_target
from trackwire.atmosphere import parse_open_request
from trackwire.ws import (
    DEFAULT_MAX_HTTP_BODY,
    DEFAULT_MAX_MESSAGE_SIZE,
    Accept,
    AtmosphereCloseRequested,
    Connected,
    ConnectionClosed,
    CoreFactory,
    Headers,
    HttpHandler,
    HttpRequestHandled,
    Refuse,
    Rejected,
    TextCore,
    UpgradeRequest,
)

__all__ = ["ASGIApp", "ASGIConnection", "Ticker"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ServerCoreT = TypeVar("ServerCoreT", bound=TextCore)

_log = logging.getLogger("trackwire.asgi")

_NORMAL = 1000
_PROTOCOL_ERROR = 1002
_UNSUPPORTED = 1003
_ABNORMAL = 1006
_TOO_BIG = 1009
_INTERNAL = 1011
_CORE_ENDED = frozenset({"CLOSED", "ERROR"})
_TEXT = [("content-type", "text/plain; charset=utf-8")]


class Ticker(Protocol):
    """What moves an application from outside its connections (a reference server's fleet):
    ``tick(now)`` does the work due at ``now`` and returns the cores to flush."""

    def tick(self, now: float) -> Iterable[object]: ...

    def next_deadline(self) -> float | None: ...


class ASGIConnection(Generic[ServerCoreT]):
    """One WebSocket of an :class:`ASGIApp`, carrying one core."""

    __slots__ = ("_wake", "app", "core", "remote", "request")

    def __init__(
        self, app: ASGIApp[ServerCoreT], core: ServerCoreT, request: UpgradeRequest, remote: str
    ) -> None:
        self.app = app
        self.core = core
        self.request = request
        self.remote = remote
        """``host:port`` of the peer, as the ASGI server reports it (``""`` when unknown)."""
        self._wake = asyncio.Event()

    def flush(self) -> None:
        """Write what the core queued from outside (``push_state``, ``publish``)."""
        self._wake.set()


def _headers_of(scope: Scope) -> Headers:
    return [
        (bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
        for name, value in scope.get("headers", ())
    ]


def _target_of(scope: Scope) -> str:
    """The request target as the core factory and the handler see it: the raw path below
    the mount point (``root_path``, e.g. a Starlette ``Mount``) and the query."""
    raw = scope.get("raw_path")
    path = bytes(raw).decode("latin-1") if raw else str(scope.get("path", "/"))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    return f"{path}?{query}" if query else path


def _remote_of(scope: Scope) -> str:
    client = scope.get("client")
    if client:
        host, port = client[0], client[1]
        return f"{host}:{port}"
    return ""


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class ASGIApp(Generic[ServerCoreT]):
    """Serve ``factory``'s cores over WebSocket and ``http_handler``'s plain HTTP as an ASGI
    application: ``uvicorn.run(ASGIApp(factory, http_handler=...))``, or mounted in a
    framework (a Starlette ``Mount``).

    The same parts as :func:`trackwire.drivers.trio.serve`: ``factory`` decides on every
    upgrade (a core, :class:`~trackwire.ws.Accept` or :class:`~trackwire.ws.Refuse`),
    ``http_handler`` answers plain HTTP (else 404), Atmosphere close requests are answered
    ``200`` and reported, and ``on_event(connection, event)`` sees every event of every
    connection in order (the stack's :class:`~trackwire.ws.Connected`,
    :class:`~trackwire.ws.ConnectionClosed`, … and the core's).  A ``ticker`` (a reference
    server) runs from the ASGI lifespan (or the first request when the server has none) and
    its cores are flushed after every tick.  Whatever one connection's core or handler
    raises closes that connection (1011, or an HTTP 500) and is logged; the others go on.
    """

    def __init__(
        self,
        factory: CoreFactory[ServerCoreT],
        *,
        http_handler: HttpHandler | None = None,
        on_event: Callable[[ASGIConnection[ServerCoreT] | None, Event], None] | None = None,
        ticker: Ticker | None = None,
        atmosphere_close: bool = True,
        max_http_body: int = DEFAULT_MAX_HTTP_BODY,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.http_handler = http_handler
        self.on_event = on_event
        self.ticker = ticker
        self.atmosphere_close = atmosphere_close
        self.max_http_body = max_http_body
        self.max_message_size = max_message_size
        self.clock = clock
        self.connections: dict[int, ASGIConnection[ServerCoreT]] = {}
        """Live WebSocket connections by ``id(core)``."""
        self._ticking: asyncio.Task[None] | None = None

    # -- the application ---------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        self._start_ticker()
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    def flush(self, cores: Iterable[object] | None = None) -> None:
        """Write what ``cores`` (every live core when ``None``) queued from outside."""
        if cores is None:
            targets: Iterable[ASGIConnection[ServerCoreT]] = list(self.connections.values())
        else:
            found = (self.connections.get(id(core)) for core in cores)
            targets = [conn for conn in found if conn is not None]
        for conn in targets:
            conn.flush()

    def connection_of(self, core: object) -> ASGIConnection[ServerCoreT] | None:
        """The live connection carrying ``core``, if any."""
        return self.connections.get(id(core))

    # -- lifespan and the ticker ---------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start_ticker()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop_ticker()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_ticker(self) -> None:
        if self.ticker is not None and self._ticking is None:
            self._ticking = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _stop_ticker(self) -> None:
        task, self._ticking = self._ticking, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick_forever(self) -> None:
        ticker = self.ticker
        assert ticker is not None
        while True:
            deadline = ticker.next_deadline()
            delay = 1.0 if deadline is None else max(0.0, deadline - self.clock())
            await asyncio.sleep(delay)
            try:
                self.flush(ticker.tick(self.clock()))
            except Exception:
                _log.exception("the application's tick failed")

    # -- plain HTTP ----------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method", "GET"))
        target = _target_of(scope)
        headers = _headers_of(scope)
        parts: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_http_body:
                text = f"request body over {self.max_http_body} bytes\n".encode()
                await self._respond(send, 413, _encode(_TEXT), text, head=False)
                return
            parts.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(parts)
        try:
            status, response_headers, response_body = self._answer(method, target, headers, body)
        except Exception:
            _log.exception("HTTP %s %s failed", method, redact_target(target))
            status, response_headers, response_body = 500, _TEXT, b"Internal Server Error\n"
        await self._respond(
            send, status, _encode(response_headers), response_body, method == "HEAD"
        )

    def _answer(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Iterable[tuple[str, str]], bytes]:
        if self.atmosphere_close and "close" in target.lower():
            request = parse_open_request(target)
            if request.is_close:
                self._emit(None, AtmosphereCloseRequested(request.tracking_id, target))
                return 200, [], b""
        answer = (
            None if self.http_handler is None else self.http_handler(method, target, headers, body)
        )
        if answer is None:
            answer = (404, [("content-type", "text/plain; charset=utf-8")], b"Not Found\n")
        status, response_headers, response_body = answer
        self._emit(None, HttpRequestHandled(method, target, headers, body, status))
        return status, response_headers, response_body

    @staticmethod
    async def _respond(
        send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, head: bool
    ) -> None:
        if not any(name == b"content-length" for name, _ in headers):
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})

    # -- WebSocket -----------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = _headers_of(scope)
        host = next((value for name, value in headers if name == "host"), "")
        request = UpgradeRequest(
            target=_target_of(scope),
            host=host,
            subprotocols=[str(p) for p in scope.get("subprotocols", ())],
            headers=headers,
        )
        try:
            decision = self.factory(request)
            if not isinstance(decision, Refuse):
                accept = decision if isinstance(decision, Accept) else Accept(decision)
                if (
                    accept.subprotocol is not None
                    and accept.subprotocol not in request.subprotocols
                ):
                    raise LocalProtocolError(
                        f"subprotocol {accept.subprotocol!r} was not offered by the client"
                    )
        except Exception:
            _log.exception("the core factory failed for %r", request)
            await send({"type": "websocket.close", "code": _INTERNAL})
            return
        if isinstance(decision, Refuse):
            await self._refuse(scope, send, decision)
            return
        conn = ASGIConnection(self, accept.core, request, _remote_of(scope))
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": accept.subprotocol,
                "headers": _encode(accept.headers),
            }
        )
        self.connections[id(conn.core)] = conn
        try:
            await self._run(conn, receive, send)
        finally:
            del self.connections[id(conn.core)]

    async def _refuse(self, scope: Scope, send: Send, refuse: Refuse) -> None:
        self._emit(None, Rejected(refuse.status_code, [(n.lower(), v) for n, v in refuse.headers]))
        if "websocket.http.response" in scope.get("extensions", {}):
            headers = _encode(refuse.headers)
            if not any(name == b"content-length" for name, _ in headers):
                headers.append((b"content-length", str(len(refuse.body)).encode()))
            start = {"type": "websocket.http.response.start", "status": refuse.status_code}
            await send({**start, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": refuse.body})
        else:
            await send({"type": "websocket.close", "code": 1008})  # the server answers 403

    async def _run(self, conn: ASGIConnection[ServerCoreT], receive: Receive, send: Send) -> None:
        core = conn.core
        clock = self.clock
        self._emit(conn, Connected(conn.request.target, None, conn.request.headers))
        incoming: asyncio.Task[Message] | None = None
        waking: asyncio.Task[bool] | None = None
        closed: ConnectionClosed | None = None
        try:
            core.connection_made(clock())
            while closed is None:
                await self._drain(conn, send)
                if core.state.name in _CORE_ENDED:
                    closed = ConnectionClosed(_NORMAL, "", by_peer=False)
                    await send({"type": "websocket.close", "code": _NORMAL})
                    break
                if incoming is None:
                    incoming = asyncio.ensure_future(receive())
                if waking is None:
                    waking = asyncio.ensure_future(conn._wake.wait())
                deadline = core.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - clock())
                done, _ = await asyncio.wait(
                    {incoming, waking}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                now = clock()
                if waking in done:
                    conn._wake.clear()
                    waking = None
                if incoming in done:
                    message, incoming = incoming.result(), None
                    closed = self._feed(conn, message, now)
                    if closed is not None and not closed.by_peer:
                        await self._drain(conn, send)
                        await send({"type": "websocket.close", "code": closed.code})
                elif not done:
                    core.handle_timer(now)
        except Exception:
            _log.exception("connection %s failed", conn.remote or "?")
            closed = ConnectionClosed(_INTERNAL, "internal error", by_peer=False)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": _INTERNAL})
        finally:
            for task in (incoming, waking):
                if task is not None:
                    task.cancel()
        with contextlib.suppress(Exception):
            if core.state.name not in _CORE_ENDED:
                core.receive_eof(clock())
        self._dispatch(conn)
        self._emit(conn, closed)

    def _feed(
        self, conn: ASGIConnection[ServerCoreT], message: Message, now: float
    ) -> ConnectionClosed | None:
        """One ASGI message into the core; the close it causes, if any."""
        core = conn.core
        kind = message["type"]
        if kind == "websocket.disconnect":
            code = int(message.get("code", _ABNORMAL))
            return ConnectionClosed(code, str(message.get("reason") or ""), by_peer=True)
        if kind != "websocket.receive":
            return None
        text = message.get("text")
        if text is None:
            error = RemoteProtocolError("binary message: this server speaks text")
            return ConnectionClosed(_UNSUPPORTED, str(error), by_peer=False, error=error)
        if len(text) > self.max_message_size:
            error = RemoteProtocolError(f"message over {self.max_message_size} characters")
            return ConnectionClosed(_TOO_BIG, str(error), by_peer=False, error=error)
        try:
            core.receive(text, now)
        except RemoteProtocolError as exc:
            code = _PROTOCOL_ERROR if exc.close_code is None else exc.close_code
            return ConnectionClosed(code, str(exc), by_peer=False, error=exc)
        except LocalProtocolError:
            if core.state.name not in _CORE_ENDED:
                raise
        return None

    async def _drain(self, conn: ASGIConnection[ServerCoreT], send: Send) -> None:
        self._dispatch(conn)
        for frame in conn.core.data_to_send():
            await send({"type": "websocket.send", "text": frame})

    def _dispatch(self, conn: ASGIConnection[ServerCoreT]) -> None:
        for event in conn.core.events():
            self._emit(conn, event)

    def _emit(self, conn: ASGIConnection[ServerCoreT] | None, event: Event) -> None:
        handler = self.on_event
        if handler is not None:
            handler(conn, event)
