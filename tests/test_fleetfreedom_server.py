"""The FleetFreedom server core and hub, and the server → client round trip."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import LocalProtocolError, RemoteProtocolError
from trackwire.fleetfreedom import (
    SERVER_TRANSITIONS,
    Account,
    Broadcast,
    ClientState,
    Closed,
    Command,
    CommandReceived,
    ConnectionResponse,
    Deleted,
    ErrorCode,
    FleetFreedomClient,
    FleetFreedomEvent,
    FleetFreedomHub,
    FleetFreedomServer,
    InvalidMessage,
    LoggedIn,
    LoggedOut,
    Merged,
    MessageEvent,
    ObjectCache,
    Response,
    ServerInput,
    ServerState,
    SessionEnded,
    SubscribeResponse,
    Suspended,
    UnknownMessage,
    decode,
    encode,
    ghost_id_from_request,
)

SS = ServerState

ACCOUNTS = {
    ("a@x", "pw"): Account(
        "a@x", 42, session_policy={"applications": ["fleet"], "expireTimeout": 10}
    ),
    ("b@x", "pw"): Account("b@x", 7),
}


def make_hub(**kwargs: Any) -> FleetFreedomHub:
    counter = itertools.count(1)
    return FleetFreedomHub(
        lambda user, password: ACCOUNTS.get((user, password)),
        ghost_ids=lambda: f"ghost-{next(counter)}",
        **kwargs,
    )


def replies(server: FleetFreedomServer) -> list[tuple[str, dict[str, Any]]]:
    return [decode(frame) for frame in server.data_to_send()]


def logged_in(hub: FleetFreedomHub, user: str = "a@x", agent: str = "fleet") -> FleetFreedomServer:
    server = hub.connect()
    server.connection_made(0.0)
    server.receive(encode("login", {"username": user, "password": "pw", "userAgent": agent}), 0.0)
    server.data_to_send()
    server.events()
    assert server.state is SS.LOGGED_IN
    return server


# -- connecting and logging in -----------------------------------------------------------


def test_connection_response_8_without_a_session() -> None:
    server = make_hub(wall_offset=1523549580.0).connect()
    server.connection_made(0.0)
    ((name, body),) = replies(server)
    assert name == "connectionResponse"
    assert body["errorCode"] == 8
    assert body["serverTime"] == "2018-04-12T16:13:00.000Z"
    assert set(body) == {"errorCode", "message", "serverTime", "ghostId", "expiry"}
    assert server.state is SS.ANONYMOUS


def test_connection_response_0_with_a_live_ghost_id_and_7_with_an_expired_one() -> None:
    hub = make_hub()
    first = logged_in(hub)
    ghost = first.ghost_id
    assert ghost == "ghost-2"  # ghost-1 went to the anonymous connectionResponse
    again = hub.connect(ghost)
    again.connection_made(300.0)
    ((_, body),) = replies(again)
    assert body["errorCode"] == 0
    assert body["user"] == {"login": "a@x", "company": 42}
    assert body["sessionPolicy"]["expireTimeout"] == 10
    assert "passwordPolicy" in body
    assert again.state is SS.LOGGED_IN
    assert again.events() == [LoggedIn("a@x", 42, "ghost-2")]
    late = hub.connect(ghost)
    late.connection_made(300.0 + 601.0)  # idle for longer than expireTimeout (10 minutes)
    ((_, body),) = replies(late)
    assert body["errorCode"] == 7
    assert body["ghostId"] != ghost
    assert late.state is SS.ANONYMOUS


@pytest.mark.parametrize(
    ("login", "code"),
    [
        ({"username": "a@x", "password": "nope", "userAgent": "fleet"}, 11),
        ({"username": "zz", "password": "pw", "userAgent": "fleet"}, 11),
        ({"username": "a@x", "password": "pw", "userAgent": "other"}, 12),
        ({"username": "a@x", "password": "pw"}, 12),
        ({"username": 3, "password": "pw"}, 3),
    ],
)
def test_login_refusals(login: dict[str, Any], code: int) -> None:
    server = make_hub().connect()
    server.connection_made(0.0)
    server.data_to_send()
    server.receive(encode("login", dict(login, reqId=5)), 1.0)
    ((name, body),) = replies(server)
    assert (name, body["reqId"], body["errorCode"]) == ("loginResponse", 5, code)
    assert server.state is SS.ANONYMOUS


def test_login_success_gives_a_new_ghost_id_and_the_session() -> None:
    server = make_hub().connect()
    server.connection_made(0.0)
    server.data_to_send()
    server.receive('login {"username":"b@x","password":"pw","userAgent":"anything","reqId":1}', 1.0)
    ((name, body),) = replies(server)
    assert name == "loginResponse"
    assert body["reqId"] == 1
    assert body["errorCode"] == 0
    assert body["ghostId"] == "ghost-2"
    assert body["user"]["login"] == "b@x"
    assert server.events()[-1] == LoggedIn("b@x", 7, "ghost-2")


@pytest.mark.parametrize(
    "command",
    ["getSessionDetails", "logout", "subscribe", "getSubscriptionsList", "getAsset"],
)
def test_commands_before_login_answer_8(command: str) -> None:
    server = make_hub().connect()
    server.connection_made(0.0)
    server.data_to_send()
    server.receive(encode(command, {"reqId": "r-1"}), 1.0)
    ((name, body),) = replies(server)
    assert (name, body["reqId"], body["errorCode"]) == (command + "Response", "r-1", 8)


def test_noop_works_before_login_and_echoes_req_id() -> None:
    server = make_hub().connect()
    server.connection_made(0.0)
    server.data_to_send()
    server.receive('noop {"reqId":17}', 1.0)
    server.receive("noop", 1.0)
    assert replies(server) == [
        ("noopResponse", {"reqId": 17, "errorCode": 0, "message": "OK"}),
        ("noopResponse", {"errorCode": 0, "message": "OK"}),
    ]


def test_unknown_commands_and_bad_json_are_answered_and_serving_goes_on() -> None:
    server = logged_in(make_hub())
    server.receive('frobnicate {"reqId":3}', 1.0)
    server.receive('getCompany {"reqId":', 1.0)
    server.receive("getCompany [1]", 1.0)
    server.receive("Not-a-name {}", 1.0)
    server.receive('noop {"reqId":4}', 1.0)
    out = replies(server)
    assert [(name, body.get("reqId"), body["errorCode"]) for name, body in out] == [
        ("unknownCommandResponse", 3, 61),
        ("getCompanyResponse", None, 3),
        ("getCompanyResponse", None, 3),
        ("unknownCommandResponse", None, 61),
        ("noopResponse", 4, 0),
    ]
    events = server.events()
    assert [type(e) for e in events] == [
        CommandReceived,
        InvalidMessage,
        InvalidMessage,
        InvalidMessage,
        CommandReceived,
    ]
    assert server.state is SS.LOGGED_IN


def test_session_commands() -> None:
    hub = make_hub()
    server = logged_in(hub)
    server.receive('getSessionDetails {"reqId":1}', 1.0)
    ((_, details),) = replies(server)
    assert details["ghostId"] == server.ghost_id
    assert details["user"]["company"] == 42
    ghost = server.ghost_id
    server.receive('logout {"reqId":2}', 2.0)
    ((name, body),) = replies(server)
    assert (name, body["errorCode"], body["ghostId"]) == ("logoutResponse", 0, ghost)
    assert server.state is SS.ANONYMOUS
    assert server.events()[-1] == LoggedOut(str(ghost), "logout")
    assert ghost not in hub.sessions


def test_expired_session_answers_7() -> None:
    server = logged_in(make_hub())
    server.receive('getSessionDetails {"reqId":1}', 599.0)  # keeps the session alive
    server.receive('getSessionDetails {"reqId":2}', 599.0 + 600.0)
    assert [body["errorCode"] for _, body in replies(server)] == [0, 7]
    assert server.state is SS.ANONYMOUS


def test_application_handles_extra_commands() -> None:
    server = logged_in(make_hub(extra_commands=["updateOwnPassword"]))
    server.receive('updateOwnPassword {"reqId":9,"current":"a","password":"b"}', 1.0)
    assert server.data_to_send() == []
    (event,) = server.events()
    assert event == CommandReceived(
        "updateOwnPassword", {"reqId": 9, "current": "a", "password": "b"}, 9, False
    )
    server.respond("updateOwnPassword", 9, ErrorCode.SAME_PASSWORD)
    assert replies(server) == [
        ("updateOwnPasswordResponse", {"reqId": 9, "errorCode": 17, "message": "samePassword"})
    ]


def test_ghost_id_from_request() -> None:
    guid = "6f1a4c52-3d1e-4c43-9c5e-0d3b6a2f9e11"
    assert ghost_id_from_request("/" + guid) == guid
    assert ghost_id_from_request(f"/?ghostId={guid}") == guid
    assert ghost_id_from_request("/", ["chat", guid]) == guid
    assert ghost_id_from_request("/", ["chat"]) is None


# -- subscriptions and tenant isolation --------------------------------------------------


def test_subscribe_answers_merged_denied_invalid() -> None:
    server = logged_in(make_hub())
    server.receive(
        encode(
            "subscribe",
            {
                "reqId": 1,
                "company": {"id": 42},
                "subscriptionTypes": ["assetGeneral", "bogus", "assetAdvanced"],
            },
        ),
        1.0,
    )
    ((name, body),) = replies(server)
    assert name == "subscribeResponse"
    assert body["merged"] == ["assetAdvanced", "assetGeneral"]
    assert (body["denied"], body["invalid"]) == ([], ["bogus"])
    server.receive('getSubscriptionsList {"reqId":2}', 1.0)
    ((_, listed),) = replies(server)
    assert listed["subscriptions"] == [
        {"company": 42, "subscriptionTypes": ["assetAdvanced", "assetGeneral"]}
    ]
    server.receive(
        'unsubscribe {"reqId":3,"company":{"id":42},"subscriptionTypes":["assetGeneral"]}', 1.0
    )
    ((_, after),) = replies(server)
    assert after["merged"] == ["assetAdvanced"]
    server.receive('subscribe {"reqId":4,"company":"42","subscriptionTypes":[]}', 1.0)
    assert replies(server)[0][1]["errorCode"] == 3


def test_tenant_isolation() -> None:
    hub = make_hub()
    alice = logged_in(hub, "a@x")  # company 42
    bob = logged_in(hub, "b@x")  # company 7
    bob.receive(
        'subscribe {"reqId":1,"company":{"id":42},"subscriptionTypes":["assetGeneral"]}', 1.0
    )
    ((_, body),) = replies(bob)
    assert (body["merged"], body["denied"]) == ([], ["assetGeneral"])
    alice.receive(
        'subscribe {"reqId":1,"company":{"id":42},"subscriptionTypes":["assetGeneral"]}', 1.0
    )
    alice.data_to_send()
    targets = hub.publish("assetGeneralMerged", 42, {"id": 1, "company": 42, "v": [2]})
    assert targets == [alice]
    assert alice.data_to_send() == ['assetGeneralMerged {"id":1,"company":42,"v":[2]}']
    assert bob.data_to_send() == []
    assert hub.publish("assetGeneralMerged", 7, {"id": 2}) == []
    hub.put("asset", {"id": 1, "company": 42, "kind": "vehicle", "name": "A"})
    bob.receive('getAsset {"reqId":2,"asset":{"id":1}}', 1.0)
    bob.receive('getAssetsList {"reqId":3,"company":{"id":42}}', 1.0)
    # another tenant's asset reads as missing (20), its company's list as not allowed (5)
    assert [body["errorCode"] for _, body in replies(bob)] == [20, 5]


def test_publish_reaches_exactly_the_subscribers_of_type_and_company() -> None:
    hub = make_hub(can_access=lambda account, company: True)
    conns = [logged_in(hub) for _ in range(3)]
    plan = [(42, ["assetAdvanced"]), (42, ["placeGeneral"]), (43, ["assetGeneral"])]
    for conn, (company, types) in zip(conns, plan, strict=True):
        conn.send(("x", {}))  # the server may send anything at any time
        conn.receive(
            encode("subscribe", {"company": {"id": company}, "subscriptionTypes": types}), 0.0
        )
        conn.data_to_send()
    assert hub.publish("assetAdvancedMerged", 42, {}) == [conns[0]]
    assert hub.publish("placeGeneralMerged", 42, {}) == [conns[1]]
    assert hub.publish("assetDeleted", 43, {"id": 1, "company": 43}) == [conns[2]]
    assert hub.publish("assetSuspended", 42, {"id": 1, "company": 42}) == [conns[0]]
    assert hub.broadcast({"kind": "upgrade"}) == conns
    conns[0].receive_eof(1.0)
    assert hub.publish("assetAdvancedMerged", 42, {}) == []
    assert hub.end_session(str(conns[1].ghost_id)) == [conns[1]]
    assert conns[1].data_to_send()[-1] == "sessionEnded {}"
    assert hub.publish("placeGeneralMerged", 42, {}) == []
    with pytest.raises(ValueError, match="publish"):
        hub.publish("broadcast", 42, {})


# -- objects and versions ----------------------------------------------------------------


def test_merge_checks_versions_and_pushes_the_changed_pieces() -> None:
    hub = make_hub()
    hub.put("asset", {"id": 5, "company": 42, "kind": "vehicle", "name": "A", "v": [3, 8, 1]})
    server = logged_in(hub)
    server.receive(
        'subscribe {"company":{"id":42},"subscriptionTypes":["assetGeneral","assetAdvanced"]}',
        0.0,
    )
    server.data_to_send()
    server.receive('mergeAsset {"reqId":1,"asset":{"id":5,"v":[2,8],"name":"B"}}', 1.0)
    ((_, stale),) = replies(server)
    assert stale["errorCode"] == ErrorCode.WRONG_VERSION_KEY
    merge = {"id": 5, "v": [3, 8, 1], "name": "B", "position": {"lat": 1.5}}
    server.receive(encode("mergeAsset", {"reqId": 2, "asset": merge}), 1.0)
    out = replies(server)
    assert out[0] == (
        "mergeAssetResponse",
        {"reqId": 2, "errorCode": 0, "message": "OK", "asset": {"id": 5, "company": 42}},
    )
    assert out[1] == (
        "assetGeneralMerged",
        {"id": 5, "company": 42, "kind": "vehicle", "name": "B", "v": [4]},
    )
    assert out[2] == (
        "assetAdvancedMerged",
        {"id": 5, "company": 42, "v": [9], "position": {"lat": 1.5}},
    )
    assert hub.get("asset", 5) == {
        "id": 5,
        "company": 42,
        "kind": "vehicle",
        "name": "B",
        "v": [4, 9, 1],
        "position": {"lat": 1.5},
    }


def test_object_commands() -> None:
    hub = make_hub()
    server = logged_in(hub)
    server.receive('mergeAsset {"reqId":1,"asset":{"company":42,"name":"new"}}', 1.0)
    server.receive('mergeAsset {"reqId":2,"asset":{"company":7,"kind":"person"}}', 1.0)
    server.receive('mergeAsset {"reqId":3,"asset":{"company":42,"kind":"person"}}', 1.0)
    server.receive('getAsset {"reqId":4,"asset":{"id":99}}', 1.0)
    server.receive('mergeAsset {"reqId":5,"asset":{"id":99,"v":[1]}}', 1.0)
    server.receive('getAsset {"reqId":6,"asset":{}}', 1.0)
    server.receive('mergeUser {"reqId":7,"user":{"login":"c@x","company":42}}', 1.0)
    server.receive('mergeUser {"reqId":8,"user":{"login":"c@x","company":42}}', 1.0)
    server.receive('getUser {"reqId":9,"user":{"login":"c@x"}}', 1.0)
    server.receive('getUsersList {"reqId":10,"company":{"id":42}}', 1.0)
    server.receive('removeUser {"reqId":11,"user":{"login":"c@x"}}', 1.0)
    server.receive('getContactsList {"reqId":12,"company":{"id":42}}', 1.0)
    server.receive('getCompany {"reqId":13,"company":{"id":42}}', 1.0)
    out = {body.get("reqId"): (name, body) for name, body in replies(server)}
    assert {r: out[r][1]["errorCode"] for r in out} == {
        1: 3,
        2: 5,
        3: 0,
        4: 20,
        5: 20,
        6: 3,
        7: 0,
        8: 72,
        9: 0,
        10: 0,
        11: 0,
        12: 0,
        13: 28,
    }
    assert out[3][1]["asset"] == {"id": 1, "company": 42}
    assert out[9][1]["user"]["login"] == "c@x"
    assert [u["login"] for u in out[10][1]["users"]] == ["c@x"]
    assert out[11][1]["user"] == {"login": "c@x", "company": 42}
    assert out[12][1]["contacts"] == []
    assert hub.get("user", "c@x") is None


# -- round trip: what the server emits, the client reads back ----------------------------

names = st.from_regex(r"[a-z][A-Za-z0-9]{0,24}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
bodies = st.dictionaries(st.text(), json_values, max_size=5)


def reread(event: FleetFreedomEvent) -> tuple[str, dict[str, Any]]:
    assert isinstance(event, MessageEvent)
    return event.name, event.body


@settings(max_examples=200)
@given(st.lists(st.tuples(names, bodies), min_size=1, max_size=5))
def test_round_trip_server_to_client(messages: list[tuple[str, dict[str, Any]]]) -> None:
    hub = make_hub()
    server = logged_in(hub)
    client = FleetFreedomClient()
    client.connection_made(0.0)
    client.receive('connectionResponse {"errorCode":0}', 0.0)
    client.events()
    for message in messages:
        server.send(message)
    for frame in server.data_to_send():
        if client.state in (ClientState.CLOSED, ClientState.CLOSING):
            break
        client.receive(frame, 1.0)
    events = client.events()
    got = [reread(e) for e in events if isinstance(e, MessageEvent)]
    assert got == messages[: len(got)]
    assert all(isinstance(e, MessageEvent) for e in events[: len(got)])


def test_round_trip_of_a_whole_session() -> None:
    hub = make_hub()
    hub.put("asset", {"id": 1, "company": 42, "kind": "vehicle", "name": "Zoë 🚚", "v": [1, 1]})
    server = hub.connect()
    client = FleetFreedomClient()
    cache = ObjectCache()

    def pump() -> list[FleetFreedomEvent]:
        seen: list[FleetFreedomEvent] = []
        for _ in range(5):
            for frame in client.data_to_send():
                server.receive(frame, 1.0)
            for frame in server.data_to_send():
                client.receive(frame, 1.0)
            events = client.events()
            for event in events:
                cache.apply(event)
            seen += events
        return seen

    client.connection_made(0.0)
    server.connection_made(0.0)
    client.send(Command.login("a@x", "pw", "fleet"))
    client.send(Command.subscribe(42, ["assetGeneral", "assetAdvanced", "nope"]))
    list_id = client.send(Command.get_list("asset", 42))
    cache.track(list_id)
    events = pump()
    assert isinstance(events[0], ConnectionResponse)
    assert client.state is ClientState.LOGGED_IN
    sub = next(e for e in events if isinstance(e, SubscribeResponse))
    assert (sub.merged, sub.invalid) == (["assetAdvanced", "assetGeneral"], ["nope"])
    assert cache.get("asset", 1) == {
        "id": 1,
        "company": 42,
        "kind": "vehicle",
        "name": "Zoë 🚚",
        "v": [1, 1, 0],
    }
    client.send(Command.merge("asset", {"id": 1, "v": [1, 1], "position": {"lat": 2}}))
    events = pump()
    assert [type(e) for e in events] == [Response, Merged]
    assert cache.get("asset", 1)["position"] == {"lat": 2}  # type: ignore[index]
    assert cache.get("asset", 1)["v"] == [1, 2, 0]  # type: ignore[index]
    client.send(Command.remove("asset", 1))
    events = pump()
    assert [type(e) for e in events] == [Response, Deleted]
    assert cache.get("asset", 1) is None
    hub.broadcast({"kind": "maintenance", "message": "bye"})
    hub.publish("assetSuspended", 42, {"id": 3, "company": 42})
    server.send(("alert", {"x": 1}))
    hub.end_session(str(server.ghost_id))
    events = pump()
    assert [type(e) for e in events[:5]] == [
        Broadcast,
        Suspended,
        UnknownMessage,
        SessionEnded,
        type(events[4]),
    ]
    assert client.state is ClientState.CLOSING
    server.receive_eof(2.0)
    client.receive_eof(2.0)
    assert client.events()[-1] == Closed(resumable=False)


# -- any input, and the transition table -------------------------------------------------


@settings(max_examples=200)
@given(
    st.lists(
        st.text(max_size=40)
        | st.builds(
            lambda n, b: n + " " + b,
            st.sampled_from(
                [
                    "login",
                    "logout",
                    "subscribe",
                    "unsubscribe",
                    "getAsset",
                    "mergeAsset",
                    "removeAsset",
                    "getAssetsList",
                    "getSubscriptionsList",
                    "getSessionDetails",
                    "mergeUser",
                    "noop",
                ]
            ),
            st.sampled_from(
                [
                    '{"username":"a@x","password":"pw","userAgent":"fleet"}',
                    '{"company":{"id":42},"subscriptionTypes":["assetGeneral",3]}',
                    '{"company":{"id":[]},"subscriptionTypes":"x"}',
                    '{"asset":{"id":[1]}}',
                    '{"asset":{"id":1,"v":["a"]}}',
                    '{"asset":{"id":1,"v":[9,9,9],"name":{}}}',
                    '{"asset":{"company":42,"kind":"x"}}',
                    '{"user":{"login":{}}}',
                    '{"company":{}}',
                    "{}",
                    "[]",
                ]
            )
            | st.text(max_size=20),
        ),
        max_size=8,
    )
)
def test_any_text_fed_to_the_server_gives_replies_or_the_documented_error(
    frames: list[str],
) -> None:
    hub = make_hub(max_line=200)
    hub.put("asset", {"id": 1, "company": 42, "kind": "vehicle"})
    server = hub.connect()
    server.connection_made(0.0)
    for frame in frames:
        if server.state is SS.ERROR:
            break
        try:
            server.receive(frame, 1.0)
        except RemoteProtocolError:
            assert len(frame.encode("utf-8", "surrogatepass")) > 200
            assert server.state is SS.ERROR
    assert server.data_to_send()


SI = ServerInput


def server_in(state: ServerState) -> tuple[FleetFreedomHub, FleetFreedomServer]:
    hub = make_hub(max_line=100)
    server = hub.connect()
    if state is SS.CONNECTING:
        return hub, server
    server.connection_made(0.0)
    if state is SS.LOGGED_IN:
        server.receive('login {"username":"b@x","password":"pw"}', 0.0)
    elif state is SS.CLOSED:
        server.receive_eof(0.0)
    elif state is SS.ERROR:
        with pytest.raises(RemoteProtocolError):
            server.receive("noop " + "x" * 200, 0.0)
    assert server.state is state
    return hub, server


def resume(hub: FleetFreedomHub, server: FleetFreedomServer) -> None:
    other = logged_in(hub, "b@x")
    server.given_ghost_id = other.ghost_id
    server.connection_made(1.0)


SERVER_INPUTS = {
    SI.CONNECTION_MADE: lambda hub, s: s.connection_made(1.0),
    SI.CONNECTION_RESUMED: resume,
    SI.LOGIN: lambda hub, s: s.receive('login {"username":"b@x","password":"pw"}', 1.0),
    SI.SESSION_OVER: lambda hub, s: s.receive("logout {}", 1.0),
    SI.RECEIVE: lambda hub, s: s.receive("noop {}", 1.0),
    SI.SEND: lambda hub, s: s.send(("broadcast", {}), 1.0),
    SI.CLOSE: lambda hub, s: s.close(),
    SI.EOF: lambda hub, s: s.receive_eof(1.0),
    SI.CORRUPTION: lambda hub, s: s.receive("noop " + "x" * 200, 1.0),
}


@pytest.mark.parametrize("state", list(ServerState))
@pytest.mark.parametrize("inp", list(ServerInput))
def test_every_server_state_input_pair(state: ServerState, inp: ServerInput) -> None:
    hub, server = server_in(state)
    expected = SERVER_TRANSITIONS.get((state, inp))
    if expected is None and state is SS.ANONYMOUS and inp is SI.SESSION_OVER:
        # A peer's frame is never refused while serving: a logout before login is
        # answered with errorCode 8 and changes nothing.
        SERVER_INPUTS[inp](hub, server)
        assert server.state is state
        assert replies(server)[-1][1]["errorCode"] == 8
    elif expected is None:
        with pytest.raises(LocalProtocolError):
            SERVER_INPUTS[inp](hub, server)
        assert server.state is state
    elif inp is SI.CORRUPTION:
        with pytest.raises(RemoteProtocolError):
            SERVER_INPUTS[inp](hub, server)
        assert server.state is expected
    else:
        SERVER_INPUTS[inp](hub, server)
        assert server.state is expected


def test_closed_connections_leave_the_hub() -> None:
    hub = make_hub()
    server = logged_in(hub)
    server.receive('subscribe {"company":{"id":42},"subscriptionTypes":["assetGeneral"]}', 0.0)
    server.close()
    assert hub.publish("assetGeneralMerged", 42, {}) == []
    assert server not in hub.connections
    assert hub.prune(10_000.0) == [server.ghost_id]
    other = hub.connect()
    other.connection_made(0.0)
    other.receive_eof(1.0)
    assert other.events() == [Closed(resumable=False)]


def test_object_command_refusals() -> None:
    hub = make_hub()
    hub.put("asset", {"id": 1, "company": 7, "kind": "vehicle"})
    hub.put("asset", {"id": 2, "company": 42, "kind": "vehicle"})
    hub.put("company", {"id": 42, "parent": 1, "name": "Mine"})
    hub.put("company", {"id": 50, "parent": 42, "name": "Child"})
    server = logged_in(hub)
    server.receive('subscribe {"company":{"id":42},"subscriptionTypes":["companyGeneral"]}', 0.0)
    server.data_to_send()
    frames = [
        'mergeAsset {"reqId":1,"asset":{"id":1,"v":[1,1,1],"name":"x"}}',
        'mergeAsset {"reqId":2,"asset":{"id":2,"v":"1"}}',
        'mergeAsset {"reqId":3,"asset":[1]}',
        'getAssetsList {"reqId":4,"company":42}',
        'mergeUser {"reqId":5,"user":{"login":7,"company":42}}',
        'getCompany {"reqId":6,"company":{"id":42}}',
        'removeAsset {"reqId":7,"asset":{"id":1}}',
        'removeCompany {"reqId":8,"company":{"id":50}}',
    ]
    for frame in frames:
        server.receive(frame, 1.0)
    out = replies(server)
    # another tenant's asset (id 1) is missing to this user (20), whatever the command
    assert [(body.get("reqId"), body["errorCode"]) for _, body in out[:8]] == [
        (1, 20),
        (2, 3),
        (3, 3),
        (4, 3),
        (5, 3),
        (6, 0),
        (7, 20),
        (8, 0),
    ]
    assert out[7][1]["company"] == {"id": 50, "parent": 42}
    assert out[8] == ("companyDeleted", {"id": 50, "parent": 42})


def test_extra_commands_before_login_answer_8() -> None:
    server = make_hub(extra_commands=["updateOwnPassword"]).connect()
    server.connection_made(0.0)
    server.data_to_send()
    server.receive('updateOwnPassword {"reqId":1}', 1.0)
    assert replies(server)[0][1]["errorCode"] == 8
    assert server.events()[-1] == CommandReceived("updateOwnPassword", {"reqId": 1}, 1, True)


def test_server_output_misuse_and_introspection() -> None:
    hub = make_hub()
    server = logged_in(hub)
    assert server.next_deadline() is None
    server.handle_timer(5.0)
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        server.send(("Bad", {}))
    server.receive('subscribe {"company":{"id":42},"subscriptionTypes":["icon"]}', 0.0)
    assert server.subscriptions == {42: frozenset({"icon"})}
    assert hub.subscribers("icon", 42) == [server]
    server.receive('unsubscribe {"company":{"id":42},"subscriptionTypes":["icon"]}', 0.0)
    assert server.subscriptions == {}
    assert hub.subscribers("icon", 42) == []
    assert hub.publish("contactDeleted", 42, {}) == []
    server.close()
    with pytest.raises(LocalProtocolError):
        server.send(("x", {}))
    with pytest.raises(LocalProtocolError):
        server.respond("x", 1)


def test_a_short_version_from_the_application_is_padded_to_every_slot() -> None:
    hub = FleetFreedomHub(lambda u, p: None)
    stored = hub.put("asset", {"id": 5, "company": 1, "kind": "vehicle", "v": [3]})
    assert stored["v"] == [3, 0, 0]
