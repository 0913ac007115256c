"""The FleetFreedom / Trak-iT client core: what the official clients do with each message."""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from .. import _decoder
from .._core import CoreBase, StateMachine
from .._errors import LocalProtocolError, RemoteProtocolError
from .._redact import redacted_repr
from .._session import DEFAULT_MAX_LOGIN_FAILURES, FinishReason
from ._codec import BAD_JSON, BAD_NAME, DEFAULT_MAX_LINE, NOT_OBJECT, encode, line_too_long
from ._commands import Command
from ._events import (
    Broadcast,
    Closed,
    CloseRequested,
    CommandFailed,
    ConnectionResponse,
    Deleted,
    FailureReason,
    FleetFreedomEvent,
    InvalidMessage,
    Merged,
    Response,
    SessionEnded,
    SessionFinished,
    SessionForgotten,
    SessionResponse,
    SessionRestored,
    SubscribeResponse,
    SubscriptionRefused,
    Suspended,
    UnknownCommandResponse,
    UnknownMessage,
)
from ._types import ErrorCode, error_code, is_name

__all__ = [
    "CLIENT_TRANSITIONS",
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_PENDING",
    "ClientInput",
    "ClientState",
    "FleetFreedomClient",
    "Session",
]

DEFAULT_COMMAND_TIMEOUT = 120.0
"""Seconds a command waits for its response before it fails (the official clients' value)."""
DEFAULT_KEEPALIVE = 300.0
"""Seconds of client silence after which a ``noop`` goes out (about every 5 minutes)."""
DEFAULT_MAX_PENDING = 10_000
"""Most commands awaiting a response (held ones included) before :meth:`send` refuses."""


class ClientState(enum.Enum):
    """Where a FleetFreedom client connection stands."""

    CONNECTING = "connecting"
    """No socket yet: a new core, or one :meth:`FleetFreedomClient.reconnect` prepared."""
    AWAITING_CONNECTION_RESPONSE = "awaiting-connection-response"
    """The socket is open; commands are held until ``connectionResponse``."""
    ANONYMOUS = "anonymous"
    """Open, not logged in (``connectionResponse`` 7 or 8): ``login`` is next."""
    LOGGED_IN = "logged-in"
    PASSWORD_EXPIRED = "password-expired"
    """Open, but the only useful command is ``updateOwnPassword`` (errorCode 16)."""
    CLOSING = "closing"
    """The core wants the socket closed (see :class:`CloseRequested`); waiting for the end."""
    CLOSED = "closed"
    ERROR = "error"


class ClientInput(enum.Enum):
    """What can happen to a client; the table maps (state, input) to the next state."""

    CONNECTION_MADE = enum.auto()
    SESSION_OK = enum.auto()
    """``connectionResponse`` / ``loginResponse`` with errorCode 0."""
    SESSION_ANONYMOUS = enum.auto()
    """``connectionResponse`` 7 (sessionExpired) or 8 (userNotLoggedIn)."""
    SESSION_PASSWORD_EXPIRED = enum.auto()
    SESSION_REFUSED = enum.auto()
    """``connectionResponse`` with any other code: close (1008), never reconnect."""
    SESSION_OVER = enum.auto()
    """``sessionEnded`` or ``logoutResponse``: close, never reconnect."""
    RECEIVE = enum.auto()
    SEND = enum.auto()
    CLOSE = enum.auto()
    EOF = enum.auto()
    RECONNECT = enum.auto()
    CORRUPTION = enum.auto()


_R = TypeVar("_R", bound=Response)
_S = ClientState
_I = ClientInput
_OPEN = frozenset((_S.ANONYMOUS, _S.LOGGED_IN, _S.PASSWORD_EXPIRED))
_CONNECTED = frozenset((_S.AWAITING_CONNECTION_RESPONSE, *_OPEN))
_LIVE = frozenset((*_CONNECTED, _S.CLOSING))
_SESSION_INPUTS = (
    (_I.SESSION_OK, _S.LOGGED_IN),
    (_I.SESSION_ANONYMOUS, _S.ANONYMOUS),
    (_I.SESSION_PASSWORD_EXPIRED, _S.PASSWORD_EXPIRED),
    (_I.SESSION_REFUSED, _S.CLOSING),
    (_I.SESSION_OVER, _S.CLOSING),
)

