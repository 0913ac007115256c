"""iTrack message codecs: every message quoted in the spec, and laws over arbitrary input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire.itrack import (
    ActionFormatError,
    ErrorMessage,
    InvalidMessage,
    IotMonitorEvent,
    IotMonitorRequest,
    ITrackEvent,
    LegacySubscribe,
    LegacyUnsubscribe,
    LifecycleEvent,
    LogoutEvent,
    ReadingsBatchEvent,
    ReadingsBatchRequest,
    SourceState,
    StateBatchEvent,
    StateBatchRequest,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    SubscriptionResult,
    Target,
    UnknownMessage,
    Unsubscribe,
    UnsubscribeResponse,
    encode_action,
    encode_error,
    encode_subscribe_response,
    parse_action,
    parse_message,
)

SPEC_STATE = {
    "source_id": 10284,
    "gps": {
        "updated": "2018-10-17 12:51:43",
        "signal_level": 100,
        "location": {"lat": 14.330065796228606, "lng": -90.99037259141691},
        "heading": 248,
        "speed": 0,
        "alt": 431,
    },
    "connection_status": "active",
    "movement_status": "parked",
    "last_update": "2018-10-17 12:51:46",
}


# -- server → client messages quoted in spec §3 --------------------------------------------


def test_spec_subscribe_response_parses() -> None:
    text = (
        '{"type": "response", "action": "subscription/subscribe", "events": ["state"],'
        ' "data": {"state": {"value": {"15564": "normal", "15565": "blocked",'
        ' "15568": "unknown"}, "success": true}}}'
    )
    event = parse_message(text)
    assert event == SubscribeResponse(
        ["state"],
        {
            "state": SubscriptionResult(
                {15564: "normal", 15565: "blocked", 15568: "unknown"}, success=True
            )
        },
    )


def test_deprecated_subscribe_response_has_no_success_level() -> None:
    text = (
        '{"type": "response", "action": "subscription/subscribe", "events": ["state"],'
        ' "data": {"state": {"15564": "normal", "15565": "disallowed"}}}'
    )
    event = parse_message(text)
    assert isinstance(event, SubscribeResponse)
    assert event.results["state"] == SubscriptionResult({15564: "normal", 15565: "disallowed"})
    assert event.results["state"].success is None


def test_subscribe_response_without_success() -> None:
    text = (
        '{"type": "response", "action": "subscription/subscribe", "events": ["state_batch"],'
        ' "data": {"state_batch": {"value": {"1": "normal"}}}}'
    )
    event = parse_message(text)
    assert isinstance(event, SubscribeResponse)
    assert event.results["state_batch"] == SubscriptionResult({1: "normal"}, success=None)


def test_subscribe_response_with_a_value_that_is_no_status_map_keeps_it() -> None:
    text = (
        '{"type": "response", "action": "subscription/subscribe", "events": ["iot_monitor"],'
        ' "data": {"iot_monitor": {"value": true, "success": true}}}'
    )
    event = parse_message(text)
    assert isinstance(event, SubscribeResponse)
    assert event.results["iot_monitor"] == SubscriptionResult({}, True, True)


def test_spec_unsubscribe_response_parses() -> None:
    text = (
        '{"type": "response", "action": "subscription/unsubscribe", "events": ["state"],'
        ' "data": [15568]}'
    )
    assert parse_message(text) == UnsubscribeResponse(["state"], [15568])


def test_spec_error_parses() -> None:
    text = (
        '{"type": "error", "action": "subscription/subscribe",'
        ' "status": {"code": 3, "description": "Wrong hash"},'
        ' "data": {"events": ["state"], "trackers": [15564]}}'
    )
    assert parse_message(text) == ErrorMessage(
        3, "Wrong hash", "subscription/subscribe", {"events": ["state"], "trackers": [15564]}
    )


def test_error_with_null_action_and_no_data() -> None:
    text = '{"type": "error", "action": "null", "status": {"code": 1, "description": "x"}}'
    assert parse_message(text) == ErrorMessage(1, "x", None, None)


def test_spec_source_state_parses_with_typed_fields() -> None:
    event = parse_message(json.dumps({"type": "event", "event": "state", "data": SPEC_STATE}))
    assert isinstance(event, StateEvent)
    state = event.state
    assert state.source_id == 10284
    assert state.connection_status == "active"
    assert state.movement_status == "parked"
    assert state.last_update == "2018-10-17 12:51:46"
    gps = state.gps
    assert gps is not None
    assert gps.updated == "2018-10-17 12:51:43"
    assert gps.signal_level == 100
    assert (gps.heading, gps.speed, gps.alt) == (248, 0, 431)
    location = gps.location
    assert location is not None
    assert (location.lat, location.lng) == (14.330065796228606, -90.99037259141691)
    assert state.extra == {}
    assert gps.extra == {}


def test_full_format_fields_are_kept_in_extra() -> None:
    full = {**SPEC_STATE, "gsm": {"signal_level": 80}, "battery_level": 90, "new_field": [1]}
    event = parse_message(
        json.dumps(
            {"type": "event", "event": "state", "user_time": "2020-01-01 00:00:00", "data": full}
        )
    )
    assert isinstance(event, StateEvent)
    assert event.state.extra == {"gsm": {"signal_level": 80}, "battery_level": 90, "new_field": [1]}
    assert event.user_time == "2020-01-01 00:00:00"
    assert event.state.compact() == SourceState(SPEC_STATE)


def test_wrongly_typed_state_fields_read_as_none_but_stay_in_raw() -> None:
    state = SourceState({"source_id": 1, "gps": {"speed": "fast", "location": [1, 2]}})
    assert state.gps is not None
    assert state.gps.speed is None
    assert state.gps.location is None
    assert state.connection_status is None
    assert state.raw["gps"]["speed"] == "fast"


def test_state_batch_lifecycle_logout_readings_iot() -> None:
    batch = parse_message(
        json.dumps({"type": "event", "event": "state_batch", "data": [SPEC_STATE]})
    )
    assert batch == StateBatchEvent([SourceState(SPEC_STATE)])
    life = {"source_id": 123456, "lifecycle_event": "block"}
    assert parse_message(json.dumps({"type": "event", "event": "lifecycle", "data": life})) == (
        LifecycleEvent(123456, "block")
    )
    logout = '{"type": "event", "event": "logout", "data": "session closed"}'
    assert parse_message(logout) == LogoutEvent("session closed")
    readings = [{"tracker_id": 1, "value": 3.5}]
    assert parse_message(
        json.dumps({"type": "event", "event": "readings_batch", "data": readings})
    ) == ReadingsBatchEvent(readings)
    assert parse_message(
        json.dumps({"type": "event", "event": "iot_monitor", "data": {"a": 1}})
    ) == IotMonitorEvent({"a": 1})


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "event", "event": "state", "data": []}',
        '{"type": "event", "event": "state", "data": {"source_id": "1"}}',
        '{"type": "event", "event": "state_batch", "data": [1]}',
        '{"type": "event", "event": "state_batch", "data": {}}',
        '{"type": "event", "event": "lifecycle", "data": {"source_id": 1}}',
        '{"type": "response", "action": "subscription/subscribe", "data": [1]}',
        '{"type": "response", "action": "subscription/subscribe", "events": "state"}',
        '{"type": "response", "action": "subscription/unsubscribe", "data": ["a"]}',
        '{"type": "response", "action": "subscription/unsubscribe", "data": 3}',
    ],
)
def test_known_kind_with_wrong_shape_is_invalid_and_keeps_the_object(text: str) -> None:
    event = parse_message(text)
    assert isinstance(event, InvalidMessage)
    assert event.text == text
    assert event.message == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        '"X"',
        '{"type": "event", "event": "geofence"}',
        '{"type": "event", "event": ["state"]}',
        '{"type": "response", "action": "other/thing"}',
        '{"type": "push"}',
        "{}",
    ],
)
def test_unknown_json_is_delivered_raw(text: str) -> None:
    assert parse_message(text) == UnknownMessage(text, json.loads(text))


@pytest.mark.parametrize("text", ["not json", "{", "X", "", "[" * 100000])
def test_non_json_is_invalid(text: str) -> None:
    event = parse_message(text)
    assert isinstance(event, InvalidMessage)
    assert event.reason.startswith("not JSON")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "nope",
        "{",
        '{"type":"event"}x',
        '{"type":"event"} ',
        ' {"type":"event"}',
        '{"type":"event"}\n',
        "[1, 2]",
        '{"type":"event","event":"state","data":{"source_id":1}}',
        '{"type":"event","event":"state","data":{"source_id":1}}  {}',
    ],
)
def test_default_decoder_reads_as_json_loads(text: str) -> None:
    # The default hook is inlined on the hot path; its verdicts are json.loads' own.
    assert parse_message(text) == parse_message(text, json.loads)


def test_decoder_hook_is_used() -> None:
    seen: list[str] = []

    def loads(text: str) -> Any:
        seen.append(text)
        return json.loads(text)

    parse_message('{"type": "push"}', loads)
    assert seen == ['{"type": "push"}']


# -- client → server actions quoted in spec §2 ----------------------------------------------


def test_spec_actions_parse_and_encode_back() -> None:
    first = {
        "action": "subscribe",
        "hash": "f4bf1b754034213653dad99c78c4b237",
        "requests": [
            {
                "type": "state_batch",
                "target": {"type": "all"},
                "rate_limit": "5s",
                "format": "compact",
            }
        ],
    }
    action = parse_action(first)
    assert action == Subscribe([StateBatchRequest(Target.all(), "5s", "compact")])
    assert encode_action(action, "f4bf1b754034213653dad99c78c4b237") == first
    second = {
        "action": "subscribe",
        "hash": "4ce2b45d12a6c634154017511575369a",
        "requests": [{"type": "state", "trackers": [1701976, 1701975], "format": "compact"}],
    }
    action = parse_action(second)
    assert action == Subscribe([StateRequest([1701976, 1701975], "compact")])
    assert encode_action(action, "4ce2b45d12a6c634154017511575369a") == second
    legacy = {
        "action": "subscribe",
        "hash": "a" * 32,
        "events": ["state"],
        "trackers": [15564, 15565],
    }
    action = parse_action(legacy)
    assert action == LegacySubscribe(["state"], [15564, 15565])
    assert encode_action(action, "a" * 32) == legacy


def test_all_request_kinds_round_trip() -> None:
    action = Unsubscribe(
        [
            StateRequest([1], extra={"future": True}),
            StateBatchRequest(Target.selected([1, 2])),
            ReadingsBatchRequest(Target.all(), "1m", "temperature", False),
            IotMonitorRequest(Target.selected([3]), "10s"),
        ]
    )
    assert parse_action(encode_action(action, "h" * 32)) == action
    legacy = LegacyUnsubscribe(["state"], [5])
    assert parse_action(encode_action(legacy, "h" * 32)) == legacy


@pytest.mark.parametrize(
    "obj",
    [
        {"action": "poke"},
        {"action": "subscribe"},
        {"action": "subscribe", "requests": []},
        {"action": "subscribe", "requests": {}},
        {"action": "subscribe", "requests": [1]},
        {"action": "subscribe", "requests": [{"type": "gps"}]},
        {"action": "subscribe", "requests": [{"type": "state", "trackers": ["1"]}]},
        {"action": "subscribe", "requests": [{"type": "state_batch"}]},
        {"action": "subscribe", "requests": [{"type": "state_batch", "target": []}]},
        {"action": "subscribe", "requests": [{"type": "state_batch", "target": {"type": "x"}}]},
        {
            "action": "subscribe",
            "requests": [{"type": "iot_monitor", "target": {"type": "all"}, "rate_limit": 5}],
        },
        {
            "action": "subscribe",
            "requests": [
                {"type": "readings_batch", "target": {"type": "all"}, "include_components": "yes"}
            ],
        },
        {"action": "subscribe", "events": "state", "trackers": [1]},
        {"action": "unsubscribe", "events": ["state"]},
    ],
)
def test_bad_actions_raise_action_format_error(obj: dict[str, Any]) -> None:
    with pytest.raises(ActionFormatError):
        parse_action(obj)


# -- laws ----------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
known_keys = st.sampled_from(["type", "event", "action", "data", "status", "events", "user_time"])
known_values = st.sampled_from(
    [
        "event",
        "response",
        "error",
        "state",
        "state_batch",
        "lifecycle",
        "logout",
        "readings_batch",
        "iot_monitor",
        "subscription/subscribe",
        "subscription/unsubscribe",
    ]
)
messages = st.dictionaries(known_keys, known_values | json_values, max_size=6)

ALLOWED = (ITrackEvent,)


@settings(max_examples=300)
@given(st.text(max_size=60) | json_values.map(json.dumps) | messages.map(json.dumps))
def test_any_text_gives_a_typed_raw_or_invalid_event(text: str) -> None:
    event = parse_message(text)
    assert isinstance(event, ALLOWED)
    if isinstance(event, (UnknownMessage, InvalidMessage)):
        assert event.text == text


@given(
    st.dictionaries(
        st.integers(0, 10**9), st.sampled_from(["normal", "blocked", "unknown"]), max_size=5
    ),
    st.booleans(),
)
def test_encoded_subscribe_responses_parse_back(statuses: dict[int, str], legacy: bool) -> None:
    text = json.dumps(encode_subscribe_response(["state"], {"state": statuses}, legacy=legacy))
    event = parse_message(text)
    assert isinstance(event, SubscribeResponse)
    assert event.results["state"].trackers == statuses
    assert event.results["state"].success is (None if legacy else True)


@given(
    st.integers(),
    st.text(),
    st.none() | st.text(min_size=1).filter(lambda a: a != "null"),
    json_values,
)
def test_encoded_errors_parse_back(
    code: int, description: str, action: str | None, data: Any
) -> None:
    text = json.dumps(encode_error(code, description, action, data))
    assert parse_message(text) == ErrorMessage(code, description, action, data)
