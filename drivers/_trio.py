"""The trio driver: a reconnecting WebSocket client and a WebSocket + HTTP server for any core.

The driver owns a socket and trio's clock and nothing else; the protocol lives in the stack
(:mod:`trackwire.ws`) and the core it carries.  Every core works with the same client
(:func:`connect`) and the same server (:func:`serve`).

Client: one background task per session reads, feeds the shared sans-IO
:class:`~trackwire.drivers._session.ClientSession`, runs its timers (sleeping until its
``next_deadline``), makes the attempts and writes under a lock shared with
:meth:`Connection.send`.  Events go to the application through a bounded memory channel;
while it is full the driver stops reading the socket, so TCP pushes back on the server.

Server: one task per accepted connection (a reader that also runs the timers, and a writer
fed from a bounded per-connection buffer).  A peer that stops reading only fills its own
buffer; past ``max_buffer`` bytes that connection is aborted and the others go on.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import trio

from trackwire import ClientCore, Event, LocalProtocolError, ReconnectPolicy, RemoteProtocolError
from trackwire.itrack import AuthError, AuthExchange, AuthFailure, LoginRefused, build_auth_request
from trackwire.ws import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    Connected,
    ConnectionClosed,
    CoreFactory,
    HandshakeFailed,
    HttpGet,
    HttpHandler,
    ServerStack,
    StackState,
    TextCore,
)

from ._session import ClientSession, LoginExchange, SessionView

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_QUEUE_SIZE",
    "Connection",
    "EventHandler",
    "LoginRefused",
    "Server",
    "ServerConnection",
    "connect",
    "itrack_login",
    "serve",
]

DEFAULT_QUEUE_SIZE = 1024
"""Batches of events (one batch per read) a client buffers for the application before it
stops reading the socket."""
DEFAULT_MAX_BUFFER = 4 << 20
"""Bytes a server connection may have waiting to be written before it is aborted."""
DEFAULT_MAX_CONNECTIONS = 4096
"""Connections a server serves at once; more are closed right after ``accept``."""

_RECEIVE_SIZE = 65536
_ABNORMAL = 1006
_ABORTED = 1008
"""The close code reported (not sent: the peer is not reading) for a connection aborted
because its outgoing buffer overflowed."""

ClientCoreT = TypeVar("ClientCoreT", bound=ClientCore[Any, Any])
ServerCoreT = TypeVar("ServerCoreT", bound=TextCore)

_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


def _describe(exc: BaseException) -> str:
    """A readable reason for a failed network operation (TLS errors hide in ``__cause__``)."""
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    cause = exc.__cause__
    text = str(exc)
    if cause is not None and (not text or isinstance(exc, trio.BrokenResourceError)):
        text = f"{type(cause).__name__}: {cause}"
    return text or type(exc).__name__


async def _open_stream(
    host: str, port: int, tls: bool, ssl_context: ssl.SSLContext | None
) -> trio.abc.Stream:
    """TCP to ``host:port``, then TLS (verified against the system CAs unless the caller
    passes another context); the TLS handshake is done here, so later reads are cancellable."""
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    if tls:
        context = ssl_context if ssl_context is not None else ssl.create_default_context()
        tls_stream = trio.SSLStream(stream, context, server_hostname=host, https_compatible=True)
        try:
            await tls_stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tls_stream)
            raise
        stream = tls_stream
    return stream


async def _http_close_request(url: str, ssl_context: ssl.SSLContext | None) -> int | None:
    """``GET url`` on a fresh connection (the Atmosphere close request); the status, or
    ``None`` when it could not be sent or answered.  The caller bounds the time."""
    try:
        request = HttpGet(url)
        address = request.address
        stream = await _open_stream(address.host, address.port, address.tls, ssl_context)
    except (*_NETWORK_ERRORS, ValueError):
        return None
    try:
        await stream.send_all(request.bytes_to_send())
        while not request.receive(bytes(await stream.receive_some(_RECEIVE_SIZE))):
            pass
        return request.status_code
    except _NETWORK_ERRORS:
        return None
    finally:
        await trio.aclose_forcefully(stream)


# -- client --------------------------------------------------------------------------------


class Connection(SessionView[ClientCoreT]):
    """A client session over trio: one core across as many WebSockets as reconnects take.

    Iterate it for every event in order -- the core's, the stack's
    (:class:`~trackwire.ws.Connected`, :class:`~trackwire.ws.ConnectionClosed`, …) and the
    driver's (:class:`Reconnecting`, :class:`ReconnectFailed`, :class:`GaveUp`, always
    last); :meth:`send` to the core, :meth:`aclose` to end.  Built by :func:`connect`; the
    sans-IO part is :class:`~trackwire.drivers._session.ClientSession`.
    """

    def __init__(
        self,
        core: ClientCoreT,
        url: str | None,
        *,
        ssl_context: ssl.SSLContext | None,
        reconnect: ReconnectPolicy | None,
        headers: Sequence[tuple[str, str]],
        subprotocols: Sequence[str],
        connect_timeout: float,
        close_timeout: float,
        max_message_size: int,
        queue_size: int,
        rng: Callable[[], float] | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        self._session = ClientSession(
            core,
            url,
            reconnect=reconnect,
            headers=headers,
            subprotocols=subprotocols,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            rng=rng,
            stall_timeout=stall_timeout,
        )
        self._ssl_context = ssl_context
        # Events travel in batches (one per read): one scheduler trip per read, not per event.
        self._events_in, self._events_out = trio.open_memory_channel[list[Event]](queue_size)
        self._ready: deque[Event] = deque()
        self._stream: trio.abc.Stream | None = None
        self._broken = False
        self._write_lock = trio.Lock()
        self._read_scope: trio.CancelScope | None = None
        self._wait_scope: trio.CancelScope | None = None
        self._emit_scope: trio.CancelScope | None = None
        self._task_scope = trio.CancelScope()
        self._done = trio.Event()
        self._closing = False

    # -- what the application sees -----------------------------------------------------

    @property
    def fixed_url(self) -> str | None:
        """The URL given to :func:`connect` (``None``: ``core.url_to_open`` at every attempt)."""
        return self._session.url

    def __aiter__(self) -> Connection[ClientCoreT]:
        return self

    async def __anext__(self) -> Event:
        ready = self._ready
        if not ready:
            try:
                ready.extend(await self._events_out.receive())
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None
        return ready.popleft()

    async def send(self, item: Any) -> object:
        """Give ``item`` to the core (a command, an action, a message) and write what it
        produced; returns the core's handle (FleetFreedom: the ``reqId``).

        Between connections the core itself decides (iTrack holds actions, FleetFreedom
        holds commands while connecting); its :class:`LocalProtocolError` is raised as is.
        """
        if self._closing:
            raise LocalProtocolError("the connection is closed")
        handle = self._session.send(item, trio.current_time())
        await self._write_pending()
        self._reschedule()
        return handle

    async def aclose(self) -> None:
        """End the session for good: the core's ``close`` (its HTTP close request, for the
        Atmosphere cores, goes out before the socket closes), the close handshake, then the
        background task.  Idempotent; if cancelled, the socket is still closed (abruptly)."""
        if self._closing:
            await self._done.wait()
            return
        self._closing = True
        if self._done.is_set():
            return
        session = self._session
        try:
            with trio.move_on_after(session.close_timeout + session.connect_timeout):
                await self._close_gracefully()
        finally:
            self._task_scope.cancel()
        await self._done.wait()

    async def _close_gracefully(self) -> None:
        # The core closes and the stack starts its close handshake (or abandons an attempt
        # not open yet) at once: nothing more is delivered to the core.
        url = self._session.close(trio.current_time())
        for scope in (self._wait_scope, self._emit_scope):
            if scope is not None:
                scope.cancel()
        if url is not None:
            # Under the write lock: the close request reaches the server before our close
            # frame does.
            async with self._write_lock:
                await _http_close_request(url, self._ssl_context)
        await self._write_pending()
        self._kick()
        await self._done.wait()

    # -- the background task ------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._task_scope:
                task_status.started()
                await self._loop()
        finally:
            stream = self._stream
            self._stream = None
            try:
                if stream is not None:
                    await trio.aclose_forcefully(stream)  # closed even if this raises Cancelled
            finally:
                self._finish()

    def _finish(self) -> None:
        """End the session if it was cut short (a cancelled or late close, or the caller's
        cancellation); its last events go out as far as the channel has room."""
        session = self._session
        if not session.finished:
            now = trio.current_time()
            session.close(now)
            session.connection_ended(now)
        events = session.events
        if events:
            with contextlib.suppress(trio.WouldBlock, *_CHANNEL_GONE):
                self._events_in.send_nowait(list(events))
            events.clear()
        self._events_in.close()
        self._done.set()

    async def _loop(self) -> None:
        session = self._session
        await self._attempt()
        while True:
            await self._deliver()
            if session.finished:
                return
            stream = self._stream
            if stream is None:  # between attempts
                wake = session.wake_at
                assert wake is not None  # the session either gave up or set the next attempt
                with trio.CancelScope(deadline=wake) as scope:
                    self._wait_scope = scope
                    if session.closing:
                        scope.cancel()
                    await trio.sleep_forever()
                self._wait_scope = None
                if not session.finished:
                    await self._attempt()
                continue
            if session.connection_over:
                self._stream = None
                await trio.aclose_forcefully(stream)
                session.connection_ended(trio.current_time())
                continue
            deadline = session.next_deadline()
            data: bytes | bytearray = b""
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._read_scope = scope
                if not self._broken:
                    try:
                        data = await stream.receive_some(_RECEIVE_SIZE)
                    except _NETWORK_ERRORS:
                        self._broken = True
            self._read_scope = None
            now = trio.current_time()
            if scope.cancelled_caught:
                session.handle_timer(now)
            elif data:
                session.receive(bytes(data), now)
            else:
                session.receive_eof(now)
            await self._after()

    async def _attempt(self) -> None:
        """Open the socket of the next attempt (the session reports a failure)."""
        session = self._session
        session.begin_attempt()
        stream: trio.abc.Stream | None = None
        try:
            address = session.address()
            with trio.CancelScope() as scope, trio.fail_after(session.connect_timeout):
                self._wait_scope = scope  # aclose() stops a connect under way
                if not session.closing:
                    stream = await _open_stream(
                        address.host, address.port, address.tls, self._ssl_context
                    )
        except (*_NETWORK_ERRORS, trio.TooSlowError, ValueError) as exc:
            if not session.finished:  # an attempt abandoned by aclose() is no failure
                session.attempt_failed(_describe(exc), trio.current_time())
            return
        finally:
            self._wait_scope = None
        if stream is None or session.closing:
            # Closed meanwhile: the session, without a stack, has already given up.
            if stream is not None:
                await trio.aclose_forcefully(stream)
            return
        self._stream = stream
        self._broken = False
        session.transport_ready(trio.current_time())
        await self._after()

    async def _after(self) -> None:
        """After input or a timer: a login the core asked for, the Atmosphere close
        requests, then what is to write."""
        session = self._session
        request = session.take_login(trio.current_time())
        if request is not None:
            await self._login(LoginExchange(request=request))
        url = session.take_close_request()
        if url is not None:
            async with self._write_lock:
                while url is not None:
                    with trio.move_on_after(session.connect_timeout):
                        await _http_close_request(url, self._ssl_context)
                    url = session.take_close_request()
        await self._write_pending()

    async def _login(self, exchange: LoginExchange) -> None:
        """``user/auth`` on a fresh connection (bounded by ``connect_timeout``); the answer
        goes back to the core through the session."""
        session = self._session
        address = exchange.address
        try:
            with trio.fail_after(session.connect_timeout):
                stream = await _open_stream(
                    address.host, address.port, address.tls, self._ssl_context
                )
                try:
                    await stream.send_all(exchange.request)
                    while not exchange.feed(bytes(await stream.receive_some(_RECEIVE_SIZE))):
                        pass
                finally:
                    await trio.aclose_forcefully(stream)
            result, error = exchange.outcome()
        except (*_NETWORK_ERRORS, trio.TooSlowError, AuthError) as exc:
            result, error = None, _describe(exc)
        session.login_answered(result, error, trio.current_time())

    async def _write_pending(self) -> None:
        """Write what the session has queued, in order (one writer at a time)."""
        async with self._write_lock:
            stream = self._stream
            if stream is None:
                return
            data = self._session.data_to_send()
            if not data or self._broken:
                return
            try:
                await stream.send_all(data)
            except BaseException as exc:
                # A write cut short (an error, or cancellation mid-frame) leaves the stream
                # unusable: end this connection; the reader reports it as a lost connection.
                self._broken = True
                self._kick()
                if isinstance(exc, _NETWORK_ERRORS):
                    return
                raise

    def _kick(self) -> None:
        """Wake the reader so that it looks at the session again."""
        scope = self._read_scope
        if scope is not None:
            scope.cancel()

    def _reschedule(self) -> None:
        """The core may have an earlier deadline now (a command's timeout): tell the reader."""
        scope = self._read_scope
        if scope is None:
            return
        deadline = self._session.next_deadline()
        if deadline is not None and deadline < scope.deadline:
            scope.deadline = deadline

    async def _deliver(self) -> None:
        """Hand the session's events to the application as one batch; once closing, a
        batch that does not fit the channel is dropped instead of holding the close up."""
        events = self._session.events
        if not events:
            return
        batch = list(events)
        events.clear()
        try:
            self._events_in.send_nowait(batch)
            return
        except trio.WouldBlock:
            if self._session.closing:
                return
        except _CHANNEL_GONE:
            return
        with trio.CancelScope() as scope:
            self._emit_scope = scope
            try:
                await self._events_in.send(batch)  # the application is behind: no reading
            except _CHANNEL_GONE:
                pass
            finally:
                self._emit_scope = None


_CHANNEL_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


@asynccontextmanager
async def connect(
    core: ClientCoreT,
    url: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    reconnect: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 (frozen, shared)
    headers: Sequence[tuple[str, str]] = (),
    subprotocols: Sequence[str] = (),
    connect_timeout: float = 10.0,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    rng: Callable[[], float] | None = None,
    stall_timeout: float | None = None,
) -> AsyncIterator[Connection[ClientCoreT]]:
    """Run ``core`` over a WebSocket to ``url`` (default: ``core.url_to_open``, re-read at
    every attempt) for the duration of the block; the block's end is :meth:`aclose`.

    Returns at once: the first attempt runs in the background and its outcome is an event
    (:class:`~trackwire.ws.Connected`, or :class:`ReconnectFailed` with ``attempt`` 0).
    ``reconnect`` is the backoff (``None``: one attempt only).  ``wss``/``https`` URLs are
    verified against the system CAs unless ``ssl_context`` says otherwise (turning
    verification off takes a context built to do so).  ``connect_timeout`` bounds TCP, TLS
    and the upgrade; ``rng`` is the backoff's jitter source (tests).  ``stall_timeout``
    (seconds, off by default) queues :class:`Stalled` when no application data came that
    long while subscribed.  A core that asks for a login (iTrack :class:`LoginRequested`)
    gets it performed over HTTP, after the backoff when the previous one failed.
    """
    connection = Connection(
        core,
        url,
        ssl_context=ssl_context,
        reconnect=reconnect,
        headers=headers,
        subprotocols=subprotocols,
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        max_message_size=max_message_size,
        queue_size=queue_size,
        rng=rng,
        stall_timeout=stall_timeout,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(connection._run)
        try:
            yield connection
        finally:
            await connection.aclose()


# -- iTrack login over HTTP ------------------------------------------------------------------


async def itrack_login(
    base_url: str,
    login: str,
    password: str,
    *,
    dealer_id: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> str:
    """``POST <base_url>user/auth`` and return the session hash.

    Raises :class:`LoginRefused` for an API error, the :class:`~trackwire.itrack.AuthError`
    family for an unreadable answer, :class:`OSError`/:class:`trio.BrokenResourceError` when
    the server cannot be reached and :class:`trio.TooSlowError` after ``timeout`` seconds.
    """
    request = build_auth_request(base_url, login, password, dealer_id=dealer_id)
    exchange = AuthExchange(request)
    with trio.fail_after(timeout):
        stream = await _open_stream(request.host, request.port, request.tls, ssl_context)
        try:
            await stream.send_all(exchange.bytes_to_send())
            while True:
                data = await stream.receive_some(_RECEIVE_SIZE)
                result = exchange.receive_data(bytes(data)) if data else exchange.receive_eof()
                if result is not None:
                    break
        finally:
            await trio.aclose_forcefully(stream)
    if isinstance(result, AuthFailure):
        raise LoginRefused(result)
    return result.hash


# -- server --------------------------------------------------------------------------------

EventHandler = Callable[["ServerConnection[Any]", Event], None]
"""``on_event(connection, event)``: called in order for every event of every connection."""


class ServerConnection(Generic[ServerCoreT]):
    """One accepted TCP connection of a :class:`Server`, with its :class:`ServerStack`.

    After the application changed the core from outside (``ITrackServer.push_state``,
    ``FleetFreedomHub.publish``), :meth:`flush` writes what the core queued.
    """

    def __init__(self, server: Server[ServerCoreT], stream: trio.abc.Stream) -> None:
        self.server = server
        self.stream = stream
        self.stack: ServerStack[ServerCoreT] = ServerStack(
            server.factory,
            http_handler=server.http_handler,
            max_message_size=server.max_message_size,
            handshake_timeout=server.handshake_timeout,
            close_timeout=server.close_timeout,
        )
        self.remote = _peer_name(stream)
        """``host:port`` of the peer (``""`` when unknown)."""
        self._buffer = bytearray()
        self._writable = trio.Event()
        self._read_scope: trio.CancelScope | None = None
        self._kicked = False
        self._broken = False
        self._finished = False
        self._abort: tuple[int, str, RemoteProtocolError | None] | None = None
        """Why the connection is to be dropped at once (close code, reason, error)."""

    @property
    def core(self) -> ServerCoreT | None:
        """The core, once the factory accepted an upgrade (``None`` before, or for HTTP)."""
        try:
            return self.stack.core
        except LocalProtocolError:
            return None

    @property
    def state(self) -> StackState:
        return self.stack.state

    @property
    def buffered(self) -> int:
        """Bytes waiting to be written."""
        return len(self._buffer)

    def flush(self) -> None:
        """Write what the core queued (non-blocking: the bytes join this connection's
        buffer) and let the connection look at its timers and events again."""
        self._pull()
        self._kick()

    def send(self, item: Any) -> object:
        """Give ``item`` to the core (``send`` of the core) and flush; returns its handle."""
        handle = self.stack.send(item, trio.current_time())
        self.flush()
        return handle

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (or drop the connection before the upgrade)."""
        self.stack.close(code, reason, trio.current_time())
        self.flush()

    def abort(self, reason: str = "aborted by the application") -> None:
        """Drop the TCP connection now, without a close handshake; the connection ends with
        ``ConnectionClosed(1006, reason, by_peer=False)`` (the core sees an end of input)."""
        if self._abort is None:
            self._abort = (_ABNORMAL, reason, None)
            self._kick()

    # -- inside --------------------------------------------------------------------------

    def _kick(self) -> None:
        self._kicked = True
        scope = self._read_scope
        if scope is not None:
            scope.cancel()

    def _pull(self) -> None:
        if self._abort is not None:
            return
        data = self.stack.data_to_send()
        if not data:
            return
        self._buffer += data
        limit = self.server.max_buffer
        if len(self._buffer) > limit:
            reason = f"outgoing buffer over {limit} bytes: the peer is not reading"
            self._abort = (_ABORTED, reason, RemoteProtocolError(reason))
            self._buffer.clear()
            self._kick()
        self._writable.set()

    async def _run(self) -> None:
        stack = self.stack
        stack.connection_made(trio.current_time())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer)
            await self._reader()
            if self._abort is not None:
                nursery.cancel_scope.cancel()
            else:
                # The last bytes (a close frame, an HTTP answer) get close_timeout to leave.
                self._finished = True
                self._writable.set()
                nursery.cancel_scope.deadline = trio.current_time() + self.server.close_timeout

    async def _reader(self) -> None:
        stack = self.stack
        stream = self.stream
        while True:
            self._dispatch(stack.events())
            self._pull()
            if self._abort is not None:
                self._drop(*self._abort)
                return
            if stack.state is StackState.CLOSED:
                return
            deadline = stack.next_deadline()
            data: bytes | bytearray = b""
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._read_scope = scope
                if self._kicked:
                    scope.cancel()
                if not self._broken:
                    try:
                        data = await stream.receive_some(_RECEIVE_SIZE)
                    except _NETWORK_ERRORS:
                        self._broken = True
            self._read_scope = None
            self._kicked = False
            now = trio.current_time()
            if scope.cancelled_caught:
                stack.handle_timer(now)
            elif data:
                stack.receive(bytes(data), now)
            else:
                stack.receive_eof(now)

    def _drop(self, code: int, reason: str, error: RemoteProtocolError | None) -> None:
        """End the connection without a close handshake; the core learns it as an EOF."""
        stack = self.stack
        if stack.state is StackState.OPEN or stack.state is StackState.CLOSING:
            stack.receive_eof(trio.current_time())
            self._dispatch(
                [
                    ConnectionClosed(code, reason, by_peer=False, error=error)
                    if isinstance(event, ConnectionClosed)
                    else event
                    for event in stack.events()
                ]
            )
        elif stack.state is not StackState.CLOSED:
            stack.close()
            if error is not None:
                self._dispatch([HandshakeFailed(error)])

    async def _writer(self) -> None:
        stream = self.stream
        while True:
            if not self._buffer:
                if self._finished:
                    return
                self._writable = trio.Event()
                await self._writable.wait()
                continue
            data = bytes(self._buffer)
            self._buffer.clear()
            try:
                await stream.send_all(data)
            except _NETWORK_ERRORS:
                self._broken = True
                self._buffer.clear()
                self._kick()
                return

    def _dispatch(self, events: Iterable[Event]) -> None:
        server = self.server
        for event in events:
            if isinstance(event, Connected):
                server._by_core[id(self.stack.core)] = self
            handler = server.on_event
            if handler is not None:
                handler(self, event)


def _peer_name(stream: trio.abc.Stream) -> str:
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        try:
            host, port, *_ = inner.socket.getpeername()
        except (OSError, ValueError, TypeError):
            return ""
        return f"{host}:{port}"
    return ""


class Server(Generic[ServerCoreT]):
    """A running :func:`serve`: its listeners, ports and live connections."""

    def __init__(
        self,
        factory: CoreFactory[ServerCoreT],
        *,
        http_handler: HttpHandler | None,
        on_event: EventHandler | None,
        max_connections: int,
        max_buffer: int,
        max_message_size: int,
        handshake_timeout: float | None,
        close_timeout: float,
        tls_handshake_timeout: float,
    ) -> None:
        self.factory = factory
        self.http_handler = http_handler
        self.on_event = on_event
        self.max_connections = max_connections
        self.max_buffer = max_buffer
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self.close_timeout = close_timeout
        self.tls_handshake_timeout = tls_handshake_timeout
        self.listeners: list[trio.abc.Listener[Any]] = []
        self.connections: dict[ServerConnection[ServerCoreT], None] = {}
        """The live connections, in accept order."""
        self.refused = 0
        """Connections closed at once because ``max_connections`` were being served."""
        self._by_core: dict[int, ServerConnection[ServerCoreT]] = {}

    @property
    def ports(self) -> list[int]:
        """The bound TCP ports (one per listener)."""
        ports = []
        for listener in self.listeners:
            inner = listener
            if isinstance(listener, trio.SSLListener):
                inner = listener.transport_listener
            if isinstance(inner, trio.SocketListener):
                ports.append(int(inner.socket.getsockname()[1]))
        return ports

    @property
    def port(self) -> int:
        """The bound TCP port (of the first listener)."""
        return self.ports[0]

    def connection_of(self, core: object) -> ServerConnection[ServerCoreT] | None:
        """The live connection carrying ``core``, if any."""
        return self._by_core.get(id(core))

    def flush(self, cores: Iterable[object] | None = None) -> None:
        """:meth:`ServerConnection.flush` the connections carrying ``cores`` (every live
        connection when ``None``), e.g. with what ``FleetFreedomHub.publish`` returned."""
        if cores is None:
            targets: Iterable[ServerConnection[ServerCoreT]] = list(self.connections)
        else:
            found = (self._by_core.get(id(core)) for core in cores)
            targets = [conn for conn in found if conn is not None]
        for conn in targets:
            conn.flush()

    async def _handle(self, stream: trio.abc.Stream) -> None:
        try:
            if len(self.connections) >= self.max_connections:
                self.refused += 1
                return
            conn = ServerConnection(self, stream)
            if isinstance(stream, trio.SSLStream) and not await self._tls_handshake(conn):
                return
            self.connections[conn] = None
            try:
                await conn._run()
            finally:
                if conn.stack.state is not StackState.CLOSED:
                    # Cancelled (the server is stopping): the core must learn that its
                    # connection is gone, or the application keeps pushing to it.
                    conn._drop(_ABNORMAL, "the server stopped", None)
                del self.connections[conn]
                core = conn.core
                if core is not None and self._by_core.get(id(core)) is conn:
                    del self._by_core[id(core)]
        finally:
            await trio.aclose_forcefully(stream)

    async def _tls_handshake(self, conn: ServerConnection[ServerCoreT]) -> bool:
        stream = conn.stream
        assert isinstance(stream, trio.SSLStream)
        try:
            with trio.fail_after(self.tls_handshake_timeout):
                await stream.do_handshake()
        except (*_NETWORK_ERRORS, trio.TooSlowError) as exc:
            error = RemoteProtocolError(f"TLS handshake failed: {_describe(exc)}")
            conn._dispatch([HandshakeFailed(error)])
            return False
        return True


async def serve(
    factory: CoreFactory[ServerCoreT],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    http_handler: HttpHandler | None = None,
    on_event: EventHandler | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    task_status: trio.TaskStatus[Server[ServerCoreT]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``factory``'s cores (and ``http_handler``'s plain HTTP) on ``host:port`` until
    cancelled; ``server = await nursery.start(serve, factory)`` gives the :class:`Server`.

    Every connection runs in its own task with a :class:`ServerStack`; ``on_event(conn,
    event)`` sees every event of every connection, in order (keep it quick: it runs in the
    connection's task).  A connection whose unwritten output passes ``max_buffer`` bytes
    (a peer that stopped reading) is aborted -- no close frame could reach it -- and ends
    with ``ConnectionClosed(1008, reason, by_peer=False, error=RemoteProtocolError)``.
    ``port=0`` picks a free port; ``ssl_context`` serves TLS.
    """
    if max_connections < 1 or max_buffer < 1:
        raise ValueError("max_connections and max_buffer must be >= 1")
    server = Server(
        factory,
        http_handler=http_handler,
        on_event=on_event,
        max_connections=max_connections,
        max_buffer=max_buffer,
        max_message_size=max_message_size,
        handshake_timeout=handshake_timeout,
        close_timeout=close_timeout,
        tls_handshake_timeout=(
            DEFAULT_HANDSHAKE_TIMEOUT if handshake_timeout is None else handshake_timeout
        ),
    )
    listeners: list[trio.abc.Listener[Any]] = list(await trio.open_tcp_listeners(port, host=host))
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners
        ]
    server.listeners = listeners
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server._handle, listeners)
        task_status.started(server)
