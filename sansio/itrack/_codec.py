"""JSON codecs of the iTrack messages: server messages ⇄ events, client actions ⇄ JSON.

Decoding goes through the package's one replaceable hook (:func:`trackwire.set_json_loads`;
the stdlib decoder by default), or a ``loads`` given per call: any callable that raises
``ValueError`` on bad input, such as ``orjson.loads``, fits.  The
receive path is one decode, one dispatch on ``type``/``event`` and one or two object
constructions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from .. import _decoder, _json
from .._json import safe_dumps
from .._json import scan_once as _scan_once
from .._json import stdlib_loads as _stdlib_loads
from .._numbers import MAX_ID_DIGITS, parse_digits
from ._events import (
    ErrorMessage,
    InvalidMessage,
    IotMonitorEvent,
    ITrackEvent,
    LifecycleEvent,
    LogoutEvent,
    ReadingsBatchEvent,
    StateBatchEvent,
    StateEvent,
    SubscribeResponse,
    SubscriptionResult,
    UnknownMessage,
    UnsubscribeResponse,
)
from ._models import (
    Action,
    IotMonitorRequest,
    LegacySubscribe,
    LegacyUnsubscribe,
    ReadingsBatchRequest,
    Request,
    SourceState,
    StateBatchRequest,
    StateRequest,
    Subscribe,
    Target,
    Unsubscribe,
)

__all__ = [
    "ActionFormatError",
    "JsonDumps",
    "JsonLoads",
    "dumps",
    "encode_action",
    "encode_error",
    "encode_event",
    "encode_subscribe_response",
    "encode_unsubscribe_response",
    "parse_action",
    "parse_message",
]

JsonLoads = Callable[[str], Any]
"""The decoding hook: text in, decoded JSON out, ``ValueError`` on bad input."""
JsonDumps = Callable[[Any], str]


dumps: JsonDumps = safe_dumps
"""Compact JSON, non-ASCII kept as is (what the server writes), always strict and UTF-8
encodable: ``NaN``/``Infinity`` become ``null`` and lone surrogates U+FFFD."""


# -- server → client: parsing --------------------------------------------------------------


class _Shape(Exception):
    """A known message whose fields do not fit; becomes :class:`InvalidMessage`."""


def _user_time(obj: dict[str, Any]) -> str | None:
    value = obj.get("user_time")
    return value if type(value) is str else None


_new = object.__new__


def _trusted_state(data: dict[str, Any]) -> SourceState:
    """A :class:`SourceState` over ``data`` whose ``source_id`` was already checked."""
    state: SourceState = _new(SourceState)
    state.raw = data
    return state


def _state_batch(obj: dict[str, Any]) -> ITrackEvent:
    data = obj.get("data")
    if type(data) is not list:
        raise _Shape("state_batch data is not an array")
    for item in data:
        if type(item) is not dict or type(item.get("source_id")) is not int:
            raise _Shape("state_batch holds something that is not a source state")
    return StateBatchEvent([_trusted_state(item) for item in data], _user_time(obj), obj)


def _lifecycle(obj: dict[str, Any]) -> ITrackEvent:
    data = obj.get("data")
    if type(data) is not dict:
        raise _Shape("lifecycle data is not an object")
    source_id = data.get("source_id")
    what = data.get("lifecycle_event")
    if type(source_id) is not int or type(what) is not str:
        raise _Shape("lifecycle needs an integer source_id and a lifecycle_event string")
    return LifecycleEvent(source_id, what, obj)


def _logout(obj: dict[str, Any]) -> ITrackEvent:
    data = obj.get("data")
    return LogoutEvent(data if type(data) is str else None, obj)


def _readings(obj: dict[str, Any]) -> ITrackEvent:
    return ReadingsBatchEvent(obj.get("data"), obj)


def _iot(obj: dict[str, Any]) -> ITrackEvent:
    return IotMonitorEvent(obj.get("data"), obj)


_EVENT_PARSERS: dict[str, Callable[[dict[str, Any]], ITrackEvent]] = {
    "state_batch": _state_batch,
    "lifecycle": _lifecycle,
    "logout": _logout,
    "readings_batch": _readings,
    "iot_monitor": _iot,
}


def _int_key(key: str) -> int | None:
    return parse_digits(key, MAX_ID_DIGITS)


def _status_map(value: Mapping[str, Any]) -> dict[int, str] | None:
    """``{"15564": "normal", …}`` → ``{15564: "normal"}``; ``None`` if it is not such a map."""
    out: dict[int, str] = {}
    for key, status in value.items():
        tracker = _int_key(key)
        if tracker is None or type(status) is not str:
            return None
        out[tracker] = status
    return out


def _result(entry: Any) -> SubscriptionResult:
    """One event type's answer, in either format (``value``/``success``, or the bare map)."""
    if type(entry) is dict:
        if "value" in entry or "success" in entry:
            success = entry.get("success")
            value = entry.get("value")
            trackers = _status_map(value) if type(value) is dict else None
            return SubscriptionResult(
                trackers or {},
                success if type(success) is bool else None,
                None if trackers is not None else value,
            )
        trackers = _status_map(entry)
        if trackers is not None:
            return SubscriptionResult(trackers)
    return SubscriptionResult({}, None, entry)


