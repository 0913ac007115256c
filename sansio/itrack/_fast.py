"""The compiled decoder of iTrack server messages (``trackwire[fast]``, msgspec).

``state``, ``state_batch``, ``lifecycle`` and ``logout`` are decoded straight from the text
into msgspec Structs by one tagged-union decoder.  The events it gives are subclasses of the
public ones (``isinstance`` holds) and equal to what the default path gives for the same
text: their typed fields come from the Structs, and ``raw`` -- the decoded JSON object,
unknown fields included -- is decoded by the default path on first access and then kept,
so views and ``raw`` stay the default path's objects.

Anything else, and anything msgspec refuses or would read differently (a field of an
unexpected type, ``NaN``, lone surrogates, numbers out of range, nesting too deep, …),
takes the default path's parser whole, given the text decoded by msgspec into plain
objects (equal to the standard library's) or, where msgspec refuses it, by the standard
library: responses, errors, unknown and invalid messages are the default path's events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar, cast

import msgspec

from .._json import stdlib_loads
from . import _codec
from ._events import ITrackEvent, LifecycleEvent, LogoutEvent, StateBatchEvent, StateEvent
from ._models import GpsState, Location, SourceState

__all__ = ["parse"]

Number = int | float


# -- the Structs: the documented fields, strictly typed (anything else falls back) ---------


class _Location(msgspec.Struct, gc=False):
    lat: Number | None = None
    lng: Number | None = None


class _Gps(msgspec.Struct, gc=False):
    updated: str | None = None
    signal_level: int | None = None
    location: _Location | None = None
    heading: Number | None = None
    speed: Number | None = None
    alt: Number | None = None


class _State(msgspec.Struct, gc=False):
    source_id: int
    gps: _Gps | None = None
    connection_status: str | None = None
    movement_status: str | None = None
    last_update: str | None = None
    user_time: str | None = None


class _StateMessage(msgspec.Struct, tag_field="event", tag="state", gc=False):
    type: Literal["event"]
    data: _State
    user_time: str | None = None


class _BatchMessage(msgspec.Struct, tag_field="event", tag="state_batch", gc=False):
    type: Literal["event"]
    data: list[_State]
    user_time: str | None = None


class _Lifecycle(msgspec.Struct, gc=False):
    source_id: int
    lifecycle_event: str


class _LifecycleMessage(msgspec.Struct, tag_field="event", tag="lifecycle", gc=False):
    type: Literal["event"]
    data: _Lifecycle


class _LogoutMessage(msgspec.Struct, tag_field="event", tag="logout", gc=False):
    type: Literal["event"]
    data: str | None = None


_decode: Callable[[str], Any] = msgspec.json.Decoder(
    _StateMessage | _BatchMessage | _LifecycleMessage | _LogoutMessage
).decode
_decode_any: Callable[[str], Any] = msgspec.json.Decoder().decode


def _loads(text: str) -> Any:
    """The default path's decode of ``text`` (same value or error), through msgspec's
    compiled decoder when it can: what responses, errors and odd messages go through."""
    try:
        return _decode_any(text)
    except Exception:  # refused: the default path gives the value, or its own error
        return stdlib_loads(text)


_new = object.__new__


# -- views over the Structs ----------------------------------------------------------------


class _FastView:
    """What the views share: equal to any view of their public class over an equal ``raw``
    (the default path's or another fast one), and shown as that class."""

    __slots__ = ()

    _public: ClassVar[type[Location | GpsState | SourceState]]
    raw: dict[str, Any]

    def __eq__(self, other: object) -> bool:
        return self.raw == other.raw if isinstance(other, self._public) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{self._public.__name__}({self.raw!r})"


_V = TypeVar("_V", bound=_FastView)


def _child(cls: type[_V], struct: Any, owner: Any) -> _V:
    """A view of ``cls`` over ``struct``, whose ``raw`` is read through ``owner``'s."""
    view: Any = _new(cls)
    view._s = struct
    view._owner = owner
    return cast(_V, view)


class _FastLocation(_FastView, Location):
    """``gps.location`` read from its Struct; ``raw`` is the default path's dict."""

    __slots__ = ("_owner", "_s")
    _public = Location

    _s: _Location
    _owner: _FastGps

    @property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        return self._owner.raw["location"]  # type: ignore[no-any-return]

    @property
    def lat(self) -> float | None:
        return self._s.lat

    @property
    def lng(self) -> float | None:
        return self._s.lng


class _FastGps(_FastView, GpsState):
    """``gps`` read from its Struct."""

    __slots__ = ("_owner", "_s")
    _public = GpsState

    _s: _Gps
    _owner: _FastSourceState

    @property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        return self._owner.raw["gps"]  # type: ignore[no-any-return]

    @property
    def updated(self) -> str | None:
        return self._s.updated

    @property
    def signal_level(self) -> int | None:
        return self._s.signal_level

    @property
    def location(self) -> Location | None:
        value = self._s.location
        return None if value is None else _child(_FastLocation, value, self)

    @property
    def heading(self) -> float | None:
        return self._s.heading

    @property
    def speed(self) -> float | None:
        return self._s.speed

    @property
    def alt(self) -> float | None:
        return self._s.alt


class _FastSourceState(_FastView, SourceState):
    """A source state read from its Struct; ``raw`` is the message's ``data`` (or its
    ``index``-th element in a batch), decoded on demand."""

    __slots__ = ("_index", "_owner", "_s")
    _public = SourceState

    _s: _State
    _owner: _FastStateEvent | _FastStateBatchEvent
    _index: int

    @property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        data = self._owner.raw["data"]  # type: ignore[index]
        return data if self._index < 0 else data[self._index]  # type: ignore[no-any-return]

    @property
    def source_id(self) -> int:
        return self._s.source_id

    @property
    def gps(self) -> GpsState | None:
        value = self._s.gps
        return None if value is None else _child(_FastGps, value, self)

    @property
    def connection_status(self) -> str | None:
        return self._s.connection_status

    @property
    def movement_status(self) -> str | None:
        return self._s.movement_status

    @property
    def last_update(self) -> str | None:
        return self._s.last_update


def _source_state(struct: _State, owner: Any, index: int) -> _FastSourceState:
    view = _child(_FastSourceState, struct, owner)
    view._index = index
    return view


# -- events --------------------------------------------------------------------------------


class _FastEvent:
    """What the events share: ``raw`` decoded from ``_text`` on first access and kept (or
    set); equal to any event of their public class with equal ``_fields``; shown as that
    class, with those fields."""

    __slots__ = ()

    _public: ClassVar[type[ITrackEvent]]
    _fields: ClassVar[tuple[str, ...]]
    _text: str
    _raw: dict[str, Any] | None

    @property
    def raw(self) -> dict[str, Any] | None:
        """The message's decoded JSON object: the default path's decode of the text, kept."""
        try:
            return self._raw
        except AttributeError:
            raw = self._raw = stdlib_loads(self._text)  # type: ignore[misc]  # the subclasses' slot
            return raw  # type: ignore[no-any-return]

    @raw.setter
    def raw(self, value: dict[str, Any] | None) -> None:
        self._raw = value  # type: ignore[misc]  # the subclasses' slot

    def __eq__(self, other: object) -> bool:
        if isinstance(other, self._public):
            return all(getattr(self, name) == getattr(other, name) for name in self._fields)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self._public.__name__}({shown})"


