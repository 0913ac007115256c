"""Values carried by iTrack messages: source states, subscription requests and actions.

Source states are thin typed views over the decoded JSON object rather than eager copies:
receiving costs one object per state, reading a field costs one dict lookup, and every field
the server sent (modelled or not) stays in ``raw``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "BLOCKED",
    "COMPACT_STATE_FIELDS",
    "DISALLOWED",
    "NORMAL",
    "UNKNOWN",
    "Action",
    "GpsState",
    "IotMonitorRequest",
    "LegacySubscribe",
    "LegacyUnsubscribe",
    "Location",
    "ReadingsBatchRequest",
    "Request",
    "SourceState",
    "StateBatchRequest",
    "StateRequest",
    "Subscribe",
    "Target",
    "Unsubscribe",
    "check_hash",
]

NORMAL: Final = "normal"
"""Tracker status: events will flow."""
BLOCKED: Final = "blocked"
"""Tracker status: no state events (lifecycle events still flow)."""
UNKNOWN: Final = "unknown"
"""Tracker status: no such tracker, or not this user's."""
DISALLOWED: Final = "disallowed"
"""Tracker status: the session may not subscribe to it."""

COMPACT_STATE_FIELDS: Final = frozenset(
    {"source_id", "gps", "connection_status", "movement_status", "last_update"}
)
"""The fields of a ``compact`` source state; ``full`` adds more (spec §3)."""

_GPS_FIELDS = frozenset({"updated", "signal_level", "location", "heading", "speed", "alt"})
_LOCATION_FIELDS = frozenset({"lat", "lng"})


def _num(value: object) -> float | None:
    return value if type(value) is int or type(value) is float else None


def _int(value: object) -> int | None:
    return value if type(value) is int else None


def _str(value: object) -> str | None:
    return value if type(value) is str else None


def _extra(raw: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key not in known}


class _View:
    """A typed view over one decoded JSON object; equal when the objects are equal."""

    __slots__ = ("raw",)

    raw: dict[str, Any]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw!r})"


class Location(_View):
    """``gps.location``: latitude and longitude in degrees (``None`` if absent or not numbers)."""

    __slots__ = ()

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @classmethod
    def create(cls, lat: float, lng: float, **extra: Any) -> Location:
        return cls({"lat": lat, "lng": lng, **extra})

    @property
    def lat(self) -> float | None:
        return _num(self.raw.get("lat"))

    @property
    def lng(self) -> float | None:
        return _num(self.raw.get("lng"))

    @property
    def extra(self) -> dict[str, Any]:
        return _extra(self.raw, _LOCATION_FIELDS)


class GpsState(_View):
    """``gps`` of a source state; a field that is absent or of the wrong type reads as ``None``."""

    __slots__ = ()

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @classmethod
    def create(
        cls,
        *,
        updated: str | None = None,
        signal_level: int | None = None,
        location: Location | None = None,
        heading: float | None = None,
        speed: float | None = None,
        alt: float | None = None,
        **extra: Any,
    ) -> GpsState:
        """Build one from fields (``None`` fields are left out of the JSON)."""
        raw: dict[str, Any] = {}
        _put(raw, "updated", updated)
        _put(raw, "signal_level", signal_level)
        _put(raw, "location", None if location is None else location.raw)
        _put(raw, "heading", heading)
        _put(raw, "speed", speed)
        _put(raw, "alt", alt)
        raw.update(extra)
        return cls(raw)

    @property
    def updated(self) -> str | None:
        """When the fix was taken (``YYYY-MM-DD HH:MM:SS``, user's time zone)."""
        return _str(self.raw.get("updated"))

    @property
    def signal_level(self) -> int | None:
        return _int(self.raw.get("signal_level"))

    @property
    def location(self) -> Location | None:
        value = self.raw.get("location")
        return Location(value) if type(value) is dict else None

    @property
    def heading(self) -> float | None:
        return _num(self.raw.get("heading"))

    @property
    def speed(self) -> float | None:
        return _num(self.raw.get("speed"))

    @property
    def alt(self) -> float | None:
        return _num(self.raw.get("alt"))

    @property
    def extra(self) -> dict[str, Any]:
        return _extra(self.raw, _GPS_FIELDS)


