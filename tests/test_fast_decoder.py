"""trackwire[fast]: the compiled decoder gives the default path's events, for any input."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trackwire
from trackwire import _decoder
from trackwire._json import stdlib_loads
from trackwire.conformance.strategies import (
    fleetfreedom_bodies,
    fleetfreedom_names,
    itrack_server_messages,
    json_values,
)
from trackwire.fleetfreedom import Command, FleetFreedomClient, Merged
from trackwire.fleetfreedom import InvalidMessage as FleetInvalid
from trackwire.fleetfreedom._fast import loads as fast_loads
from trackwire.itrack import (
    InvalidMessage,
    ITrackClient,
    LifecycleEvent,
    LogoutEvent,
    SourceState,
    StateBatchEvent,
    StateEvent,
    UnknownMessage,
    parse_message,
)
from trackwire.itrack._codec import NOTABLE, message_parser

_PUBLIC = (StateEvent, StateBatchEvent, LifecycleEvent, LogoutEvent)

# Raw JSON tokens where msgspec and the standard library part ways (or might): each must
# give the default path's event either way.
_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "18446744073709551616",
    "1.0",
    "1E2",
    "-0",
    "-0.0",
    "0.1",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"\u00e9\U0001f600"',
    "true",
    "false",
    "null",
    '"x"',
    "{}",
    "[]",
    "[1,2]",
    '{"source_id":1}',
    "[" * 3000 + "]" * 3000,
]
_MARK = "\u0001mark\u0001"


@pytest.fixture(autouse=True)
def _restore_decoder() -> Iterator[None]:
    before = trackwire.get_decoder()
    yield
    trackwire.set_decoder(before)
    trackwire.set_json_loads(None)


def _both(text: str) -> tuple[Any, Any]:
    trackwire.set_decoder("default")
    default = parse_message(text)
    trackwire.set_decoder("fast")
    fast = parse_message(text)
    return fast, default


def _public_type(event: object) -> type:
    for cls in _PUBLIC:
        if isinstance(event, cls):
            return cls
    return type(event)


def _same(a: object, b: object) -> bool:
    """Equal, or (NaN is never equal to itself) the same repr."""
    return a == b or ("nan" in repr(a) and repr(a) == repr(b))


def _check(text: str) -> None:
    fast, default = _both(text)
    assert _public_type(fast) is type(default), (fast, default)
    assert _same(fast, default), (fast, default)
    assert _same(default, fast), (default, fast)
    assert repr(fast) == repr(default)
    raw = getattr(default, "raw", None)
    if raw is not None:
        assert _same(fast.raw, raw)
    if isinstance(default, StateEvent):
        _check_state(fast.state, default.state)
        assert fast.user_time == default.user_time
        assert fast.state.raw is fast.raw["data"]  # one decoded object, as on the default path
    elif isinstance(default, StateBatchEvent):
        assert len(fast.states) == len(default.states)
        for index, (a, b) in enumerate(zip(fast.states, default.states, strict=True)):
            _check_state(a, b)
            assert a.raw is fast.raw["data"][index]
    elif isinstance(default, LifecycleEvent):
        assert (fast.source_id, fast.lifecycle_event) == (
            default.source_id,
            default.lifecycle_event,
        )
    elif isinstance(default, LogoutEvent):
        assert fast.reason == default.reason


def _check_state(fast: SourceState, default: SourceState) -> None:
    assert isinstance(fast, SourceState)
    for name in ("source_id", "connection_status", "movement_status", "last_update", "extra"):
        assert _same(getattr(fast, name), getattr(default, name)), name
    assert _same(fast.compact(), default.compact())
    gps, expected = fast.gps, default.gps
    assert (gps is None) == (expected is None)
    if gps is not None and expected is not None:
        for name in ("updated", "signal_level", "heading", "speed", "alt", "extra", "raw"):
            assert _same(getattr(gps, name), getattr(expected, name)), name
        assert _same(gps, expected)
        location, want = gps.location, expected.location
        assert (location is None) == (want is None)
        if location is not None and want is not None:
            assert (location.lat, location.lng) == (want.lat, want.lng)
            assert _same(location.extra, want.extra)
            assert _same(location, want)
            assert repr(location) == repr(want)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``value`` a value sits, or a new key could go."""
    if isinstance(value, dict):
        yield (*path, "x_new")
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _paths(item, (*path, index))


