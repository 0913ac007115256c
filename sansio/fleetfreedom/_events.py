"""Events produced by the FleetFreedom client and server cores, and the client's commands.

Message events keep the whole decoded ``body`` (unknown fields included) and read the
documented fields from it lazily, so building one costs no more than the dict it wraps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .. import _session as _session
from .._core import Event
from .._redact import redacted_repr
from ._commands import Command
from ._types import ErrorCode

__all__ = [
    "Broadcast",
    "CloseRequested",
    "Closed",
    "CommandFailed",
    "CommandReceived",
    "ConnectionResponse",
    "Deleted",
    "FailureReason",
    "FleetFreedomEvent",
    "InvalidMessage",
    "LoggedIn",
    "LoggedOut",
    "Merged",
    "MessageEvent",
    "Response",
    "SessionEnded",
    "SessionFinished",
    "SessionForgotten",
    "SessionResponse",
    "SessionRestored",
    "SubscribeResponse",
    "SubscriptionRefused",
    "Suspended",
    "UnknownCommandResponse",
    "UnknownMessage",
]

_ENVELOPE = frozenset(("reqId", "errorCode", "message", "errorDetails"))


class FleetFreedomEvent(Event):
    """Base class of every FleetFreedom event."""

    __slots__ = ()


class MessageEvent(FleetFreedomEvent):
    """A message from the peer: ``name`` and the decoded JSON-object ``body``.

    The repr shows passwords and ghostIds in ``body`` as ``***`` (the body keeps them).
    """

    __slots__ = ()
    name: str
    body: dict[str, Any]

    def __repr__(self) -> str:
        return redacted_repr(self)


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    return value if isinstance(value, dict) else None


class _SessionFields:
    """Readers for the session fields shared by connectionResponse and loginResponse."""

    __slots__ = ()
    body: dict[str, Any]

    @property
    def ghost_id(self) -> str | None:
        return _text(self.body, "ghostId")

    @property
    def expiry(self) -> str | None:
        return _text(self.body, "expiry")

    @property
    def server_time(self) -> str | None:
        return _text(self.body, "serverTime")

    @property
    def user(self) -> dict[str, Any] | None:
        return _object(self.body, "user")

    @property
    def session_policy(self) -> dict[str, Any] | None:
        return _object(self.body, "sessionPolicy")

    @property
    def password_policy(self) -> dict[str, Any] | None:
        return _object(self.body, "passwordPolicy")


_GOES_ON = frozenset(
    (
        ErrorCode.SUCCESS,
        ErrorCode.SESSION_EXPIRED,
        ErrorCode.USER_NOT_LOGGED_IN,
        ErrorCode.PASSWORD_EXPIRED,
    )
)


@dataclass(slots=True, repr=False)
class ConnectionResponse(_SessionFields, MessageEvent):
    """The server's first message: the session (``ghostId``, ``expiry``, maybe ``user``).

    ``accepted`` is false for codes other than 0, 7, 8 and 16: the official client then
    closes (1008) and does not reconnect.
    """

    name: str
    body: dict[str, Any]
    error_code: ErrorCode | int | None

    @property
    def message(self) -> str | None:
        return _text(self.body, "message")

    @property
    def accepted(self) -> bool:
        return self.error_code in _GOES_ON


@dataclass(slots=True, repr=False)
class Response(MessageEvent):
    """A ``<command>Response``; ``request`` is the command it answers (``None`` when the
    ``reqId`` matched nothing pending: absent, unknown, or already timed out)."""

    name: str
    body: dict[str, Any]
    req_id: object
    error_code: ErrorCode | int | None
    request: Command | None = None

    @property
    def ok(self) -> bool:
        return self.error_code == 0

    @property
    def message(self) -> str | None:
        return _text(self.body, "message")

    @property
    def error_details(self) -> dict[str, Any] | None:
        return _object(self.body, "errorDetails")

    @property
    def payload(self) -> dict[str, Any]:
        """The body without ``reqId``, ``errorCode``, ``message`` and ``errorDetails``."""
        return {k: v for k, v in self.body.items() if k not in _ENVELOPE}


@dataclass(slots=True, repr=False)
class SessionResponse(_SessionFields, Response):
    """``loginResponse``, ``getSessionDetailsResponse`` or ``logoutResponse``: session fields."""


@dataclass(slots=True, repr=False)
class SubscribeResponse(Response):
    """``subscribeResponse`` / ``unsubscribeResponse``: 5.x lists ``merged``, ``denied``,
    ``invalid``."""

    @property
    def company(self) -> object:
        company = self.body.get("company")
        return company.get("id") if isinstance(company, dict) else company

    @property
    def merged(self) -> list[str] | None:
        return _names(self.body, "merged")

    @property
    def denied(self) -> list[str] | None:
        return _names(self.body, "denied")

    @property
    def invalid(self) -> list[str] | None:
        return _names(self.body, "invalid")


def _names(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return None


@dataclass(slots=True, repr=False)
class UnknownCommandResponse(Response):
    """The server did not know the command (errorCode 61 ``unknownCommand``)."""


@dataclass(slots=True, repr=False)
class Merged(MessageEvent):
    """``<subscriptionType>Merged``: one changed piece of an object (``v`` has one element)."""

    name: str
    body: dict[str, Any]

    @property
    def subscription_type(self) -> str:
        return self.name[:-6]


@dataclass(slots=True, repr=False)
class Deleted(MessageEvent):
    """``<objectType>Deleted`` (``{id, company}``; ``userDeleted`` has ``login``)."""

    name: str
    body: dict[str, Any]

    @property
    def object_type(self) -> str:
        return self.name[:-7]

    @property
    def key(self) -> object:
        return self.body.get("login" if self.name == "userDeleted" else "id")

    @property
    def company(self) -> object:
        return self.body.get("parent" if self.name == "companyDeleted" else "company")


@dataclass(slots=True, repr=False)
class Suspended(MessageEvent):
    """``<objectType>Suspended`` (5.x assets and providers)."""

    name: str
    body: dict[str, Any]

    @property
    def object_type(self) -> str:
        return self.name[:-9]


@dataclass(slots=True, repr=False)
class Broadcast(MessageEvent):
    """``broadcast {kind, message, serverTime, …}``: maintenance or upgrade notice."""

    name: str
    body: dict[str, Any]

    @property
    def kind(self) -> str | None:
        return _text(self.body, "kind")

    @property
    def message(self) -> str | None:
        return _text(self.body, "message")


@dataclass(slots=True, repr=False)
class SessionEnded(MessageEvent):
    """``sessionEnded``: the client must close and must not reconnect."""

    name: str
    body: dict[str, Any]


@dataclass(slots=True, repr=False)
class UnknownMessage(MessageEvent):
    """A well-formed message of a kind this core does not interpret; kept whole (``raw``)."""

    name: str
    body: dict[str, Any]
    raw: str


@dataclass(slots=True)
class InvalidMessage(FleetFreedomEvent):
    """A frame that could not be used (bad name, bad JSON, body not an object).

    ``raw`` is the whole frame; ``name`` is the message name when it could be read.
    """

    raw: str
    reason: str
    name: str = ""

    def __repr__(self) -> str:
        return redacted_repr(self)


class FailureReason(enum.Enum):
    """Why a command got no response."""

    TIMEOUT = "timeout"
    CLOSED = "closed"


@dataclass(slots=True)
class CommandFailed(FleetFreedomEvent):
    """A command ended without a response: it timed out, or the connection closed."""

    req_id: int
    request: Command
    reason: FailureReason


@dataclass(slots=True)
class CloseRequested(FleetFreedomEvent):
    """The core wants the WebSocket closed with this code and reason (≤ 123 bytes)."""

    code: int
    reason: str


@dataclass(slots=True)
class Closed(FleetFreedomEvent):
    """The connection ended.  ``resumable``: a reconnect with the same ghostId makes sense."""

    resumable: bool


@dataclass(slots=True)
class CommandReceived(FleetFreedomEvent):
    """(server) A command arrived.  ``answered``: the core already replied; otherwise the
    application must answer it with :meth:`FleetFreedomServer.respond`."""

    name: str
    body: dict[str, Any]
    req_id: object
    answered: bool

    def __repr__(self) -> str:
        return redacted_repr(self)


@dataclass(slots=True)
class LoggedIn(FleetFreedomEvent):
    """(server) The connection's session is logged in (login, or a resumed ghostId)."""

    login: str
    company: int
    ghost_id: str

    def __repr__(self) -> str:
        return redacted_repr(self, ("ghost_id",))


