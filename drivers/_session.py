"""The sans-IO client session every client driver shares: one core across connections.

:class:`ClientSession` holds one client core across its WebSocket connections: it builds a
:class:`~trackwire.ws.ClientStack` per attempt, acts on the events a driver must act on
(``CloseRequested``, ``InactivityTimeout``), and asks the :class:`Reconnector` what to do when
a connection ends.  A driver only moves bytes, sleeps until :meth:`ClientSession.next_deadline`
and sends the HTTP close requests the session hands out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, cast

from trackwire import Backoff, ClientCore, Event, LocalProtocolError, ReconnectPolicy
from trackwire.atmosphere import AtmosphereClient, InactivityTimeout
from trackwire.fleetfreedom import CloseRequested, Deleted, Merged, Suspended
from trackwire.itrack import (
    AuthError,
    AuthExchange,
    AuthFailure,
    AuthRequest,
    AuthSuccess,
    IotMonitorEvent,
    LifecycleEvent,
    LoginRefused,
    LoginRequested,
    ReadingsBatchEvent,
    StateBatchEvent,
    StateEvent,
    TrackerInfo,
    TrackerListExchange,
    build_auth_request,
    build_tracker_list_request,
)
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

from ._events import GaveUp, ReconnectFailed, Reconnecting, Stalled
from ._reconnect import Reconnector

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "READ_SIZE",
    "ClientSession",
    "HeaderPairs",
    "LoginExchange",
    "SessionView",
    "TrackerListCall",
    "describe",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to open TCP and TLS, and again for the WebSocket handshake's answer."""
READ_SIZE = 65536

CoreT = TypeVar("CoreT", bound=ClientCore[Any, Any])
HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


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
        "_last_data",
        "_login",
        "_login_at",
        "_login_backoff",
        "_stalled",
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
        "stall_timeout",
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
        stall_timeout: float | None = None,
        wall_offset: float | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be > 0")
        if stall_timeout is not None and stall_timeout <= 0:
            raise ValueError("stall_timeout must be > 0 (None turns it off)")
        self.core = core
        # The driver's clock to Unix time, for the Atmosphere close request's ``_`` stamp
        # (the core reads no clock); a core given its own offset keeps it.
        transport = getattr(core, "transport", core)
        if isinstance(transport, AtmosphereClient) and transport.wall_offset is None:
            transport.wall_offset = wall_offset
        self.url = url
        """The URL given to ``connect`` (every attempt opens it), or ``None``: the core's."""
        self.reconnector = Reconnector(core, reconnect, rng)
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
        self.stall_timeout = stall_timeout
        """Seconds without application data, while connected and subscribed, after which a
        :class:`Stalled` event is queued (once per silence); ``None``: never."""
        self._last_data = 0.0
        self._stalled = False
        self._login: AuthRequest | None = None
        self._login_at: float | None = None
        policy = reconnect if reconnect is not None else ReconnectPolicy()
        self._login_backoff = Backoff(policy) if rng is None else Backoff(policy, rng)

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
        deadline = stack.next_deadline() if stack is not None else self.wake_at
        for other in (self._login_at, self._stall_at()):
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return deadline

    def _stall_at(self) -> float | None:
        if self.stall_timeout is None or self._stalled or not self.opened:
            return None
        stack = self.stack
        if stack is None or stack.state is not StackState.OPEN:
            return None
        if not getattr(self.core, "subscriptions", True):
            return None  # nothing asked for: silence is expected
        return self._last_data + self.stall_timeout

    # -- logins over HTTP (iTrack) ---------------------------------------------------

    def take_login(self, now: float) -> AuthRequest | None:
        """A ``user/auth`` request the core asked for (:class:`LoginRequested`) that is due
        now: perform it over HTTP and hand the outcome to :meth:`login_answered`."""
        at = self._login_at
        if at is None or now < at or self.finished or self.closing:
            return None
        request, self._login, self._login_at = self._login, None, None
        return request

    def login_answered(
        self, result: AuthSuccess | AuthFailure | None, error: str, now: float
    ) -> None:
        """The outcome of :meth:`take_login`: the answer, or ``None`` and why none came."""
        core: Any = self.core
        if not getattr(core, "logging_in", False) or self.finished:
            return
        if isinstance(result, AuthSuccess):
            self._login_backoff.reset()
            core.login_succeeded(result.hash, now)
        elif isinstance(result, AuthFailure):
            core.login_failed(result.code, result.description, now)
        else:
            core.login_failed(None, error or "no answer", now)
        stack = self.stack
        if stack is not None and stack.state is not StackState.CLOSED:
            self._collect(now)
        else:
            self._note(cast("list[Event]", core.events()), now)

    def _login_requested(self, request: LoginRequested, now: float) -> None:
        if self.closing or self.finished:
            return
        delay = 0.0
        if request.attempt > 1:
            delay = self._login_backoff.next_delay() or 0.0
        self._login = request.request
        self._login_at = now + delay

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
        self._login = self._login_at = None

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
        stall = self._stall_at()
        if stall is not None and now >= stall:
            self._stalled = True
            self.events.append(Stalled(now - self._last_data))

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
        self._login = self._login_at = None  # no login for a session being closed
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
        if events:
            self._note(events, now)

    def _note(self, events: list[Event], now: float) -> None:
        """Queue ``events`` for the application and act on those a driver must act on."""
        if not events:
            return
        stack = self.stack
        self.events.extend(events)
        if self.stall_timeout is not None and any(type(e) in _DATA for e in events):
            self._last_data = now
            self._stalled = False
        for event in events:
            kind = type(event)
            if kind not in _SPECIAL:
                continue
            if kind is Connected:
                self.opened = True
                self._last_data = now
                self._stalled = False
                if not getattr(self.core, "login_failures", 0):
                    # A connection whose login keeps failing is no recovery: keep backing off.
                    self.reconnector.connected()
            elif kind is LoginRequested:
                self._login_requested(cast(LoginRequested, event), now)
            elif kind is CloseRequested and stack is not None:
                request = cast(CloseRequested, event)
                stack.close(request.code, request.reason, now)
                if request.code == _GOING_AWAY:
                    self._abandon(now)  # the peer stopped answering: no handshake to wait for
            elif kind is InactivityTimeout:
                close_url = cast(InactivityTimeout, event).close_url
                if close_url is not None:
                    self._close_urls.append(close_url)
                elif self.core.resumable:
                    self._abandon(now)  # a silent peer (half-open socket): reconnect now
            elif kind is Rejected:
                status = cast(Rejected, event).status_code
                self._failure = f"the server refused the upgrade with HTTP {status}"
            elif kind is HandshakeFailed:
                self._failure = str(cast(HandshakeFailed, event).error)

    def _abandon(self, now: float) -> None:
        """End the current WebSocket at once (a peer that went silent cannot answer a close
        handshake); what is queued is still written, then the driver reconnects."""
        stack = self.stack
        if stack is not None and stack.state is not StackState.CLOSED:
            stack.receive_eof(now)
            self._note(stack.events(), now)