def _put(message: Any, path: tuple[Any, ...], value: Any) -> None:
    target = message
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@settings(max_examples=400)
@given(message=itrack_server_messages(), data=st.data())
def test_every_itrack_message_decodes_alike(message: dict[str, Any], data: st.DataObject) -> None:
    compact = data.draw(st.booleans())
    separators = (",", ":") if compact else (", ", ": ")
    escape = data.draw(st.booleans())
    text = json.dumps(message, separators=separators, ensure_ascii=escape)
    _check(text)
    # The same message with one value replaced (or one unknown field added) by any JSON
    # value, or by a raw token the two decoders might read differently.
    paths = list(_paths(message))
    path = data.draw(st.sampled_from(paths))
    if data.draw(st.booleans()):
        _put(message, path, data.draw(json_values(6)))
        text = json.dumps(message, separators=separators, ensure_ascii=escape)
    else:
        _put(message, path, _MARK)
        token = data.draw(st.sampled_from(_TOKENS))
        text = json.dumps(message, separators=separators, ensure_ascii=True)
        text = text.replace(json.dumps(_MARK), token)
    _check(text)


@settings(max_examples=200)
@given(message=itrack_server_messages(), text=st.text(max_size=30))
def test_the_parser_tells_of_exactly_the_events_a_session_keeps_track_of(
    message: dict[str, Any], text: str
) -> None:
    """``message_parser``'s notice runs once for an answer, an error or a logout (the
    session's review rests on it), never for anything else, on either decoder."""
    notable = tuple(NOTABLE)
    for name in ("default", "fast"):
        trackwire.set_decoder(name)  # type: ignore[arg-type]
        for raw in (json.dumps(message), text):
            told: list[object] = []
            event = message_parser(notice=told.append)(raw)
            assert [e is event for e in told] == ([True] if isinstance(event, notable) else [])


