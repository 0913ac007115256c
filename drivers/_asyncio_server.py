"""The asyncio server: any server core behind a WebSocket + HTTP server on asyncio.

The twin of the trio server (:func:`trackwire.drivers.trio.serve`), with the same arguments,
limits and guarantees.  Each accepted connection is its own :class:`asyncio.Protocol`
with its own :class:`ServerStack` and timer: input is fed to the stack as it arrives, the
bytes it produces go straight to the transport, and the timer wakes it at the stack's
``next_deadline``.  Nothing waits on another connection: a peer that stops reading only
fills its own transport buffer, and past ``max_buffer`` bytes that connection is aborted.
Whatever one connection's core or handlers raise ends that connection only (500 or 1011).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from trackwire import Event, RemoteProtocolError, peer_context
from trackwire.ws import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    CoreFactory,
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

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_PER_ADDRESS",
    "EventHandler",
    "Server",
    "ServerConnection",
    "serve",
    "start_server",
]

ServerCoreT = TypeVar("ServerCoreT", bound=TextCore)

EventHandler = Callable[["ServerConnection[Any]", Event], None]
"""``on_event(connection, event)``: called in order for every event of every connection."""


class ServerConnection(asyncio.Protocol, ConnectionBase[ServerCoreT]):
    """One accepted TCP connection of a :class:`Server`, with its :class:`ServerStack`.

    After the application changed the core from outside (``ITrackServer.push_state``,
    ``FleetFreedomHub.publish``), :meth:`flush` writes what the core queued.
    """

    server: Server[ServerCoreT]

    def __init__(self, server: Server[ServerCoreT]) -> None:
        self.server = server
        self.stack: ServerStack[ServerCoreT] = ServerStack(
            server.factory,
            http_handler=server.http_handler,
            max_message_size=server.max_message_size,
            handshake_timeout=server.handshake_timeout,
            close_timeout=server.close_timeout,
        )
        self.remote = ""
        """``host:port`` of the peer (``""`` when unknown)."""
        self.address = ""
        """The peer's IP address (``""`` when unknown): what the per-address limits count."""
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._refused: RefusedHead | None = None
        """The head of a refused connection's request (``None``: admitted)."""
        self._failed = False
        self._ended = False
        """No more input goes to the stack (closed, aborted, failed or gone)."""
        self._lost = False

    # -- what the application sees (and core, state, failed, send, close) -----------------

    @property
    def buffered(self) -> int:
        """Bytes waiting to be written."""
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def flush(self) -> None:
        """Write what the core queued and look at its events and timers again.  If the core
        raises, this connection is closed (1011) and the error logged; it does not
        propagate."""
        self._step(None)

    def abort(self, reason: str = "aborted by the application") -> None:
        """Drop the TCP connection now, without a close handshake; the connection ends with
        ``ConnectionClosed(1006, reason, by_peer=False)`` (the core sees an end of input)."""
        self._drop(ABNORMAL, reason, None)

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = peer_host(peer)
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote = f"{peer[0]}:{peer[1]}"
        server = self.server
        if not server.admission.admit(self.address):
            # 503 (plain TCP only), our side ended, the client's input read and dropped for
            # at most a second (closing on unread input would reset the connection).
            self._ended = True
            if (
                transport.get_extra_info("sslcontext") is None
                and transport.can_write_eof()
                and server.admission.start_refusal()
            ):
                self._refused = RefusedHead()
                self._timer = self._loop.call_later(REFUSE_LINGER, transport.abort)
            else:
                transport.abort()
            return
        self._admitted = True
        server.connections[self] = None
        self._step(self.stack.connection_made)

    def data_received(self, data: bytes) -> None:
        refused = self._refused
        if refused is None:
            self._step(self.stack.receive, data)
        elif not refused.complete and refused.feed(data):
            self._answer_refused()

    def _answer_refused(self) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(SERVICE_UNAVAILABLE)
        transport.write_eof()

    def eof_received(self) -> bool:
        refused = self._refused
        if refused is not None:
            if not refused.complete:
                self._answer_refused()
            return False  # the 503 went out: close
        self._step(self.stack.receive_eof)
        return True  # the transport stays open for what is left to write

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_timer()
        if self._refused is not None:
            self.server.admission.end_refusal()
        if not self._ended:
            # Reset, or the server is stopping: the core learns it as an end of input.
            reason = "the server stopped" if self.server._closing else "the connection was lost"
            self._drop(ABNORMAL, reason, None)
        if self._admitted:
            self._admitted = False
            self.server.admission.release(self.address)
            self.server._forget(self)

    # -- inside --------------------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time()

    def _step(self, action: Callable[..., None] | None, *args: Any) -> None:
        """Run one input (or none: a flush) through the stack, then write and reschedule;
        anything raised ends this connection only."""
        if self._ended:
            return
        try:
            with peer_context(self.address):
                if action is not None:
                    action(*args, self._loop.time())
                self._after()
        except Exception as exc:
            self._fail(exc)

    def _after(self) -> None:
        stack = self.stack
        transport = self.transport
        assert transport is not None
        self._dispatch(stack.events())
        data = stack.data_to_send()
        if data:
            transport.write(data)
            limit = self.server.max_buffer
            if transport.get_write_buffer_size() > limit:
                reason = f"outgoing buffer over {limit} bytes: the peer is not reading"
                self._drop(ABORTED, reason, RemoteProtocolError(reason))
                return
        if stack.state is StackState.CLOSED:
            self._finish()
            return
        self._schedule(stack.next_deadline())

    def _schedule(self, deadline: float | None) -> None:
        timer = self._timer
        if timer is not None:
            if deadline is not None and timer.when() == deadline:
                return
            timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._step(self.stack.handle_timer)

    def _finish(self) -> None:
        """The stack is done: the last bytes get ``close_timeout`` to leave, then the
        socket is closed."""
        self._ended = True
        self._cancel_timer()
        transport = self.transport
        if transport is None or self._lost:
            return
        transport.close()  # after the buffered bytes are written
        if transport.get_write_buffer_size():
            self._timer = self._loop.call_later(self.server.close_timeout, transport.abort)

    def _fail(self, exc: Exception) -> None:
        """The core, the factory or a handler raised: log it, write the last answer (a 500
        before the upgrade, a 1011 close frame after), tell the core and the application,
        and end this connection only."""
        if self._failed:
            return
        self._failed = True
        error = log_failure(self.remote, exc)
        stack = self.stack
        output = failure_output(stack)
        transport = self.transport
        if output and transport is not None and not self._lost:
            transport.write(output)
        self._dispatch_quietly(failure_events(stack, error, self._loop.time()))
        self._finish()

    def _drop(self, code: int, reason: str, error: RemoteProtocolError | None) -> None:
        """End the connection without a close handshake; the core learns it as an EOF."""
        if self._ended:
            return
        self._ended = True
        self._cancel_timer()
        try:
            with peer_context(self.address):
                events = drop_events(self.stack, code, reason, error, self._loop.time())
                self._dispatch_quietly(events)
        except Exception as exc:
            self._ended = False
            self._fail(exc)
        transport = self.transport
        if transport is not None and not self._lost:
            transport.abort()