def _events_list(obj: dict[str, Any]) -> list[str]:
    events = obj.get("events")
    if events is None:
        return []
    if type(events) is not list or not all(type(e) is str for e in events):
        raise _Shape("events is not an array of strings")
    return events


def _subscribe_response(obj: dict[str, Any]) -> ITrackEvent:
    data = obj.get("data")
    if data is not None and type(data) is not dict:
        raise _Shape("subscribe response data is not an object")
    results = {name: _result(entry) for name, entry in (data or {}).items()}
    return SubscribeResponse(_events_list(obj), results, obj)


def _unsubscribe_response(obj: dict[str, Any]) -> ITrackEvent:
    data = obj.get("data")
    events = _events_list(obj)
    if type(data) is list:
        if not all(type(t) is int for t in data):
            raise _Shape("unsubscribe response data is not an array of tracker ids")
        return UnsubscribeResponse(events, data, {}, obj)
    if type(data) is dict:
        results = {name: _result(entry) for name, entry in data.items()}
        return UnsubscribeResponse(events, [], results, obj)
    if data is None:
        return UnsubscribeResponse(events, [], {}, obj)
    raise _Shape("unsubscribe response data is neither an array nor an object")


_RESPONSE_PARSERS: dict[str, Callable[[dict[str, Any]], ITrackEvent]] = {
    "subscription/subscribe": _subscribe_response,
    "subscription/unsubscribe": _unsubscribe_response,
    # Some deployments answer with the bare action name.
    "subscribe": _subscribe_response,
    "unsubscribe": _unsubscribe_response,
}


def _error(obj: dict[str, Any]) -> ITrackEvent:
    status = obj.get("status")
    code: Any = None
    description: Any = None
    if type(status) is dict:
        code = status.get("code")
        description = status.get("description")
    action = obj.get("action")
    return ErrorMessage(
        code if type(code) is int else None,
        description if type(description) is str else None,
        action if type(action) is str and action != "null" else None,
        obj.get("data"),
        obj,
    )


NOTABLE = frozenset((ErrorMessage, LogoutEvent, SubscribeResponse, UnsubscribeResponse))
"""The events a session keeps track of (see :func:`message_parser`); every other kind only
reaches the application."""


def parse_message(text: str, loads: JsonLoads | None = None) -> ITrackEvent:
    """Turn one server message into an event; never raises, never drops anything.

    Not JSON → :class:`InvalidMessage`; JSON of an unknown kind (or not an object) →
    :class:`UnknownMessage`; a known kind with the wrong shape → :class:`InvalidMessage`.
    Under the default hook with the fast decoder selected (``trackwire[fast]``, see
    :func:`trackwire.set_decoder`) the hot messages are decoded by msgspec; the event is
    equal either way.
    """
    return _parse(loads, None, text)


def message_parser(
    loads: JsonLoads | None = None, notice: Callable[[ITrackEvent], None] | None = None
) -> Callable[[str], ITrackEvent]:
    """:func:`parse_message` as a one-argument callable, for a transport's message factory;
    ``notice`` runs with each event a session keeps track of (:data:`NOTABLE`: answers,
    errors, ``logout``) before it is returned, so the session needs to look at no other."""
    return functools.partial(_parse, loads, notice)


