"""The iTrack client core: subscribe actions out, typed events in, on top of Atmosphere."""

from __future__ import annotations

from typing import cast

from .._core import CoreBase
from .._errors import LocalProtocolError
from .._session import DEFAULT_MAX_LOGIN_FAILURES, FinishReason
from ..atmosphere import (
    DEFAULT_FRAMEWORK,
    AtmosphereClient,
    AtmosphereEvent,
    ClientState,
    Closed,
    InactivityTimeout,
    Opened,
    Reopened,
)
from ._auth import AuthRequest
from ._codec import JsonDumps, JsonLoads, dumps, encode_action, message_parser
from ._events import (
    ErrorMessage,
    ITrackEvent,
    LoginRequested,
    LogoutEvent,
    SessionFinished,
    SessionForgotten,
    SessionRestored,
    StateEvent,
    SubscribeResponse,
    TrackersRefused,
    UnsubscribeResponse,
)
from ._models import Action, check_hash
from ._subscriptions import Subscriptions

__all__ = [
    "DEFAULT_MAX_HELD",
    "FORGOTTEN_CODES",
    "REFUSED_STATUSES",
    "THROTTLED_CODES",
    "ClientEvent",
    "ITrackClient",
    "subscription_url",
]

_OPEN = ClientState.OPEN

ClientEvent = ITrackEvent | AtmosphereEvent
"""What :class:`ITrackClient` produces: application events and the transport's own."""

DEFAULT_MAX_HELD = 1024
"""How many actions may wait for the handshake before :meth:`ITrackClient.send` refuses."""

FORGOTTEN_CODES = frozenset((3, 4))
"""API errors on an action that mean the server no longer knows the hash (3 wrong hash,
4 user not found or session ended): a client with credentials logs in again."""
THROTTLED_CODES = frozenset((104, 105))
"""``user/auth`` errors that say to stop trying (logins or login attempts limit)."""
REFUSED_STATUSES = frozenset(("blocked", "unknown", "disallowed"))
"""Per-tracker statuses of a subscribe answer under which no state will come."""


def subscription_url(base_url: str) -> str:
    """The WebSocket endpoint under an API base URL (``https://api.itrack.live/v2/``)."""
    return base_url.rstrip("/") + "/event/subscription"


