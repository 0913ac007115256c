"""The asyncio client driver: any client core on asyncio streams, reconnecting by policy.

One reader task per connection reads, runs the timers, makes the attempts and fills a
bounded queue of events; writes (the reader's and :meth:`Connection.send`'s) go through one
lock.  The sans-IO part is :class:`~trackwire.drivers._session.ClientSession`, shared with
the blocking driver.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from trackwire import ClientCore, Event, LocalProtocolError, ReconnectPolicy
from trackwire.itrack import AuthError, TrackerInfo
from trackwire.ws import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    HttpGet,
    WsAddress,
)

from ._session import (
    DEFAULT_CONNECT_TIMEOUT,
    READ_SIZE,
    ClientSession,
    HeaderPairs,
    LoginExchange,
    SessionView,
    TrackerListCall,
    describe,
)

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "Connection",
    "connect",
    "itrack_login",
    "itrack_tracker_list",
]

DEFAULT_QUEUE_SIZE = 1024
"""Events that may wait for the application; past that the reader stops reading."""
_POLL = 1.0
"""Python 3.10 only: the longest wait before a deadline that :meth:`send` moved is seen."""

CoreT = TypeVar("CoreT", bound=ClientCore[Any, Any])
T = TypeVar("T")

_Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _End:
    """Marks the end of the event queue."""


_END = _End()


async def _within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable`` bounded by ``seconds`` (:class:`TimeoutError` past that)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    else:  # pragma: no cover - exercised on 3.10 only
        return await asyncio.wait_for(awaitable, seconds)


async def _open(address: WsAddress, ssl_context: ssl.SSLContext | None, timeout: float) -> _Streams:
    """TCP, then TLS for ``wss``/``https`` (verified unless ``ssl_context`` says otherwise)."""
    context = (ssl_context or ssl.create_default_context()) if address.tls else None
    return await _within(
        timeout,
        asyncio.open_connection(
            address.host,
            address.port,
            ssl=context,
            server_hostname=address.host if context is not None else None,
            limit=READ_SIZE,
        ),
    )


async def _shut(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Close a stream, waiting a bounded time for it; abort it if cancelled or late."""
    try:
        writer.close()
        await _within(timeout, writer.wait_closed())
    except (OSError, asyncio.TimeoutError):
        writer.transport.abort()
    except BaseException:
        writer.transport.abort()
        raise


