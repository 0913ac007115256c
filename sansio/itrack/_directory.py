"""An in-memory directory of users, sessions (hashes) and trackers, for the server side.

The auth responder issues hashes from it and every :class:`~trackwire.itrack.ITrackServer`
connection checks hashes and tracker ownership against it, which is what keeps tenants apart:
a tracker that is not the user's reads as ``unknown``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._models import BLOCKED, DISALLOWED, NORMAL, UNKNOWN, SourceState, check_hash

__all__ = ["AuthFailure", "AuthSuccess", "Directory", "DirectoryObserver", "Tracker", "User"]


@dataclass(slots=True)
class AuthSuccess:
    """``user/auth`` succeeded: the session hash to put in every action."""

    hash: str = field(repr=False)
    """The session hash (a secret: left out of the repr)."""
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class AuthFailure:
    """``user/auth`` answered an API error (102 wrong login or password, 103, 104, …)."""

    code: int
    description: str
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class User:
    login: str
    password: str = field(repr=False)
    dealer_id: int | None = None
    active: bool = True


@dataclass(slots=True)
class Tracker:
    """One tracker: its owner, the source id its states carry, its status and latest state,
    and the label ``tracker/list`` shows."""

    tracker_id: int
    owner: str
    source_id: int
    status: str = NORMAL
    state: SourceState | None = None
    label: str = ""


class DirectoryObserver(Protocol):
    """What a :class:`Directory` tells its :attr:`~Directory.observer` about sessions (e.g.
    to share them with other server processes).  Called synchronously, after the change."""

    def session_opened(self, session_hash: str, login: str) -> None:
        """A hash became live (``user/auth`` or an API key)."""

    def session_ended(self, session_hash: str) -> None:
        """A hash stopped working (:meth:`Directory.logout` or :meth:`Directory.logout_user`)."""


class Directory:
    """Users, their session hashes and their trackers; shared by every server connection.

    ``hash_factory`` makes new session hashes (32 random hex characters by default; inject a
    deterministic one in tests).
    """

    __slots__ = ("_hash_factory", "observer", "sessions", "trackers", "users")

    def __init__(self, *, hash_factory: Callable[[], str] = lambda: secrets.token_hex(16)):
        self.users: dict[str, User] = {}
        self.sessions: dict[str, str] = {}
        """Live hash → login (sessions from ``user/auth`` and API keys alike)."""
        self.trackers: dict[int, Tracker] = {}
        self._hash_factory = hash_factory
        self.observer: DirectoryObserver | None = None
        """Told when a session hash starts or stops working (``None``: nobody listens)."""

    # -- users and sessions ----------------------------------------------------------------

    def add_user(
        self, login: str, password: str, *, dealer_id: int | None = None, active: bool = True
    ) -> User:
        user = User(login, password, dealer_id, active)
        self.users[login] = user
        return user

    def add_api_key(self, login: str, key_hash: str) -> None:
        """Make ``key_hash`` a live hash of ``login`` without any ``user/auth`` call."""
        if login not in self.users:
            raise KeyError(login)
        self.sessions[check_hash(key_hash)] = login
        if self.observer is not None:
            self.observer.session_opened(key_hash, login)

    def authenticate(
        self, login: str, password: str, dealer_id: int | None = None
    ) -> AuthSuccess | AuthFailure:
        """Check credentials and open a session (a fresh hash), or say why not."""
        user = self.users.get(login)
        if user is None or user.password != password:
            return AuthFailure(102, "Wrong login or password")
        if dealer_id is not None and user.dealer_id is not None and dealer_id != user.dealer_id:
            return AuthFailure(102, "Wrong login or password")
        if not user.active:
            return AuthFailure(103, "User not activated")
        session_hash = check_hash(self._hash_factory())
        self.sessions[session_hash] = login
        if self.observer is not None:
            self.observer.session_opened(session_hash, login)
        return AuthSuccess(session_hash)

    def user_of(self, session_hash: str) -> str | None:
        """The login behind a live hash, or ``None``."""
        return self.sessions.get(session_hash)

    def logout(self, session_hash: str) -> None:
        """End one session: its hash stops working (connections get ``logout`` from the app)."""
        if self.sessions.pop(session_hash, None) is not None and self.observer is not None:
            self.observer.session_ended(session_hash)

    def logout_user(self, login: str) -> list[str]:
        """End every session of ``login`` (password change, user blocked); returns the hashes."""
        gone = [h for h, owner in self.sessions.items() if owner == login]
        for session_hash in gone:
            del self.sessions[session_hash]
            if self.observer is not None:
                self.observer.session_ended(session_hash)
        return gone

    # -- trackers --------------------------------------------------------------------------

    def add_tracker(
        self,
        login: str,
        tracker_id: int,
        *,
        source_id: int | None = None,
        status: str = NORMAL,
        state: SourceState | None = None,
        label: str = "",
    ) -> Tracker:
        """Register a tracker of ``login``; ``source_id`` defaults to ``tracker_id + 1000000``,
        ``label`` (its name in ``tracker/list``) to ``""``."""
        if login not in self.users:
            raise KeyError(login)
        if status not in (NORMAL, BLOCKED, DISALLOWED):
            raise ValueError(f"not a tracker status: {status!r}")
        tracker = Tracker(
            tracker_id, login, tracker_id + 1_000_000 if source_id is None else source_id, status
        )
        tracker.state = state
        tracker.label = label
        self.trackers[tracker_id] = tracker
        return tracker

    def status(self, login: str, tracker_id: int) -> str:
        """``normal``/``blocked``/``disallowed`` for the user's own trackers, else ``unknown``."""
        tracker = self.trackers.get(tracker_id)
        if tracker is None or tracker.owner != login:
            return UNKNOWN
        return tracker.status

    def trackers_of(self, login: str) -> list[int]:
        return [t.tracker_id for t in self.trackers.values() if t.owner == login]

    def set_status(self, tracker_id: int, status: str) -> None:
        if status not in (NORMAL, BLOCKED, DISALLOWED):
            raise ValueError(f"not a tracker status: {status!r}")
        self.trackers[tracker_id].status = status

    def set_state(self, tracker_id: int, state: SourceState) -> None:
        """Record the latest state (sent to new subscribers right after they subscribe)."""
        self.trackers[tracker_id].state = state