@given(st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_any_text_decodes_alike(text: str) -> None:
    _check(text)


_STATE = (
    '{"type":"event","event":"state","data":{"source_id":7,"gps":{"updated":"2024-01-01 00:00:00",'
    '"signal_level":90,"location":{"lat":1.5,"lng":-2,"x_acc":3},"heading":5,"speed":0,'
    '"alt":1.25,"x_sat":9},"connection_status":"active","movement_status":"moving",'
    '"last_update":"2024-01-01 00:00:01","gsm":{"level":6},"x_new":[1,{"a":null}]}}'
)


@pytest.mark.parametrize(
    "text",
    [
        _STATE,
        " " + _STATE,
        _STATE + "\n",
        _STATE + " x",
        _STATE[:-1],
        _STATE.replace('"event":"state"', '"event":"state","event":"lifecycle"'),
        _STATE.replace('"event":"state"', '"event":"lifecycle","event":"state"'),
        _STATE.replace('"type":"event"', '"type":"event","type":"response"'),
        _STATE.replace('"source_id":7', '"source_id":7,"source_id":"7"'),
        _STATE.replace('"source_id":7', '"source_id":true'),
        _STATE.replace('"source_id":7', '"source_id":7.0'),
        _STATE.replace('"lat":1.5', '"lat":"1.5"'),
        _STATE.replace('"lat":1.5', '"lat":false'),
        _STATE.replace('"gps":{', '"gps":null,"x":{'),
        _STATE.replace('"data":{', '"user_time":"2024-01-01 02:00:00","data":{'),
        _STATE.replace('"data":{', '"user_time":5,"data":{"user_time":"2024-01-01 02:00:00",'),
        _STATE.replace('"data":{', '"data":{"user_time":"2024-01-01 02:00:00",'),
        '{"type":"event","event":"state_batch","user_time":"t","data":[]}',
        '{"type":"event","event":"state_batch","data":[{"source_id":1},{"source_id":2,"y":1}]}',
        '{"type":"event","event":"state_batch","data":[{"source_id":1},{"source_id":"2"}]}',
        '{"type":"event","event":"state_batch","data":{}}',
        '{"type":"event","event":"lifecycle","data":{"source_id":3,"lifecycle_event":"block"}}',
        '{"type":"event","event":"lifecycle","data":{"source_id":3,"lifecycle_event":1}}',
        '{"type":"event","event":"logout","data":"session closed"}',
        '{"type":"event","event":"logout","data":{"why":1}}',
        '{"type":"event","event":"logout"}',
        '{"type":"event","event":"readings_batch","data":[]}',
        '{"type":"response","action":"subscription/subscribe","events":["state"],"data":{}}',
        '{"type":"error","action":"null","status":{"code":3,"description":"Wrong hash"}}',
        '{"type":"event","event":"mystery","data":1}',
        '["type","event"]',
        "not json",
        "",
    ],
)
def test_edge_messages_decode_alike(text: str) -> None:
    _check(text)


def test_fast_path_gives_typed_events_with_raw_on_demand() -> None:
    trackwire.set_decoder("fast")
    event = parse_message(_STATE)
    assert type(event) is not StateEvent
    assert isinstance(event, StateEvent)
    assert not hasattr(event, "_raw")  # nothing decoded yet
    gps = event.state.gps
    assert gps is not None
    assert gps.location is not None
    assert (event.state.source_id, gps.location.lat, gps.speed) == (7, 1.5, 0)
    assert not hasattr(event, "_raw")  # typed reads never decode the dict
    assert event.raw is not None
    assert event.raw["data"]["x_new"] == [1, {"a": None}]
    assert event.state.extra == {"gsm": {"level": 6}, "x_new": [1, {"a": None}]}
    assert gps.extra == {"x_sat": 9}
    assert gps.location.extra == {"x_acc": 3}
    assert event.raw is event.raw  # decoded once, then kept


def test_fast_events_stay_mutable_like_the_default_ones() -> None:
    trackwire.set_decoder("fast")
    event = parse_message(_STATE)
    assert isinstance(event, StateEvent)
    replacement = SourceState.create(1)
    event.state = replacement
    event.raw = {"replaced": True}
    assert event.state is replacement
    assert event.raw == {"replaced": True}
    assert event == StateEvent(replacement)


def test_unknown_and_invalid_messages_are_the_default_classes() -> None:
    trackwire.set_decoder("fast")
    assert type(parse_message("nope")) is InvalidMessage
    assert type(parse_message('{"type":"event","event":"x"}')) is UnknownMessage


def test_fast_logout_ends_the_session() -> None:
    trackwire.set_decoder("fast")
    client = ITrackClient("http://h/v2/event/subscription", "a" * 32)
    client.connection_made(0.0)
    client.receive("3a9c6b52-13b0-4b1e-9a9b-1a2b3c4d5e6f|30000|X|", 0.0)
    client.receive('{"type":"event","event":"logout","data":"session closed"}', 1.0)
    events = list(client.events())
    assert any(isinstance(e, LogoutEvent) for e in events), events
    assert client.logged_out
    assert not client.resumable


def test_a_json_hook_takes_precedence_over_the_fast_decoder() -> None:
    trackwire.set_decoder("fast")
    trackwire.set_json_loads(json.loads)
    assert type(parse_message(_STATE)) is StateEvent
    assert type(parse_message(_STATE, loads=stdlib_loads)) is StateEvent
    trackwire.set_json_loads(None)
    assert type(parse_message(_STATE)) is not StateEvent


def test_set_decoder_and_the_environment() -> None:
    trackwire.set_decoder("default")
    assert trackwire.get_decoder() == "default"
    assert type(parse_message(_STATE)) is StateEvent
    trackwire.set_decoder("fast")
    assert trackwire.get_decoder() == "fast"
    trackwire.set_decoder(None)
    assert trackwire.get_decoder() == "fast"  # msgspec is installed with the test extra
    trackwire.set_decoder("auto")
    assert trackwire.get_decoder() == "fast"
    assert trackwire.fast_available()
    with pytest.raises(ValueError, match="unknown decoder"):
        trackwire.set_decoder("turbo")  # type: ignore[arg-type]
    _decoder._from_environment({"TRACKWIRE_DECODER": "default"})
    assert trackwire.get_decoder() == "default"
    _decoder._from_environment({"TRACKWIRE_DECODER": " FAST "})
    assert trackwire.get_decoder() == "fast"
    _decoder._from_environment({})
    assert trackwire.get_decoder() == "fast"
    with pytest.raises(ValueError, match="TRACKWIRE_DECODER"):
        _decoder._from_environment({"TRACKWIRE_DECODER": "turbo"})


def test_without_msgspec_auto_is_default_and_fast_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)  # makes ``import msgspec`` fail
    monkeypatch.delitem(sys.modules, "trackwire.itrack._fast")
    monkeypatch.delitem(sys.modules, "trackwire.fleetfreedom._fast")
    assert not trackwire.fast_available()
    trackwire.set_decoder(None)
    assert trackwire.get_decoder() == "default"
    with pytest.raises(ImportError, match=r"trackwire\[fast\]"):
        trackwire.set_decoder("fast")
    assert trackwire.get_decoder() == "default"


