"""ITrackClient against ITrackServer with a fake clock: every event kind, both roles."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import Core, LocalProtocolError
from trackwire.atmosphere import AtmosphereServer, ClientState, parse_open_request
from trackwire.itrack import (
    ActionReceived,
    ActionRejected,
    Closed,
    Directory,
    ErrorMessage,
    GpsState,
    Heartbeat,
    InactivityTimeout,
    InvalidMessage,
    IotMonitorEvent,
    IotMonitorRequest,
    ITrackClient,
    ITrackServer,
    LegacySubscribe,
    LegacyUnsubscribe,
    LifecycleEvent,
    Location,
    LogoutEvent,
    Opened,
    ReadingsBatchEvent,
    ReadingsBatchRequest,
    Reopened,
    SessionFinished,
    SessionForgotten,
    SessionRestored,
    SourceState,
    StateBatchEvent,
    StateBatchRequest,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    SubscriptionResult,
    Subscriptions,
    Target,
    TrackersRefused,
    UnknownMessage,
    Unsubscribe,
    UnsubscribeResponse,
    subscription_url,
)

ALICE = "a" * 32
BOB = "b" * 32
UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"


def state(source_id: int, speed: float = 0, **extra: Any) -> SourceState:
    return SourceState.create(
        source_id,
        gps=GpsState.create(
            updated="2018-10-17 12:51:43",
            signal_level=100,
            location=Location.create(14.33, -90.99),
            heading=248,
            speed=speed,
            alt=431,
        ),
        connection_status="active",
        movement_status="parked",
        last_update="2018-10-17 12:51:46",
        **extra,
    )


def directory() -> Directory:
    hashes = iter([ALICE, BOB])
    d = Directory(hash_factory=lambda: next(hashes))
    d.add_user("alice", "pw")
    d.add_user("bob", "pw")
    d.authenticate("alice", "pw")
    d.authenticate("bob", "pw")
    d.add_tracker("alice", 1, source_id=101, state=state(101, gsm={"level": 3}))
    d.add_tracker("alice", 2, source_id=102, status="blocked", state=state(102))
    d.add_tracker("alice", 3, source_id=103, status="disallowed", state=state(103))
    d.add_tracker("alice", 4, source_id=104)
    d.add_tracker("bob", 9, source_id=109, state=state(109))
    return d


class Link:
    """A client core and a server core joined by a perfect pipe, time passed by hand."""

    def __init__(self, d: Directory, session_hash: str = ALICE, **server: Any) -> None:
        self.directory = d
        self.server_options = server
        self.client = ITrackClient(subscription_url("http://h/v2/"), session_hash)
        self.uuids = (f"{UUID[:-2]}{n:02d}" for n in itertools.count())
        self.now = 0.0
        self.server = self._server()
        self.server.connection_made(self.now)
        self.client.connection_made(self.now)

    def _server(self) -> ITrackServer:
        target = "/" + self.client.url_to_open.split("/", 3)[3]
        request = parse_open_request(target)
        transport = AtmosphereServer(
            request, heartbeat_interval_ms=30000, uuid_factory=lambda: next(self.uuids)
        )
        return ITrackServer(request, self.directory, transport=transport, **self.server_options)

    def pump(self) -> None:
        for _ in range(5):
            for frame in self.server.data_to_send():
                self.client.receive(frame, self.now)
            for frame in self.client.data_to_send():
                self.server.receive(frame, self.now)

    def client_events(self, lifecycle: bool = False) -> list[Any]:
        """The client's events but heartbeats (and, unless asked, its session bookkeeping:
        refusals, forgotten or finished sessions)."""
        self.pump()
        skip = (Heartbeat,) if lifecycle else (Heartbeat, *LIFECYCLE)
        return [e for e in self.client.events() if not isinstance(e, skip)]

    def reconnect(self) -> None:
        self.client.receive_eof(self.now)
        self.server.receive_eof(self.now)
        self.client.reconnect()
        self.server = self._server()
        self.server.connection_made(self.now)
        self.client.connection_made(self.now)


LIFECYCLE = (TrackersRefused, SessionForgotten, SessionFinished, SessionRestored)


def opened(d: Directory | None = None, session_hash: str = ALICE) -> Link:
    link = Link(d or directory(), session_hash)
    assert [type(e) for e in link.client_events()] == [Opened]
    link.server.events()
    return link


# -- subscribe: responses and initial states ----------------------------------------------


def test_state_subscribe_answers_statuses_and_sends_current_states() -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([1, 2, 3, 9, 77])]))
    events = link.client_events(lifecycle=True)
    assert events == [
        SubscribeResponse(
            ["state"],
            {
                "state": SubscriptionResult(
                    {1: "normal", 2: "blocked", 3: "disallowed", 9: "unknown", 77: "unknown"},
                    success=True,
                )
            },
        ),
        TrackersRefused("state", {2: "blocked", 3: "disallowed", 9: "unknown", 77: "unknown"}),
        StateEvent(state(101, gsm={"level": 3})),
    ]
    assert link.server.events() == [
        ActionReceived(Subscribe([StateRequest([1, 2, 3, 9, 77])]), "alice", ALICE)
    ]


def test_compact_format_leaves_full_fields_out() -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([1], "compact")]))
    events = link.client_events()
    assert isinstance(events[1], StateEvent)
    assert events[1].state.extra == {}
    assert events[1].state == state(101)


def test_legacy_subscribe_and_unsubscribe() -> None:
    link = opened()
    link.client.send(LegacySubscribe(["state"], [1, 9]))
    events = link.client_events()
    assert events[0] == SubscribeResponse(
        ["state"], {"state": SubscriptionResult({1: "normal", 9: "unknown"})}
    )
    assert events[0].raw is not None
    assert events[0].raw["data"] == {"state": {"1": "normal", "9": "unknown"}}
    link.client.send(LegacyUnsubscribe(["state"], [1]))
    assert link.client_events() == [UnsubscribeResponse(["state"], [1])]
    link.server.push_state(1, state(101, speed=5), link.now)
    assert link.client_events() == []


def test_state_batch_subscribe_sends_one_batch_then_batches_per_rate_limit() -> None:
    link = opened()
    link.client.send(Subscribe([StateBatchRequest(Target.all(), "5s")]))
    events = link.client_events()
    assert events[0] == SubscribeResponse(
        ["state_batch"],
        {
            "state_batch": SubscriptionResult(
                {1: "normal", 2: "blocked", 3: "disallowed", 4: "normal"}, True
            )
        },
    )
    assert events[1] == StateBatchEvent([state(101, gsm={"level": 3})])
    assert link.server.next_deadline() == 60.0  # only the server heartbeat
    link.now = 1.0
    link.server.push_state(1, state(101, speed=10), link.now)
    link.server.push_state(4, state(104, speed=20), link.now)
    link.server.push_state(1, state(101, speed=30), link.now)
    link.server.push_state(2, state(102, speed=30), link.now)  # blocked
    link.server.push_state(9, state(109, speed=30), link.now)  # bob's
    assert link.client_events() == []
    assert link.server.next_deadline() == 5.0
    link.server.handle_timer(4.9)
    assert link.client_events() == []
    link.now = 5.0
    link.server.handle_timer(5.0)
    assert link.client_events() == [StateBatchEvent([state(101, speed=30), state(104, speed=20)])]
    assert link.server.next_deadline() == 65.0  # heartbeat 60 s after the last write


def test_readings_and_iot_batches() -> None:
    link = opened()
    link.client.send(
        Subscribe(
            [
                ReadingsBatchRequest(Target.selected([1]), "2s", "temperature"),
                IotMonitorRequest(Target.selected([4, 9]), "1s"),
            ]
        )
    )
    first = link.client_events()
    assert first[0] == SubscribeResponse(
        ["readings_batch", "iot_monitor"],
        {
            "readings_batch": SubscriptionResult({1: "normal"}, True),
            "iot_monitor": SubscriptionResult({4: "normal", 9: "unknown"}, True),
        },
    )
    link.server.push_readings(1, [{"value": 21.5}], 0.5)
    link.server.push_readings(4, [{"value": 0}], 0.5)  # not in the target
    link.server.push_iot(4, [{"attr": "x"}], 0.5)
    link.server.push_iot(9, [{"attr": "bob"}], 0.5)  # bob's
    link.server.handle_timer(2.0)
    assert link.client_events() == [
        ReadingsBatchEvent([{"value": 21.5}]),
        IotMonitorEvent([{"attr": "x"}]),
    ]


def test_unsubscribe_stops_events() -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([1, 4]), StateBatchRequest(Target.selected([1, 4]))]))
    link.client_events()
    link.client.send(Unsubscribe([StateRequest([1]), StateBatchRequest(Target.selected([4]))]))
    assert link.client_events() == [UnsubscribeResponse(["state", "state_batch"], [1, 4])]
    link.server.push_state(1, state(101, speed=1), 0.0)
    link.server.push_state(4, state(104, speed=1), 0.0)
    link.server.handle_timer(10.0)
    assert link.client_events() == [
        StateEvent(state(104, speed=1)),
        StateBatchEvent([state(101, speed=1)]),
    ]
    link.client.send(Unsubscribe([StateBatchRequest(Target.all())]))
    assert link.client_events() == [UnsubscribeResponse(["state_batch"], [1])]
    assert link.server.subscribed


def test_a_tracker_unsubscribed_from_a_batch_leaves_no_waiting_state_behind() -> None:
    link = opened()
    link.client.send(Subscribe([StateBatchRequest(Target.selected([1, 4]))]))
    link.client_events()
    link.server.push_state(1, state(101, speed=1), 0.0)
    link.server.push_state(4, state(104, speed=1), 0.0)
    link.client.send(Unsubscribe([StateBatchRequest(Target.selected([1]))]))
    assert link.client_events() == [UnsubscribeResponse(["state_batch"], [1])]
    link.server.handle_timer(10.0)
    assert link.client_events() == [StateBatchEvent([state(104, speed=1)])]


def test_a_tracker_unsubscribed_from_a_readings_batch_leaves_no_waiting_reading() -> None:
    link = opened()
    link.client.send(Subscribe([ReadingsBatchRequest(Target.selected([1, 4]), "2s", "t")]))
    link.client_events()
    link.server.push_readings(1, [{"value": 21.5}], 0.5)
    link.server.push_readings(4, [{"value": 7}, {"value": 8}], 0.5)
    link.client.send(Unsubscribe([ReadingsBatchRequest(Target.selected([4]), "2s", "t")]))
    assert link.client_events() == [UnsubscribeResponse(["readings_batch"], [4])]
    link.server.handle_timer(2.0)
    assert link.client_events() == [ReadingsBatchEvent([{"value": 21.5}])]


# -- server-side validation ----------------------------------------------------------------

ELEVEN = list(range(1, 12))


def _action(**fields: Any) -> str:
    return json.dumps({"action": "subscribe", "hash": ALICE, **fields})


@pytest.mark.parametrize(
    ("frame", "code", "action"),
    [
        ("not json", 5, None),
        ("[1]", 5, None),
        ('{"action": "poke", "hash": "' + ALICE + '"}', 5, None),
        (
            '{"action": "subscribe", "events": ["state"], "trackers": [1]}',
            3,
            "subscription/subscribe",
        ),
        (
            '{"action": "subscribe", "hash": "short", "events": ["state"], "trackers": [1]}',
            3,
            "subscription/subscribe",
        ),
        (
            '{"action": "subscribe", "hash": "'
            + "c" * 32
            + '", "events": ["state"], "trackers": [1]}',
            4,
            "subscription/subscribe",
        ),
        (
            '{"action": "subscribe", "hash": "' + ALICE + '", "events": ["gps"], "trackers": [1]}',
            7,
            "subscription/subscribe",
        ),
        (
            '{"action": "unsubscribe", "hash": "' + ALICE + '", "requests": [{"type": "state"}]}',
            7,
            "subscription/unsubscribe",
        ),
        (
            _action(
                requests=[{"type": "state_batch", "target": {"type": "all"}, "rate_limit": "soon"}]
            ),
            7,
            "subscription/subscribe",
        ),
        (
            _action(
                requests=[
                    {"type": "iot_monitor", "target": {"type": "selected", "tracker_ids": ELEVEN}}
                ]
            ),
            7,
            "subscription/subscribe",
        ),
    ],
)
def test_bad_actions_get_the_spec_error(frame: str, code: int, action: str | None) -> None:
    link = opened()
    link.server.receive(frame, 0.0)
    events = link.client_events()
    assert len(events) == 1
    error = events[0]
    assert isinstance(error, ErrorMessage)
    assert (error.code, error.action) == (code, action)
    assert link.server.events() == [ActionRejected(code, error.description or "", frame)]
    assert not link.server.subscribed


def test_wrong_hash_error_echoes_the_request_like_the_spec() -> None:
    link = opened()
    link.server.receive(
        '{"action": "subscribe", "hash": "x", "events": ["state"], "trackers": [15564]}', 0
    )
    assert link.client_events() == [
        ErrorMessage(
            3, "Wrong hash", "subscription/subscribe", {"events": ["state"], "trackers": [15564]}
        )
    ]


def test_iot_monitor_target_all_counts_the_users_trackers() -> None:
    d = directory()
    for n in range(10, 17):
        d.add_tracker("alice", n)
    link = opened(d)
    link.client.send(Subscribe([IotMonitorRequest(Target.all())]))
    [error] = link.client_events()
    assert isinstance(error, ErrorMessage)
    assert error.code == 7


def _public(event: object) -> type:
    """The event's public class (the fast decoder's events are private subclasses)."""
    return next(c for c in type(event).__mro__ if not c.__name__.startswith("_"))


def test_server_keeps_serving_after_errors() -> None:
    link = opened()
    link.server.receive("garbage", 0.0)
    link.client.send(Subscribe([StateRequest([1])]))
    kinds = [_public(e) for e in link.client_events()]
    assert kinds == [ErrorMessage, SubscribeResponse, StateEvent]


# -- tenant isolation ----------------------------------------------------------------------


def test_a_user_never_sees_another_users_trackers() -> None:
    d = directory()
    alice, bob = opened(d, ALICE), opened(d, BOB)
    alice.client.send(Subscribe([StateRequest([1, 9]), StateBatchRequest(Target.all(), "1s")]))
    bob.client.send(Subscribe([StateRequest([1, 9]), StateBatchRequest(Target.selected([1, 9]))]))
    bob_first = bob.client_events()
    assert bob_first[0] == SubscribeResponse(
        ["state", "state_batch"],
        {
            "state": SubscriptionResult({1: "unknown", 9: "normal"}, True),
            "state_batch": SubscriptionResult({1: "unknown", 9: "normal"}, True),
        },
    )
    alice.client_events()
    for link in (alice, bob):
        link.server.push_state(1, state(101, speed=7), 0.0)
        link.server.push_state(9, state(109, speed=7), 0.0)
        link.server.push_lifecycle(1, "block", 0.0)
        link.server.push_lifecycle(9, "block", 0.0)
        link.server.handle_timer(5.0)
    seen_alice = {s.source_id for e in alice.client_events() for s in _states(e)}
    seen_bob = {s.source_id for e in bob.client_events() for s in _states(e)}
    assert seen_alice == {101}
    assert seen_bob == {109}


def _states(event: object) -> list[SourceState]:
    if isinstance(event, StateEvent):
        return [event.state]
    if isinstance(event, StateBatchEvent):
        return event.states
    if isinstance(event, LifecycleEvent):
        return [SourceState.create(event.source_id)]
    return []


@settings(max_examples=50)
@given(st.lists(st.sampled_from([1, 2, 3, 4, 9, 50]), max_size=6), st.booleans())
def test_tenant_isolation_property(trackers: list[int], batch: bool) -> None:
    d = directory()
    link = opened(d, BOB)
    request = StateBatchRequest(Target.selected(trackers)) if batch else StateRequest(trackers)
    link.client.send(Subscribe([request]))
    for tracker in (1, 2, 3, 4):
        link.server.push_state(tracker, state(100 + tracker), 0.0)
        link.server.push_lifecycle(tracker, "corrupt", 0.0)
    link.server.handle_timer(100.0)
    events = link.client_events()
    statuses = events[0].results[request.type].trackers
    assert all(statuses[t] == "unknown" for t in trackers if t != 9)
    assert {s.source_id for e in events for s in _states(e)} <= {109}


# -- lifecycle and logout ------------------------------------------------------------------


def test_lifecycle_reaches_blocked_subscribers_and_unblock_sends_the_state() -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([2])]))
    assert [type(e) for e in link.client_events()] == [SubscribeResponse]  # blocked: no state
    link.server.push_state(2, state(102, speed=3), 0.0)
    link.server.push_lifecycle(2, "block", 0.0)
    assert link.client_events() == [LifecycleEvent(102, "block")]
    link.directory.set_status(2, "normal")
    link.server.push_lifecycle(2, "unblock", 0.0)
    assert link.client_events() == [LifecycleEvent(102, "unblock"), StateEvent(state(102))]


def test_logout_routes_by_hash_and_ends_the_session() -> None:
    d = directory()
    link = opened(d)
    link.client.send(Subscribe([StateRequest([1])]))
    link.client_events()
    assert not link.server.push_logout(0.0, BOB)
    assert link.server.push_logout(0.0, ALICE)
    assert link.client_events() == [LogoutEvent("session closed")]
    assert link.client.logged_out
    assert not link.client.resumable
    assert not link.server.subscribed
    with pytest.raises(LocalProtocolError):
        link.client.send(Subscribe([StateRequest([1])]))


def test_unsubscribed_connections_get_no_logout() -> None:
    link = opened()
    assert not link.server.push_logout(0.0)
    assert link.client_events() == []


def test_after_logout_the_hash_is_refused() -> None:
    d = directory()
    link = opened(d)
    d.logout(ALICE)
    link.client.send(Subscribe([StateRequest([1])]))
    [error] = link.client_events()
    assert isinstance(error, ErrorMessage)
    assert error.code == 4


# -- client: holding, reconnecting ----------------------------------------------------------


def test_actions_before_the_handshake_are_held_then_flushed_in_order() -> None:
    link = Link(directory())
    link.client.send(Subscribe([StateRequest([1])]))
    link.client.send(Unsubscribe([StateRequest([1])]))
    assert link.client.held == 2
    assert link.client.data_to_send() == []
    frames = link.server.data_to_send()
    link.client.receive(frames[0], 0.0)
    sent = [json.loads(f) for f in link.client.data_to_send()]
    assert [m["action"] for m in sent] == ["subscribe", "unsubscribe"]
    assert all(m["hash"] == ALICE for m in sent)
    assert link.client.held == 0


def test_held_actions_are_bounded() -> None:
    client = ITrackClient("http://h/event/subscription", ALICE, max_held=1)
    client.send(Subscribe([StateRequest([1])]))
    with pytest.raises(LocalProtocolError):
        client.send(Subscribe([StateRequest([2])]))


def test_resubscribes_after_reopen() -> None:
    link = opened()
    link.client.send(
        Subscribe([StateRequest([1], "compact"), StateBatchRequest(Target.selected([4]), "5s")])
    )
    link.client.send(Subscribe([StateRequest([4]), StateBatchRequest(Target.selected([1]))]))
    link.client.send(LegacySubscribe(["state"], [9]))
    link.client.send(Unsubscribe([StateRequest([4])]))
    link.client_events()
    link.reconnect()
    assert "X-Atmosphere-tracking-id=" + UUID[:-2] + "00" in link.client.url_to_open
    events = link.client_events()
    assert events[:2] == [Closed(resumable=True), Reopened(link.client.transport.tracking_id)]
    assert [_public(e) for e in events[2:]] == [
        SubscribeResponse,
        StateEvent,
        StateBatchEvent,
        SubscribeResponse,
    ]
    received = [e.action for e in link.server.events() if isinstance(e, ActionReceived)]
    assert received == [
        Subscribe([StateRequest([1], "compact"), StateBatchRequest(Target.selected([4, 1]), None)]),
        LegacySubscribe(["state"], [9]),
    ]


def test_actions_sent_while_disconnected_are_part_of_the_resubscription() -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([1])]))
    link.client_events()
    link.client.receive_eof(0.0)
    link.client.send(Subscribe([StateRequest([4])]))
    link.client.send(Unsubscribe([StateRequest([1])]))
    link.server.receive_eof(0.0)
    link.client.reconnect()
    link.server = link._server()
    link.server.connection_made(0.0)
    link.client.connection_made(0.0)
    link.pump()
    received = [e.action for e in link.server.events() if isinstance(e, ActionReceived)]
    assert received == [Subscribe([StateRequest([4])])]


def test_logout_closes_the_transport_for_good() -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([1])]))
    link.client_events()
    link.server.push_logout(0.0)
    assert any(isinstance(e, LogoutEvent) for e in link.client_events())
    # The transport is closed, so a stack around it closes the WebSocket with 1000.
    assert link.client.state is ClientState.CLOSED
    assert not link.client.resumable
    with pytest.raises(LocalProtocolError):
        link.client.reconnect()
    with pytest.raises(LocalProtocolError):
        link.client.transport.reconnect()
    link.client.receive_eof(0.0)
    assert link.client.data_to_send() == []


def test_closed_is_resumable_before_logout() -> None:
    link = opened()
    link.client.receive_eof(1.0)
    assert link.client.events() == [Closed(resumable=True)]
    assert link.client.resumable


def test_close_and_inactivity_timeout_end_the_session() -> None:
    link = opened()
    url = link.client.close(2.0)
    assert url is not None
    assert "X-Atmosphere-Transport=close" in url
    assert not link.client.resumable
    with pytest.raises(LocalProtocolError):
        link.client.send(Subscribe([StateRequest([1])]))
    other = opened()
    deadline = other.client.next_deadline()
    assert deadline == 30.0  # heartbeat first
    other.client.handle_timer(300.0)
    assert [type(e) for e in other.client.events()] == [InactivityTimeout]
    assert not other.client.resumable


def test_transport_events_and_heartbeats_pass_through() -> None:
    link = opened()
    link.client.receive("X", 1.0)
    link.client.handle_timer(30.0)
    assert link.client.events() == [Heartbeat()]
    assert link.client.data_to_send() == ["X"]
    link.server.receive("X", 30.0)
    assert link.server.events() == [Heartbeat()]


def test_anything_unrecognised_reaches_the_client_raw() -> None:
    link = opened()
    link.server.send({"type": "event", "event": "geofence", "data": 1})
    link.server.send("no json here")
    events = link.client_events()
    assert events[0] == UnknownMessage(
        '{"type":"event","event":"geofence","data":1}',
        {"type": "event", "event": "geofence", "data": 1},
    )
    assert isinstance(events[1], InvalidMessage)


def test_hash_is_checked() -> None:
    with pytest.raises(ValueError, match="32-character"):
        ITrackClient("http://h/event/subscription", "short")


def test_default_url_matches_the_itrack_example() -> None:
    client = ITrackClient("http://domain.com/event/subscription", ALICE)
    assert client.url_to_open == (
        "ws://domain.com/event/subscription?X-Atmosphere-tracking-id=0"
        "&X-Atmosphere-Framework=2.3.6-javascript&X-Atmosphere-Transport=websocket"
        "&Content-Type=application/json&X-atmo-protocol=true"
    )


def test_custom_json_decoder_hook() -> None:
    calls: list[str] = []

    def loads(text: str) -> Any:
        calls.append(text)
        return json.loads(text)

    client = ITrackClient("http://h/event/subscription", ALICE, loads=loads)
    client.connection_made(0.0)
    client.receive(f"{UUID}|0|X|", 0.0)
    client.receive('{"type": "push"}', 0.0)
    assert calls == ['{"type": "push"}']


# -- server → client round trip ------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
source_states = st.builds(
    lambda sid, extra, gps: SourceState({"source_id": sid, **extra, **gps}),
    st.integers(),
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k != "source_id"), json_values, max_size=4
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "gps": st.fixed_dictionaries(
                {},
                optional={
                    "speed": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
                    "location": st.fixed_dictionaries(
                        {"lat": st.floats(-90, 90), "lng": st.floats(-180, 180)}
                    ),
                },
            ),
            "connection_status": st.text(),
        },
    ),
)


@settings(max_examples=100)
@given(st.lists(source_states, min_size=1, max_size=4), st.none() | st.text(max_size=20))
def test_pushed_states_parse_back_equal(states: list[SourceState], user_time: str | None) -> None:
    link = opened()
    link.client.send(Subscribe([StateRequest([1]), StateBatchRequest(Target.selected([4]), "1s")]))
    link.client_events()
    for s in states:
        link.server.push_state(1, s, 0.0, user_time=user_time)
        link.server.push_state(4, s, 0.0)
    link.server.handle_timer(1.0)
    events = link.client_events()
    assert events == [StateEvent(s, user_time) for s in states] + [StateBatchEvent([states[-1]])]


@settings(max_examples=50)
@given(st.text(), json_values)
def test_lifecycle_and_raw_batches_parse_back_equal(what: str, item: Any) -> None:
    link = opened()
    link.client.send(
        Subscribe([ReadingsBatchRequest(Target.selected([1])), IotMonitorRequest(Target.all())])
    )
    link.client_events()
    link.server.push_lifecycle(1, what, 0.0)
    link.server.push_readings(1, [item], 0.0)
    link.server.push_iot(1, [item], 0.0)
    link.server.handle_timer(1.0)
    assert link.client_events() == [
        LifecycleEvent(101, what),
        ReadingsBatchEvent([item]),
        IotMonitorEvent([item]),
    ]


def test_cores_implement_the_core_interface() -> None:
    link = Link(directory())
    assert isinstance(link.client, Core)
    assert isinstance(link.server, Core)


def test_subscription_memory_merges_targets_and_cancels() -> None:
    memory = Subscriptions()
    memory.apply(Subscribe([StateBatchRequest(Target.selected([1]), "5s")]))
    memory.apply(Subscribe([StateBatchRequest(Target.selected([2, 1]), "9s")]))
    assert memory.actions() == [Subscribe([StateBatchRequest(Target.selected([1, 2]), "9s")])]
    memory.apply(Subscribe([StateBatchRequest(Target.all(), "9s")]))
    memory.apply(Unsubscribe([StateBatchRequest(Target.selected([1]))]))
    assert memory.actions() == [Subscribe([StateBatchRequest(Target.all(), "9s")])]
    memory.apply(Unsubscribe([StateBatchRequest(Target.all())]))
    memory.apply(LegacySubscribe(["state"], [1, 2]))
    memory.apply(LegacyUnsubscribe(["state"], [1]))
    assert memory.actions() == [LegacySubscribe(["state"], [2])]
    memory.apply(LegacyUnsubscribe(["state"], [2]))
    assert not memory
    assert memory.actions() == []


def test_rate_limit_is_capped_and_batches_are_bounded() -> None:
    from trackwire.itrack._server import MAX_BATCH_ITEMS, parse_rate_limit

    assert parse_rate_limit("1h") == 3600.0
    with pytest.raises(ValueError, match="over 3600"):
        parse_rate_limit("999999999999h")
    link = opened()
    link.client.send(Subscribe([IotMonitorRequest(Target.selected([1]), "1h")]))
    link.client_events()
    for _ in range(3):
        link.server.push_iot(1, [{"v": i} for i in range(MAX_BATCH_ITEMS)], 1.0)
    link.server.handle_timer(3602.0)
    link.pump()
    (batch,) = [e for e in link.client.events() if isinstance(e, IotMonitorEvent)]
    assert len(batch.data) == MAX_BATCH_ITEMS
