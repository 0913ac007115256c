"""The FleetFreedom / Trak-iT server core: one connection (:class:`FleetFreedomServer`) and
the state they share (:class:`FleetFreedomHub`: sessions, subscriptions, objects).

Both are pure: no sockets, no clock.  Time is passed in (monotonic seconds); the hub turns
it into the wire's ISO datetimes with ``wall_offset`` (``time.time() - time.monotonic()``
in a real server).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .._core import CoreBase, StateMachine
from .._errors import LocalProtocolError, RemoteProtocolError
from .._json import json_safe
from ._codec import DEFAULT_MAX_LINE, MessageError, decode, encode, encode_safe, line_too_long
from ._events import (
    Closed,
    CommandReceived,
    FleetFreedomEvent,
    InvalidMessage,
    LoggedIn,
    LoggedOut,
)
from ._types import (
    OBJECT_SLOTS,
    PIECE_SLOTS,
    SUBSCRIPTION_TYPES,
    ErrorCode,
    key_field,
    list_command,
    upper_first,
)

__all__ = [
    "SERVER_TRANSITIONS",
    "Account",
    "FleetFreedomHub",
    "FleetFreedomServer",
    "HubObserver",
    "ServerInput",
    "ServerState",
    "ghost_id_from_request",
]

DEFAULT_EXPIRE_MINUTES = 60.0
"""Session idle expiry when the account's ``sessionPolicy`` names no ``expireTimeout``."""


@dataclass(slots=True)
class Account:
    """A user the authenticator vouches for.

    ``user`` is the Session object sent as ``user``; ``session_policy`` may list the
    allowed ``applications`` (userAgents) and ``expireTimeout`` (minutes).  ``companies``
    are the companies the user may reach besides its own.
    """

    login: str
    company: int
    user: dict[str, Any] = field(default_factory=dict)
    session_policy: dict[str, Any] = field(default_factory=dict)
    password_policy: dict[str, Any] = field(default_factory=dict)
    companies: frozenset[int] = frozenset()


Authenticator = Callable[[str, str], "Account | ErrorCode | None"]
"""``(username, password) -> Account | None``; an :class:`ErrorCode` refuses the login with
that code instead of ``invalidCredentials`` (e.g. 73 ``sessionThrottled``)."""


@dataclass(slots=True)
class _Session:
    ghost_id: str = field(repr=False)
    account: Account
    timeout: float
    expires_at: float


class HubObserver(Protocol):
    """What a hub tells its :attr:`FleetFreedomHub.observer` (e.g. to share its state with
    other server processes).  Called synchronously, after the change; keep it quick."""

    def session_opened(
        self, ghost_id: str, account: Account, timeout: float, expires_at: float
    ) -> None:
        """A login opened a session (``timeout``: idle seconds; ``expires_at``: monotonic)."""

    def session_touched(self, ghost_id: str, expires_at: float) -> None:
        """A session was used (a command, a resume): it now expires at ``expires_at``."""

    def session_ended(self, ghost_id: str, reason: str) -> None:
        """A session ended: ``logout``, ``killed`` (:meth:`FleetFreedomHub.end_session`) or
        ``expired``."""

    def published(self, name: str, company: int, body: Mapping[str, Any]) -> None:
        """:meth:`FleetFreedomHub.publish` was called (the store already holds the change)."""


