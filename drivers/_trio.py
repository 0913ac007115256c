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
import os
import ssl
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from trackwire import ClientCore, Event, LocalProtocolError, ReconnectPolicy, RemoteProtocolError
from trackwire._peer import peer_context
from trackwire.itrack import (
    AuthError,
    AuthExchange,
    AuthFailure,
    LoginRefused,
    TrackerInfo,
    build_auth_request,
)
from trackwire.ws import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    CoreFactory,
    HandshakeFailed,
    HttpGet,
    HttpHandler,
    ServerStack,
    StackState,
    TextCore,
)

from ._serving import (
    ABNORMAL,
    ABORTED,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_ADDRESS,
    REFUSE_LINGER,
    SERVICE_UNAVAILABLE,
    ConnectionBase,
    RefusedHead,
    ServerBase,
    drop_events,
    failure_events,
    failure_output,
    log_failure,
    peer_host,
)
from ._session import ClientSession, LoginExchange, SessionView, TrackerListCall

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_PER_ADDRESS",
    "DEFAULT_QUEUE_SIZE",
    "Connection",
    "EventHandler",
    "LoginRefused",
    "Server",
    "ServerConnection",
    "connect",
    "itrack_login",
    "itrack_tracker_list",
    "serve",
]

DEFAULT_QUEUE_SIZE = 1024
"""Batches of events (one batch per read) a client buffers for the application before it
stops reading the socket."""

_RECEIVE_SIZE = 65536

ClientCoreT = TypeVar("ClientCoreT", bound=ClientCore[Any, Any])
ServerCoreT = TypeVar("ServerCoreT", bound=TextCore)

_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


def _plain_socket_fd(stream: trio.abc.Stream) -> int:
    """The descriptor of a plain (non-TLS) trio TCP stream on a POSIX system, else -1."""
    if sys.platform == "win32" or type(stream) is not trio.SocketStream:
        return -1
    return stream.socket.fileno()


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
            wall_offset=time.time() - trio.current_time(),
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