@dataclass(slots=True)
class LoggedOut(FleetFreedomEvent):
    """(server) The session ended: ``logout``, expiry, or :meth:`FleetFreedomHub.end_session`."""

    ghost_id: str
    reason: str

    def __repr__(self) -> str:
        return redacted_repr(self, ("ghost_id",))


# -- the client's session lifecycle -------------------------------------------------------


@dataclass(slots=True)
class SessionForgotten(_session.SessionForgotten, FleetFreedomEvent):
    """``connectionResponse`` 7/8 after a resume, or a command answered 7/8 while logged in:
    the server forgot the session.  ``relogin``: the core logs in again with its credentials."""


@dataclass(slots=True)
class SessionRestored(_session.SessionRestored, FleetFreedomEvent):
    """Logged in again; the held subscriptions (``resubscribed`` companies) went out once."""


@dataclass(slots=True)
class SessionFinished(_session.SessionFinished, FleetFreedomEvent):
    """The session ended for good: logout, ``sessionEnded``, a refused session or login."""


@dataclass(slots=True)
class SubscriptionRefused(FleetFreedomEvent):
    """Part of a ``subscribe`` the server refused, for one company.

    ``reason`` is ``denied`` (no permission for these types in this company), ``invalid``
    (unknown type names) or ``error`` (the whole command failed: ``error_code`` says why).
    Refused types are not held, so they are not replayed after a reconnect.
    """

    company: object
    types: list[str]
    reason: str
    error_code: ErrorCode | int | None = None
    req_id: object = None
