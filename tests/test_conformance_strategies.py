"""The public hypothesis strategies produce what they promise, checked against the spec."""

from __future__ import annotations

import inspect
import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from trackwire.atmosphere import (
    AtmosphereClient,
    ClientState,
    Heartbeat,
    Message,
    Opened,
    js_trim,
    utf16_len,
)
from trackwire.conformance import strategies as tws

HANDSHAKE = re.compile(r"[0-9a-f-]{36}\|\d+\|[^|]*\|")
NAME = re.compile(r"[a-z][A-Za-z0-9]*")
ITRACK_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
RATE = re.compile(r"\d+(ms|s|m)")


def _client(*, track_message_length: bool = True, delimiter: str = "|") -> AtmosphereClient:
    client = AtmosphereClient(
        "http://h/p",
        track_message_length=track_message_length,
        inactivity_timeout=0,
        delimiter=delimiter,
    )
    client.connection_made(0.0)
    return client


def _split_line(line: str) -> tuple[str, str]:
    name, space, body = line.partition(" ")
    assert space, line
    return name, body


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_public_names_are_documented() -> None:
    for name in tws.__all__:
        obj = getattr(tws, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, name
    assert tws.__doc__


# -- Atmosphere ------------------------------------------------------------------------------


@given(tws.handshakes(track_message_length=None))
def test_handshakes_open_a_client_with_their_fields(handshake: tws.Handshake) -> None:
    frame = handshake.frame
    body = frame
    if handshake.track_message_length:
        head, _, body = frame.partition("|")
        assert int(head) == utf16_len(body)
    assert body == f"{handshake.uuid}|{handshake.interval_ms}|{handshake.padding}|"
    assert len(handshake.uuid) == 36
    client = _client(track_message_length=handshake.track_message_length)
    client.receive(frame, 0.0)
    assert client.events() == [Opened(handshake.uuid, handshake.interval_ms, handshake.padding)]
    assert client.state is ClientState.OPEN


@given(tws.handshake_frames())
def test_handshake_frames_have_the_documented_shape(frame: str) -> None:
    uuid, interval, padding, last = frame.split("|", 3)
    assert len(uuid) == 36
    assert interval.isdigit()
    assert last == ""
    assert "|" not in padding


def test_handshake_frame_with_prefix_is_the_spec_example() -> None:
    handshake = tws.Handshake("b623a15d-9623-4fd8-a9d3-697036635c29", 30000, "X", True)
    assert handshake.frame == "45|b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|"


@pytest.mark.parametrize("track_message_length", [False, True])
@given(data=st.data())
def test_non_handshake_frames_leave_the_client_waiting(
    track_message_length: bool, data: st.DataObject
) -> None:
    client = _client(track_message_length=track_message_length)
    frame = data.draw(tws.non_handshake_frames(track_message_length=track_message_length))
    client.receive(frame, 0.0)
    assert client.state is ClientState.AWAITING_HANDSHAKE
    assert not any(isinstance(event, Opened) for event in client.events())


def _check_bad_handshake(bad: tws.BadFrame) -> None:
    assert HANDSHAKE.fullmatch(bad.text) is None
    fields = bad.text.split("|")
    if bad.reason == "uuid-length":
        assert len(fields[0]) != 36
    elif bad.reason == "interval-not-digits":
        assert not (fields[1].isdigit() and fields[1].isascii())
    elif bad.reason == "no-trailing-delimiter":
        assert not bad.text.endswith("|")
    elif bad.reason == "data-appended":
        assert len(fields) > 4 or fields[3] != ""
    else:
        assert bad.reason == "missing-fields"
        assert bad.text.count("|") < 3


@given(tws.malformed_handshake_frames())
def test_malformed_handshakes_break_the_format_as_stated(bad: tws.BadFrame) -> None:
    _check_bad_handshake(bad)


@pytest.mark.parametrize("reason", tws.MALFORMED_HANDSHAKE_REASONS)
@settings(max_examples=10)
@given(data=st.data())
def test_malformed_handshakes_can_be_narrowed_to_one_reason(
    reason: str, data: st.DataObject
) -> None:
    bad = data.draw(tws.malformed_handshake_frames([reason]))
    assert bad.reason == reason
    _check_bad_handshake(bad)


@given(tws.paddings(), st.booleans(), st.data())
def test_heartbeat_frames(padding: str, track_message_length: bool, data: st.DataObject) -> None:
    frame = data.draw(tws.heartbeat_frames(padding, track_message_length=track_message_length))
    assert frame == (f"{utf16_len(padding)}|{padding}" if track_message_length else padding)


def test_heartbeat_frame_with_prefix_is_1_x() -> None:
    assert find(tws.heartbeat_frames(track_message_length=True), lambda f: True) == "1|X"


@given(st.lists(tws.blank_frames(), min_size=1, max_size=4))
def test_blank_frames_deliver_nothing(frames: list[str]) -> None:
    for frame in frames:
        assert js_trim(frame) == ""
    client = _client(track_message_length=False)
    client.receive("b623a15d-9623-4fd8-a9d3-697036635c29|0|X|", 0.0)
    client.events()
    for frame in frames:
        client.receive(frame, 0.0)
    assert client.events() == []
    assert client.state is ClientState.OPEN


def _play(stream: tws.TrackMessageSizeStream) -> tuple[list[str], int]:
    client = _client(delimiter=stream.delimiter)
    client.receive(
        tws.Handshake(
            "b623a15d-9623-4fd8-a9d3-697036635c29", 0, stream.padding, True
        ).frame.replace("|", stream.delimiter),
        0.0,
    )
    assert client.state is ClientState.OPEN
    client.events()
    for frame in stream.frames:
        client.receive(frame, 0.0)
    events = client.events()
    messages = [event.data for event in events if isinstance(event, Message)]
    beats = sum(isinstance(event, Heartbeat) for event in events)
    assert len(messages) + beats == len(events)
    return messages, beats


@settings(max_examples=200)
@given(tws.track_message_size_streams())
def test_streams_round_trip_through_the_atmosphere_client(
    stream: tws.TrackMessageSizeStream,
) -> None:
    assert "".join(stream.frames) == "".join(f"{utf16_len(m)}|{m}" for m in stream.messages)
    assert all(stream.frames)
    messages, beats = _play(stream)
    assert messages == list(stream.delivered)
    assert beats == stream.heartbeats


def test_handshake_frame_for_opens_the_stream() -> None:
    stream = tws.TrackMessageSizeStream(("hello",), ("5|hel", "lo"))
    client = _client()
    client.receive(tws.handshake_frame_for(stream), 0.0)
    assert client.state is ClientState.OPEN
    client.events()
    for frame in stream.frames:
        client.receive(frame, 0.0)
    assert client.events() == [Message("hello")]


@given(
    tws.track_message_size_streams(
        st.text(min_size=1, max_size=10).filter(lambda m: bool(js_trim(m))),
        delimiter="#",
        padding="hb",
    )
)
def test_streams_with_another_delimiter_and_padding(stream: tws.TrackMessageSizeStream) -> None:
    messages, beats = _play(stream)
    assert messages == list(stream.delivered)
    assert beats == stream.heartbeats


def test_streams_really_split_and_glue_messages() -> None:
    split = find(tws.track_message_size_streams(), lambda s: len(s.frames) > len(s.messages))
    assert len(split.frames) > len(split.messages)
    glued = find(
        tws.track_message_size_streams(), lambda s: 0 < len(s.frames) < len(s.messages) - 1
    )
    assert len(glued.frames) < len(glued.messages)
    with_beat = find(tws.track_message_size_streams(), lambda s: s.heartbeats > 0)
    assert "X" in with_beat.messages
    assert _play(with_beat)[1] == with_beat.heartbeats


def test_stream_delivered_trims_and_drops_as_the_client_does() -> None:
    stream = tws.TrackMessageSizeStream(("  a ", "X", " X ", "b"), ())
    assert stream.delivered == ("a", "b")
    assert stream.heartbeats == 2


@given(tws.garbage_frames())
def test_garbage_frames_are_valid_websocket_text(frame: str) -> None:
    frame.encode("utf-8")  # no lone surrogates: could travel in a text frame


# -- iTrack ----------------------------------------------------------------------------------


def _valid_target(target: Any, max_ids: int | None = None) -> bool:
    if target == {"type": "all"}:
        return max_ids is None
    if not (isinstance(target, dict) and target.get("type") == "selected"):
        return False
    ids = target.get("tracker_ids")
    return (
        isinstance(ids, list)
        and bool(ids)
        and all(type(i) is int for i in ids)
        and (max_ids is None or len(ids) <= max_ids)
    )


def _valid_request(request: Any) -> bool:
    if not isinstance(request, dict):
        return False
    kind = request.get("type")
    if request.get("format", "full") not in ("full", "compact"):
        return False
    if kind == "state":
        trackers = request.get("trackers")
        return isinstance(trackers, list) and all(type(t) is int for t in trackers)
    if kind not in ("state_batch", "readings_batch", "iot_monitor"):
        return False
    if "rate_limit" in request and not RATE.fullmatch(request["rate_limit"]):
        return False
    return _valid_target(request.get("target"), 10 if kind == "iot_monitor" else None)


def _valid_action(action: Any) -> bool:
    if not isinstance(action, dict):
        return False
    if action.get("action") not in ("subscribe", "unsubscribe"):
        return False
    hash_ = action.get("hash")
    if not (isinstance(hash_, str) and len(hash_) == 32):
        return False
    if "requests" in action:
        requests = action["requests"]
        return isinstance(requests, list) and bool(requests) and all(map(_valid_request, requests))
    trackers = action.get("trackers")
    return (
        action.get("events") == ["state"]
        and isinstance(trackers, list)
        and all(type(t) is int for t in trackers)
    )


@given(tws.itrack_action_frames(legacy=None))
def test_itrack_action_frames_are_valid_actions(frame: str) -> None:
    action = json.loads(frame)
    assert _valid_action(action), action
    assert re.fullmatch(r"[0-9a-f]{32}", action["hash"])


@given(tws.itrack_actions("unsubscribe", legacy=True))
def test_itrack_legacy_actions(action: dict[str, Any]) -> None:
    assert action["action"] == "unsubscribe"
    assert set(action) == {"action", "hash", "events", "trackers"}


def _check_bad_action(bad: tws.BadFrame) -> None:
    if bad.reason == "not-json":
        assert not _is_json(bad.text)
        return
    value = json.loads(bad.text)
    assert not _valid_action(value)
    if bad.reason == "not-object":
        assert not isinstance(value, dict)
        return
    assert isinstance(value, dict)
    if bad.reason == "missing-action":
        assert "action" not in value
    elif bad.reason == "unknown-action":
        assert value["action"] not in ("subscribe", "unsubscribe")
    elif bad.reason == "missing-hash":
        assert "hash" not in value
    elif bad.reason == "hash-not-string":
        assert not isinstance(value["hash"], str)
    elif bad.reason == "hash-not-32":
        assert isinstance(value["hash"], str)
        assert len(value["hash"]) != 32
    else:
        # Only the requests are wrong: action and hash are fine.
        assert value["action"] in ("subscribe", "unsubscribe")
        assert len(value["hash"]) == 32
        requests = value["requests"]
        if bad.reason == "requests-not-list":
            assert not isinstance(requests, list)
        else:
            assert not all(map(_valid_request, requests))


@given(tws.invalid_itrack_action_frames())
def test_invalid_itrack_actions_are_invalid_as_stated(bad: tws.BadFrame) -> None:
    _check_bad_action(bad)


@pytest.mark.parametrize("reason", tws.INVALID_ITRACK_REASONS)
@settings(max_examples=10)
@given(data=st.data())
def test_invalid_itrack_actions_can_be_narrowed_to_one_reason(
    reason: str, data: st.DataObject
) -> None:
    bad = data.draw(tws.invalid_itrack_action_frames([reason]))
    assert bad.reason == reason
    _check_bad_action(bad)


@given(tws.invalid_itrack_action_frames(tws.WRONG_HASH_REASONS))
def test_wrong_hash_reasons_keep_a_valid_body(bad: tws.BadFrame) -> None:
    action = json.loads(bad.text)
    assert action["action"] in ("subscribe", "unsubscribe")
    assert all(map(_valid_request, action["requests"]))
    assert not (isinstance(action.get("hash"), str) and len(action["hash"]) == 32)


def test_unknown_reasons_are_refused() -> None:
    with pytest.raises(ValueError, match="nope"):
        tws.invalid_itrack_action_frames(["nope"])
    with pytest.raises(ValueError, match="oversize"):
        tws.invalid_fleetfreedom_lines(reasons=["oversize"])  # needs max_line
    with pytest.raises(ValueError, match="reasons"):
        tws.malformed_handshake_frames([])


FULL_ONLY = {
    "gsm",
    "battery_level",
    "battery_update",
    "inputs",
    "inputs_update",
    "outputs",
    "outputs_update",
    "actual_track_update",
}


def _check_state(state: dict[str, Any]) -> None:
    assert type(state["source_id"]) is int
    assert ITRACK_TIME.fullmatch(state["gps"]["updated"])
    assert ITRACK_TIME.fullmatch(state["last_update"])
    location = state["gps"]["location"]
    assert -90 <= location["lat"] <= 90
    assert -180 <= location["lng"] <= 180


@given(st.sampled_from(["compact", "full"]), st.data())
def test_itrack_source_states(fmt: str, data: st.DataObject) -> None:
    state = data.draw(tws.itrack_source_states(fmt, extra=False))
    _check_state(state)
    assert (fmt == "full") == FULL_ONLY.issubset(state)
    assert not FULL_ONLY & set(state) or fmt == "full"
    extended = data.draw(tws.itrack_source_states(fmt))
    known = FULL_ONLY | {"source_id", "gps", "connection_status", "movement_status", "last_update"}
    assert all(key.startswith("x_") for key in set(extended) - known)


@given(tws.itrack_server_frames())
def test_itrack_server_frames_follow_spec_shapes(frame: str) -> None:
    message = json.loads(frame)
    kind = message["type"]
    assert kind in ("event", "response", "error")
    if kind == "event":
        event = message["event"]
        data = message["data"]
        if event == "state":
            _check_state(data)
            assert "user_time" not in message or ITRACK_TIME.fullmatch(message["user_time"])
        elif event == "state_batch":
            for state in data:
                _check_state(state)
        elif event == "lifecycle":
            assert type(data["source_id"]) is int
            assert data["lifecycle_event"] in ("block", "unblock", "corrupt")
        elif event == "logout":
            assert data == "session closed"
        else:
            assert event in ("readings_batch", "iot_monitor")
            assert isinstance(data, list)
    elif kind == "response":
        assert message["action"] in ("subscription/subscribe", "subscription/unsubscribe")
        if message["action"] == "subscription/unsubscribe":
            assert all(type(i) is int for i in message["data"])
        else:
            assert set(message["data"]) == set(message["events"])
            for entry in message["data"].values():
                statuses = entry
                if "value" in entry:
                    assert set(entry) <= {"value", "success"}
                    assert entry.get("success", True) is True
                    statuses = entry["value"]
                assert all(
                    s in ("normal", "blocked", "unknown", "disallowed") for s in statuses.values()
                )
                assert all(key.isdigit() for key in statuses)
    else:
        assert isinstance(message["action"], str)
        assert message["status"]["code"] in tws.ITRACK_ERROR_CODES
        assert isinstance(message["status"]["description"], str)


@pytest.mark.parametrize("shape", ["subscribe", "subscribe-legacy", "unsubscribe"])
def test_itrack_response_shapes(shape: str) -> None:
    response = find(tws.itrack_responses(shape), lambda r: True)
    if shape == "subscribe-legacy":
        assert list(response["data"]) == ["state"]
        assert "value" not in response["data"]["state"]
    elif shape == "subscribe":
        assert all("value" in entry for entry in response["data"].values())
    else:
        assert isinstance(response["data"], list)


def test_itrack_variants_a_client_must_accept_occur() -> None:
    without_success = find(
        tws.itrack_responses("subscribe"),
        lambda r: not all("success" in e for e in r["data"].values()),
    )
    assert without_success["type"] == "response"
    null_error = find(tws.itrack_errors(), lambda e: e["action"] == "null" and "data" not in e)
    assert null_error["type"] == "error"


@given(tws.itrack_sessions(padding="X"))
def test_itrack_sessions_are_plausible(frames: list[str]) -> None:
    first = json.loads(frames[0])
    assert first["action"] == "subscribe"
    hashes = set()
    subscribed: set[int] = set()
    for frame in frames:
        if frame == "X":
            continue
        action = json.loads(frame)
        assert _valid_action(action)
        hashes.add(action["hash"])
        states = [r for r in action["requests"] if r["type"] == "state"]
        trackers = {t for r in states for t in r["trackers"]}
        if action["action"] == "subscribe":
            subscribed |= trackers
        else:
            assert trackers <= subscribed
            subscribed -= trackers
    assert len(hashes) == 1


def test_itrack_sessions_use_the_given_hash() -> None:
    frames = find(tws.itrack_sessions("f" * 32), lambda f: len(f) > 3)
    assert all(json.loads(f)["hash"] == "f" * 32 for f in frames if f != "X")


# -- FleetFreedom ----------------------------------------------------------------------------


def test_subscription_types_and_pieces() -> None:
    assert len(tws.SUBSCRIPTION_TYPES) == len(set(tws.SUBSCRIPTION_TYPES)) == 29 + 19
    assert all(NAME.fullmatch(name) for name in tws.SUBSCRIPTION_TYPES)
    assert set(tws.PIECE_SLOTS) <= set(tws.SUBSCRIPTION_TYPES)
    assert tws.PIECE_SLOTS["companyLabels"] == ("company", 3)
    assert tws.PIECE_SLOTS["assetAdvanced"] == ("asset", 1)


def test_list_command_pluralises_as_documented() -> None:
    assert tws.list_command("asset") == "getAssetsList"
    assert tws.list_command("company") == "getCompaniesList"
    assert tws.list_command("batch") == "getBatchesList"
    assert tws.list_command("userGroup") == "getUserGroupsList"


@given(st.booleans(), st.data())
def test_fleetfreedom_lines_are_name_space_object(compact: bool, data: st.DataObject) -> None:
    line = data.draw(tws.fleetfreedom_lines(compact=compact))
    name, body = _split_line(line)
    assert NAME.fullmatch(name)
    value = json.loads(body)
    assert isinstance(value, dict)
    if compact:
        assert body == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@given(tws.fleetfreedom_bodies(req_id=True), tws.fleetfreedom_bodies(req_id=False))
def test_fleetfreedom_bodies_req_id(with_id: dict[str, Any], without: dict[str, Any]) -> None:
    assert type(with_id["reqId"]) is int
    assert "reqId" not in without


MAX_LINE = 200


def _check_bad_line(bad: tws.BadFrame) -> None:
    name, space, body = bad.text.partition(" ")
    if bad.reason == "no-space":
        assert not space
    elif bad.reason == "bad-json":
        assert NAME.fullmatch(name)
        assert not _is_json(body)
    elif bad.reason == "not-object":
        assert NAME.fullmatch(name)
        assert not isinstance(json.loads(body), dict)
    elif bad.reason == "bad-name":
        assert space
        assert NAME.fullmatch(name) is None
        assert json.loads(body) == {}
    else:
        assert bad.reason == "oversize"
        assert len(bad.text.encode("utf-8")) > MAX_LINE
        assert NAME.fullmatch(name)
        assert isinstance(json.loads(body), dict)


@given(tws.invalid_fleetfreedom_lines(max_line=MAX_LINE))
def test_invalid_fleetfreedom_lines_are_invalid_as_stated(bad: tws.BadFrame) -> None:
    _check_bad_line(bad)


@pytest.mark.parametrize("reason", tws.INVALID_LINE_REASONS)
@settings(max_examples=10)
@given(data=st.data())
def test_invalid_lines_can_be_narrowed_to_one_reason(reason: str, data: st.DataObject) -> None:
    bad = data.draw(tws.invalid_fleetfreedom_lines(MAX_LINE, [reason]))
    assert bad.reason == reason
    _check_bad_line(bad)


@given(tws.invalid_fleetfreedom_lines())
def test_no_oversize_lines_without_a_limit(bad: tws.BadFrame) -> None:
    assert bad.reason in ("no-space", "bad-json", "not-object", "bad-name")


@pytest.mark.parametrize("limit", [0, 10, 100, 5000])
@given(data=st.data())
def test_oversize_lines(limit: int, data: st.DataObject) -> None:
    line = data.draw(tws.oversize_fleetfreedom_lines(limit, slack=16))
    size = len(line.encode("utf-8"))
    assert size > limit
    if limit >= 100:
        assert size <= limit + 16
    name, body = _split_line(line)
    assert NAME.fullmatch(name)
    assert isinstance(json.loads(body), dict)


def test_oversize_lines_differ_in_bytes_and_characters() -> None:
    line = find(tws.oversize_fleetfreedom_lines(1000), lambda s: len(s) <= 1000)
    assert len(line.encode("utf-8")) > 1000 >= len(line)


@given(tws.fleetfreedom_commands())
def test_fleetfreedom_commands(command: tws.Command) -> None:
    name, body = command
    assert NAME.fullmatch(name)
    assert "reqId" not in body or type(body["reqId"]) is int
    if name in ("logout", "noop", "getSessionDetails", "getSubscriptionsList"):
        assert set(body) <= {"reqId"}
    elif name == "updateOwnPassword":
        assert {"current", "password"} <= set(body)
    elif name in ("subscribe", "unsubscribe"):
        assert type(body["company"]["id"]) is int
        assert set(body["subscriptionTypes"]) <= set(tws.SUBSCRIPTION_TYPES)
    elif name == "login":
        assert {"username", "password", "userAgent"} <= set(body)
    elif name.endswith("List"):
        assert name in {tws.list_command(t) for t in tws.OBJECT_TYPES}
        assert type(body["company"]["id"]) is int
    else:
        assert re.fullmatch(r"(get|merge|remove)[A-Z]\w*", name)
        stem = re.sub(r"^(get|merge|remove)", "", name)
        object_type = stem[0].lower() + stem[1:]
        assert object_type in tws.OBJECT_TYPES
        ref = body[object_type]
        assert ("login" if object_type == "user" and not name.startswith("merge") else "id") in ref
        if name.startswith("merge"):
            assert all(type(v) is int for v in ref["v"])


@given(tws.fleetfreedom_command_lines(["noop", "logout"], req_id=False))
def test_command_lines_always_carry_a_body(line: str) -> None:
    name, body = _split_line(line)
    assert name in ("noop", "logout")
    assert json.loads(body) == {}


@given(tws.fleetfreedom_piece_lines())
def test_piece_lines_carry_a_single_version(line: str) -> None:
    name, body = _split_line(line)
    assert name.endswith("Merged")
    object_type, slot = tws.PIECE_SLOTS[name[: -len("Merged")]]
    piece = json.loads(body)
    assert type(piece["id"]) is int
    assert type(piece["parent" if object_type == "company" else "company"]) is int
    assert len(piece["v"]) == 1
    assert type(piece["v"][0]) is int
    assert 0 <= slot <= 5


@given(tws.fleetfreedom_pieces(["assetGeneral"], companies=st.just(7)))
def test_pieces_can_be_narrowed(piece: tws.Command) -> None:
    name, body = piece
    assert name == "assetGeneralMerged"
    assert body["company"] == 7
    assert body["kind"] in ("asset", "person", "trailer", "vehicle")


POSITION_FIELDS = {
    "lat",
    "lng",
    "accuracy",
    "altitude",
    "bearing",
    "speed",
    "speedLimit",
    "dts",
    "origin",
    "address",
    "streetAddress",
}


@given(tws.fleetfreedom_positions())
def test_positions_have_any_subset_of_fields(position: dict[str, Any]) -> None:
    assert set(position) <= POSITION_FIELDS
    assert "dts" not in position or ISO_MS.fullmatch(position["dts"])


def test_positions_may_be_empty() -> None:
    assert find(tws.fleetfreedom_positions(), lambda p: True) == {}


@given(tws.fleetfreedom_datetimes())
def test_fleetfreedom_datetimes(text: str) -> None:
    assert ISO_MS.fullmatch(text)
    datetime.fromisoformat(text[:-1])


@given(
    tws.fleetfreedom_error_codes(known=True),
    tws.fleetfreedom_error_codes(known=False),
    tws.fleetfreedom_error_codes(),
)
def test_error_codes(known: int, unknown: int, any_code: int) -> None:
    assert 0 <= known <= 142 < unknown
    assert any_code >= 0


@given(tws.fleetfreedom_responses())
def test_fleetfreedom_responses(response: tws.Command) -> None:
    name, body = response
    assert name.endswith("Response")
    assert NAME.fullmatch(name)
    assert type(body["errorCode"]) is int
    assert isinstance(body["message"], str)
    assert "errorDetails" not in body or "kind" in body["errorDetails"]


@given(st.sampled_from([True, False, None]), st.data())
def test_connection_responses(logged_in: bool | None, data: st.DataObject) -> None:
    name, body = data.draw(tws.connection_responses(logged_in))
    assert name == "connectionResponse"
    assert {"errorCode", "message", "serverTime", "ghostId", "expiry"} <= set(body)
    assert ISO_MS.fullmatch(body["serverTime"])
    assert ISO_MS.fullmatch(body["expiry"])
    assert body["expiry"] > body["serverTime"]
    session = {"user", "sessionPolicy", "passwordPolicy"}
    if logged_in is not None:
        assert (session <= set(body)) == logged_in
    assert not session & set(body) or body["errorCode"] == 0
    assert body["errorCode"] in (0, 7, 8, 16)


@given(st.sampled_from([True, False, None]), st.data())
def test_fleetfreedom_sessions_are_plausible(resume: bool | None, data: st.DataObject) -> None:
    lines = data.draw(tws.fleetfreedom_sessions(resume=resume, companies=(4, 5)))
    commands = [_split_line(line) for line in lines]
    names = [name for name, _ in commands]
    bodies = [json.loads(body) for _, body in commands]
    assert [body["reqId"] for body in bodies] == list(range(1, len(bodies) + 1))
    if resume is not None:
        assert (names[:1] == ["login"]) == (not resume)
    assert "login" not in names[1:]
    assert "logout" not in names[:-1]
    held: dict[int, set[str]] = {}
    for name, body in zip(names, bodies, strict=True):
        if name == "subscribe":
            held.setdefault(body["company"]["id"], set()).update(body["subscriptionTypes"])
        elif name == "unsubscribe":
            company = body["company"]["id"]
            assert set(body["subscriptionTypes"]) <= held[company]
            held[company] -= set(body["subscriptionTypes"])
        if "company" in body:
            assert body["company"]["id"] in (4, 5)


@given(tws.json_values(), st.sampled_from([True, False, None]), st.data())
def test_json_texts_parse_back(value: Any, compact: bool | None, data: st.DataObject) -> None:
    text = data.draw(tws.json_texts(st.just(value), compact=compact))
    assert json.loads(text) == value
    styles = [(",", ":"), (", ", ": ")]
    if compact is not None:
        styles = [styles[0 if compact else 1]]
    renderings = {
        json.dumps(value, separators=sep, ensure_ascii=escape)
        for sep in styles
        for escape in (True, False)
    }
    assert text in renderings