CLIENT_TRANSITIONS: dict[tuple[ClientState, ClientInput], ClientState] = {
    (_S.CONNECTING, _I.CONNECTION_MADE): _S.AWAITING_CONNECTION_RESPONSE,
    (_S.CONNECTING, _I.SEND): _S.CONNECTING,
    (_S.CONNECTING, _I.CLOSE): _S.CLOSED,
    (_S.CONNECTING, _I.EOF): _S.CLOSED,
    (_S.CONNECTING, _I.RECONNECT): _S.CONNECTING,
    **{(state, inp): new for state in _CONNECTED for inp, new in _SESSION_INPUTS},
    **{(state, _I.RECEIVE): state for state in _LIVE},
    **{(state, _I.SEND): state for state in _CONNECTED},
    **{(state, _I.CLOSE): _S.CLOSING for state in _LIVE},
    **{(state, _I.EOF): _S.CLOSED for state in _LIVE},
    **{(state, _I.CORRUPTION): _S.ERROR for state in _LIVE},
    **{(_S.CLOSING, inp): _S.CLOSING for inp, _ in _SESSION_INPUTS},
    (_S.CLOSED, _I.CLOSE): _S.CLOSED,
    (_S.CLOSED, _I.EOF): _S.CLOSED,
    (_S.CLOSED, _I.RECONNECT): _S.CONNECTING,
    (_S.ERROR, _I.CLOSE): _S.ERROR,
    (_S.ERROR, _I.EOF): _S.ERROR,
    (_S.ERROR, _I.RECONNECT): _S.CONNECTING,
}
"""Every legal (state, input) pair; anything else raises :class:`LocalProtocolError`.

Every input the peer can cause is legal in every connected state, so only the caller's
misuse (receiving before :meth:`~FleetFreedomClient.connection_made`, sending after close)
ever raises.
"""

_CONNECTION_INPUT: dict[object, ClientInput] = {
    ErrorCode.SUCCESS: _I.SESSION_OK,
    ErrorCode.SESSION_EXPIRED: _I.SESSION_ANONYMOUS,
    ErrorCode.USER_NOT_LOGGED_IN: _I.SESSION_ANONYMOUS,
    ErrorCode.PASSWORD_EXPIRED: _I.SESSION_PASSWORD_EXPIRED,
}
_LOGIN_INPUT: dict[object, ClientInput] = {
    ErrorCode.SUCCESS: _I.SESSION_OK,
    ErrorCode.PASSWORD_EXPIRED: _I.SESSION_PASSWORD_EXPIRED,
}
_FORGOTTEN = frozenset((ErrorCode.SESSION_EXPIRED, ErrorCode.USER_NOT_LOGGED_IN))
"""Codes that say the server no longer knows the session (a restart, an expiry)."""
_PASSING = frozenset((ErrorCode.UNKNOWN, ErrorCode.SERVICE))
"""Login answers worth another try after the backoff: the server failed, not the login."""


_SPECIAL = frozenset(
    (
        "connectionResponse",
        "loginResponse",
        "getSessionDetailsResponse",
        "logoutResponse",
        "subscribeResponse",
        "unsubscribeResponse",
        "unknownCommandResponse",
        "sessionEnded",
        "broadcast",
    )
)
_KINDS: dict[str, object] = {}
_MAX_KINDS = 4096


def _classify(name: str) -> object:
    """What a (valid) message name is: a special name, or the event class for its suffix."""
    kind: object
    if name in _SPECIAL:
        kind = name
    elif name.endswith("Merged"):
        kind = Merged
    elif name.endswith("Response"):
        kind = Response
    elif name.endswith("Deleted"):
        kind = Deleted
    elif name.endswith("Suspended"):
        kind = Suspended
    else:
        kind = UnknownMessage
    if len(_KINDS) < _MAX_KINDS:
        _KINDS[name] = kind
    return kind


