"""The blocking client driver (plain sockets, ``selectors``, no threads), and the sans-IO
client session every client driver shares.

:class:`ClientSession` holds one client core across its WebSocket connections: it builds a
:class:`~trackwire.ws.ClientStack` per attempt, acts on the events a driver must act on
(``CloseRequested``, ``InactivityTimeout``), and asks the :class:`Reconnector` what to do when
a connection ends.  A driver only moves bytes, sleeps until :meth:`ClientSession.next_deadline`
and sends the HTTP close requests the session hands out.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import h11

from trackwire import ClientCore, Event, LocalProtocolError, ReconnectPolicy, __version__
from trackwire.atmosphere import InactivityTimeout
from trackwire.fleetfreedom import CloseRequested
from trackwire.itrack import AuthError, AuthExchange, AuthFailure, build_auth_request
from trackwire.ws import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientStack,
    Connected,
    HandshakeFailed,
    Rejected,
    StackState,
    WsAddress,
    split_ws_url,
)

from ._events import GaveUp, ReconnectFailed, Reconnecting
from ._reconnect import Reconnector

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ClientSession",
    "CloseRequest",
    "Connection",
    "LoginRefused",
    "connect",
    "itrack_login",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to open TCP and TLS, and again for the WebSocket handshake's answer."""
READ_SIZE = 65536
_USER_AGENT = f"trackwire/{__version__}"

CoreT = TypeVar("CoreT", bound=ClientCore[Any, Any])
HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


# -- shared by the drivers (no I/O) ----------------------------------------------------------


class LoginRefused(AuthError):
    """``user/auth`` answered an API error (102 wrong login or password, 103, …)."""

    def __init__(self, failure: AuthFailure) -> None:
        super().__init__(f"user/auth refused: {failure.code} {failure.description}")
        self.failure = failure
        self.code = failure.code
        self.description = failure.description


class _ResumeView:
    """The core as the :class:`Reconnector` sees it.

    A core whose attempt failed before the WebSocket opened never left ``CONNECTING``; it is
    ready for the next attempt as it is, and its ``reconnect()`` would refuse that state.
    """

    __slots__ = ("core",)

    def __init__(self, core: ClientCore[Any, Any]) -> None:
        self.core = core

    @property
    def resumable(self) -> bool:
        return self.core.resumable

    @property
    def url_to_open(self) -> str:
        return self.core.url_to_open

    def reconnect(self) -> None:
        if self.core.state.name != "CONNECTING":
            self.core.reconnect()