def _parse(
    loads: JsonLoads | None, notice: Callable[[ITrackEvent], None] | None, text: str
) -> ITrackEvent:
    if loads is None:
        fast = _decoder.itrack_active
        if fast is not None:
            return fast(text, notice)  # trackwire[fast]: the compiled decoder
        decode = _json.loads
    else:
        decode = loads
    try:
        if decode is _stdlib_loads:
            # The default hook, inlined (one Python call fewer per message); whatever the
            # scanner does not read whole (whitespace around it, trailing data, no value at
            # all) gets the hook's own verdict.
            try:
                obj, end = _scan_once(text, 0)
            except StopIteration:
                obj = decode(text)
            else:
                if end != len(text):
                    obj = decode(text)
        else:
            obj = decode(text)
    except Exception as exc:  # any failure of the (replaceable) decoder
        return InvalidMessage(text, f"not JSON: {exc}")
    if type(obj) is not dict:
        return UnknownMessage(text, obj)
    kind = obj.get("type")
    parser: Callable[[dict[str, Any]], ITrackEvent] | None = None
    if kind == "event":
        name = obj.get("event")
        if name == "state":
            # The hot path, inlined: one check, one view, one event.
            data = obj.get("data")
            if type(data) is dict and type(data.get("source_id")) is int:
                state: SourceState = _new(SourceState)
                state.raw = data
                # The doc names ``user_time`` without placing it: read from the message
                # and, failing that, from the state object (where it also stays in ``extra``).
                user_time = obj.get("user_time")
                if user_time is None:
                    user_time = data.get("user_time")
                event: StateEvent = _new(StateEvent)  # every field set here: no __init__ call
                event.state = state
                event.user_time = user_time if type(user_time) is str else None
                event.raw = obj
                return event
            return InvalidMessage(
                text, "state data is not an object with an integer source_id", obj
            )
        if type(name) is str:
            parser = _EVENT_PARSERS.get(name)
    elif kind == "response":
        name = obj.get("action")
        if type(name) is str:
            parser = _RESPONSE_PARSERS.get(name)
    elif kind == "error":
        parser = _error
    if parser is None:
        return UnknownMessage(text, obj)
    try:
        parsed = parser(obj)
    except _Shape as exc:
        return InvalidMessage(text, str(exc), obj)
    if notice is not None and type(parsed) in NOTABLE:
        notice(parsed)
    return parsed


# -- server → client: encoding ---------------------------------------------------------------


def encode_event(event: str, data: Any, *, user_time: str | None = None) -> dict[str, Any]:
    """``{"type": "event", "event": …, "data": …}`` (with ``user_time`` when given)."""
    message: dict[str, Any] = {"type": "event", "event": event}
    if user_time is not None:
        message["user_time"] = user_time
    message["data"] = data
    return message


def _status_json(statuses: Mapping[int, str]) -> dict[str, str]:
    return {str(tracker): status for tracker, status in statuses.items()}


def encode_subscribe_response(
    events: list[str], results: Mapping[str, Mapping[int, str]], *, legacy: bool = False
) -> dict[str, Any]:
    """A subscribe response: ``{type: {"value": statuses, "success": true}}`` per event type,
    or the bare status map per type in the deprecated format."""
    data: dict[str, Any] = {}
    for name, statuses in results.items():
        if legacy:
            data[name] = _status_json(statuses)
        else:
            data[name] = {"value": _status_json(statuses), "success": True}
    return {"type": "response", "action": "subscription/subscribe", "events": events, "data": data}


def encode_unsubscribe_response(events: list[str], trackers: list[int]) -> dict[str, Any]:
    return {
        "type": "response",
        "action": "subscription/unsubscribe",
        "events": events,
        "data": trackers,
    }


def encode_error(
    code: int, description: str, action: str | None = None, data: Any = None
) -> dict[str, Any]:
    """An error message; ``action`` ``None`` is written as the string ``"null"``."""
    message: dict[str, Any] = {
        "type": "error",
        "action": "null" if action is None else action,
        "status": {"code": code, "description": description},
    }
    if data is not None:
        message["data"] = data
    return message


# -- client → server ----------------------------------------------------------------------