def _iso(seconds: float) -> str:
    stamp = datetime.fromtimestamp(max(seconds, 0.0), tz=timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Which v slot owns a field, for the objects whose pieces spec §6 describes; any other
# field (and every field of other types) belongs to slot 0, the general piece.
_FIELD_SLOTS: dict[str, dict[str, int]] = {
    "asset": dict.fromkeys(
        (
            "attributes",
            "odometer",
            "places",
            "position",
            "providers",
            "relationships",
            "tags",
            "engineHours",
        ),
        1,
    ),
    "company": {"labels": 3, "tags": 3, "passwordPolicy": 4, "sessionPolicy": 4},
}
_SHARED_FIELDS = frozenset(("id", "company", "login", "parent", "v"))


def _company_of(object_type: str, obj: Mapping[str, Any]) -> object:
    """The company an object belongs to (a company belongs to its ``parent``)."""
    return obj.get("parent" if object_type == "company" else "company")


class _Store:
    """The objects a hub serves: get / list / merge (version-checked) / remove."""

    __slots__ = ("next_id", "objects")

    def __init__(self) -> None:
        self.objects: dict[tuple[str, object], dict[str, Any]] = {}
        self.next_id = 1

    @staticmethod
    def slots(object_type: str) -> int:
        return len(OBJECT_SLOTS.get(object_type, ("general",)))

    def put(self, object_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        stored = dict(obj)
        key = stored.get(key_field(object_type))
        if key is None:
            key = stored["id"] = self.next_id
        if isinstance(key, int) and key >= self.next_id:
            self.next_id = key + 1
        version = stored.get("v")
        slots = self.slots(object_type)
        if not isinstance(version, list):
            stored["v"] = [1] * slots
        elif len(version) < slots:
            # A short v from the application: pad it with 0 (no version yet), so that a
            # merge can bump any slot.
            stored["v"] = [*version, *[0] * (slots - len(version))]
        self.objects[object_type, key] = stored
        return stored

    def pieces(
        self, object_type: str, obj: Mapping[str, Any], slots: Iterable[int]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The ``<piece>Merged`` messages that carry the given slots of an object."""
        owners = _FIELD_SLOTS.get(object_type, {})
        names = OBJECT_SLOTS.get(object_type)
        out = []
        version = obj["v"]
        for slot in slots:
            piece = object_type + upper_first(names[slot]) if names else object_type
            body = {k: v for k, v in obj.items() if k in _SHARED_FIELDS or owners.get(k, 0) == slot}
            body["v"] = [version[slot] if slot < len(version) else 0]
            out.append((piece + "Merged", body))
        return out


class ServerState(enum.Enum):
    """Where one client connection of a FleetFreedom server stands."""

    CONNECTING = "connecting"
    ANONYMOUS = "anonymous"
    LOGGED_IN = "logged-in"
    CLOSED = "closed"
    ERROR = "error"


class ServerInput(enum.Enum):
    """What can happen to a server connection."""

    CONNECTION_MADE = enum.auto()
    CONNECTION_RESUMED = enum.auto()
    LOGIN = enum.auto()
    SESSION_OVER = enum.auto()
    RECEIVE = enum.auto()
    SEND = enum.auto()
    CLOSE = enum.auto()
    EOF = enum.auto()
    CORRUPTION = enum.auto()


_SS = ServerState
_SI = ServerInput
_SERVING = (_SS.ANONYMOUS, _SS.LOGGED_IN)

SERVER_TRANSITIONS: dict[tuple[ServerState, ServerInput], ServerState] = {
    (_SS.CONNECTING, _SI.CONNECTION_MADE): _SS.ANONYMOUS,
    (_SS.CONNECTING, _SI.CONNECTION_RESUMED): _SS.LOGGED_IN,
    (_SS.CONNECTING, _SI.CLOSE): _SS.CLOSED,
    (_SS.CONNECTING, _SI.EOF): _SS.CLOSED,
    **{(state, _SI.LOGIN): _SS.LOGGED_IN for state in _SERVING},
    (_SS.LOGGED_IN, _SI.SESSION_OVER): _SS.ANONYMOUS,
    **{(state, _SI.RECEIVE): state for state in _SERVING},
    **{(state, _SI.SEND): state for state in _SERVING},
    **{(state, _SI.CLOSE): _SS.CLOSED for state in _SERVING},
    **{(state, _SI.EOF): _SS.CLOSED for state in _SERVING},
    **{(state, _SI.CORRUPTION): _SS.ERROR for state in _SERVING},
    (_SS.CLOSED, _SI.CLOSE): _SS.CLOSED,
    (_SS.CLOSED, _SI.EOF): _SS.CLOSED,
    (_SS.ERROR, _SI.CLOSE): _SS.ERROR,
    (_SS.ERROR, _SI.EOF): _SS.ERROR,
}
"""Every legal (state, input) pair; anything else raises :class:`LocalProtocolError`."""


def _default_messages() -> dict[int, str]:
    return {int(code): code.wire_name for code in ErrorCode} | {0: "OK"}


_MESSAGES = _default_messages()


def ghost_id_from_request(target: str, subprotocols: Sequence[str] = ()) -> str | None:
    """The ghostId a client gave: the path (``/<guid>``), ``?ghostId=``, or a subprotocol."""
    try:
        parts = urlsplit(target)
    except ValueError:
        # A bracket where urlsplit expects a host ("//[x", from the peer): read it by hand.
        path, _, query = target.partition("#")[0].partition("?")
    else:
        path, query = parts.path, parts.query
    given = parse_qs(query).get("ghostId")
    if given and given[0]:
        return given[0]
    path = path.strip("/")
    if path:
        return path
    for proto in subprotocols:
        try:
            return str(uuid.UUID(proto))
        except ValueError:
            continue
    return None


class FleetFreedomHub:
    """What the connections of one server share: sessions, subscriptions, objects.

    ``authenticator(username, password)`` returns an :class:`Account` or ``None`` (or an
    :class:`ErrorCode` to refuse with, such as ``SESSION_THROTTLED``);
    ``ghost_ids()`` makes new session ids; ``can_access(account, company)`` decides which
    companies a user may subscribe to and read (default: its own plus ``account.companies``).
    ``extra_commands`` are passed to the application (:class:`CommandReceived` with
    ``answered=False``) instead of being answered as unknown.  ``anonymous_timeout``
    (seconds, off by default) closes a connection that stays unauthenticated that long.
    """

    def __init__(
        self,
        authenticator: Callable[[str, str], Account | ErrorCode | None],
        *,
        ghost_ids: Callable[[], str] = lambda: str(uuid.uuid4()),
        can_access: Callable[[Account, int], bool] | None = None,
        wall_offset: float = 0.0,
        extra_commands: Iterable[str] = (),
        max_line: int = DEFAULT_MAX_LINE,
        anonymous_timeout: float | None = None,
    ) -> None:
        if anonymous_timeout is not None and anonymous_timeout <= 0:
            raise ValueError("anonymous_timeout must be > 0 (None turns it off)")
        self.authenticator = authenticator
        self.anonymous_timeout = anonymous_timeout
        """Seconds a connection may stay unauthenticated (from its start, or from a logout or
        expiry) before the server closes it; traffic does not extend it.  ``None``: never."""
        self.ghost_ids = ghost_ids
        self.can_access = can_access or _own_companies
        self.wall_offset = wall_offset
        self.extra_commands = frozenset(extra_commands)
        self.max_line = max_line
        self.sessions: dict[str, _Session] = {}
        self.observer: HubObserver | None = None
        """Told of every session change and publish (``None``: nobody listens)."""
        self.store = _Store()
        self.connections: dict[FleetFreedomServer, None] = {}
        self._subscribers: dict[tuple[str, int], dict[FleetFreedomServer, None]] = {}
        self._object_commands: dict[str, tuple[str, str]] = {}
        for object_type in _OBJECT_TYPES:
            self._add_object_type(object_type)

    def _add_object_type(self, object_type: str) -> None:
        title = upper_first(object_type)
        for op in ("get", "merge", "remove"):
            self._object_commands[op + title] = (op, object_type)
        self._object_commands[list_command(object_type)] = ("list", object_type)

    def connect(self, ghost_id: str | None = None) -> FleetFreedomServer:
        """A new connection core for a client that gave ``ghost_id`` (or none)."""
        return FleetFreedomServer(self, ghost_id)

    def datetime(self, now: float) -> str:
        """``now`` (monotonic) as the wire's ISO 8601 UTC datetime."""
        return _iso(now + self.wall_offset)

    # -- sessions --------------------------------------------------------------------

    def _open_session(self, account: Account, now: float) -> _Session:
        minutes = account.session_policy.get("expireTimeout")
        if not isinstance(minutes, (int, float)) or minutes <= 0:
            minutes = DEFAULT_EXPIRE_MINUTES
        timeout = float(minutes) * 60.0
        session = _Session(self.ghost_ids(), account, timeout, now + timeout)
        self.sessions[session.ghost_id] = session
        if self.observer is not None:
            self.observer.session_opened(session.ghost_id, account, timeout, session.expires_at)
        return session

    def adopt_session(
        self, ghost_id: str, account: Account, timeout: float, expires_at: float
    ) -> None:
        """Make a session opened elsewhere (another server process) live here too; a later
        ``expires_at`` of a known session extends it.  The observer is not told."""
        session = self.sessions.get(ghost_id)
        if session is None:
            self.sessions[ghost_id] = _Session(ghost_id, account, timeout, expires_at)
        elif expires_at > session.expires_at:
            session.expires_at = expires_at

    def forget_session(self, ghost_id: str, reason: str = "expired") -> None:
        """Forget a session without a word to its connections (an expiry, as the platform
        forgets one: the next command or resume meets errorCode 7 or 8); the observer is
        told."""
        self._session_gone(ghost_id, reason)

    def _session_gone(self, ghost_id: str, reason: str) -> None:
        if self.sessions.pop(ghost_id, None) is not None and self.observer is not None:
            self.observer.session_ended(ghost_id, reason)

    def _touched(self, session: _Session, now: float) -> None:
        session.expires_at = now + session.timeout
        if self.observer is not None:
            self.observer.session_touched(session.ghost_id, session.expires_at)

    def end_session(self, ghost_id: str, now: float | None = None) -> list[FleetFreedomServer]:
        """Kill a session: its connections get ``sessionEnded``; returns them."""
        self._session_gone(ghost_id, "killed")
        ended = [conn for conn in self.connections if conn.ghost_id == ghost_id]
        for conn in ended:
            conn._session_ended("killed")
        return ended

    def prune(self, now: float) -> list[str]:
        """Forget sessions expired before ``now``; returns their ghostIds."""
        gone = [gid for gid, s in self.sessions.items() if s.expires_at <= now]
        for gid in gone:
            self._session_gone(gid, "expired")
        return gone

    # -- subscriptions and pushes ----------------------------------------------------

    def _subscribe(self, conn: FleetFreedomServer, company: int, types: Iterable[str]) -> None:
        for sub in types:
            self._subscribers.setdefault((sub, company), {})[conn] = None

    def _unsubscribe(self, conn: FleetFreedomServer, company: int, types: Iterable[str]) -> None:
        for sub in types:
            subscribers = self._subscribers.get((sub, company))
            if subscribers is not None:
                subscribers.pop(conn, None)
                if not subscribers:
                    del self._subscribers[sub, company]

    def _detach(self, conn: FleetFreedomServer) -> None:
        self.connections.pop(conn, None)
        for company, types in conn._subscriptions.items():
            self._unsubscribe(conn, company, types)
        conn._subscriptions = {}

    def subscribers(self, subscription_type: str, company: int) -> list[FleetFreedomServer]:
        return list(self._subscribers.get((subscription_type, company), ()))

    def publish(self, name: str, company: int, body: Mapping[str, Any]) -> list[FleetFreedomServer]:
        """Push ``<type>Merged`` / ``<object>Deleted`` / ``<object>Suspended`` to exactly the
        connections subscribed to that type (any piece of the object) for ``company``.

        Returns the connections that got it (their :meth:`data_to_send` now holds it).
        """
        if name.endswith("Merged"):
            types: tuple[str, ...] = (name[:-6],)
        elif name.endswith("Deleted"):
            types = _pieces_of(name[:-7])
        elif name.endswith("Suspended"):
            types = _pieces_of(name[:-9])
        else:
            raise ValueError(f"publish() takes Merged/Deleted/Suspended messages, not {name!r}")
        targets: dict[FleetFreedomServer, None] = {}
        for sub in types:
            targets.update(self._subscribers.get((sub, company), {}))
        if targets:
            frame = encode_safe(name, body)
            for conn in targets:
                conn._push(frame)
        if self.observer is not None:
            self.observer.published(name, company, body)
        return list(targets)

    def broadcast(self, body: Mapping[str, Any]) -> list[FleetFreedomServer]:
        """Send ``broadcast`` to every connection (it ignores subscriptions)."""
        frame = encode_safe("broadcast", body)
        targets = [conn for conn in self.connections if conn.state in _SERVING]
        for conn in targets:
            conn._push(frame)
        return targets

    # -- objects ---------------------------------------------------------------------

    def put(self, object_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store (or replace) an object as the server's truth; no push is sent."""
        self._add_object_type(object_type)
        return self.store.put(object_type, obj)

    def get(self, object_type: str, key: object) -> dict[str, Any] | None:
        return self.store.objects.get((object_type, key))


def _own_companies(account: Account, company: int) -> bool:
    return company == account.company or company in account.companies


_OBJECT_TYPES: set[str] = set(OBJECT_SLOTS) | {
    sub for sub in SUBSCRIPTION_TYPES if sub not in PIECE_SLOTS
}


def _pieces_of(object_type: str) -> tuple[str, ...]:
    names = OBJECT_SLOTS.get(object_type)
    if names is None:
        return (object_type,)
    return tuple(object_type + upper_first(name) for name in names)


_NOT_FOUND = {code.wire_name: code for code in ErrorCode if code.wire_name.endswith("NotFound")}
_PUBLIC = frozenset(("login", "noop"))


class FleetFreedomServer(CoreBase[FleetFreedomEvent]):
    """Sans-IO server side of one FleetFreedom connection, attached to a hub.

    On :meth:`connection_made` it sends ``connectionResponse`` (8 without a valid ghostId,
    0 for a live session, 7 for an expired one).  It answers the session, subscription and
    object commands itself, bad JSON with errorCode 3, unknown commands with
    ``unknownCommandResponse`` (61), and keeps serving.
    """

    __slots__ = (
        "_anonymous_since",
        "_handlers",
        "_machine",
        "_now",
        "_session",
        "_subscriptions",
        "given_ghost_id",
        "hub",
    )

    def __init__(self, hub: FleetFreedomHub, ghost_id: str | None = None) -> None:
        super().__init__()
        self.hub = hub
        self.given_ghost_id = ghost_id
        self._session: _Session | None = None
        self._subscriptions: dict[int, set[str]] = {}
        self._now = 0.0
        self._anonymous_since: float | None = None
        self._machine: StateMachine[ServerState, ServerInput] = StateMachine(
            _SS.CONNECTING, SERVER_TRANSITIONS
        )
        self._handlers: dict[str, Callable[[str, dict[str, Any], object], None]] = {
            "login": self._login,
            "noop": self._noop,
            "logout": self._logout,
            "getSessionDetails": self._session_details,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "getSubscriptionsList": self._subscriptions_list,
        }

    @property
    def state(self) -> ServerState:
        return self._machine.state

    @property
    def ghost_id(self) -> str | None:
        """The ghostId of the logged-in session, if any."""
        return self._session.ghost_id if self._session is not None else None

    @property
    def account(self) -> Account | None:
        return self._session.account if self._session is not None else None

    @property
    def subscriptions(self) -> dict[int, frozenset[str]]:
        return {company: frozenset(types) for company, types in self._subscriptions.items()}

    # -- connection ------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """Send ``connectionResponse``: 0 and the user for a live session, 7 for an expired
        one, 8 otherwise (spec §2: a server sends 8 when no valid session was given)."""
        hub = self.hub
        self._now = now
        session = hub.sessions.get(self.given_ghost_id) if self.given_ghost_id else None
        if session is not None and now < session.expires_at:
            self._machine.fire(_SI.CONNECTION_RESUMED)
            hub.connections[self] = None
            self._session = session
            hub._touched(session, now)
            self._reply(
                "connectionResponse", None, ErrorCode.SUCCESS, self._session_fields(session)
            )
            self._events.append(
                LoggedIn(session.account.login, session.account.company, session.ghost_id)
            )
            return
        self._machine.fire(_SI.CONNECTION_MADE)
        hub.connections[self] = None
        self._anonymous_since = now
        code = ErrorCode.USER_NOT_LOGGED_IN
        if session is not None:
            hub._session_gone(session.ghost_id, "expired")
            code = ErrorCode.SESSION_EXPIRED
        fields = {
            "serverTime": hub.datetime(now),
            "ghostId": hub.ghost_ids(),
            "expiry": hub.datetime(now + DEFAULT_EXPIRE_MINUTES * 60.0),
        }
        self._reply("connectionResponse", None, code, fields)

    def _session_fields(self, session: _Session) -> dict[str, Any]:
        hub = self.hub
        account = session.account
        return {
            "serverTime": hub.datetime(self._now),
            "ghostId": session.ghost_id,
            "expiry": hub.datetime(session.expires_at),
            "user": account.user or {"login": account.login, "company": account.company},
            "sessionPolicy": account.session_policy,
            "passwordPolicy": account.password_policy,
        }

    def receive(self, data: str, now: float) -> None:
        """Feed one client frame; the answer (if any) is queued for :meth:`data_to_send`."""
        machine = self._machine
        state = machine.state
        if state not in _SERVING:
            machine.fire(_SI.RECEIVE)
        self._now = now
        if line_too_long(data, self.hub.max_line):
            machine.fire(_SI.CORRUPTION)
            self.hub._detach(self)
            raise RemoteProtocolError(
                f"line over {self.hub.max_line} bytes", state=state, frame=data
            )
        try:
            name, body = decode(data)
        except MessageError as exc:
            self._events.append(InvalidMessage(data, exc.reason, exc.name))
            if exc.name:
                self._reply(exc.name + "Response", None, ErrorCode.INVALID_DATA)
            else:
                self._reply("unknownCommandResponse", None, ErrorCode.UNKNOWN_COMMAND)
            return
        req_id = body.get("reqId")
        session = self._session
        refusal = ErrorCode.USER_NOT_LOGGED_IN
        if session is not None:
            if now >= session.expires_at:
                self._expire(session)
                refusal = ErrorCode.SESSION_EXPIRED
            else:
                self.hub._touched(session, now)
        handler = self._handlers.get(name)
        if handler is None:
            target = self.hub._object_commands.get(name)
            if target is not None:
                op, object_type = target
                handler = self._object_handler(op, object_type)
            elif name in self.hub.extra_commands:
                if self._session is None:
                    self._events.append(CommandReceived(name, body, req_id, True))
                    self._reply(name + "Response", req_id, refusal)
                else:
                    self._events.append(CommandReceived(name, body, req_id, False))
                return
            else:
                self._events.append(CommandReceived(name, body, req_id, True))
                self._reply("unknownCommandResponse", req_id, ErrorCode.UNKNOWN_COMMAND)
                return
        self._events.append(CommandReceived(name, body, req_id, True))
        if self._session is None and name not in _PUBLIC:
            self._reply(name + "Response", req_id, refusal)
            return
        handler(name, body, req_id)

    def _expire(self, session: _Session) -> None:
        self.hub._session_gone(session.ghost_id, "expired")
        self._drop_session("expired")

    def _drop_session(self, reason: str) -> None:
        session = self._session
        if session is None:
            return
        self._session = None
        for company, types in self._subscriptions.items():
            self.hub._unsubscribe(self, company, types)
        self._subscriptions = {}
        self._machine.fire(_SI.SESSION_OVER)
        self._anonymous_since = self._now
        self._events.append(LoggedOut(session.ghost_id, reason))

    def _session_ended(self, reason: str) -> None:
        if self._machine.state in _SERVING:
            self._out.append("sessionEnded {}")
            self._drop_session(reason)

    def receive_eof(self, now: float) -> None:
        before = self._machine.state
        self._machine.fire(_SI.EOF)
        self._now = now
        self.hub._detach(self)
        if before in _SERVING:
            self._events.append(Closed(self._session is not None))

    def close(self) -> None:
        """Stop serving this connection (idempotent); its subscriptions end."""
        self._machine.fire(_SI.CLOSE)
        self.hub._detach(self)

    # -- output ----------------------------------------------------------------------

    def send(self, item: tuple[str, Mapping[str, Any]], now: float | None = None) -> None:
        """Queue any message ``(name, body)`` for this client."""
        if self._machine.state not in _SERVING:
            self._machine.fire(_SI.SEND)
        if now is not None:
            self._now = now
        name, body = item
        try:
            frame = encode(name, body)
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode {name!r}: {exc}") from None
        self._out.append(frame)

    def respond(
        self,
        command: str,
        req_id: object,
        error_code: int = 0,
        payload: Mapping[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        """Answer a command the application handles (``<command>Response``, same ``reqId``)."""
        if self._machine.state not in _SERVING:
            self._machine.fire(_SI.SEND)
        self._reply(command + "Response", req_id, error_code, payload, message)

    def _push(self, frame: str) -> None:
        self._out.append(frame)

    def _reply(
        self,
        name: str,
        req_id: object,
        code: int,
        payload: Mapping[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        body: dict[str, Any] = {} if req_id is None else {"reqId": req_id}
        body["errorCode"] = int(code)
        body["message"] = _MESSAGES.get(code, "error") if message is None else message
        if payload:
            body.update(payload)
        # reqId and echoed lists come from the peer as decoded: NaN, 1e999999 (infinity) and
        # lone surrogate escapes must still leave as strict, UTF-8-encodable JSON.
        self._out.append(encode_safe(name, body))

    def next_deadline(self) -> float | None:
        """When an unauthenticated connection is closed (``hub.anonymous_timeout``); sessions
        expire lazily (on the next command), so they need no timer."""
        since = self._anonymous_since
        timeout = self.hub.anonymous_timeout
        if since is None or timeout is None or self._machine.state is not _SS.ANONYMOUS:
            return None
        return since + timeout

    def handle_timer(self, now: float) -> None:
        """Close the connection if it stayed unauthenticated past ``hub.anonymous_timeout``."""
        self._now = max(self._now, now)
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            self.close()
            self._events.append(Closed(False))

    # -- session commands ------------------------------------------------------------

    def _login(self, name: str, body: dict[str, Any], req_id: object) -> None:
        username = body.get("username")
        password = body.get("password")
        agent = body.get("userAgent")
        if not (isinstance(username, str) and isinstance(password, str)):
            self._reply("loginResponse", req_id, ErrorCode.INVALID_DATA)
            return
        account = self.hub.authenticator(username, password)
        if account is None:
            self._reply("loginResponse", req_id, ErrorCode.INVALID_CREDENTIALS)
            return
        if isinstance(account, ErrorCode):
            self._reply("loginResponse", req_id, account)
            return
        allowed = account.session_policy.get("applications")
        if isinstance(allowed, list) and allowed and agent not in allowed:
            self._reply("loginResponse", req_id, ErrorCode.APPLICATION_NOT_ALLOWED)
            return
        if self._session is not None:
            self._drop_session("login")
        session = self.hub._open_session(account, self._now)
        self._session = session
        self._anonymous_since = None
        self._machine.fire(_SI.LOGIN)
        self._reply("loginResponse", req_id, ErrorCode.SUCCESS, self._session_fields(session))
        self._events.append(LoggedIn(account.login, account.company, session.ghost_id))

    def _noop(self, name: str, body: dict[str, Any], req_id: object) -> None:
        self._reply("noopResponse", req_id, ErrorCode.SUCCESS)

    def _logout(self, name: str, body: dict[str, Any], req_id: object) -> None:
        session = self._session
        assert session is not None
        self.hub._session_gone(session.ghost_id, "logout")
        fields = {"ghostId": session.ghost_id, "expiry": self.hub.datetime(self._now)}
        self._reply("logoutResponse", req_id, ErrorCode.SUCCESS, fields)
        self._drop_session("logout")

    def _session_details(self, name: str, body: dict[str, Any], req_id: object) -> None:
        assert self._session is not None
        fields = self._session_fields(self._session)
        self._reply("getSessionDetailsResponse", req_id, ErrorCode.SUCCESS, fields)

    # -- subscriptions ---------------------------------------------------------------

    def _read_subscription(
        self, name: str, body: dict[str, Any], req_id: object
    ) -> tuple[int, list[str], list[str]] | None:
        company = body.get("company")
        company_id = company.get("id") if isinstance(company, dict) else None
        types = body.get("subscriptionTypes")
        if type(company_id) is not int or not isinstance(types, list):
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return None
        valid = [t for t in types if isinstance(t, str) and t in SUBSCRIPTION_TYPES]
        invalid = [t for t in types if not (isinstance(t, str) and t in SUBSCRIPTION_TYPES)]
        return company_id, valid, invalid

    def _subscribe(self, name: str, body: dict[str, Any], req_id: object) -> None:
        read = self._read_subscription(name, body, req_id)
        if read is None:
            return
        company, valid, invalid = read
        account = self.account
        assert account is not None
        if self.hub.can_access(account, company):
            denied: list[str] = []
            self._subscriptions.setdefault(company, set()).update(valid)
            self.hub._subscribe(self, company, valid)
        else:
            denied = valid
        merged = sorted(self._subscriptions.get(company, ()))
        payload = {
            "company": {"id": company},
            "merged": merged,
            "denied": denied,
            "invalid": invalid,
        }
        self._reply("subscribeResponse", req_id, ErrorCode.SUCCESS, payload)

    def _unsubscribe(self, name: str, body: dict[str, Any], req_id: object) -> None:
        read = self._read_subscription(name, body, req_id)
        if read is None:
            return
        company, valid, invalid = read
        held = self._subscriptions.get(company)
        if held is not None:
            held.difference_update(valid)
            self.hub._unsubscribe(self, company, valid)
            if not held:
                del self._subscriptions[company]
        merged = sorted(self._subscriptions.get(company, ()))
        payload = {"company": {"id": company}, "merged": merged, "denied": [], "invalid": invalid}
        self._reply("unsubscribeResponse", req_id, ErrorCode.SUCCESS, payload)

    def _subscriptions_list(self, name: str, body: dict[str, Any], req_id: object) -> None:
        subs = [
            {"company": company, "subscriptionTypes": sorted(types)}
            for company, types in self._subscriptions.items()
        ]
        self._reply(
            "getSubscriptionsListResponse", req_id, ErrorCode.SUCCESS, {"subscriptions": subs}
        )

    # -- objects ---------------------------------------------------------------------

    def _object_handler(
        self, op: str, object_type: str
    ) -> Callable[[str, dict[str, Any], object], None]:
        def handle(name: str, body: dict[str, Any], req_id: object) -> None:
            getattr(self, "_object_" + op)(name, body, req_id, object_type)

        return handle

    def _allowed(self, company: object) -> bool:
        account = self.account
        return (
            account is not None and type(company) is int and self.hub.can_access(account, company)
        )

    def _not_found(self, object_type: str) -> ErrorCode:
        return _NOT_FOUND.get(object_type + "NotFound", ErrorCode.INVALID_DATA)

    def _visible(self, object_type: str, obj: Mapping[str, Any]) -> bool:
        if object_type == "company" and self._allowed(obj.get("id")):
            return True
        return self._allowed(_company_of(object_type, obj))

    def _find(
        self, name: str, body: dict[str, Any], req_id: object, object_type: str
    ) -> dict[str, Any] | None:
        ref = body.get(object_type)
        key = ref.get(key_field(object_type)) if isinstance(ref, dict) else None
        if key is None or isinstance(key, (dict, list)):
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return None
        obj = self.hub.store.objects.get((object_type, key))
        if obj is None:
            self._reply(name + "Response", req_id, self._not_found(object_type))
            return None
        if not self._visible(object_type, obj):
            # Another tenant's object is answered as missing: a different code would tell
            # the caller which ids exist in companies it may not see.
            self._reply(name + "Response", req_id, self._not_found(object_type))
            return None
        return obj

    def _object_get(
        self, name: str, body: dict[str, Any], req_id: object, object_type: str
    ) -> None:
        obj = self._find(name, body, req_id, object_type)
        if obj is not None:
            self._reply(name + "Response", req_id, ErrorCode.SUCCESS, {object_type: obj})

    def _object_list(
        self, name: str, body: dict[str, Any], req_id: object, object_type: str
    ) -> None:
        company = body.get("company")
        company_id = company.get("id") if isinstance(company, dict) else None
        if type(company_id) is not int:
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return
        if not self._allowed(company_id):
            self._reply(name + "Response", req_id, ErrorCode.PERMISSION_DENIED)
            return
        items = [
            obj
            for (kind, _), obj in self.hub.store.objects.items()
            if kind == object_type and _company_of(object_type, obj) == company_id
        ]
        plural_key = list_command(object_type)[3:-4]
        payload = {"company": {"id": company_id}, plural_key[:1].lower() + plural_key[1:]: items}
        self._reply(name + "Response", req_id, ErrorCode.SUCCESS, payload)

    def _ref(self, object_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        key = key_field(object_type)
        if object_type == "company":
            return {"id": obj.get("id"), "parent": obj.get("parent")}
        return {key: obj.get(key), "company": obj.get("company")}

    def _object_remove(
        self, name: str, body: dict[str, Any], req_id: object, object_type: str
    ) -> None:
        obj = self._find(name, body, req_id, object_type)
        if obj is None:
            return
        store = self.hub.store
        del store.objects[object_type, obj[key_field(object_type)]]
        ref = self._ref(object_type, obj)
        self._reply(name + "Response", req_id, ErrorCode.SUCCESS, {object_type: ref})
        company = _company_of(object_type, obj)
        if type(company) is int:
            self.hub.publish(object_type + "Deleted", company, ref)

    def _object_merge(
        self, name: str, body: dict[str, Any], req_id: object, object_type: str
    ) -> None:
        fields = body.get(object_type)
        if not isinstance(fields, dict) or json_safe(fields) is not fields:
            # Not an object, or values no JSON peer can read back (NaN, infinity, a lone
            # surrogate, nesting past MAX_SAFE_DEPTH): never stored, never pushed.
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return
        store = self.hub.store
        key_name = key_field(object_type)
        key = fields.get(key_name)
        current = store.objects.get((object_type, key)) if isinstance(key, (int, str)) else None
        if current is None:
            if key is not None and (object_type != "user" or "v" in fields):
                self._reply(name + "Response", req_id, self._not_found(object_type))
            else:
                self._create(name, req_id, object_type, fields)
            return
        if object_type == "user" and "v" not in fields:
            self._reply(name + "Response", req_id, ErrorCode.USER_ALREADY_EXISTS)
            return
        if not self._visible(object_type, current):
            self._reply(name + "Response", req_id, self._not_found(object_type))  # as in _find
            return
        given = fields.get("v")
        stored = current["v"]
        if not (isinstance(given, list) and all(type(x) is int for x in given)):
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return
        # Slots the client left out (a 4.x client knows fewer) are not compared.
        if any(g < s for g, s in zip(given, stored, strict=False)):
            # A stale v: "treat the service version as most recent".
            self._reply(name + "Response", req_id, ErrorCode.WRONG_VERSION_KEY)
            return
        owners = _FIELD_SLOTS.get(object_type, {})
        changed: set[int] = set()
        for k, value in fields.items():
            if k in _SHARED_FIELDS:
                continue
            if current.get(k, _MISSING) != value:
                current[k] = value
                changed.add(owners.get(k, 0))
        version = current["v"] = list(stored)
        for slot in changed:
            version[slot] += 1
        self._reply(
            name + "Response",
            req_id,
            ErrorCode.SUCCESS,
            {object_type: self._ref(object_type, current)},
        )
        self._publish_pieces(object_type, current, sorted(changed))

    def _create(self, name: str, req_id: object, object_type: str, fields: dict[str, Any]) -> None:
        company = _company_of(object_type, fields)
        if object_type == "asset" and ("kind" not in fields or company is None):
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return
        if object_type == "user" and not isinstance(fields.get("login"), str):
            self._reply(name + "Response", req_id, ErrorCode.INVALID_DATA)
            return
        if not self._allowed(company):
            self._reply(name + "Response", req_id, ErrorCode.PERMISSION_DENIED)
            return
        fields = {k: v for k, v in fields.items() if k != "v"}
        obj = self.hub.store.put(object_type, fields)
        self._reply(
            name + "Response", req_id, ErrorCode.SUCCESS, {object_type: self._ref(object_type, obj)}
        )
        self._publish_pieces(object_type, obj, range(self.hub.store.slots(object_type)))

    def _publish_pieces(
        self, object_type: str, obj: Mapping[str, Any], slots: Iterable[int]
    ) -> None:
        company = _company_of(object_type, obj)
        if type(company) is not int:
            return
        for piece, body in self.hub.store.pieces(object_type, obj, slots):
            self.hub.publish(piece, company, body)


_MISSING = object()