class Server(ServerBase[ServerCoreT, ServerConnection[ServerCoreT]]):
    """A running asyncio server (:func:`start_server`, :func:`serve`): its listening
    sockets, ports and live connections.  ``async with`` it, or :meth:`aclose` it."""

    _server: asyncio.Server | None = None
    _closing = False

    @property
    def ports(self) -> list[int]:
        """The bound TCP ports (one per listening socket)."""
        server = self._server
        if server is None:
            return []
        return [int(sock.getsockname()[1]) for sock in server.sockets]

    async def aclose(self) -> None:
        """Stop listening and drop every connection (each core sees an end of input and
        ``on_event`` gets ``ConnectionClosed(1006, "the server stopped")``).  Idempotent."""
        if self._closing:
            return
        self._closing = True
        server = self._server
        if server is not None:
            server.close()
        for conn in list(self.connections):
            conn._drop(ABNORMAL, "the server stopped", None)
        # Let the transports report their end (connection_lost) before returning.
        for _ in range(3):
            if not self.connections:
                break
            await asyncio.sleep(0)
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), self.close_timeout)

    async def __aenter__(self) -> Server[ServerCoreT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def start_server(
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
) -> Server[ServerCoreT]:
    """Start serving (see :func:`serve` for the arguments); returns the running
    :class:`Server`: ``async with await start_server(factory) as server: ...``."""
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
    )
    loop = asyncio.get_running_loop()
    tls_timeout = DEFAULT_HANDSHAKE_TIMEOUT if handshake_timeout is None else handshake_timeout
    server._server = await loop.create_server(
        lambda: ServerConnection(server),
        host,
        port,
        ssl=ssl_context,
        ssl_handshake_timeout=tls_timeout if ssl_context is not None else None,
    )
    return server


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
    started: Callable[[Server[ServerCoreT]], object] | None = None,
) -> None:
    """Serve ``factory``'s cores (and ``http_handler``'s plain HTTP) on ``host:port`` until
    cancelled; ``started(server)`` is called once it listens (what ``task_status`` is to the
    trio :func:`~trackwire.drivers.trio.serve`, whose other arguments are the same).

    Every connection has its own :class:`ServerStack`; ``on_event(conn, event)`` sees every
    event of every connection, in order (keep it quick: it runs on the event loop).  A
    connection whose unwritten output passes ``max_buffer`` bytes (a peer that stopped
    reading) is aborted and ends with ``ConnectionClosed(1008, reason, by_peer=False,
    error=RemoteProtocolError)``.  ``port=0`` picks a free port; ``ssl_context`` serves TLS
    (a failed TLS handshake is asyncio's to report: the connection never reaches here).

    Limits: past ``max_connections`` live connections, or ``max_connections_per_address``
    from one IP address (``None``: no per-address limit), a new connection gets ``503`` and
    is closed.  Isolation: whatever a connection's core, the factory, ``http_handler`` or
    ``on_event`` raises ends that connection only -- ``500`` before the upgrade, close
    ``1011`` after, then ``HandshakeFailed`` / ``ConnectionClosed(1011,
    error=LocalProtocolError)`` to ``on_event`` -- and is logged on the
    ``trackwire.server`` logger without secrets.  While a connection's code runs,
    :func:`trackwire.current_peer` is its peer's address.  When cancelled, every
    connection is dropped (its core sees an end of input) before this returns.
    """
    server = await start_server(
        factory,
        host,
        port,
        http_handler=http_handler,
        on_event=on_event,
        ssl_context=ssl_context,
        max_connections=max_connections,
        max_connections_per_address=max_connections_per_address,
        max_buffer=max_buffer,
        max_message_size=max_message_size,
        handshake_timeout=handshake_timeout,
        close_timeout=close_timeout,
    )
    try:
        if started is not None:
            started(server)
        await asyncio.Event().wait()  # until cancelled
    finally:
        await server.aclose()
