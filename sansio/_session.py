"""Session-lifecycle events shared by the client cores of both platforms.

A client core that holds credentials tells a session the server *forgot* (a restart, an
expiry, an unknown ghostId or hash) from one that is *finished* (a logout, ``sessionEnded``,
a refused login): the first is logged in again and its subscriptions replayed, the second
ends for good with :class:`SessionFinished` saying why.  Each platform subclasses these
events (``trackwire.fleetfreedom.SessionFinished``, ``trackwire.itrack.SessionFinished``…),
so ``isinstance(event, trackwire.SessionFinished)`` matches both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._core import Event

__all__ = [
    "DEFAULT_MAX_LOGIN_FAILURES",
    "FinishReason",
    "SessionFinished",
    "SessionForgotten",
    "SessionRestored",
]

DEFAULT_MAX_LOGIN_FAILURES = 5
"""Logins again in a row that may fail for a passing reason (no answer, a server error)
before the core gives the session up: each failure waits the driver's backoff first."""


class FinishReason(enum.Enum):
    """Why a client session ended for good."""

    LOGGED_OUT = "logged-out"
    """This client logged out."""
    SESSION_ENDED = "session-ended"
    """The server ended the session (FleetFreedom ``sessionEnded``, iTrack ``logout``)."""
    REFUSED = "refused"
    """The server refused the session (a FleetFreedom ``connectionResponse`` it may not use)."""
    LOGIN_REFUSED = "login-refused"
    """Logging in again was refused (wrong password, user blocked…)."""
    THROTTLED = "throttled"
    """Logging in again was refused because of too many attempts: no more tries."""
    LOGIN_FAILED = "login-failed"
    """Logging in again failed :data:`DEFAULT_MAX_LOGIN_FAILURES` times in a row."""
    NO_CREDENTIALS = "no-credentials"
    """The server forgot the session and the core has no credentials to log in again."""


@dataclass(slots=True)
class SessionForgotten(Event):
    """The server no longer knows the session (restart, expiry, unknown ghostId or hash).

    ``relogin``: the core logs in again (then :class:`SessionRestored`); otherwise
    :class:`SessionFinished` (``NO_CREDENTIALS``) follows.  ``error_code`` is the server's.
    """

    error_code: int | None
    relogin: bool


@dataclass(slots=True)
class SessionRestored(Event):
    """Logged in again after :class:`SessionForgotten`; ``resubscribed`` subscriptions
    (FleetFreedom: companies; iTrack: actions) were sent again, each once."""

    resubscribed: int


@dataclass(slots=True)
class SessionFinished(Event):
    """The session ended for good (always the core's last session event); no reconnect."""

    reason: FinishReason
    detail: str = ""
    error_code: int | None = None