async def _exchange(
    address: WsAddress,
    request: bytes,
    feed: Callable[[bytes], bool],
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> None:
    """One HTTP exchange on a fresh connection: write ``request``, ``feed`` the answer until
    it returns true (``b""`` at the end of input); everything within ``timeout`` seconds."""

    async def run() -> None:
        reader, writer = await _open(address, ssl_context, timeout)
        try:
            writer.write(request)
            await writer.drain()
            while True:
                data = await reader.read(READ_SIZE)
                if feed(data) or not data:
                    return
        finally:
            await _shut(writer, timeout)

    await _within(timeout, run())


async def itrack_login(
    base_url: str,
    login: str,
    password: str,
    *,
    dealer_id: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> str:
    """``POST <base>user/auth`` and return the session hash.

    Raises :class:`LoginRefused` for an API error (wrong password…),
    :class:`~trackwire.itrack.AuthError` for a broken answer, :class:`OSError` for the network.
    """
    login_exchange = LoginExchange(base_url, login, password, dealer_id)
    await _exchange(
        login_exchange.address, login_exchange.request, login_exchange.feed, ssl_context, timeout
    )
    return login_exchange.session_hash()


async def itrack_tracker_list(
    base_url: str,
    session_hash: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> list[TrackerInfo]:
    """``POST <base>tracker/list`` with a session hash: the user's trackers, each with its
    label and source id.

    Raises :class:`~trackwire.itrack.TrackerListRefused` for an API error (a dead hash…),
    :class:`~trackwire.itrack.TrackerListError` for a broken answer, :class:`OSError` for the
    network.
    """
    call = TrackerListCall(base_url, session_hash)
    await _exchange(call.address, call.request, call.feed, ssl_context, timeout)
    return call.trackers()


class Connection(SessionView[CoreT]):
    """A client core on asyncio streams, reconnecting as its policy says.

    ``async for event in conn`` (ending after :class:`GaveUp`) or :meth:`next_event`;
    ``await conn.send(item)`` hands a command to the core and writes it; :meth:`aclose` ends
    the session (idempotent, cancellation-safe).  Use it with ``async with``
    (see :func:`connect`).
    """

    def __init__(
        self,
        session: ClientSession[CoreT],
        *,
        ssl_context: ssl.SSLContext | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self._session = session
        self._ssl_context = ssl_context
        self._queue: asyncio.Queue[Event | _End] = asyncio.Queue(queue_size)
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._timeout: Any = None
        """The reader's current ``asyncio.Timeout`` (3.11+), moved when a deadline moves."""
        self._error: BaseException | None = None
        self._ended = False
        self._closed = False

    # -- context ---------------------------------------------------------------------

    async def __aenter__(self) -> Connection[CoreT]:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def open(self) -> None:
        """Start the reader task, which makes the first attempt (``async with`` does this)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    # -- events ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self.next_event()
        if event is None:
            raise StopAsyncIteration
        return event

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (``None``: until one comes).

        Returns ``None`` when the time ran out, or after the last event.  An unexpected
        error of the reader task is raised here once the events before it were delivered.
        """
        if self._ended:
            return None
        self.open()
        queue = self._queue
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            task = self._task
            if task is None or task.done():
                item = _END
            elif timeout is None:
                item = await queue.get()
            else:
                try:
                    item = await _within(timeout, queue.get())
                except asyncio.TimeoutError:
                    return None
        if isinstance(item, _End):
            self._ended = True
            if self._error is not None:
                raise self._error
            return None
        return item

    async def send(self, item: Any) -> object:
        """Hand ``item`` to the core and write what it queued; returns the core's handle
        (the FleetFreedom ``reqId``, …).  Raises :class:`LocalProtocolError` once closed."""
        if self._closed:
            raise LocalProtocolError("the connection is closed")
        self.open()
        loop = asyncio.get_running_loop()
        handle = self._session.send(item, loop.time())
        await self._flush()
        self._move_timeout()
        return handle

    async def aclose(self) -> None:
        """End the session: the Atmosphere close request (if any), the WebSocket close
        handshake (bounded by its timeout), then the socket.  Idempotent; if cancelled,
        the socket is still closed."""
        task = self._task
        if self._closed:
            if task is not None:
                await asyncio.wait({task})  # a close under way: wait for its end
            return
        self._closed = True
        if task is None:  # never started: nothing to close but the core
            self._session.close(asyncio.get_running_loop().time())
            self._end_queue()
            return
        try:
            if not task.done():
                await self._close_gracefully(task)
        finally:
            if not task.done():
                task.cancel()
            self._abort()
        await asyncio.wait({task})

    async def _close_gracefully(self, task: asyncio.Task[None]) -> None:
        session = self._session
        loop = asyncio.get_running_loop()
        url = session.close(loop.time())
        if url is not None:
            await self._http_close(url)
        if self._writer is None:
            return  # no socket: the reader waits or connects; it is cancelled
        await self._flush()
        self._move_timeout()
        # The reader sees the close handshake through, bounded by the stack's close timeout.
        await asyncio.wait({task}, timeout=session.close_timeout + session.connect_timeout)

    # -- the reader task -------------------------------------------------------------

    async def _run(self) -> None:
        session = self._session
        loop = asyncio.get_running_loop()
        try:
            await self._attempt()
            while True:
                await self._deliver()
                if session.finished:
                    break
                if self._writer is None:
                    wake = session.wake_at
                    assert wake is not None
                    await asyncio.sleep(max(0.0, wake - loop.time()))
                    await self._attempt()
                    continue
                if session.connection_over:
                    await self._after(loop.time())
                    continue
                deadline = session.next_deadline()
                data = await self._read(deadline)
                now = loop.time()
                if data is not None:
                    if data:
                        session.receive(data, now)
                    else:
                        session.receive_eof(now)
                if deadline is not None and now >= deadline:
                    session.handle_timer(now)
                await self._after(now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error = exc
        finally:
            self._abort()
            if session.closing and not session.finished:
                session.connection_ended(loop.time())
            self._end_queue()

    def _end_queue(self) -> None:
        """Queue what is left and the end mark, as far as room allows (``next_event`` finds
        the task done once the queue is drained)."""
        events = self._session.events
        queue = self._queue
        try:
            while events:
                queue.put_nowait(events[0])
                events.popleft()
            queue.put_nowait(_END)
        except asyncio.QueueFull:
            pass

    async def _deliver(self) -> None:
        events = self._session.events
        queue = self._queue
        while events:
            event = events.popleft()
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                await queue.put(event)  # the application is behind: stop reading meanwhile

    async def _read(self, deadline: float | None) -> bytes | None:
        """What the socket has (``b""``: the end), or ``None`` when the deadline came."""
        reader = self._reader
        assert reader is not None
        if sys.version_info >= (3, 11):
            timeout = asyncio.timeout_at(deadline)
            try:
                async with timeout:
                    self._timeout = timeout
                    try:
                        return await reader.read(READ_SIZE)
                    finally:
                        self._timeout = None
            except TimeoutError:
                return None if timeout.expired() else b""
            except OSError:
                return b""
        else:  # pragma: no cover - exercised on 3.10 only
            loop = asyncio.get_running_loop()
            wait = _POLL if deadline is None else min(_POLL, deadline - loop.time())
            try:
                return await asyncio.wait_for(reader.read(READ_SIZE), max(0.0, wait))
            except asyncio.TimeoutError:
                return None
            except OSError:
                return b""

    def _move_timeout(self) -> None:
        """A send or a close may have brought a deadline forward: wake the reader for it."""
        timeout = self._timeout
        if timeout is None:
            return
        session = self._session
        if session.connection_over:  # e.g. closed during the handshake: end it now
            deadline: float | None = asyncio.get_running_loop().time()
        else:
            deadline = session.next_deadline()
        when = timeout.when()
        if deadline is not None and (when is None or deadline < when):
            timeout.reschedule(deadline)

    async def _after(self, now: float) -> None:
        """After input or a timer: a login the core asked for, close requests, then writes,
        then the end of a socket."""
        session = self._session
        request = session.take_login(now)
        if request is not None:
            await self._login(LoginExchange(request=request))
        while (url := session.take_close_request()) is not None:
            await self._http_close(url)
        await self._flush()
        if session.connection_over:
            writer = self._writer
            self._reader = self._writer = None
            if writer is not None:
                await _shut(writer, session.close_timeout)
            session.connection_ended(asyncio.get_running_loop().time())

    async def _flush(self) -> None:
        """Write what the session queued; a write that fails or stalls ends the connection."""
        session = self._session
        async with self._lock:
            writer = self._writer
            if writer is None:
                return
            data = session.data_to_send()
            if not data:
                return
            try:
                writer.write(data)
                await _within(session.connect_timeout, writer.drain())
            except (OSError, asyncio.TimeoutError):
                writer.transport.abort()  # the reader sees the end of input

    async def _attempt(self) -> None:
        session = self._session
        session.begin_attempt()
        loop = asyncio.get_running_loop()
        try:
            address = session.address()
            self._reader, self._writer = await _open(
                address, self._ssl_context, session.connect_timeout
            )
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            session.attempt_failed(describe(exc), loop.time())
            return
        session.transport_ready(loop.time())
        await self._after(loop.time())

    def _abort(self) -> None:
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.transport.abort()

    async def _login(self, exchange: LoginExchange) -> None:
        """``user/auth`` on a fresh connection; the answer goes back to the core."""
        session = self._session
        try:
            await _exchange(
                exchange.address,
                exchange.request,
                exchange.feed,
                self._ssl_context,
                session.connect_timeout,
            )
            result, error = exchange.outcome()
        except (OSError, ValueError, asyncio.TimeoutError, AuthError) as exc:
            result, error = None, describe(exc)
        session.login_answered(result, error, asyncio.get_running_loop().time())

    async def _http_close(self, url: str) -> None:
        """Send the Atmosphere close request on a fresh connection (best effort, bounded)."""
        try:
            request = HttpGet(url)
            await _exchange(
                request.address,
                request.bytes_to_send(),
                request.receive,
                self._ssl_context,
                self._session.connect_timeout,
            )
        except (OSError, ValueError, asyncio.TimeoutError):
            pass


def connect(
    core: CoreT,
    url: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    reconnect: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 (frozen)
    headers: HeaderPairs = (),
    subprotocols: Sequence[str] = (),
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    rng: Callable[[], float] | None = None,
    stall_timeout: float | None = None,
) -> Connection[CoreT]:
    """An asyncio connection for a client core; use it with ``async with``.

    ``url`` defaults to ``core.url_to_open``, read again before every attempt (it carries
    the Atmosphere tracking id or FleetFreedom ghostId); ``reconnect=None`` never
    reconnects.  TLS (``wss``/``https``) verifies certificates unless ``ssl_context`` says
    otherwise.  ``connect_timeout`` bounds TCP and TLS, then the upgrade's answer;
    ``close_timeout`` the close handshake; ``queue_size`` how many events may wait for the
    application (the reader stops reading past that); ``rng`` is the backoff's jitter source.
    Every attempt, failed ones included, is reported as an event.  ``stall_timeout``
    (seconds, off by default) queues :class:`Stalled` when no application data came that
    long while subscribed; a core's :class:`LoginRequested` is performed over HTTP.
    """
    session = ClientSession(
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
        wall_offset=time.time() - time.monotonic(),  # asyncio's default loop clock
    )
    return Connection(session, ssl_context=ssl_context, queue_size=queue_size)
