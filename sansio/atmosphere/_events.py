"""Events produced by the Atmosphere client and server cores."""

from __future__ import annotations

from dataclasses import dataclass

from .._core import Event
from .._redact import redacted_repr

__all__ = [
    "AtmosphereEvent",
    "Closed",
    "Heartbeat",
    "InactivityTimeout",
    "Message",
    "Opened",
    "Reopened",
]


class AtmosphereEvent(Event):
    """Base class of the Atmosphere transport events."""

    __slots__ = ()


@dataclass(slots=True)
class Opened(AtmosphereEvent):
    """The handshake frame arrived (client), or was sent (server): the transport is open.

    ``heartbeat_interval_ms`` is how often the client must send ``padding`` (0 or less = never).
    Without the protocol (``enable_protocol=False``) the client opens on the socket's open,
    with ``uuid`` ``"0"``.
    """

    uuid: str
    heartbeat_interval_ms: int
    padding: str | None
    """``None`` when the handshake carried no padding field."""


@dataclass(slots=True)
class Reopened(AtmosphereEvent):
    """The first frame after a reconnect arrived (client) or a reconnect was accepted (server)."""

    uuid: str


@dataclass(slots=True)
class Message(AtmosphereEvent):
    """One application message (the client delivers it trimmed, as ``atmosphere.js`` does)."""

    data: str

    def __repr__(self) -> str:
        return redacted_repr(self)  # a message may quote a password, a hash, a ghostId


@dataclass(slots=True)
class Heartbeat(AtmosphereEvent):
    """The peer's heartbeat (a message equal to the padding) arrived; not application data."""


@dataclass(slots=True)
class InactivityTimeout(AtmosphereEvent):
    """Nothing was received for the inactivity timeout; the core is closed for good (unless
    its ``reconnect_on_timeout`` is set: then a reconnect follows).

    ``close_url`` is the HTTP close request to send before closing the socket (``None`` when
    no handshake was received, in which case the real client sends none either).
    """

    close_url: str | None

    def __repr__(self) -> str:
        return redacted_repr(self)  # the endpoint's user-info and secret query values


@dataclass(slots=True)
class Closed(AtmosphereEvent):
    """The connection ended.  ``resumable``: a reconnect with the same tracking id makes sense."""

    resumable: bool