_CLOSED = StackState.CLOSED
_GOING_AWAY = 1001
"""The close code a core gives when its peer stopped answering (a keep-alive timed out)."""
_SPECIAL = frozenset(
    {Connected, CloseRequested, InactivityTimeout, Rejected, HandshakeFailed, LoginRequested}
)
_DATA = frozenset(
    {
        StateEvent,
        StateBatchEvent,
        LifecycleEvent,
        ReadingsBatchEvent,
        IotMonitorEvent,
        Merged,
        Deleted,
        Suspended,
    }
)
"""Application data: what a subscription delivers (its absence is a stall)."""


class SessionView(Generic[CoreT]):
    """What every client driver's connection shows of its :class:`ClientSession`."""

    _session: ClientSession[CoreT]

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


class LoginExchange:
    """``user/auth`` for a driver, without I/O: write :attr:`request`, :meth:`feed` the answer
    until it returns ``True`` (``b""`` at the end of input), then read :meth:`session_hash`."""

    __slots__ = ("address", "exchange", "request")

    def __init__(
        self,
        base_url: str = "",
        login: str = "",
        password: str = "",
        dealer_id: int | None = None,
        *,
        request: AuthRequest | None = None,
    ) -> None:
        auth = request or build_auth_request(base_url, login, password, dealer_id=dealer_id)
        self.exchange = AuthExchange(auth)
        self.address = WsAddress(auth.host, auth.port, auth.target, auth.tls)
        self.request = self.exchange.bytes_to_send()

    def outcome(self) -> tuple[AuthSuccess | AuthFailure | None, str]:
        """The answer once the exchange ended (``None`` and why, for a broken one)."""
        try:
            result = self.exchange.result
            if result is None:
                result = self.exchange.receive_eof()
        except AuthError as exc:
            return None, describe(exc)
        return result, ""

    def feed(self, data: bytes) -> bool:
        if data:
            return self.exchange.receive_data(data) is not None
        self.exchange.receive_eof()
        return True

    def session_hash(self) -> str:
        """The hash; :class:`LoginRefused` for an API error, ``AuthError`` for a broken answer."""
        result = self.exchange.result
        if result is None:
            result = self.exchange.receive_eof()
        assert result is not None
        if isinstance(result, AuthFailure):
            raise LoginRefused(result)
        return result.hash


class TrackerListCall:
    """``tracker/list`` for a driver, without I/O: write :attr:`request`, :meth:`feed` the
    answer until it returns ``True`` (``b""`` at the end of input), then read
    :meth:`trackers`."""

    __slots__ = ("address", "exchange", "request")

    def __init__(self, base_url: str, session_hash: str) -> None:
        request = build_tracker_list_request(base_url, session_hash)
        self.exchange = TrackerListExchange(request)
        self.address = WsAddress(request.host, request.port, request.target, request.tls)
        self.request = self.exchange.bytes_to_send()

    def feed(self, data: bytes) -> bool:
        if data:
            return self.exchange.receive_data(data) is not None
        self.exchange.receive_eof()
        return True

    def trackers(self) -> list[TrackerInfo]:
        """The list; :class:`~trackwire.itrack.TrackerListRefused` for an API error,
        :class:`~trackwire.itrack.TrackerListError` for a broken answer."""
        result = self.exchange.result
        return result if result is not None else self.exchange.receive_eof()