async def itrack_tracker_list(
    base_url: str,
    session_hash: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> list[TrackerInfo]:
    """``POST <base_url>tracker/list`` with a session hash: the user's trackers, each with its
    label and source id.

    Raises :class:`~trackwire.itrack.TrackerListRefused` for an API error (a dead hash…),
    :class:`~trackwire.itrack.TrackerListError` for a broken answer,
    :class:`OSError`/:class:`trio.BrokenResourceError` when the server cannot be reached and
    :class:`trio.TooSlowError` after ``timeout`` seconds.
    """
    call = TrackerListCall(base_url, session_hash)
    address = call.address
    with trio.fail_after(timeout):
        stream = await _open_stream(address.host, address.port, address.tls, ssl_context)
        try:
            await stream.send_all(call.request)
            while not call.feed(bytes(await stream.receive_some(_RECEIVE_SIZE))):
                pass
        finally:
            await trio.aclose_forcefully(stream)
    return call.trackers()


# -- server --------------------------------------------------------------------------------

EventHandler = Callable[["ServerConnection[Any]", Event], None]
"""``on_event(connection, event)``: called in order for every event of every connection."""


class ServerConnection(ConnectionBase[ServerCoreT]):
    """One accepted TCP connection of a :class:`Server`, with its :class:`ServerStack`.

    After the application changed the core from outside (``ITrackServer.push_state``,
    ``FleetFreedomHub.publish``), :meth:`flush` writes what the core queued.
    """

    __slots__ = (
        "_abort",
        "_broken",
        "_buffer",
        "_failed",
        "_fd",
        "_kicked",
        "_nursery",
        "_read_scope",
        "_writing",
        "address",
        "remote",
        "server",
        "stack",
        "stream",
    )

    server: Server[ServerCoreT]

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
        self.address = peer_host(_peer_address(stream))
        """The peer's IP address (``""`` when unknown): what the per-address limits count."""
        self._buffer = bytearray()
        self._fd = _plain_socket_fd(stream)
        """The file descriptor of a plain TCP stream, written at once when possible; -1 for
        TLS and other streams (always written by the writer task)."""
        self._writing = False
        """A writer task is running (started when bytes wait, ended when they are out: an
        idle connection holds no writer task)."""
        self._nursery: trio.Nursery | None = None
        self._read_scope: trio.CancelScope | None = None
        self._kicked = False
        self._broken = False
        self._failed = False
        self._abort: tuple[int, str, RemoteProtocolError | None] | None = None
        """Why the connection is to be dropped at once (close code, reason, error)."""

    # core, state, failed, send and close: ConnectionBase's

    @property
    def buffered(self) -> int:
        """Bytes waiting to be written."""
        return len(self._buffer)

    def flush(self) -> None:
        """Write what the core queued (non-blocking: the bytes join this connection's
        buffer) and let the connection look at its timers and events again.  If the core
        raises, this connection is closed (1011) and the error logged; it does not
        propagate."""
        try:
            self._pull()
        except Exception as exc:
            self._fail(exc)
        if self._reader_must_look():
            self._kick()

    def _reader_must_look(self) -> bool:
        """Whether the reader must wake: it is not waiting for input, or the stack has
        events queued or a deadline earlier than the one it waits for.  A push that only
        queued frames (the fan-out case) wakes nobody but the writer."""
        scope = self._read_scope
        stack = self.stack
        if scope is None or self._abort is not None or stack.state is not StackState.OPEN:
            return True
        if self._failed:
            return True
        deadline = stack.next_deadline()
        if deadline is not None and deadline < scope.deadline:
            return True
        # Queued events (an unknown queue counts as non-empty: the reader looks).
        return bool(getattr(stack, "_events", True)) or bool(getattr(stack.core, "_events", True))

    def abort(self, reason: str = "aborted by the application") -> None:
        """Drop the TCP connection now, without a close handshake; the connection ends with
        ``ConnectionClosed(1006, reason, by_peer=False)`` (the core sees an end of input)."""
        if self._abort is None:
            self._abort = (ABNORMAL, reason, None)
            self._kick()

    # -- inside --------------------------------------------------------------------------

    def _now(self) -> float:
        return trio.current_time()

    def _kick(self) -> None:
        self._kicked = True
        scope = self._read_scope
        if scope is not None:
            scope.cancel()

    def _pull(self) -> None:
        if self._abort is not None or self._failed:
            return
        data = self.stack.data_to_send()
        if not data:
            return
        self._buffer += data
        limit = self.server.max_buffer
        if len(self._buffer) > limit:
            reason = f"outgoing buffer over {limit} bytes: the peer is not reading"
            self._abort = (ABORTED, reason, RemoteProtocolError(reason))
            self._buffer.clear()
            self._kick()
        self._start_writer()

    def _start_writer(self) -> None:
        nursery = self._nursery
        if self._buffer and not self._writing and not self._broken and nursery is not None:
            if self._fd >= 0 and self._abort is None and not self._write_now():
                return
            self._writing = True
            nursery.start_soon(self._writer)

    def _write_now(self) -> bool:
        """Write what the socket takes at once, as asyncio's transports do (no task switch
        for a push that fits in the socket buffer); ``True`` when bytes are left for the
        writer task."""
        buffer = self._buffer
        try:
            sent = os.write(self._fd, buffer)
        except BlockingIOError:
            return True
        except OSError:
            return True  # the writer task meets the error and ends the connection
        del buffer[:sent]
        return bool(buffer)

    async def _run(self) -> None:
        try:
            self.stack.connection_made(trio.current_time())
        except Exception as exc:
            self._fail(exc)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._start_writer()
                await self._reader()
                if self._abort is not None:
                    nursery.cancel_scope.cancel()
                else:
                    # The last bytes (a close frame, an HTTP answer) get close_timeout to leave.
                    self._start_writer()
                    nursery.cancel_scope.deadline = trio.current_time() + self.server.close_timeout
        finally:
            # The stream is about to close: nothing may be written to its descriptor again.
            self._nursery = None
            self._fd = -1

    def _fail(self, exc: Exception) -> None:
        """The core, the factory or a handler raised: log it, queue the last answer (a 500
        before the upgrade, a 1011 close frame after), tell the core and the application,
        and end this connection only."""
        if self._failed:
            return
        self._failed = True
        error = log_failure(self.remote, exc)
        stack = self.stack
        if self._abort is None:
            self._buffer += failure_output(stack)
            self._start_writer()
        self._dispatch_quietly(failure_events(stack, error, trio.current_time()))
        self._kick()

    async def _reader(self) -> None:
        # The read loop in one coroutine (an idle connection waits in as few frames as
        # possible); whatever it raises ends this connection only.
        try:
            stack = self.stack
            stream = self.stream
            while True:
                if self._failed:
                    return
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
        except Exception as exc:
            self._fail(exc)

    def _drop(self, code: int, reason: str, error: RemoteProtocolError | None) -> None:
        """End the connection without a close handshake; the core learns it as an EOF."""
        self._dispatch_quietly(drop_events(self.stack, code, reason, error, trio.current_time()))

    async def _writer(self) -> None:
        """Write until the buffer is empty, then end (:meth:`_start_writer` starts the next)."""
        stream = self.stream
        try:
            while self._buffer:
                data = bytes(self._buffer)
                self._buffer.clear()
                try:
                    await stream.send_all(data)
                except _NETWORK_ERRORS:
                    self._broken = True
                    self._buffer.clear()
                    self._kick()
                    return
        finally:
            self._writing = False


def _peer_address(stream: trio.abc.Stream) -> object:
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        try:
            return inner.socket.getpeername()
        except OSError:
            return None
    return None


def _peer_name(stream: trio.abc.Stream) -> str:
    peer = _peer_address(stream)
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return ""


class Server(ServerBase[ServerCoreT, ServerConnection[ServerCoreT]]):
    """A running :func:`serve`: its listeners, ports and live connections."""

    def __init__(
        self,
        factory: CoreFactory[ServerCoreT],
        *,
        http_handler: HttpHandler | None,
        on_event: EventHandler | None,
        max_connections: int,
        max_connections_per_address: int | None = DEFAULT_MAX_PER_ADDRESS,
        max_buffer: int,
        max_message_size: int,
        handshake_timeout: float | None,
        close_timeout: float,
        tls_handshake_timeout: float,
    ) -> None:
        super().__init__(
            factory,
            http_handler=http_handler,
            on_event=on_event,
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
            max_buffer=max_buffer,
            max_message_size=max_message_size,
            handshake_timeout=handshake_timeout,
            close_timeout=close_timeout,
        )
        self.tls_handshake_timeout = tls_handshake_timeout
        self.listeners: list[trio.abc.Listener[Any]] = []

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

    async def _handle(self, stream: trio.abc.Stream) -> None:
        try:
            address = peer_host(_peer_address(stream))
            if not self.admission.admit(address):
                await self._refuse(stream)
                return
            try:
                with peer_context(address):
                    # (Served here rather than in a coroutine of its own: an idle
                    # connection waits in as few frames as possible.)
                    conn = ServerConnection(self, stream)
                    if isinstance(stream, trio.SSLStream) and not await self._tls_handshake(conn):
                        return
                    self.connections[conn] = None
                    try:
                        await conn._run()
                    finally:
                        self._ended(conn)
            finally:
                self.admission.release(address)
        finally:
            await trio.aclose_forcefully(stream)

    async def _refuse(self, stream: trio.abc.Stream) -> None:
        """Answer 503 (plain TCP only: no TLS handshake is spent on it) after the request
        head, then end our side and drop what else comes, for at most a second in all
        (answering before the request, or closing on unread input, can lose the answer).
        Past ``MAX_REFUSING`` such connections at once, close at once instead."""
        admission = self.admission
        if not isinstance(stream, trio.SocketStream) or not admission.start_refusal():
            return
        try:
            with trio.move_on_after(REFUSE_LINGER), contextlib.suppress(*_NETWORK_ERRORS):
                head = RefusedHead()
                while not head.complete:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                    if not data:
                        break
                    head.feed(data)
                await stream.send_all(SERVICE_UNAVAILABLE)
                await stream.send_eof()
                while await stream.receive_some(_RECEIVE_SIZE):
                    pass
        finally:
            admission.end_refusal()

    def _ended(self, conn: ServerConnection[ServerCoreT]) -> None:
        if not conn.failed and conn.stack.state is not StackState.CLOSED:
            # Cancelled (the server is stopping): the core must learn that its
            # connection is gone, or the application keeps pushing to it.
            try:
                conn._drop(ABNORMAL, "the server stopped", None)
            except Exception as exc:
                log_failure(conn.remote, exc)
        self._forget(conn)

    async def _tls_handshake(self, conn: ServerConnection[ServerCoreT]) -> bool:
        stream = conn.stream
        assert isinstance(stream, trio.SSLStream)
        try:
            with trio.fail_after(self.tls_handshake_timeout):
                await stream.do_handshake()
        except (*_NETWORK_ERRORS, trio.TooSlowError) as exc:
            error = RemoteProtocolError(f"TLS handshake failed: {_describe(exc)}")
            conn._dispatch_quietly([HandshakeFailed(error)])
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
    max_connections_per_address: int | None = DEFAULT_MAX_PER_ADDRESS,
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

    Limits: past ``max_connections`` live connections, or ``max_connections_per_address``
    from one IP address (``None``: no per-address limit), a new connection gets ``503`` and
    is closed.  Isolation: whatever a connection's core, the factory, ``http_handler`` or
    ``on_event`` raises (other than the protocol errors the stack handles) ends that
    connection only -- ``500`` before the upgrade, close ``1011`` after, then
    ``HandshakeFailed`` / ``ConnectionClosed(1011, error=LocalProtocolError)`` to
    ``on_event`` -- and is logged on the ``trackwire.server`` logger without secrets.
    While a connection's code runs, :func:`trackwire.current_peer` is its peer's address.
    """
    if max_buffer < 1:
        raise ValueError("max_buffer must be >= 1")
    server = Server(
        factory,
        http_handler=http_handler,
        on_event=on_event,
        max_connections=max_connections,
        max_connections_per_address=max_connections_per_address,
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