def describe(exc: BaseException) -> str:
    """A one-line account of why an attempt failed."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ClientSession(Generic[CoreT]):
    """One client core across WebSocket connections, without I/O.

    The driver calls :meth:`begin_attempt` (the URL to open), then :meth:`transport_ready`
    once TCP/TLS is up or :meth:`attempt_failed`; feeds :meth:`receive`,
    :meth:`receive_eof`, :meth:`handle_timer`; sends :meth:`take_close_request` URLs over
    HTTP before writing :meth:`data_to_send`; and when :attr:`connection_over` holds it
    closes the socket and calls :meth:`connection_ended`.  Events wait in :attr:`events`;
    :class:`GaveUp` is always the last one, then :attr:`finished` holds.
    """

    __slots__ = (
        "_close_sent",
        "_close_urls",
        "_failure",
        "close_timeout",
        "closing",
        "connect_timeout",
        "core",
        "current_url",
        "events",
        "finished",
        "headers",
        "max_message_size",
        "opened",
        "reconnector",
        "stack",
        "subprotocols",
        "url",
        "wake_at",
    )

    def __init__(
        self,
        core: CoreT,
        url: str | None = None,
        *,
        reconnect: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 (frozen)
        headers: HeaderPairs = (),
        subprotocols: Sequence[str] = (),
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be > 0")
        self.core = core
        self.url = url
        """The URL given to ``connect`` (every attempt opens it), or ``None``: the core's."""
        view = cast("ClientCore[Any, Any]", _ResumeView(core))
        self.reconnector = Reconnector(view, reconnect, rng)
        self.headers = list(headers)
        self.subprotocols = list(subprotocols)
        self.connect_timeout = connect_timeout
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        self.stack: ClientStack[CoreT] | None = None
        self.events: deque[Event] = deque()
        self.finished = False
        """:class:`GaveUp` was queued: no further connection, no further event."""
        self.closing = False
        """The application closed the session."""
        self.opened = False
        """The current attempt reached :class:`Connected`."""
        self.wake_at: float | None = None
        """When the next attempt is due (``None``: no attempt waits)."""
        self.current_url = url or core.url_to_open
        self._close_urls: list[str] = []
        self._close_sent = False
        self._failure: str | None = None

    # -- introspection ---------------------------------------------------------------

    @property
    def state(self) -> StackState:
        """The current WebSocket's state; ``CLOSED`` between connections and at the end."""
        stack = self.stack
        if stack is not None:
            return stack.state
        return StackState.CLOSED if self.finished or self.wake_at is not None else StackState.IDLE

    @property
    def connection_over(self) -> bool:
        """The current WebSocket is over: close the socket, then :meth:`connection_ended`."""
        stack = self.stack
        return stack is not None and stack.state is StackState.CLOSED

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is due (connected) or the next attempt (waiting)."""
        stack = self.stack
        if stack is not None:
            return stack.next_deadline()
        return self.wake_at

    # -- attempts --------------------------------------------------------------------

    def begin_attempt(self) -> str:
        """Start an attempt: the URL to open (the core's, re-read each time, unless fixed)."""
        self.wake_at = None
        self.opened = False
        self._failure = None
        self.current_url = self.url or self.core.url_to_open
        return self.current_url

    def address(self) -> WsAddress:
        """Host, port and TLS of the current attempt (:class:`ValueError` for a bad URL)."""
        return split_ws_url(self.current_url)

    def transport_ready(self, now: float) -> None:
        """TCP (and TLS) is up: the upgrade request is queued for :meth:`data_to_send`."""
        stack = ClientStack.from_url(
            self.core,
            self.current_url,
            subprotocols=self.subprotocols,
            extra_headers=self.headers,
            max_message_size=self.max_message_size,
            close_timeout=self.close_timeout,
            handshake_timeout=self.connect_timeout,
        )
        self.stack = stack
        stack.connection_made(now)

    def attempt_failed(self, error: str, now: float) -> None:
        """The socket could not be opened: report it and decide on the next attempt."""
        self.stack = None
        self.events.append(ReconnectFailed(self.reconnector.backoff.attempts, error))
        self._decide(now)

    def connection_ended(self, now: float) -> None:
        """The socket of the current attempt is closed: decide on the next attempt."""
        stack = self.stack
        if stack is not None and stack.state is not StackState.CLOSED:
            stack.receive_eof(now)
            self._collect(now)
        self.stack = None
        if not self.opened and not self.closing:
            reason = self._failure or "connection ended before the handshake"
            self.events.append(ReconnectFailed(self.reconnector.backoff.attempts, reason))
        self._decide(now)

    def _decide(self, now: float) -> None:
        if self.finished:
            return
        if self.closing:
            self._give_up(GaveUp("closed by the application"))
            return
        decision = self.reconnector.next_attempt()
        if isinstance(decision, GaveUp):
            self._give_up(decision)
            return
        if self.url is not None:
            decision = Reconnecting(decision.attempt, decision.delay, self.url)
        self.events.append(decision)
        self.wake_at = now + decision.delay

    def _give_up(self, event: GaveUp) -> None:
        self.events.append(event)
        self.finished = True
        self.wake_at = None
        self._close_urls.clear()

    # -- the stack surface -----------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        stack = self.stack
        if stack is None or stack.state is _CLOSED:
            return  # read after this side ended the connection: nobody wants it
        stack.receive(data, now)
        self._collect(now)

    def receive_eof(self, now: float) -> None:
        stack = self.stack
        if stack is not None:
            stack.receive_eof(now)
            self._collect(now)

    def handle_timer(self, now: float) -> None:
        stack = self.stack
        if stack is not None and stack.state is not StackState.CLOSED:
            stack.handle_timer(now)
            self._collect(now)

    def data_to_send(self) -> bytes:
        stack = self.stack
        return b"" if stack is None else stack.data_to_send()

    def take_close_request(self) -> str | None:
        """An Atmosphere HTTP close request to send now, before the socket closes."""
        urls = self._close_urls
        if not urls:
            return None
        self._close_sent = True
        return urls.pop(0)

    def send(self, item: Any, now: float) -> object:
        """Hand ``item`` to the core (through the open stack); returns the core's handle."""
        if self.finished or self.closing:
            raise LocalProtocolError("the connection is closed")
        stack = self.stack
        if stack is not None and stack.state is not StackState.CLOSED:
            return stack.send(item, now)
        return self.core.send(item, now)

    def close(self, now: float) -> str | None:
        """The application ends the session (idempotent): the core closes for good, the
        WebSocket starts its close handshake.  Returns the HTTP close request to send first."""
        if self.closing:
            return None
        self.closing = True
        url: str | None = None
        if not self.finished and not self._close_sent:
            close = getattr(self.core, "close", None)
            if close is not None:
                try:
                    result = close(now)
                except LocalProtocolError:
                    result = None
                if isinstance(result, str):
                    url = result
        self._close_urls.clear()
        stack = self.stack
        if stack is not None:
            stack.close(1000, "", now)
            self._collect(now)
        else:
            self._decide(now)
        return url

    def _collect(self, now: float) -> None:
        stack = self.stack
        assert stack is not None
        events = stack.events()
        if not events:
            return
        self.events.extend(events)
        for event in events:
            kind = type(event)
            if kind not in _SPECIAL:
                continue
            if kind is Connected:
                self.opened = True
                self.reconnector.connected()
            elif kind is CloseRequested:
                request = cast(CloseRequested, event)
                stack.close(request.code, request.reason, now)
            elif kind is InactivityTimeout:
                close_url = cast(InactivityTimeout, event).close_url
                if close_url is not None:
                    self._close_urls.append(close_url)
            elif kind is Rejected:
                status = cast(Rejected, event).status_code
                self._failure = f"the server refused the upgrade with HTTP {status}"
            elif kind is HandshakeFailed:
                self._failure = str(cast(HandshakeFailed, event).error)


_CLOSED = StackState.CLOSED
_SPECIAL = frozenset({Connected, CloseRequested, InactivityTimeout, Rejected, HandshakeFailed})


class CloseRequest:
    """One HTTP ``GET`` through h11 (the Atmosphere close request): bytes out, response in."""

    __slots__ = ("_conn", "address", "done", "status_code")

    def __init__(self, url: str) -> None:
        self.address = split_ws_url(url)
        self._conn = h11.Connection(h11.CLIENT)
        self.status_code: int | None = None
        self.done = False

    def bytes_to_send(self) -> bytes:
        conn = self._conn
        request = h11.Request(
            method="GET",
            target=self.address.target,
            headers=[
                ("Host", self.address.host_header),
                ("User-Agent", _USER_AGENT),
                ("Accept", "*/*"),
                ("Connection", "close"),
            ],
        )
        return (conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b"")

    def receive(self, data: bytes) -> bool:
        """Feed response bytes (``b""`` at the end of input); ``True`` once it is over."""
        conn = self._conn
        conn.receive_data(data)
        while not self.done:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                self.done = True
                break
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.Response):
                self.status_code = event.status_code
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.PAUSED:
                self.done = True
        return True