class ITrackClient(CoreBase[ClientEvent]):
    """Sans-IO iTrack client for one session (one hash), across Atmosphere reconnects.

    ``url`` is the ``event/subscription`` endpoint (see :func:`subscription_url`) and
    ``session_hash`` the 32-character hash from ``user/auth`` or an API key.  Actions passed to
    :meth:`send` before the Atmosphere handshake are held and written, in order, when it
    arrives; after a reconnect the client re-sends what it is subscribed to.  A ``logout``
    event ends the session: nothing is resubscribed and :meth:`send` refuses.  Server messages
    are decoded with ``loads`` (stdlib :func:`json.loads` unless replaced).

    ``login`` (a :func:`~trackwire.itrack.build_auth_request`) lets the session outlive the
    server's memory: an action answered 3 or 4 queues :class:`SessionForgotten` and
    :class:`LoginRequested`; the driver performs ``user/auth`` and calls
    :meth:`login_succeeded` (every subscription goes out again, once) or
    :meth:`login_failed`.  Without it, or when the login is refused, the session ends with
    :class:`SessionFinished`.  Subscribe answers with trackers that will send nothing queue
    :class:`TrackersRefused`.
    """

    __slots__ = (
        "_closed",
        "_dumps",
        "_held",
        "_ignore",
        "_logged_out",
        "_logging_in",
        "_review_at",
        "_sent_any",
        "_unanswered",
        "hash",
        "login",
        "login_failures",
        "max_held",
        "max_login_failures",
        "subscriptions",
        "transport",
    )

    def __init__(
        self,
        url: str,
        session_hash: str,
        *,
        transport: AtmosphereClient | None = None,
        content_type: str = "application/json",
        framework: str = DEFAULT_FRAMEWORK,
        loads: JsonLoads | None = None,
        dumps: JsonDumps = dumps,
        max_held: int = DEFAULT_MAX_HELD,
        login: AuthRequest | None = None,
        max_login_failures: int = DEFAULT_MAX_LOGIN_FAILURES,
    ) -> None:
        super().__init__()
        self.hash = check_hash(session_hash)
        self.transport = transport or AtmosphereClient(
            url, content_type=content_type, framework=framework
        )
        """The Atmosphere client underneath (build your own to change its options)."""
        # Messages become iTrack events inside the transport, in one step, and both cores
        # share one event queue: the hot path touches no second queue.
        self.transport.message_factory = message_parser(loads, self._notice)
        self._events = cast("list[ClientEvent]", self.transport._events)
        self._review_at = -1
        """Where the first event the session keeps track of was queued during this
        ``receive`` (the parser tells :meth:`_notice`); -1: none."""
        self.subscriptions = Subscriptions()
        """What the server has been asked for, net of unsubscribes; re-sent after reconnects."""
        self.max_held = max_held
        self._dumps = dumps
        self._held: list[str] = []
        self._sent_any = False
        self._logged_out = False
        self._closed = False
        self.login = login
        """The ``user/auth`` request (see :func:`~trackwire.itrack.build_auth_request`) to
        perform again when the server forgot the hash; ``None``: such a session just ends."""
        self.max_login_failures = max_login_failures
        self.login_failures = 0
        """``user/auth`` calls in a row that failed for a passing reason (no answer…)."""
        self._logging_in = False
        self._unanswered = 0
        """Actions written on this connection and not answered yet (answers come in order)."""
        self._ignore = 0
        """Answers still due to actions sent with a forgotten hash: their errors are old news."""

    # -- introspection ---------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """The transport's state (see :attr:`logged_out` for the session's)."""
        return self.transport.state

    @property
    def logged_out(self) -> bool:
        """The server sent ``logout``: the hash is dead."""
        return self._logged_out

    @property
    def resumable(self) -> bool:
        """A reconnect makes sense: not logged out, not closed for good."""
        return not (self._logged_out or self._closed)

    @property
    def logging_in(self) -> bool:
        """A :class:`LoginRequested` waits for its answer; actions are held meanwhile."""
        return self._logging_in

    @property
    def url_to_open(self) -> str:
        return self.transport.url_to_open

    @property
    def held(self) -> int:
        """How many actions wait for the handshake."""
        return len(self._held)

    # -- inputs ----------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        start = len(self._events)
        try:
            self.transport.connection_made(now)
        finally:
            self._review(start)

    def receive(self, data: str, now: float) -> None:
        """Feed one WebSocket text message."""
        transport = self.transport
        if transport._machine.state is _OPEN:  # (its state property, without the call)
            # Open stays open on receive (or raises): only messages and heartbeats come out,
            # and the message factory already made them iTrack events, telling us of any the
            # session keeps track of (answers, errors, logout).  A frame of states (or the
            # part of a message) needs nothing more.
            try:
                transport.receive(data, now)
            finally:
                start = self._review_at
                if start >= 0:
                    self._review_at = -1
                    self._review_messages(start, len(self._events))
            return
        start = len(self._events)
        try:
            transport.receive(data, now)
        finally:
            self._review(start)

    def receive_eof(self, now: float) -> None:
        start = len(self._events)
        try:
            self.transport.receive_eof(now)
        finally:
            self._review(start)

    def _notice(self, event: ITrackEvent) -> None:
        """The parser met an event the session keeps track of, about to be queued: review the
        queue from there once the transport's ``receive`` returns."""
        if self._review_at < 0:
            self._review_at = len(self._events)  # where the transport appends it
        if isinstance(event, LogoutEvent):  # (the fast decoder's is a subclass)
            self._logout()  # at once: the rest of the frame meets a closed session

    def _review(self, start: int) -> None:
        """React to the transport events queued since index ``start``."""
        self._review_at = -1  # every message since ``start`` is looked at here
        events = self._events
        for index in range(start, len(events)):
            event = events[index]
            kind = type(event)
            if kind is Opened or kind is Reopened:
                self._flush()
            elif kind is Closed:
                self._unanswered = self._ignore = 0
                if self._logged_out:
                    events[index] = Closed(False)
            elif kind is InactivityTimeout:
                self._unanswered = self._ignore = 0
                if not self.transport.resumable:
                    self._closed = True
            elif issubclass(kind, ITrackEvent):
                self._review_messages(index, index + 1)

    def _review_messages(self, start: int, end: int) -> None:
        """Session bookkeeping for the application messages at ``start:end``."""
        events = self._events
        for index in range(start, end):
            event = events[index]
            if type(event) is StateEvent:
                continue  # the usual message, and nothing to keep track of
            if isinstance(event, ErrorMessage):
                if event.action is None or not event.action.endswith("subscribe"):
                    continue
                self._answered()
                if event.code in FORGOTTEN_CODES:
                    if self._ignore:
                        self._ignore -= 1
                    else:
                        self._forgotten(event.code)
                elif self._ignore:
                    self._ignore -= 1
            elif isinstance(event, LogoutEvent):
                if not any(isinstance(e, SessionFinished) for e in events[index + 1 :]):
                    detail = f"logout: {event.reason}" if event.reason else "logout"
                    events.append(SessionFinished(FinishReason.SESSION_ENDED, detail))
            elif isinstance(event, (SubscribeResponse, UnsubscribeResponse)):
                self._answered()
                if self._ignore:
                    self._ignore -= 1
                if isinstance(event, SubscribeResponse):
                    self._refusals(event)

    def _answered(self) -> None:
        if self._unanswered:
            self._unanswered -= 1

    def _refusals(self, event: SubscribeResponse) -> None:
        for event_type, result in event.results.items():
            if result.success is False:
                refused = dict.fromkeys(result.trackers, "failed")
            else:
                refused = {t: s for t, s in result.trackers.items() if s in REFUSED_STATUSES}
            if refused or result.success is False:
                self._events.append(TrackersRefused(event_type, refused))

    def _forgotten(self, code: int | None) -> None:
        """The server forgot the hash: ask the driver to log in again, or end for good."""
        if self._logging_in or self._logged_out or self._closed:
            return
        self._events.append(SessionForgotten(code, self.login is not None))
        # Actions already on the wire carry the dead hash: their errors are not news.
        self._ignore = self._unanswered
        if self.login is None:
            self._finish(FinishReason.NO_CREDENTIALS, "the server forgot the hash", code)
            return
        self._logging_in = True
        self._events.append(LoginRequested(self.login, self.login_failures + 1))

    def _finish(self, reason: FinishReason, detail: str, code: int | None = None) -> None:
        """End the session for good: the transport closes and no driver reconnects."""
        self._events.append(SessionFinished(reason, detail, code))
        self._closed = True
        self._held.clear()
        transport = self.transport
        if transport.state is not ClientState.CLOSED and transport.state is not ClientState.ERROR:
            transport.close(transport.last_received)

    def login_succeeded(self, session_hash: str, now: float | None = None) -> None:
        """The driver performed :class:`LoginRequested`: the fresh hash.  Every subscription
        goes out again with it, once (now if the transport is open, else after reopening)."""
        if not self._logging_in:
            raise LocalProtocolError("no login was requested", state=self.state)
        self.hash = check_hash(session_hash)
        self._logging_in = False
        self.login_failures = 0
        actions = self.subscriptions.actions()
        self._held.clear()
        self._events.append(SessionRestored(len(actions)))
        if self.transport.state is _OPEN:
            for action in actions:
                self._write(self._encode(action))
            self._sent_any = self._sent_any or bool(actions)

    def login_failed(self, code: int | None, description: str, now: float | None = None) -> None:
        """The driver's ``user/auth`` failed.  ``code`` is the API error (102 wrong login or
        password, 105 throttled…: the session ends for good), or ``None`` when no answer came
        (unreachable, broken): another :class:`LoginRequested` follows after the driver's
        backoff, up to ``max_login_failures`` in a row."""
        if not self._logging_in:
            raise LocalProtocolError("no login was requested", state=self.state)
        self._logging_in = False
        if code in THROTTLED_CODES:
            self._finish(FinishReason.THROTTLED, f"user/auth: {code} {description}", code)
        elif code is not None:
            self._finish(FinishReason.LOGIN_REFUSED, f"user/auth: {code} {description}", code)
        else:
            self.login_failures += 1
            if self.login_failures >= self.max_login_failures:
                detail = f"{self.login_failures} logins failed in a row: {description}"
                self._finish(FinishReason.LOGIN_FAILED, detail)
                return
            login = self.login
            assert login is not None  # a login was requested, so there are credentials
            self._logging_in = True
            self._events.append(LoginRequested(login, self.login_failures + 1))

    def _logout(self) -> None:
        self._logged_out = True
        self._logging_in = False
        self._held.clear()
        self.subscriptions.clear()
        # The hash is dead: close the transport, so the stack ends the WebSocket (1000) and
        # no driver reconnects.  No close request: the server already ended the session.
        transport = self.transport
        if transport.state is not ClientState.CLOSED:
            transport.close(transport.last_received)

    def _flush(self) -> None:
        """The transport (re)opened: write held actions, or re-send the subscriptions."""
        if self._logged_out or self._logging_in:
            return  # after a login, login_succeeded() re-sends everything
        if self.transport.state is not ClientState.OPEN:
            # The frame that opened it went on to corrupt the stream, whose
            # RemoteProtocolError is on its way: the actions wait for the reconnect.
            return
        if self._sent_any:
            # Held actions are already part of the subscriptions being re-sent.
            frames = [self._encode(a) for a in self.subscriptions.actions()]
            self._held.clear()
        else:
            frames = self._held
            self._held = []
        for frame in frames:
            self._write(frame)
        if frames:
            self._sent_any = True

    def _write(self, frame: str) -> None:
        self.transport.send(frame)
        self._unanswered += 1

    # -- outputs ---------------------------------------------------------------------------

    def _encode(self, action: Action) -> str:
        return self._dumps(encode_action(action, self.hash))

    def send(self, item: Action, now: float | None = None) -> None:
        """Queue a subscribe or unsubscribe; held until the handshake when it has not come yet.

        Raises :class:`LocalProtocolError` after a logout, after :meth:`close` or an
        inactivity timeout, and when ``max_held`` actions already wait.
        """
        if self._logged_out:
            raise LocalProtocolError("the session logged out; authenticate again", state=self.state)
        if self._closed:
            raise LocalProtocolError("the session was closed", state=self.state)
        frame = self._encode(item)
        if self.transport.state is ClientState.OPEN and not self._held and not self._logging_in:
            self._write(frame)
            self._sent_any = True
        elif len(self._held) >= self.max_held:
            raise LocalProtocolError(
                f"{self.max_held} actions already wait for the handshake", state=self.state
            )
        else:
            self._held.append(frame)
        self.subscriptions.apply(item)

    def data_to_send(self) -> list[str]:
        return self.transport.data_to_send()

    def close(self, now: float, *, timestamp_ms: int | None = None) -> str | None:
        """End the session for good; returns the Atmosphere HTTP close request URL, if any."""
        self._closed = True
        self._held.clear()
        return self.transport.close(now, timestamp_ms=timestamp_ms)

    def reconnect(self) -> None:
        """Prepare the next connection after the socket ended; refused after a logout."""
        if self._logged_out:
            raise LocalProtocolError("the session logged out; authenticate again", state=self.state)
        self.transport.reconnect()

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.transport.next_deadline()

    def handle_timer(self, now: float) -> None:
        start = len(self._events)
        try:
            self.transport.handle_timer(now)
        finally:
            self._review(start)