class _FastStateEvent(_FastEvent, StateEvent):
    __slots__ = ("_m", "_raw", "_state", "_text")
    _public = StateEvent
    _fields = ("state", "user_time")

    _m: _State
    _state: SourceState

    @property
    def state(self) -> SourceState:
        try:
            return self._state
        except AttributeError:
            view = self._state = _source_state(self._m, self, -1)
            return view

    @state.setter
    def state(self, value: SourceState) -> None:
        self._state = value


class _FastStateBatchEvent(_FastEvent, StateBatchEvent):
    __slots__ = ("_m", "_raw", "_states", "_text")
    _public = StateBatchEvent
    _fields = ("states", "user_time")

    _m: list[_State]
    _states: list[SourceState]

    @property
    def states(self) -> list[SourceState]:
        try:
            return self._states
        except AttributeError:
            views: list[SourceState] = [
                _source_state(item, self, index) for index, item in enumerate(self._m)
            ]
            self._states = views
            return views

    @states.setter
    def states(self, value: list[SourceState]) -> None:
        self._states = value


class _FastLifecycleEvent(_FastEvent, LifecycleEvent):
    __slots__ = ("_raw", "_text")
    _public = LifecycleEvent
    _fields = ("source_id", "lifecycle_event")


class _FastLogoutEvent(_FastEvent, LogoutEvent):
    __slots__ = ("_raw", "_text")
    _public = LogoutEvent
    _fields = ("reason",)


# -- the parser ----------------------------------------------------------------------------


def parse(text: str, notice: Callable[[ITrackEvent], None] | None = None) -> ITrackEvent:
    """One server message → its event, equal to :func:`trackwire.itrack.parse_message`'s
    under the default JSON hook; never raises."""
    try:
        message = _decode(text)
    except Exception:  # another kind, or read differently: the default path decides
        return _codec._parse(_loads, notice, text)
    kind = type(message)
    if kind is _StateMessage:
        event: _FastStateEvent = _new(_FastStateEvent)
        data = message.data
        event._m = data
        event._text = text
        user_time = message.user_time
        event.user_time = data.user_time if user_time is None else user_time
        return event
    if kind is _BatchMessage:
        batch: _FastStateBatchEvent = _new(_FastStateBatchEvent)
        batch._m = message.data
        batch._text = text
        batch.user_time = message.user_time
        return batch
    if kind is _LifecycleMessage:
        lifecycle: _FastLifecycleEvent = _new(_FastLifecycleEvent)
        lifecycle.source_id = message.data.source_id
        lifecycle.lifecycle_event = message.data.lifecycle_event
        lifecycle._text = text
        return lifecycle
    logout: _FastLogoutEvent = _new(_FastLogoutEvent)
    logout.reason = message.data
    logout._text = text
    if notice is not None:
        notice(logout)
    return logout