def _request_json(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {"type": request.type}
    if isinstance(request, StateRequest):
        out["trackers"] = list(request.trackers)
        if request.format is not None:
            out["format"] = request.format
    else:
        out["target"] = request.target.to_json()
        if request.rate_limit is not None:
            out["rate_limit"] = request.rate_limit
        if isinstance(request, StateBatchRequest) and request.format is not None:
            out["format"] = request.format
        if isinstance(request, ReadingsBatchRequest):
            if request.sensor_type is not None:
                out["sensor_type"] = request.sensor_type
            if request.include_components is not None:
                out["include_components"] = request.include_components
    out.update(request.extra)
    return out


def encode_action(action: Action, session_hash: str) -> dict[str, Any]:
    """The JSON object of one action: ``action``, ``hash`` and its parameters."""
    message: dict[str, Any] = {"action": action.action, "hash": session_hash}
    if isinstance(action, (Subscribe, Unsubscribe)):
        message["requests"] = [_request_json(r) for r in action.requests]
    else:
        message["events"] = list(action.events)
        message["trackers"] = list(action.trackers)
    return message


class ActionFormatError(ValueError):
    """A client action whose parameters do not fit (answered with error 7 by a server)."""


def _ints(value: Any, what: str) -> list[int]:
    if type(value) is not list or not all(type(v) is int for v in value):
        raise ActionFormatError(f"{what} must be an array of integers")
    return value


def _opt_str(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and type(value) is not str:
        raise ActionFormatError(f"{key} must be a string")
    return value


def _target(entry: Mapping[str, Any]) -> Target:
    target = entry.get("target")
    if target is None:
        raise ActionFormatError("target is required")
    if type(target) is not dict:
        raise ActionFormatError("target must be an object")
    kind = target.get("type")
    if kind == "all":
        return Target.all()
    if kind == "selected":
        return Target.selected(_ints(target.get("tracker_ids"), "target.tracker_ids"))
    raise ActionFormatError("target.type must be 'all' or 'selected'")


_STATE_KEYS = frozenset({"type", "trackers", "format"})
_BATCH_KEYS = frozenset({"type", "target", "rate_limit", "format"})
_READINGS_KEYS = frozenset({"type", "target", "rate_limit", "sensor_type", "include_components"})
_IOT_KEYS = frozenset({"type", "target", "rate_limit"})


def _rest(entry: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in known}


def _parse_request(entry: Any) -> Request:
    if type(entry) is not dict:
        raise ActionFormatError("each request must be an object")
    kind = entry.get("type")
    if kind == "state":
        trackers = _ints(entry.get("trackers"), "trackers")
        return StateRequest(trackers, _opt_str(entry, "format"), _rest(entry, _STATE_KEYS))
    if kind == "state_batch":
        return StateBatchRequest(
            _target(entry),
            _opt_str(entry, "rate_limit"),
            _opt_str(entry, "format"),
            _rest(entry, _BATCH_KEYS),
        )
    if kind == "readings_batch":
        include = entry.get("include_components")
        if include is not None and type(include) is not bool:
            raise ActionFormatError("include_components must be a boolean")
        return ReadingsBatchRequest(
            _target(entry),
            _opt_str(entry, "rate_limit"),
            _opt_str(entry, "sensor_type"),
            include,
            _rest(entry, _READINGS_KEYS),
        )
    if kind == "iot_monitor":
        return IotMonitorRequest(
            _target(entry), _opt_str(entry, "rate_limit"), _rest(entry, _IOT_KEYS)
        )
    raise ActionFormatError(f"unknown request type {kind!r:.40}")


def parse_action(obj: Mapping[str, Any]) -> Action:
    """The action of a decoded client message (``action`` is ``subscribe``/``unsubscribe``).

    Raises :class:`ActionFormatError` when the parameters do not fit either format.
    """
    name = obj.get("action")
    subscribing = name == "subscribe"
    if not subscribing and name != "unsubscribe":
        raise ActionFormatError(f"unknown action {name!r:.40}")
    if "requests" in obj:
        requests = obj["requests"]
        if type(requests) is not list or not requests:
            raise ActionFormatError("requests must be a non-empty array")
        parsed = [_parse_request(entry) for entry in requests]
        return Subscribe(parsed) if subscribing else Unsubscribe(parsed)
    events = obj.get("events")
    if type(events) is not list or not events or not all(type(e) is str for e in events):
        raise ActionFormatError("either requests or events (an array of names) is required")
    trackers = _ints(obj.get("trackers"), "trackers")
    return LegacySubscribe(events, trackers) if subscribing else LegacyUnsubscribe(events, trackers)