@dataclass(slots=True)
class Session:
    """What the client remembers of its session, from ``connectionResponse``,
    ``loginResponse`` and ``getSessionDetailsResponse``."""

    ghost_id: str | None = None
    expiry: str | None = None
    server_time: str | None = None
    user: dict[str, Any] | None = None
    session_policy: dict[str, Any] | None = None
    password_policy: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return redacted_repr(self, ("ghost_id",))

    def update(self, body: dict[str, Any], logged_in: bool) -> None:
        """Take the session fields of a response; the user and policies only when logged in."""
        for attr, key in (
            ("ghost_id", "ghostId"),
            ("expiry", "expiry"),
            ("server_time", "serverTime"),
        ):
            value = body.get(key)
            if isinstance(value, str):
                setattr(self, attr, value)
        if logged_in:
            for attr, key in _LOGGED_IN_FIELDS:
                value = body.get(key)
                setattr(self, attr, value if isinstance(value, dict) else None)
        else:
            self.user = self.session_policy = self.password_policy = None


_LOGGED_IN_FIELDS = (
    ("user", "user"),
    ("session_policy", "sessionPolicy"),
    ("password_policy", "passwordPolicy"),
)


class FleetFreedomClient(CoreBase[FleetFreedomEvent]):
    """Sans-IO FleetFreedom / Trak-iT client, one instance for a session of reconnects.

    Open a WebSocket to :meth:`url` (``wss://socket.fleetfreedom.com`` or
    ``wss://socket.trakit.ca``), call :meth:`connection_made`, feed every text message to
    :meth:`receive`.  :meth:`send` takes a :class:`Command` and returns its ``reqId``, the
    handle its :class:`Response` (or :class:`CommandFailed`) carries.  Commands sent before
    ``connectionResponse`` are held and go out, in order, when it arrives.

    With credentials (``login=``, or the last ``login`` sent) a session the server forgot
    (``connectionResponse`` 7/8 on a resume, a command answered 7/8) is logged in again and
    the subscriptions replayed once (:class:`SessionForgotten`, :class:`SessionRestored`);
    a finished one (logout, ``sessionEnded``, a refused session or login, no credentials)
    ends with :class:`SessionFinished`.  Refused subscription types queue
    :class:`SubscriptionRefused`; an unanswered keep-alive asks to close (1001) for a
    reconnect.
    """

    __slots__ = (
        "_deadlines",
        "_dispatch",
        "_fast_limit",
        "_had_session",
        "_held",
        "_keepalive_id",
        "_last_sent",
        "_machine",
        "_next_id",
        "_now",
        "_pending",
        "_relogin_id",
        "_replay",
        "_restoring",
        "_resumed",
        "_subscriptions",
        "_unarmed",
        "base_url",
        "command_timeout",
        "keepalive",
        "login_command",
        "login_failures",
        "max_line",
        "max_login_failures",
        "max_pending",
        "resumable",
        "session",
    )

    def __init__(
        self,
        url: str = "wss://socket.trakit.ca/",
        *,
        ghost_id: str | None = None,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        keepalive: float = DEFAULT_KEEPALIVE,
        max_line: int = DEFAULT_MAX_LINE,
        max_pending: int = DEFAULT_MAX_PENDING,
        login: Command | None = None,
        max_login_failures: int = DEFAULT_MAX_LOGIN_FAILURES,
    ) -> None:
        super().__init__()
        self.base_url = url
        """The endpoint (``wss://host/``); :attr:`url_to_open` adds the ghostId."""
        if command_timeout < 0 or keepalive < 0:
            raise ValueError("timeouts must be >= 0 (0 turns them off)")
        if max_line < 1 or max_pending < 1:
            raise ValueError("limits must be >= 1")
        self.command_timeout = command_timeout
        self.keepalive = keepalive
        self.max_line = max_line
        self.max_pending = max_pending
        self.session = Session(ghost_id=ghost_id)
        self.resumable = True
        """False once the session must not be resumed (logout, sessionEnded, refusal, close)."""
        if login is not None and login.name != "login":
            raise ValueError("login= takes a Command.login(...)")
        self.login_command = login
        """The ``login`` to send again when the server forgot the session (also taken from
        the last ``login`` passed to :meth:`send`); ``None``: such a session just ends."""
        self.max_login_failures = max_login_failures
        self.login_failures = 0
        """Logins again in a row that failed for a passing reason (reset by a success)."""
        self._had_session = self._resumed = ghost_id is not None
        self._restoring = False
        self._relogin_id: int | None = None
        self._keepalive_id: int | None = None
        self._fast_limit = max_line // 4
        self._machine: StateMachine[ClientState, ClientInput] = StateMachine(
            _S.CONNECTING, CLIENT_TRANSITIONS
        )
        self._next_id = 1
        self._now = 0.0
        self._last_sent = 0.0
        self._pending: dict[int, tuple[Command, str, float | None]] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._unarmed: list[tuple[int, float]] = []
        """Commands sent before any connection: (reqId, timeout) to arm on connection."""
        self._held: list[str] = []
        self._subscriptions: dict[int | str, set[str]] = {}
        self._replay: dict[int | str, set[str]] = {}
        """What the last connection had subscribed (sent, not held): replayed once the next
        one is logged in.  Commands sent meanwhile are held and go out after it."""
        self._dispatch: dict[str, Callable[[str, dict[str, Any], str], None]] = {
            "connectionResponse": self._on_connection_response,
            "loginResponse": self._on_session_response,
            "getSessionDetailsResponse": self._on_session_response,
            "logoutResponse": self._on_session_response,
            "subscribeResponse": self._on_subscribe_response,
            "unsubscribeResponse": self._on_subscribe_response,
            "unknownCommandResponse": self._on_unknown_command,
            "sessionEnded": self._on_session_ended,
            "broadcast": self._on_broadcast,
        }

    # -- introspection ---------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._machine.state

    @property
    def ready(self) -> bool:
        """``connectionResponse`` arrived: commands go straight to the wire."""
        return self._machine.state in _OPEN

    @property
    def pending(self) -> dict[int, Command]:
        """Commands awaiting a response (held ones included), by ``reqId``."""
        return {req_id: entry[0] for req_id, entry in self._pending.items()}

    @property
    def subscriptions(self) -> dict[int | str, frozenset[str]]:
        """The subscription types held per company: replayed after a reconnect."""
        return {company: frozenset(types) for company, types in self._subscriptions.items()}

    def url(self, base: str) -> str:
        """The WebSocket URL of the next connection: ``base`` + ``/`` + ghostId (or blank).

        The ghostId is the server's (a JSON string): percent-encoded, so that no value of it
        (``/``, ``?``, a lone surrogate escape) can change the URL's shape or break its
        encoding; a GUID reads as it is."""
        ghost_id = self.session.ghost_id or ""
        return base.rstrip("/") + "/" + quote(ghost_id, safe="-._~", errors="replace")

    @property
    def url_to_open(self) -> str:
        """The WebSocket URL of the next connection under the endpoint given at construction."""
        return self.url(self.base_url)

    # -- inputs ----------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """The WebSocket is open: wait for ``connectionResponse``."""
        self._machine.fire(_I.CONNECTION_MADE)
        self._now = self._last_sent = now
        for req_id, timeout in self._unarmed:
            pending = self._pending.get(req_id)
            if pending is not None:
                self._pending[req_id] = (pending[0], pending[1], now + timeout)
                heapq.heappush(self._deadlines, (now + timeout, req_id))
        self._unarmed.clear()

    def receive(self, data: str, now: float) -> None:
        """Feed one WebSocket text message from the server."""
        state = self._machine.state
        if state is not _S.LOGGED_IN and state not in _LIVE:
            self._machine.fire(_I.RECEIVE)  # raises: not connected
        self._now = now
        if len(data) > self._fast_limit and line_too_long(data, self.max_line):
            self._corrupt(f"line over {self.max_line} bytes", data)
        # The hot path: decode inline, classify the name through a cache (names repeat).
        cut = data.find(" ")
        name = data[:cut] if cut >= 0 else data
        kind = _KINDS.get(name)
        if kind is None:
            if not is_name(name):
                self._events.append(InvalidMessage(data, BAD_NAME))
                return
            kind = _classify(name)
        if cut >= 0:
            text = data[cut + 1 :]
            try:
                body = _decoder.body_loads(text)  # the JSON hook, or trackwire[fast]'s
            except Exception:  # whatever the installed decoder raises
                body = self._decode_again(text)
                if body is _REFUSED:
                    self._events.append(InvalidMessage(data, BAD_JSON, name))
                    return
            if type(body) is not dict:
                self._events.append(InvalidMessage(data, NOT_OBJECT, name))
                return
        else:
            body = {}
        if kind is Merged:
            event = _new(Merged)  # its two fields set here: no __init__ call
            event.name = name
            event.body = body
            self._events.append(event)
        elif kind is Response:
            response = self._response(Response, name, body)
            self._events.append(response)
            if response.error_code in _FORGOTTEN and self._machine.state is _S.LOGGED_IN:
                self._forgotten(response.error_code)
        elif kind is Deleted:
            self._events.append(Deleted(name, body))
        elif kind is Suspended:
            self._events.append(Suspended(name, body))
        elif kind is UnknownMessage:
            self._events.append(UnknownMessage(name, body, data))
        else:
            self._dispatch[name](name, body, data)

    @staticmethod
    def _decode_again(text: str) -> Any:
        """A body the fast decoder refused, through the default path (which gives the same
        value, or refuses it too); refused at once for any other decoder."""
        retry = _decoder.body_retry
        if retry is None:
            return _REFUSED
        try:
            return retry(text)
        except Exception:
            return _REFUSED

    def _corrupt(self, reason: str, data: str) -> None:
        state = self._machine.state
        self._machine.fire(_I.CORRUPTION)
        self._fail_all()
        raise RemoteProtocolError(reason, state=state, frame=data)

    def _response(
        self, cls: type[_R], name: str, body: dict[str, Any], unknown: bool = False
    ) -> _R:
        req_id = body.get("reqId")
        code = body.get("errorCode")
        code = error_code(code)
        request = None
        if type(req_id) is int:
            entry = self._pending.get(req_id)
            if entry is not None and (unknown or entry[1] == name):
                del self._pending[req_id]
                request = entry[0]
        return cls(name, body, req_id, code, request)

    def _on_connection_response(self, name: str, body: dict[str, Any], raw: str) -> None:
        event = ConnectionResponse(name, body, error_code(body.get("errorCode")))
        code = event.error_code
        inp = _CONNECTION_INPUT.get(code, _I.SESSION_REFUSED)
        self.session.update(body, code == 0)
        self._events.append(event)
        if inp is _I.SESSION_REFUSED and self._machine.state is not _S.CLOSING:
            self._finish(FinishReason.REFUSED, f"connection refused (errorCode {code})", code)
        elif inp is _I.SESSION_ANONYMOUS and code in _FORGOTTEN:
            if self._resumed and (self._had_session or self.login_command is not None):
                self._forgotten(code)
                return
            if self.login_command is not None and not self._login_held():
                self._forgotten(code, announce=False)  # login= given: log in by itself
                return
        elif code == 0:
            self._had_session = True
        self._session_input(inp, f"connection refused (errorCode {code})", 1008)

    def _login_held(self) -> bool:
        return any(frame.startswith("login ") for frame in self._held)

    def _forgotten(self, code: object, *, announce: bool = True) -> None:
        """The server forgot the session: log in again, or end it for good."""
        code = code if isinstance(code, int) else None
        login = self.login_command
        state = self._machine.state
        if state is _S.CLOSING or self._relogin_id is not None:
            return
        if login is None:
            self._events.append(SessionForgotten(code, False))
            self._finish(
                FinishReason.NO_CREDENTIALS, "the server forgot the session; no credentials", code
            )
            self._session_input(_I.SESSION_OVER, "session forgotten", 1000)
            return
        if announce:
            self._events.append(SessionForgotten(code, True))
        self._restoring = announce
        self._machine.fire(_I.SESSION_ANONYMOUS)
        if state is _S.LOGGED_IN:  # forgotten mid-connection: all that was sent is lost
            self._replay = _copy(self._subscriptions)
        # The login goes first; held commands wait for its answer (see _session_input).
        try:
            self._relogin_id = self._send(login, self._now, internal=True)
        except LocalProtocolError as exc:  # no room among the pending commands
            self._finish(FinishReason.LOGIN_FAILED, f"cannot log in again: {exc}", code)
            self._session_input(_I.SESSION_OVER, "cannot log in again", 1000)

    def _finish(self, reason: FinishReason, detail: str, code: object = None) -> None:
        self._events.append(
            SessionFinished(reason, detail, code if isinstance(code, int) else None)
        )

    def _on_session_response(self, name: str, body: dict[str, Any], raw: str) -> None:
        event = self._response(SessionResponse, name, body)
        code = event.error_code
        if name == "logoutResponse":
            self.session.update(body, False)
            self._events.append(event)
            if self._machine.state is not _S.CLOSING:
                self._finish(FinishReason.LOGGED_OUT, "logged out")
            self._session_input(_I.SESSION_OVER, "logged out", 1000)
            return
        if code == 0 or code == ErrorCode.PASSWORD_EXPIRED:
            self.session.update(body, True)
        self._events.append(event)
        if name != "loginResponse":
            if code in _FORGOTTEN and self._machine.state is _S.LOGGED_IN:
                self._forgotten(code)
            return
        relogin = self._relogin_id is not None and event.req_id == self._relogin_id
        if relogin:
            self._relogin_id = None
        inp = _LOGIN_INPUT.get(code)
        if inp is not None:
            self._had_session = True
            if relogin:
                self.login_failures = 0
                if self._restoring:
                    self._events.append(SessionRestored(len(self._replay)))
            self._session_input(inp, "", 1000)
        elif relogin:
            self._relogin_failed(code)

    def _relogin_failed(self, code: object) -> None:
        """A login again was refused (for good) or failed (try again after the backoff)."""
        if code == ErrorCode.SESSION_THROTTLED:
            self._finish(FinishReason.THROTTLED, "too many login attempts", code)
        elif code not in _PASSING and code is not None:
            self._finish(FinishReason.LOGIN_REFUSED, f"login refused (errorCode {code})", code)
        else:
            self.login_failures += 1
            if self.login_failures < self.max_login_failures:
                # Close and let the driver's backoff decide when the next attempt goes.
                self._machine.fire(_I.CLOSE)
                self._events.append(CloseRequested(1000, "login failed; trying again"))
                return
            self._finish(
                FinishReason.LOGIN_FAILED, f"{self.login_failures} logins failed in a row", code
            )
        self._session_input(_I.SESSION_OVER, "login refused", 1000)

    def _on_subscribe_response(self, name: str, body: dict[str, Any], raw: str) -> None:
        event = self._response(SubscribeResponse, name, body)
        request = event.request
        self._events.append(event)
        code = event.error_code
        if code in _FORGOTTEN and self._machine.state is _S.LOGGED_IN:
            self._forgotten(code)  # the subscription is held: replayed after the login
            return
        if request is None or request.name != "subscribe":
            return
        # Types the server refused are not held (nor replayed after a reconnect).
        company = _company_id(request.body)
        if code != 0 and code not in _FORGOTTEN:
            types = _types_of(request.body)
            self._forget(request.body, types)
            self._events.append(SubscriptionRefused(company, types, "error", code, event.req_id))
            return
        for reason, refused in (("denied", event.denied), ("invalid", event.invalid)):
            if refused:
                self._forget(request.body, refused)
                self._events.append(
                    SubscriptionRefused(company, refused, reason, code, event.req_id)
                )

    def _on_unknown_command(self, name: str, body: dict[str, Any], raw: str) -> None:
        self._events.append(self._response(UnknownCommandResponse, name, body, unknown=True))

    def _on_session_ended(self, name: str, body: dict[str, Any], raw: str) -> None:
        self._events.append(SessionEnded(name, body))
        if self._machine.state is not _S.CLOSING:
            self._finish(FinishReason.SESSION_ENDED, "the server ended the session")
        self._session_input(_I.SESSION_OVER, "session ended", 1000)

    def _on_broadcast(self, name: str, body: dict[str, Any], raw: str) -> None:
        self._events.append(Broadcast(name, body))

    def _session_input(self, inp: ClientInput, reason: str, code: int) -> None:
        before = self._machine.state
        after = self._machine.fire(inp)
        if after is _S.CLOSING:
            self.resumable = False
            if before is not _S.CLOSING:
                self._events.append(CloseRequested(code, reason))
            return
        if after is _S.LOGGED_IN and self._replay:
            replay, self._replay = self._replay, {}
            for company, types in replay.items():
                # Net of what was unsubscribed since (its held unsubscribe follows anyway).
                still = types & self._subscriptions.get(company, set())
                if still:
                    self._send(Command.subscribe(company, sorted(still)), self._now, replay=True)
        if self._held and self._relogin_id is None:
            held, self._held = self._held, []
            if held:
                self._out.extend(held)
                self._last_sent = self._now

    def receive_eof(self, now: float) -> None:
        """The socket closed: every pending command fails; :meth:`reconnect` may follow."""
        before = self._machine.state
        self._machine.fire(_I.EOF)
        self._now = now
        self._relogin_id = self._keepalive_id = None
        self._fail_all()
        if before is not _S.CLOSED and before is not _S.ERROR:
            self._events.append(Closed(self.resumable and self.session.ghost_id is not None))

    def _fail_all(self) -> None:
        pending, self._pending = self._pending, {}
        self._held = []
        self._deadlines = []
        self._unarmed = []
        for req_id, (command, _, _) in pending.items():
            self._events.append(CommandFailed(req_id, command, FailureReason.CLOSED))

    # -- outputs ---------------------------------------------------------------------

    def send(self, item: Command, now: float | None = None) -> int:
        """Queue a command; returns its ``reqId``.  Held until ``connectionResponse``.

        Raises :class:`LocalProtocolError` when closing or closed, when the command cannot
        be encoded, is over the line limit, or too many commands are pending.
        """
        if not isinstance(item, Command):
            raise LocalProtocolError(f"send() takes a Command, not {type(item).__name__}")
        return self._send(item, self._now if now is None else now)

    def _send(
        self, command: Command, now: float, *, internal: bool = False, replay: bool = False
    ) -> int:
        machine = self._machine
        if machine.state not in _OPEN:
            machine.fire(_I.SEND)
        self._now = now
        if len(self._pending) >= self.max_pending:
            raise LocalProtocolError(f"more than {self.max_pending} commands pending")
        req_id = self._next_id
        body = dict(command.body)
        body["reqId"] = req_id
        try:
            frame = encode(command.name, body)
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode {command.name!r}: {exc}") from None
        if len(frame) > self._fast_limit and line_too_long(frame, self.max_line):
            raise LocalProtocolError(f"{command.name} is over {self.max_line} bytes")
        self._next_id = req_id + 1
        timeout = self.command_timeout if command.timeout is None else command.timeout
        if machine.state is _S.CONNECTING and timeout > 0:
            # No connection yet, so no clock either: the timeout starts when the socket opens.
            self._pending[req_id] = (command, command.name + "Response", None)
            self._unarmed.append((req_id, timeout))
        else:
            deadline = now + timeout if timeout > 0 else None
            self._pending[req_id] = (command, command.name + "Response", deadline)
            if deadline is not None:
                heapq.heappush(self._deadlines, (deadline, req_id))
        name = command.name
        if replay:
            pass  # already held
        elif name == "subscribe":
            company = _company_id(command.body)
            if company is not None:
                self._subscriptions.setdefault(company, set()).update(_types_of(command.body))
        elif name == "unsubscribe":
            self._forget(command.body, _types_of(command.body))
        elif name == "logout":
            self.resumable = False
        elif name == "login" and not internal:
            self.login_command = command
        if internal or replay or (machine.state in _OPEN and self._relogin_id is None):
            self._out.append(frame)
            self._last_sent = now
        else:
            self._held.append(frame)
        return req_id

    def _forget(self, body: dict[str, Any], types: list[str]) -> None:
        company = _company_id(body)
        held = self._subscriptions.get(company) if company is not None else None
        if company is not None and held is not None:
            held.difference_update(types)
            if not held:
                del self._subscriptions[company]

    def close(self, now: float | None = None) -> None:
        """End the session for good (the caller closes the socket, code 1000)."""
        before = self._machine.state
        self._machine.fire(_I.CLOSE)
        if now is not None:
            self._now = now
        self.resumable = False
        if before is _S.CONNECTING:
            self._fail_all()
            self._events.append(Closed(False))

    def reconnect(self) -> None:
        """Prepare the next connection with the same ghostId; the held subscriptions are
        replayed once the new connection is logged in.

        Allowed after the connection ended (``CLOSED``) or broke (``ERROR``), and as a no-op
        while an attempt never opened (``CONNECTING``), unless the
        session was ended (logout, ``sessionEnded``, a refused ``connectionResponse``, close).
        """
        if not self.resumable:
            raise LocalProtocolError("the session is not to be resumed", state=self.state)
        before = self._machine.state
        self._machine.fire(_I.RECONNECT)
        if before is _S.CONNECTING:
            return  # the last attempt never opened: nothing changes, commands stay held
        self._replay = _copy(self._subscriptions)
        self._resumed = True

    # -- time ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = self._deadlines
        pending = self._pending
        while deadlines and deadlines[0][1] not in pending:
            heapq.heappop(deadlines)
        deadline = deadlines[0][0] if deadlines else None
        if self.keepalive and self._machine.state in _OPEN:
            idle = self._last_sent + self.keepalive
            if deadline is None or idle < deadline:
                deadline = idle
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fail the commands whose timeout passed; send a ``noop`` after silence."""
        self._now = now
        deadlines = self._deadlines
        pending = self._pending
        while deadlines and deadlines[0][0] <= now:
            _, req_id = heapq.heappop(deadlines)
            entry = pending.pop(req_id, None)
            if entry is not None:
                self._events.append(CommandFailed(req_id, entry[0], FailureReason.TIMEOUT))
                if req_id == self._relogin_id:
                    self._relogin_id = None
                    self._relogin_failed(None)
                elif req_id == self._keepalive_id and self._machine.state in _OPEN:
                    # No answer to the keep-alive: the peer is gone (a half-open socket).
                    # Close and let the driver reconnect; the session may still resume.
                    self._keepalive_id = None
                    self._machine.fire(_I.CLOSE)
                    self._events.append(CloseRequested(1001, "no answer to noop"))
        if (
            self.keepalive
            and self._machine.state in _OPEN
            and now >= self._last_sent + self.keepalive
        ):
            if self._keepalive_id in pending:
                # The last keep-alive is still unanswered: its timeout decides, not a new one.
                self._last_sent = now
            elif len(pending) < self.max_pending:
                self._keepalive_id = self._send(Command.noop(), now, internal=True)
            else:
                # No room for a noop (every slot waits for an answer): try again one
                # keep-alive later rather than leaving a deadline in the past.
                self._last_sent = now


def _copy(subscriptions: dict[int | str, set[str]]) -> dict[int | str, set[str]]:
    return {company: set(types) for company, types in subscriptions.items()}


def _company_id(body: dict[str, Any]) -> int | str | None:
    """The company a (un)subscribe names, when it is a usable key."""
    company = body.get("company")
    if isinstance(company, dict):
        company = company.get("id")
    return company if isinstance(company, (int, str)) else None


def _types_of(body: dict[str, Any]) -> list[str]:
    types = body.get("subscriptionTypes")
    return [t for t in types if isinstance(t, str)] if isinstance(types, list) else []


_new = object.__new__
_REFUSED: Any = object()
"""A body no decoder took (distinct from every decoded value, ``None`` included)."""