# -- the blocking driver ---------------------------------------------------------------------


def _open_socket(
    address: WsAddress, ssl_context: ssl.SSLContext | None, timeout: float
) -> socket.socket:
    """TCP, then TLS for ``wss``/``https`` (verified unless ``ssl_context`` says otherwise)."""
    sock = socket.create_connection((address.host, address.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if address.tls:
            context = ssl_context or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=address.host)
    except BaseException:
        sock.close()
        raise
    return sock


def _exchange(
    address: WsAddress,
    request: bytes,
    feed: Any,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> None:
    """One HTTP exchange on a fresh connection: write ``request``, ``feed`` the answer until
    it returns true (``b""`` at the end of input); everything within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with _open_socket(address, ssl_context, timeout) as sock:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall(request)
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(READ_SIZE)
            if feed(data) or not data:
                return


def itrack_login(
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
    request = build_auth_request(base_url, login, password, dealer_id=dealer_id)
    exchange = AuthExchange(request)
    address = WsAddress(request.host, request.port, request.target, request.tls)

    def feed(data: bytes) -> bool:
        if data:
            return exchange.receive_data(data) is not None
        exchange.receive_eof()
        return True

    _exchange(address, exchange.bytes_to_send(), feed, ssl_context, timeout)
    result = exchange.result
    assert result is not None
    if isinstance(result, AuthFailure):
        raise LoginRefused(result)
    return result.hash


class Connection(Generic[CoreT]):
    """A client core on a blocking socket, reconnecting as its policy says.

    Iterate it for events (``for event in conn``, ending after :class:`GaveUp`) or poll
    :meth:`next_event`; :meth:`send` hands a command to the core and writes it; :meth:`close`
    ends the session (idempotent).  Use it as a context manager (see :func:`connect`).
    """

    def __init__(
        self,
        session: ClientSession[CoreT],
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._session = session
        self._ssl_context = ssl_context
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._started = False
        self._closed = False

    # -- introspection ---------------------------------------------------------------

    @property
    def core(self) -> CoreT:
        return self._session.core

    @property
    def state(self) -> StackState:
        """The current WebSocket's state (``CLOSED`` between connections and at the end)."""
        return self._session.state

    @property
    def closed(self) -> bool:
        """The session is over: the last event (:class:`GaveUp`) has been produced; the
        iteration ends once the events still waiting are read."""
        return self._session.finished

    @property
    def url(self) -> str:
        """The URL of the current (or last) attempt."""
        return self._session.current_url

    # -- context ---------------------------------------------------------------------

    def __enter__(self) -> Connection[CoreT]:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Make the first attempt (the context manager does this)."""
        if self._started or self._closed:
            return
        self._started = True
        self._selector = selectors.DefaultSelector()
        self._attempt()

    # -- events ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        while (event := self.next_event()) is not None:
            yield event

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (``None``: until one comes).

        Returns ``None`` when the time ran out, or after the last event.
        """
        if not self._started:
            self.open()
        session = self._session
        events = session.events
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            if events:
                return events.popleft()
            if session.finished or (until is not None and time.monotonic() >= until):
                return None
            if self._sock is None and session.wake_at is None:
                return None  # closed while not connected: nothing can come any more
            self._step(until)

    def send(self, item: Any) -> object:
        """Hand ``item`` to the core and write what it queued; returns the core's handle
        (the FleetFreedom ``reqId``, …).  Raises :class:`LocalProtocolError` once closed."""
        if self._closed:
            raise LocalProtocolError("the connection is closed")
        if not self._started:
            self.open()
        handle = self._session.send(item, time.monotonic())
        self._after(time.monotonic())
        return handle

    def close(self) -> None:
        """End the session: the Atmosphere close request (if any), the WebSocket close
        handshake (bounded by its timeout), then the socket.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            url = self._session.close(time.monotonic())
            if url is not None:
                self._http_close(url)
            if self._sock is not None:
                self._after(time.monotonic())
                while self._sock is not None:
                    self._step(None)
        finally:
            self._drop_socket()
            if self._selector is not None:
                self._selector.close()
                self._selector = None

    # -- the loop --------------------------------------------------------------------

    def _step(self, until: float | None) -> None:
        """Wait for input, the next deadline or ``until``, whichever comes first."""
        session = self._session
        sock = self._sock
        now = time.monotonic()
        if sock is None:
            wake = session.wake_at
            if wake is None:
                return
            if wake > now:
                time.sleep((wake if until is None else min(wake, until)) - now)
                if time.monotonic() < wake:
                    return
            self._attempt()
            return
        deadline = session.next_deadline()
        limit = until if deadline is None else (deadline if until is None else min(deadline, until))
        data = self._read(None if limit is None else max(0.0, limit - now))
        now = time.monotonic()
        if data is not None:
            if data:
                session.receive(data, now)
            else:
                session.receive_eof(now)
        if deadline is not None and now >= deadline:
            session.handle_timer(now)
        self._after(now)

    def _read(self, timeout: float | None) -> bytes | None:
        """What the socket has (``b""``: the end), or ``None`` when nothing came in time."""
        sock = self._sock
        selector = self._selector
        assert sock is not None
        assert selector is not None
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()) and not selector.select(
            timeout
        ):
            return None
        try:
            return sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError:
            return b""

    def _after(self, now: float) -> None:
        """After input or a timer: close requests, then writes, then the end of a socket."""
        session = self._session
        while (url := session.take_close_request()) is not None:
            self._http_close(url)
        if self._sock is None:
            return
        data = session.data_to_send()
        if data and not self._write(data):
            session.receive_eof(now)
            session.data_to_send()
        if session.connection_over:
            self._drop_socket()
            session.connection_ended(time.monotonic())

    def _write(self, data: bytes) -> bool:
        """Write everything, waiting at most ``connect_timeout`` for progress each time."""
        sock = self._sock
        assert sock is not None
        view = memoryview(data)
        timeout = self._session.connect_timeout
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                if not _wait(sock, selectors.EVENT_WRITE, timeout):
                    return False
                continue
            except ssl.SSLWantReadError:
                if not _wait(sock, selectors.EVENT_READ, timeout):
                    return False
                continue
            except OSError:
                return False
            view = view[sent:]
        return True

    def _attempt(self) -> None:
        session = self._session
        session.begin_attempt()
        try:
            address = session.address()
            sock = _open_socket(address, self._ssl_context, session.connect_timeout)
        except (OSError, ValueError) as exc:
            session.attempt_failed(describe(exc), time.monotonic())
            return
        sock.setblocking(False)
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ)
        self._sock = sock
        session.transport_ready(time.monotonic())
        self._after(time.monotonic())

    def _drop_socket(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        sock.close()

    def _http_close(self, url: str) -> None:
        """Send the Atmosphere close request on a fresh connection (best effort, bounded)."""
        try:
            request = CloseRequest(url)
            _exchange(
                request.address,
                request.bytes_to_send(),
                request.receive,
                self._ssl_context,
                self._session.connect_timeout,
            )
        except (OSError, ValueError, h11.ProtocolError):
            pass


def _wait(sock: socket.socket, events: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, events)
        return bool(selector.select(timeout))


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
    rng: Callable[[], float] | None = None,
) -> Connection[CoreT]:
    """A blocking connection for a client core; use it with ``with``.

    ``url`` defaults to ``core.url_to_open``, read again before every attempt (it carries
    the Atmosphere tracking id or FleetFreedom ghostId); ``reconnect=None`` never
    reconnects.  TLS (``wss``/``https``) verifies certificates unless ``ssl_context`` says
    otherwise.  ``connect_timeout`` bounds TCP and TLS, then the upgrade's answer;
    ``close_timeout`` the close handshake; ``rng`` is the backoff's jitter source (tests).
    Every attempt, failed ones included, is reported as an event.
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
    )
    return Connection(session, ssl_context=ssl_context)