def _put(raw: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        raw[key] = value


class SourceState(_View):
    """One source state (spec §3).  ``source_id`` identifies the data source, not the tracker.

    Built from the decoded object (``source_id`` must be an integer, else ``ValueError``);
    fields it does not model (``gsm``, ``inputs``, … of the ``full`` format) are in
    :attr:`extra` and everything is in ``raw``.
    """

    __slots__ = ()

    def __init__(self, raw: dict[str, Any]) -> None:
        if type(raw.get("source_id")) is not int:
            raise ValueError("a source state needs an integer source_id")
        self.raw = raw

    @classmethod
    def create(
        cls,
        source_id: int,
        *,
        gps: GpsState | None = None,
        connection_status: str | None = None,
        movement_status: str | None = None,
        last_update: str | None = None,
        **extra: Any,
    ) -> SourceState:
        """Build one from fields (``None`` fields are left out of the JSON)."""
        raw: dict[str, Any] = {"source_id": source_id}
        _put(raw, "gps", None if gps is None else gps.raw)
        _put(raw, "connection_status", connection_status)
        _put(raw, "movement_status", movement_status)
        _put(raw, "last_update", last_update)
        raw.update(extra)
        return cls(raw)

    @property
    def source_id(self) -> int:
        return self.raw["source_id"]  # type: ignore[no-any-return]

    @property
    def gps(self) -> GpsState | None:
        value = self.raw.get("gps")
        return GpsState(value) if type(value) is dict else None

    @property
    def connection_status(self) -> str | None:
        """``active``, ``idle``, ``offline``, … as the server says."""
        return _str(self.raw.get("connection_status"))

    @property
    def movement_status(self) -> str | None:
        """``moving``, ``stopped``, ``parked``, … as the server says."""
        return _str(self.raw.get("movement_status"))

    @property
    def last_update(self) -> str | None:
        """When the device last reported (``YYYY-MM-DD HH:MM:SS``, user's time zone)."""
        return _str(self.raw.get("last_update"))

    @property
    def extra(self) -> dict[str, Any]:
        """Every field this class does not model, as sent."""
        return _extra(self.raw, COMPACT_STATE_FIELDS)

    def compact(self) -> SourceState:
        """The ``compact`` form: only the fields of :data:`COMPACT_STATE_FIELDS`."""
        raw = self.raw
        return SourceState({key: raw[key] for key in raw if key in COMPACT_STATE_FIELDS})


# -- client → server -------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Target:
    """Which trackers a batch request covers: ``all`` of the user's, or ``selected`` ones."""

    tracker_ids: tuple[int, ...] | None = None
    """``None`` means all trackers."""

    @classmethod
    def all(cls) -> Target:
        return cls(None)

    @classmethod
    def selected(cls, tracker_ids: Iterable[int]) -> Target:
        return cls(tuple(tracker_ids))

    @property
    def is_all(self) -> bool:
        return self.tracker_ids is None

    def to_json(self) -> dict[str, Any]:
        if self.tracker_ids is None:
            return {"type": "all"}
        return {"type": "selected", "tracker_ids": list(self.tracker_ids)}


@dataclass(slots=True)
class StateRequest:
    """``state``: one event per tracker on every change."""

    trackers: list[int]
    format: str | None = None
    """``full`` (the server's default) or ``compact``."""
    extra: dict[str, Any] = field(default_factory=dict)

    type = "state"


@dataclass(slots=True)
class StateBatchRequest:
    """``state_batch``: arrays of changed states, at most one per ``rate_limit``."""

    target: Target = field(default_factory=Target.all)
    rate_limit: str | None = None
    """A timespan such as ``5s``."""
    format: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    type = "state_batch"


@dataclass(slots=True)
class ReadingsBatchRequest:
    """``readings_batch``: sensor readings, batched per ``rate_limit``."""

    target: Target = field(default_factory=Target.all)
    rate_limit: str | None = None
    sensor_type: str | None = None
    include_components: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    type = "readings_batch"


@dataclass(slots=True)
class IotMonitorRequest:
    """``iot_monitor``: attribute values of at most 10 trackers, batched per ``rate_limit``."""

    target: Target = field(default_factory=Target.all)
    rate_limit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    type = "iot_monitor"


Request = StateRequest | StateBatchRequest | ReadingsBatchRequest | IotMonitorRequest
"""One entry of an action's ``requests`` array."""


@dataclass(slots=True)
class Subscribe:
    """``subscribe`` in the current format: a list of requests."""

    requests: list[Request]

    action = "subscribe"


@dataclass(slots=True)
class Unsubscribe:
    """``unsubscribe`` in the current format (same structure as :class:`Subscribe`)."""

    requests: list[Request]

    action = "unsubscribe"


@dataclass(slots=True)
class LegacySubscribe:
    """The deprecated ``subscribe``: event names and tracker ids."""

    events: list[str]
    trackers: list[int]

    action = "subscribe"


@dataclass(slots=True)
class LegacyUnsubscribe:
    """The deprecated ``unsubscribe``."""

    events: list[str]
    trackers: list[int]

    action = "unsubscribe"


Action = Subscribe | Unsubscribe | LegacySubscribe | LegacyUnsubscribe
"""What a client sends (the hash is added by the client core)."""


def check_hash(session_hash: object) -> str:
    """Return ``session_hash`` if it is a 32-character string, else raise ``ValueError``."""
    if type(session_hash) is not str or len(session_hash) != 32:
        # The value is not quoted: a wrong one may still be a secret (or a password).
        what = (
            f"a string of {len(session_hash)} characters"
            if type(session_hash) is str
            else type(session_hash).__name__
        )
        raise ValueError(f"a session hash is a 32-character string, not {what}")
    return session_hash