# -- FleetFreedom ----------------------------------------------------------------------------


def _outcome(func: Any, text: str) -> object:
    try:
        return ("ok", func(text))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc), str(exc))


@given(
    body=json_values(10).map(json.dumps)
    | fleetfreedom_bodies().map(json.dumps)
    | st.sampled_from(_TOKENS)
    | st.text(max_size=30),
)
def test_fast_body_loads_agrees_with_the_default(body: str) -> None:
    assert repr(_outcome(fast_loads, body)) == repr(_outcome(stdlib_loads, body))


def _client_events(lines: list[str]) -> list[Any]:
    client = FleetFreedomClient("ws://127.0.0.1/")
    client.connection_made(0.0)
    client.send(Command.subscribe(1, ["assetAdvanced"]))
    client.receive('connectionResponse {"errorCode":0,"ghostId":"g"}', 0.0)
    for line in lines:
        client.receive(line, 1.0)
    return list(client.events())


@given(
    st.lists(
        st.tuples(
            fleetfreedom_names() | st.sampled_from(["assetAdvancedMerged", "assetDeleted"]),
            fleetfreedom_bodies(),
            st.sampled_from([*_TOKENS, None]),
        ),
        max_size=5,
    )
)
def test_fleetfreedom_client_events_alike(items: list[tuple[str, dict[str, Any], Any]]) -> None:
    lines = []
    for name, body, token in items:
        if token is None:
            lines.append(name + " " + json.dumps(body, separators=(",", ":")))
        else:
            lines.append(
                name + " " + json.dumps({**body, "x": _MARK}).replace(json.dumps(_MARK), token)
            )
    trackwire.set_decoder("default")
    default = _client_events(lines)
    trackwire.set_decoder("fast")
    fast = _client_events(lines)
    assert repr(fast) == repr(default)
    assert [type(e) for e in fast] == [type(e) for e in default]
    assert all(_same(a, b) for a, b in zip(fast, default, strict=True))


def test_fleetfreedom_fast_path_keeps_every_field() -> None:
    trackwire.set_decoder("fast")
    (event,) = _client_events(['assetAdvancedMerged {"id":1,"v":[2],"x_new":{"a":[1.5,null]}}'])[
        -1:
    ]
    assert type(event) is Merged
    assert event.body == {"id": 1, "v": [2], "x_new": {"a": [1.5, None]}}
    (bad,) = _client_events(['assetAdvancedMerged {"id":NaN'])[-1:]
    assert type(bad) is FleetInvalid
