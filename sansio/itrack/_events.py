"""Events produced by the iTrack client and server cores.

Transport events (``Opened``, ``Reopened``, ``Heartbeat``, ``InactivityTimeout``, ``Closed``)
are the Atmosphere ones, passed through unchanged (``Closed.resumable`` is false once the
session logged out).  Every decoded message keeps the decoded object in ``raw``, which is
left out of equality so that a server-built value and its parsed copy compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _session as _session
from .._core import Event
from .._redact import redacted_repr
from ._models import Action, SourceState

if TYPE_CHECKING:
    from ._auth import AuthRequest

__all__ = [
    "ActionReceived",
    "ActionRejected",
    "ErrorMessage",
    "ITrackEvent",
    "InvalidMessage",
    "IotMonitorEvent",
    "LifecycleEvent",
    "LoginRequested",
    "LogoutEvent",
    "ReadingsBatchEvent",
    "SessionFinished",
    "SessionForgotten",
    "SessionRestored",
    "StateBatchEvent",
    "StateEvent",
    "SubscribeResponse",
    "SubscriptionResult",
    "TrackersRefused",
    "UnknownMessage",
    "UnsubscribeResponse",
]


class ITrackEvent(Event):
    """Base class of the iTrack application events."""

    __slots__ = ()


@dataclass(slots=True)
class StateEvent(ITrackEvent):
    """``state``: one source state (on change, right after subscribing, after unblocking)."""

    state: SourceState
    user_time: str | None = None
    """The user's current local time, when the message carries ``user_time``."""
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class StateBatchEvent(ITrackEvent):
    """``state_batch``: the states that changed during the last ``rate_limit``."""

    states: list[SourceState]
    user_time: str | None = None
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class LifecycleEvent(ITrackEvent):
    """``lifecycle``: a source was blocked, unblocked or corrupted."""

    source_id: int
    lifecycle_event: str
    """``block``, ``unblock`` or ``corrupt`` (other values are passed on as sent)."""
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class LogoutEvent(ITrackEvent):
    """``logout``: the session ended; its hash is dead and nothing is resubscribed."""

    reason: str | None = "session closed"
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class ReadingsBatchEvent(ITrackEvent):
    """``readings_batch``: sensor readings, kept as decoded."""

    data: Any
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class IotMonitorEvent(ITrackEvent):
    """``iot_monitor``: attribute values, kept as decoded."""

    data: Any
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class SubscriptionResult:
    """The answer for one event type: per-tracker status (``normal``, ``blocked``, …).

    ``success`` is ``None`` when the server left it out (the deprecated format, and some live
    deployments); ``value`` keeps the answer when it is not a status map.
    """

    trackers: dict[int, str]
    success: bool | None = None
    value: Any = None


@dataclass(slots=True)
class SubscribeResponse(ITrackEvent):
    """``response`` to ``subscription/subscribe``: one result per event type."""

    events: list[str]
    results: dict[str, SubscriptionResult]
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class UnsubscribeResponse(ITrackEvent):
    """``response`` to ``subscription/unsubscribe``.

    ``trackers`` holds the ids when ``data`` is a list of them, ``results`` the per-type
    answers when ``data`` is an object like a subscribe response's.
    """

    events: list[str]
    trackers: list[int] = field(default_factory=list)
    results: dict[str, SubscriptionResult] = field(default_factory=dict)
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class ErrorMessage(ITrackEvent):
    """``type: error``: an API error code and description for ``action`` (``None`` if unknown)."""

    code: int | None
    description: str | None
    action: str | None = None
    data: Any = None
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class UnknownMessage(ITrackEvent):
    """Valid JSON this core does not recognise (another type, event or action): kept whole."""

    text: str
    message: Any

    def __repr__(self) -> str:
        return redacted_repr(self)


@dataclass(slots=True)
class InvalidMessage(ITrackEvent):
    """Text that is not JSON, or a known message whose shape is wrong; ``reason`` says which."""

    text: str
    reason: str
    message: Any = None

    def __repr__(self) -> str:
        return redacted_repr(self)


# -- the client's session lifecycle -----------------------------------------------------


@dataclass(slots=True)
class LoginRequested(ITrackEvent):
    """The client needs a fresh hash: perform ``request`` (``user/auth`` over HTTP) and
    hand the answer to :meth:`~trackwire.ITrackClient.login_succeeded` or
    :meth:`~trackwire.ITrackClient.login_failed`.  The drivers do this by themselves."""

    request: AuthRequest
    attempt: int = 1
    """1 for the first try after the session was forgotten, 2 after one failure, …"""


@dataclass(slots=True)
class SessionForgotten(_session.SessionForgotten, ITrackEvent):
    """An action was answered 3 (wrong hash) or 4 (session ended): the server no longer
    knows the hash.  ``relogin``: a :class:`LoginRequested` follows."""


@dataclass(slots=True)
class SessionRestored(_session.SessionRestored, ITrackEvent):
    """A fresh hash arrived; ``resubscribed`` actions went out again with it, each once."""


@dataclass(slots=True)
class SessionFinished(_session.SessionFinished, ITrackEvent):
    """The session ended for good: ``logout``, a refused ``user/auth``, no credentials."""


@dataclass(slots=True)
class TrackersRefused(ITrackEvent):
    """Trackers of a subscribe answer that will send no states: ``trackers`` maps each id to
    its status (``blocked``, ``unknown``, ``disallowed``, or ``failed`` when the server said
    ``success: false`` for the whole event type)."""

    event_type: str
    trackers: dict[int, str]


# -- server side -------------------------------------------------------------------------


@dataclass(slots=True)
class ActionReceived(ITrackEvent):
    """(server) A valid action was received, answered and applied for ``user``."""

    action: Action
    user: str
    hash: str = field(repr=False)
    """The session hash the action carried (a secret: left out of the repr)."""


@dataclass(slots=True)
class ActionRejected(ITrackEvent):
    """(server) An action was answered with an error message."""

    code: int
    description: str
    text: str
    """The client's frame as received (its ``hash`` reads ``***`` in the repr)."""

    def __repr__(self) -> str:
        return redacted_repr(self)
