"""The FleetFreedom client core: holding, correlation, timeouts, keep-alive, sessions, pushes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import ClientCore, LocalProtocolError, RemoteProtocolError
from trackwire.fleetfreedom import (
    CLIENT_TRANSITIONS,
    Broadcast,
    ClientInput,
    ClientState,
    Closed,
    CloseRequested,
    Command,
    CommandFailed,
    ConnectionResponse,
    Deleted,
    ErrorCode,
    FailureReason,
    FleetFreedomClient,
    InvalidMessage,
    Merged,
    Response,
    SessionEnded,
    SessionResponse,
    SubscribeResponse,
    SubscriptionRefused,
    Suspended,
    UnknownCommandResponse,
    UnknownMessage,
    decode,
    encode,
)

S = ClientState
LOGGED_IN_BODY = {
    "errorCode": 0,
    "message": "OK",
    "serverTime": "2018-04-12T16:13:00.000Z",
    "ghostId": "g-1",
    "expiry": "2018-04-12T17:13:00.000Z",
    "user": {"login": "a@x", "company": 42},
    "sessionPolicy": {"expireTimeout": 60},
    "passwordPolicy": {"minimumLength": 8},
}


def connection_response(code: int, **extra: Any) -> str:
    body: dict[str, Any] = {"errorCode": code, "message": "m", "ghostId": "g-1", "expiry": "e"}
    body.update(extra)
    return encode("connectionResponse", body)


def open_client(code: int = 0, **kwargs: Any) -> FleetFreedomClient:
    client = FleetFreedomClient(**kwargs)
    client.connection_made(0.0)
    if code == 0:
        client.receive(encode("connectionResponse", LOGGED_IN_BODY), 0.0)
    else:
        client.receive(connection_response(code), 0.0)
    client.events()
    return client


def sent(client: FleetFreedomClient) -> list[tuple[str, dict[str, Any]]]:
    return [decode(frame) for frame in client.data_to_send()]


# -- ordering ----------------------------------------------------------------------------


def test_commands_are_held_until_connection_response_then_flushed_in_order() -> None:
    client = FleetFreedomClient()
    first = client.send(Command.login("a@x", "pw", "app"), 0.0)
    client.connection_made(0.0)
    second = client.send(Command.get("company", 42), 1.0)
    assert not client.ready
    assert client.data_to_send() == []
    client.receive(connection_response(8), 2.0)
    assert client.ready
    assert sent(client) == [
        ("login", {"username": "a@x", "password": "pw", "userAgent": "app", "reqId": first}),
        ("getCompany", {"company": {"id": 42}, "reqId": second}),
    ]


commands = st.sampled_from(
    [
        Command.noop(),
        Command.get_session_details(),
        Command.get("asset", 1),
        Command.subscribe(42, ["assetGeneral"]),
        Command.get_list("place", 42),
        Command("customThing", {"x": [1, "ü"]}),
    ]
)
early_frames = st.sampled_from(
    ['broadcast {"kind":"maintenance"}', "assetDeleted {}", "x {", "noopResponse {}"]
)


@settings(max_examples=100)
@given(st.lists(st.one_of(commands, early_frames), max_size=12), st.sampled_from([0, 7, 8, 16]))
def test_nothing_reaches_the_wire_before_connection_response(
    steps: list[Command | str], code: int
) -> None:
    client = FleetFreedomClient()
    client.connection_made(0.0)
    names = []
    for step in steps:
        if isinstance(step, Command):
            client.send(step, 0.0)
            names.append(step.name)
        else:
            client.receive(step, 0.0)
        assert client.data_to_send() == []
    client.receive(connection_response(code), 1.0)
    assert [name for name, _ in sent(client)] == names


# -- correlation -------------------------------------------------------------------------


def test_response_resolves_its_command() -> None:
    client = open_client()
    req = client.send(Command.get("company", 42), 1.0)
    client.receive(
        encode(
            "getCompanyResponse",
            {"reqId": req, "errorCode": 0, "message": "ok", "company": {"id": 42}},
        ),
        2.0,
    )
    (event,) = client.events()
    assert isinstance(event, Response)
    assert event.req_id == req
    assert event.ok
    assert event.request == Command.get("company", 42)
    assert event.payload == {"company": {"id": 42}}
    assert event.message == "ok"
    assert client.pending == {}


def test_error_details_and_unknown_codes_are_carried() -> None:
    client = open_client()
    req = client.send(Command("getThing"), 1.0)
    body = {"reqId": req, "errorCode": 500, "message": "?", "errorDetails": {"kind": "x"}}
    client.receive(encode("getThingResponse", body), 2.0)
    (event,) = client.events()
    assert isinstance(event, Response)
    assert event.error_code == 500
    assert not event.ok
    assert event.error_details == {"kind": "x"}
    assert event.request is not None


def test_response_with_other_name_or_unknown_req_id_does_not_resolve() -> None:
    client = open_client()
    req = client.send(Command.noop(), 1.0)
    client.receive(encode("getCompanyResponse", {"reqId": req, "errorCode": 0}), 2.0)
    client.receive(encode("noopResponse", {"reqId": 999, "errorCode": 0}), 2.0)
    client.receive(encode("noopResponse", {"errorCode": 0}), 2.0)
    events = client.events()
    assert [type(e) for e in events] == [Response, Response, Response]
    assert all(isinstance(e, Response) and e.request is None for e in events)
    assert list(client.pending) == [req]


def test_unknown_command_response_resolves_by_req_id() -> None:
    client = open_client()
    req = client.send(Command("frobnicate"), 1.0)
    client.receive(encode("unknownCommandResponse", {"reqId": req, "errorCode": 61}), 2.0)
    (event,) = client.events()
    assert isinstance(event, UnknownCommandResponse)
    assert event.error_code is ErrorCode.UNKNOWN_COMMAND
    assert event.request == Command("frobnicate")


def test_subscribe_response_is_typed() -> None:
    client = open_client()
    req = client.send(Command.subscribe(42, ["assetGeneral", "bogus"]), 1.0)
    body = {
        "reqId": req,
        "errorCode": 0,
        "company": {"id": 42},
        "merged": ["assetGeneral"],
        "denied": [],
        "invalid": ["bogus"],
    }
    client.receive(encode("subscribeResponse", body), 2.0)
    event, refused = client.events()
    assert isinstance(event, SubscribeResponse)
    assert (event.company, event.merged, event.denied, event.invalid) == (
        42,
        ["assetGeneral"],
        [],
        ["bogus"],
    )
    assert refused == SubscriptionRefused(42, ["bogus"], "invalid", 0, req)
    assert client.subscriptions == {42: frozenset({"assetGeneral"})}


def test_req_ids_are_unique_and_increasing() -> None:
    client = open_client()
    ids = [client.send(Command.noop(), 0.0) for _ in range(5)]
    assert ids == sorted(set(ids))
    assert [body["reqId"] for _, body in sent(client)] == ids


# -- typed commands ----------------------------------------------------------------------


def test_typed_commands() -> None:
    assert Command.get("user", "bob@x") == Command("getUser", {"user": {"login": "bob@x"}})
    assert Command.remove("asset", 9) == Command("removeAsset", {"asset": {"id": 9}})
    assert Command.get_list("company", 1) == Command("getCompaniesList", {"company": {"id": 1}})
    assert Command.unsubscribe(1, ["icon"]).body == {
        "company": {"id": 1},
        "subscriptionTypes": ["icon"],
    }
    assert Command.get_subscriptions_list().name == "getSubscriptionsList"
    assert Command.logout().response_name == "logoutResponse"
    assert Command.merge("asset", {"id": 1, "v": [3, 4], "name": "n"}).body == {
        "asset": {"id": 1, "v": [3, 4], "name": "n"}
    }
    assert Command.merge("asset", {"company": 1, "kind": "vehicle"}).name == "mergeAsset"
    assert Command.merge("user", {"login": "new@x"}).name == "mergeUser"


@pytest.mark.parametrize(
    ("object_type", "obj"),
    [
        ("asset", {"id": 1, "name": "n"}),
        ("asset", {"id": 1, "v": []}),
        ("place", {"id": 1, "v": "3"}),
        ("user", {"login": "a@x", "v": None}),
        ("user", {"nickname": "no login"}),
        ("asset", {"name": "no company nor kind"}),
    ],
)
def test_merge_refuses_locally(object_type: str, obj: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        Command.merge(object_type, obj)


def test_send_refuses_what_cannot_be_sent() -> None:
    client = open_client(8, max_line=100, max_pending=2)
    with pytest.raises(LocalProtocolError, match="takes a Command"):
        client.send("noop {}")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        client.send(Command("Bad"))
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        client.send(Command("x", {"f": float("inf")}))
    with pytest.raises(LocalProtocolError, match="over 100 bytes"):
        client.send(Command("x", {"f": "y" * 100}))
    client.send(Command.noop())
    client.send(Command.noop())
    with pytest.raises(LocalProtocolError, match="pending"):
        client.send(Command.noop())
    assert len(client.pending) == 2


# -- time --------------------------------------------------------------------------------


def test_command_times_out_after_120_seconds() -> None:
    client = open_client(keepalive=0)
    req = client.send(Command.get("asset", 1), 10.0)
    assert client.next_deadline() == 130.0
    client.handle_timer(129.9)
    assert client.events() == []
    client.handle_timer(130.0)
    assert client.events() == [CommandFailed(req, Command.get("asset", 1), FailureReason.TIMEOUT)]
    assert client.next_deadline() is None
    # A late answer is still delivered, unmatched.
    client.receive(encode("getAssetResponse", {"reqId": req, "errorCode": 0}), 131.0)
    (late,) = client.events()
    assert isinstance(late, Response)
    assert late.request is None


def test_per_command_timeout_and_deadline_order() -> None:
    client = open_client(keepalive=0, command_timeout=50)
    slow = client.send(Command("a"), 0.0)
    fast = client.send(Command("b", timeout=5), 0.0)
    never = client.send(Command("c", timeout=0), 0.0)
    assert client.next_deadline() == 5.0
    client.receive(encode("bResponse", {"reqId": fast, "errorCode": 0}), 1.0)
    client.events()
    assert client.next_deadline() == 50.0
    client.handle_timer(1000.0)
    assert [(e.req_id, e.reason) for e in client.events() if isinstance(e, CommandFailed)] == [
        (slow, FailureReason.TIMEOUT)
    ]
    assert list(client.pending) == [never]


def test_keepalive_noop_after_silence() -> None:
    client = FleetFreedomClient(command_timeout=0)
    client.connection_made(0.0)
    assert client.next_deadline() is None  # not before connectionResponse
    client.receive(connection_response(8), 0.0)
    assert client.next_deadline() == 300.0
    client.send(Command.get_session_details(), 100.0)
    client.data_to_send()
    assert client.next_deadline() == 400.0
    client.handle_timer(399.0)
    assert client.data_to_send() == []
    client.handle_timer(400.0)
    ((name, body),) = sent(client)
    assert name == "noop"
    assert client.next_deadline() == 700.0
    assert client.pending[body["reqId"]] == Command.noop()


def test_pending_and_held_commands_fail_when_the_connection_closes() -> None:
    client = FleetFreedomClient()
    client.connection_made(0.0)
    held = client.send(Command.noop(), 0.0)
    client.receive_eof(1.0)
    assert client.events() == [
        CommandFailed(held, Command.noop(), FailureReason.CLOSED),
        Closed(resumable=False),
    ]
    client = open_client()
    req = client.send(Command.noop(), 0.0)
    client.receive_eof(1.0)
    assert client.events() == [
        CommandFailed(req, Command.noop(), FailureReason.CLOSED),
        Closed(resumable=True),
    ]
    assert client.state is S.CLOSED
    assert client.next_deadline() is None


# -- session -----------------------------------------------------------------------------


def test_session_memory_from_connection_and_login() -> None:
    client = FleetFreedomClient()
    client.connection_made(0.0)
    client.receive(connection_response(8, serverTime="t0"), 0.0)
    (event,) = client.events()
    assert isinstance(event, ConnectionResponse)
    assert event.accepted
    assert event.message == "m"
    assert (event.user, event.session_policy, event.password_policy) == (None, None, None)
    assert event.error_code is ErrorCode.USER_NOT_LOGGED_IN
    assert (event.ghost_id, event.expiry, event.server_time) == ("g-1", "e", "t0")
    assert client.session.ghost_id == "g-1"
    assert client.session.user is None
    assert client.state is S.ANONYMOUS
    req = client.send(Command.login("a@x", "pw", "app"), 1.0)
    body = dict(LOGGED_IN_BODY, reqId=req, ghostId="g-2")
    client.receive(encode("loginResponse", body), 2.0)
    (login,) = client.events()
    assert isinstance(login, SessionResponse)
    assert login.ghost_id == "g-2"
    assert login.user == {"login": "a@x", "company": 42}
    assert client.state is S.LOGGED_IN
    assert client.session.ghost_id == "g-2"
    assert client.session.session_policy == {"expireTimeout": 60}
    assert client.session.password_policy == {"minimumLength": 8}
    assert client.url("wss://socket.trakit.ca/") == "wss://socket.trakit.ca/g-2"


def test_failed_login_changes_nothing_and_expired_password_is_a_state() -> None:
    client = open_client(8)
    req = client.send(Command.login("a@x", "bad", "app"), 1.0)
    client.receive(encode("loginResponse", {"reqId": req, "errorCode": 11}), 2.0)
    assert client.state is S.ANONYMOUS
    assert client.session.user is None
    req = client.send(Command.login("a@x", "old", "app"), 3.0)
    client.receive(encode("loginResponse", dict(LOGGED_IN_BODY, reqId=req, errorCode=16)), 4.0)
    assert client.state is S.PASSWORD_EXPIRED
    assert client.session.user == {"login": "a@x", "company": 42}


def test_reconnect_keeps_ghost_id_and_replays_subscriptions_once_logged_in() -> None:
    client = open_client()
    client.send(Command.subscribe(42, ["assetGeneral", "assetAdvanced"]), 0.0)
    client.send(Command.subscribe(7, ["placeGeneral"]), 0.0)
    client.send(Command.unsubscribe(42, ["assetGeneral"]), 0.0)
    client.data_to_send()
    client.receive_eof(1.0)
    client.events()
    client.reconnect()
    assert client.state is S.CONNECTING
    assert client.url("wss://h") == "wss://h/g-1"
    client.connection_made(2.0)
    held = client.send(Command.get_list("asset", 42), 2.0)
    client.receive(encode("connectionResponse", LOGGED_IN_BODY), 3.0)
    out = sent(client)
    assert [(name, body.get("company"), body.get("subscriptionTypes")) for name, body in out] == [
        ("subscribe", {"id": 42}, ["assetAdvanced"]),
        ("subscribe", {"id": 7}, ["placeGeneral"]),
        ("getAssetsList", {"id": 42}, None),
    ]
    assert out[-1][1]["reqId"] == held


def test_replay_waits_for_login_when_the_session_expired() -> None:
    client = open_client(login=Command.login("a@x", "pw", "app"))
    client.send(Command.subscribe(42, ["assetGeneral"]), 0.0)
    client.data_to_send()
    client.receive_eof(1.0)
    client.reconnect()
    client.connection_made(2.0)
    client.receive(connection_response(7), 2.0)
    ((name, body),) = sent(client)
    assert (name, body["username"]) == ("login", "a@x")
    client.receive(encode("loginResponse", dict(LOGGED_IN_BODY, reqId=body["reqId"])), 4.0)
    assert [name for name, _ in sent(client)] == ["subscribe"]


def test_denied_subscriptions_are_not_held() -> None:
    client = open_client()
    req = client.send(Command.subscribe(9, ["assetGeneral"]), 0.0)
    body = {"reqId": req, "errorCode": 0, "merged": [], "denied": ["assetGeneral"], "invalid": []}
    client.receive(encode("subscribeResponse", body), 1.0)
    assert client.subscriptions == {}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("sessionEnded {}", 1000),
        (connection_response(9), 1008),
        (connection_response(999), 1008),
        ('logoutResponse {"reqId":1,"errorCode":0}', 1000),
    ],
)
def test_session_over_or_refused_asks_to_close_and_is_not_resumable(frame: str, code: int) -> None:
    client = FleetFreedomClient()
    client.connection_made(0.0)
    if not frame.startswith("connectionResponse"):
        client.receive(connection_response(0), 0.0)
    client.receive(frame, 1.0)
    events = client.events()
    assert events[-1] == CloseRequested(code, events[-1].reason)  # type: ignore[attr-defined]
    assert client.state is S.CLOSING
    assert not client.resumable
    client.receive_eof(2.0)
    assert client.events()[-1] == Closed(resumable=False)
    with pytest.raises(LocalProtocolError, match="not to be resumed"):
        client.reconnect()


def test_logout_marks_the_session_not_resumable_at_once() -> None:
    client = open_client()
    client.send(Command.logout(), 0.0)
    client.receive_eof(1.0)
    with pytest.raises(LocalProtocolError):
        client.reconnect()


def test_close_ends_the_session() -> None:
    client = open_client()
    client.close(1.0)
    assert client.state is S.CLOSING
    with pytest.raises(LocalProtocolError):
        client.send(Command.noop())
    client.receive_eof(2.0)
    assert client.state is S.CLOSED
    unopened = FleetFreedomClient()
    req = unopened.send(Command.noop(), 0.0)
    unopened.close()
    assert unopened.events() == [
        CommandFailed(req, Command.noop(), FailureReason.CLOSED),
        Closed(resumable=False),
    ]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="timeouts"):
        FleetFreedomClient(command_timeout=-1)
    with pytest.raises(ValueError, match="limits"):
        FleetFreedomClient(max_pending=0)


def test_resume_a_saved_session() -> None:
    client = FleetFreedomClient(ghost_id="saved")
    assert client.url("wss://socket.fleetfreedom.com") == "wss://socket.fleetfreedom.com/saved"


# -- pushes ------------------------------------------------------------------------------


def test_pushes_are_typed() -> None:
    client = open_client()
    frames = [
        'assetAdvancedMerged {"id":1,"company":42,"v":[3]}',
        'assetDeleted {"id":1,"company":42}',
        'userDeleted {"login":"u@x","company":42}',
        'companyDeleted {"id":5,"parent":42}',
        'providerSuspended {"id":"p","company":42}',
        'broadcast {"kind":"maintenance","message":"soon"}',
        'alertRaised {"x":1}',
        "sessionEnded",
    ]
    for frame in frames:
        client.receive(frame, 1.0)
    merged, deleted, user, company, suspended, broadcast, other, ended, _end, _close = (
        client.events()
    )
    assert isinstance(merged, Merged)
    assert merged.subscription_type == "assetAdvanced"
    assert merged.body == {"id": 1, "company": 42, "v": [3]}
    assert isinstance(deleted, Deleted)
    assert (deleted.object_type, deleted.key, deleted.company) == ("asset", 1, 42)
    assert isinstance(user, Deleted)
    assert (user.object_type, user.key) == ("user", "u@x")
    assert isinstance(company, Deleted)
    assert company.company == 42
    assert isinstance(suspended, Suspended)
    assert suspended.object_type == "provider"
    assert isinstance(broadcast, Broadcast)
    assert (broadcast.kind, broadcast.message) == ("maintenance", "soon")
    assert other == UnknownMessage("alertRaised", {"x": 1}, 'alertRaised {"x":1}')
    assert ended == SessionEnded("sessionEnded", {})


def test_bad_messages_become_events_and_the_core_goes_on() -> None:
    client = open_client()
    for frame in ["", "Bad {}", "x {", "x [1]", "x  {}"]:
        client.receive(frame, 1.0)
    assert client.events() == [
        InvalidMessage("", "invalid message name"),
        InvalidMessage("Bad {}", "invalid message name"),
        InvalidMessage("x {", "invalid JSON", "x"),
        InvalidMessage("x [1]", "body is not a JSON object", "x"),
        UnknownMessage("x", {}, "x  {}"),
    ]
    assert client.state is S.LOGGED_IN


def test_line_over_the_limit_is_fatal() -> None:
    client = open_client(8, max_line=100)
    req = client.send(Command.noop(), 0.0)
    client.receive('broadcast {"m":"' + "é" * 40 + '"}', 1.0)  # 98 bytes
    with pytest.raises(RemoteProtocolError, match="over 100 bytes"):
        client.receive('broadcast {"m":"' + "é" * 42 + '"}', 1.0)  # 102 bytes, 60 characters
    assert client.state is S.ERROR
    assert client.events()[1:] == [CommandFailed(req, Command.noop(), FailureReason.CLOSED)]


message_names = st.sampled_from(
    [
        "connectionResponse",
        "loginResponse",
        "logoutResponse",
        "subscribeResponse",
        "noopResponse",
        "unknownCommandResponse",
        "assetMerged",
        "assetDeleted",
        "sessionEnded",
        "broadcast",
    ]
)
message_bodies = st.text(max_size=40) | st.sampled_from(
    [
        '{"reqId":1,"errorCode":"x"}',
        '{"reqId":2,"errorCode":0,"denied":[1,"a"]}',
        '{"reqId":[1]}',
        '{"errorCode":0,"user":3,"ghostId":4}',
        '{"merged":7}',
    ]
)
any_text = st.text(max_size=60) | st.builds(lambda n, t: n + " " + t, message_names, message_bodies)


@settings(max_examples=200)
@given(any_text)
def test_any_text_gives_events_or_the_documented_error(text: str) -> None:
    client = FleetFreedomClient(max_line=80)
    client.connection_made(0.0)
    client.send(Command.subscribe(1, ["asset"]), 0.0)
    client.send(Command.login("a", "b", "c"), 0.0)
    for _ in range(2):
        if client.state not in (S.CLOSED, S.ERROR):
            try:
                client.receive(text, 1.0)
            except RemoteProtocolError:
                assert client.state is S.ERROR
        client.handle_timer(500.0)
        client.next_deadline()
    assert client.events()


# -- the transition table ----------------------------------------------------------------

Inp = ClientInput


def client_in(state: ClientState) -> FleetFreedomClient:
    client = FleetFreedomClient(max_line=100)
    if state is S.CONNECTING:
        return client
    client.connection_made(0.0)
    setup = {
        S.AWAITING_CONNECTION_RESPONSE: lambda: None,
        S.ANONYMOUS: lambda: client.receive(connection_response(8), 0.0),
        S.LOGGED_IN: lambda: client.receive(connection_response(0), 0.0),
        S.PASSWORD_EXPIRED: lambda: client.receive(connection_response(16), 0.0),
        S.CLOSING: lambda: (client.receive(connection_response(8), 0.0), client.close()),
        S.CLOSED: lambda: client.receive_eof(0.0),
        S.ERROR: lambda: corrupt(client),
    }
    setup[state]()
    assert client.state is state
    return client


def corrupt(client: FleetFreedomClient) -> None:
    with pytest.raises(RemoteProtocolError):
        client.receive("broadcast " + "x" * 200, 0.0)


INPUTS = {
    Inp.CONNECTION_MADE: lambda c: c.connection_made(1.0),
    Inp.SESSION_OK: lambda c: c.receive(connection_response(0), 1.0),
    Inp.SESSION_ANONYMOUS: lambda c: c.receive(connection_response(8), 1.0),
    Inp.SESSION_PASSWORD_EXPIRED: lambda c: c.receive(connection_response(16), 1.0),
    Inp.SESSION_REFUSED: lambda c: c.receive(connection_response(13), 1.0),
    Inp.SESSION_OVER: lambda c: c.receive("sessionEnded {}", 1.0),
    Inp.RECEIVE: lambda c: c.receive("broadcast {}", 1.0),
    Inp.SEND: lambda c: c.send(Command.noop(), 1.0),
    Inp.CLOSE: lambda c: c.close(1.0),
    Inp.EOF: lambda c: c.receive_eof(1.0),
    Inp.RECONNECT: lambda c: c.reconnect(),
    Inp.CORRUPTION: lambda c: c.receive("broadcast " + "x" * 200, 1.0),
}


@pytest.mark.parametrize("state", list(ClientState))
@pytest.mark.parametrize("inp", list(ClientInput))
def test_every_state_input_pair(state: ClientState, inp: ClientInput) -> None:
    client = client_in(state)
    expected = CLIENT_TRANSITIONS.get((state, inp))
    if expected is None:
        with pytest.raises(LocalProtocolError):
            INPUTS[inp](client)
        assert client.state is state
    elif inp is Inp.CORRUPTION:
        with pytest.raises(RemoteProtocolError):
            INPUTS[inp](client)
        assert client.state is expected
    else:
        INPUTS[inp](client)
        assert client.state is expected


def test_only_the_callers_misuse_is_refused_while_connected() -> None:
    peer_inputs = {
        Inp.SESSION_OK,
        Inp.SESSION_ANONYMOUS,
        Inp.SESSION_PASSWORD_EXPIRED,
        Inp.SESSION_REFUSED,
        Inp.SESSION_OVER,
        Inp.RECEIVE,
        Inp.EOF,
        Inp.CORRUPTION,
    }
    for state in (S.AWAITING_CONNECTION_RESPONSE, S.ANONYMOUS, S.LOGGED_IN, S.CLOSING):
        assert {inp for s, inp in CLIENT_TRANSITIONS if s is state} >= peer_inputs


def test_url_to_open_carries_the_ghost_id_under_the_endpoint() -> None:
    client = FleetFreedomClient("wss://socket.example/")
    assert client.url_to_open == "wss://socket.example/"
    assert isinstance(client, ClientCore)
    client.connection_made(0.0)
    client.receive(
        'connectionResponse {"errorCode":8,"message":"Please login","ghostId":"g-1"}', 0.0
    )
    assert client.url_to_open == "wss://socket.example/g-1"


def test_timeout_of_a_command_sent_before_connecting_starts_with_the_connection() -> None:
    # A driver's clock may be anywhere (trio's starts at a random offset): commands queued
    # before the socket opens must not time out on the first timer call.
    client = FleetFreedomClient(command_timeout=120)
    req_id = client.send(Command.noop())
    assert client.next_deadline() is None
    client.connection_made(1_000_000.0)
    assert client.next_deadline() == 1_000_120.0
    client.handle_timer(1_000_001.0)
    assert not [e for e in client.events() if isinstance(e, CommandFailed)]
    client.handle_timer(1_000_120.0)
    assert [e.req_id for e in client.events() if isinstance(e, CommandFailed)] == [req_id]


def test_reconnect_after_an_attempt_that_never_opened_keeps_commands_held() -> None:
    client = FleetFreedomClient()
    client.send(Command.subscribe(42, ["assetGeneral"]))
    client.reconnect()  # the first attempt failed before the socket opened
    client.connection_made(0.0)
    client.receive(connection_response(0), 0.0)
    frames = client.data_to_send()
    assert [f.split(" ", 1)[0] for f in frames] == ["subscribe"]  # once, not replayed twice


def test_keepalive_never_leaves_a_deadline_in_the_past_when_pending_is_full() -> None:
    client = FleetFreedomClient(max_pending=1, command_timeout=0, keepalive=300)
    client.connection_made(0.0)
    client.receive(connection_response(8), 0.0)
    client.send(Command.noop(), 1.0)  # the one slot, never answered
    client.handle_timer(400.0)
    assert client.next_deadline() == 700.0
    client.data_to_send()
