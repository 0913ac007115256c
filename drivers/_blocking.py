"""The blocking client driver: plain sockets and ``selectors``, no threads.

The sans-IO work is :class:`~trackwire.drivers._session.ClientSession`'s; this module only
moves bytes and sleeps until the session's next deadline.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from trackwire import ClientCore, Event, LocalProtocolError, ReconnectPolicy
from trackwire.itrack import AuthError, LoginRefused, TrackerInfo
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
    "DEFAULT_CONNECT_TIMEOUT",
    "Connection",
    "LoginRefused",
    "connect",
    "itrack_login",
    "itrack_tracker_list",
]

CoreT = TypeVar("CoreT", bound=ClientCore[Any, Any])


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
    login_exchange = LoginExchange(base_url, login, password, dealer_id)
    _exchange(
        login_exchange.address, login_exchange.request, login_exchange.feed, ssl_context, timeout
    )
    return login_exchange.session_hash()


def itrack_tracker_list(
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
    _exchange(call.address, call.request, call.feed, ssl_context, timeout)
    return call.trackers()


class Connection(SessionView[CoreT]):
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
        """After input or a timer: a login the core asked for, close requests, then writes,
        then the end of a socket."""
        session = self._session
        request = session.take_login(now)
        if request is not None:
            self._login(LoginExchange(request=request))
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

    def _login(self, exchange: LoginExchange) -> None:
        """``user/auth`` on a fresh connection; the answer goes back to the core."""
        session = self._session
        try:
            _exchange(
                exchange.address,
                exchange.request,
                exchange.feed,
                self._ssl_context,
                session.connect_timeout,
            )
            result, error = exchange.outcome()
        except (OSError, ValueError, AuthError) as exc:
            result, error = None, describe(exc)
        session.login_answered(result, error, time.monotonic())

    def _http_close(self, url: str) -> None:
        """Send the Atmosphere close request on a fresh connection (best effort, bounded)."""
        try:
            request = HttpGet(url)
            _exchange(
                request.address,
                request.bytes_to_send(),
                request.receive,
                self._ssl_context,
                self._session.connect_timeout,
            )
        except (OSError, ValueError):
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
    stall_timeout: float | None = None,
) -> Connection[CoreT]:
    """A blocking connection for a client core; use it with ``with``.

    ``url`` defaults to ``core.url_to_open``, read again before every attempt (it carries
    the Atmosphere tracking id or FleetFreedom ghostId); ``reconnect=None`` never
    reconnects.  TLS (``wss``/``https``) verifies certificates unless ``ssl_context`` says
    otherwise.  ``connect_timeout`` bounds TCP and TLS, then the upgrade's answer;
    ``close_timeout`` the close handshake; ``rng`` is the backoff's jitter source (tests).
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
        wall_offset=time.time() - time.monotonic(),
    )
    return Connection(session, ssl_context=ssl_context)
