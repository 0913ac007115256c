"""The FleetFreedom client's session lifecycle: a forgotten session is logged in again, a
finished one ends with a typed reason, every refusal is an event."""

from __future__ import annotations

from typing import Any

import pytest

import trackwire
from trackwire import FinishReason
from trackwire.fleetfreedom import (
    ClientState,
    CloseRequested,
    Command,
    CommandFailed,
    FailureReason,
    FleetFreedomClient,
    SessionFinished,
    SessionForgotten,
    SessionRestored,
    SubscriptionRefused,
    decode,
    encode,
)

LOGIN = Command.login("a@x", "pw", "app")
GOOD = {"errorCode": 0, "message": "OK", "ghostId": "g-1", "expiry": "e", "user": {}}


def response(code: int, name: str = "connectionResponse", **extra: Any) -> str:
    body: dict[str, Any] = {"errorCode": code, "message": "m", "ghostId": "g-2", "expiry": "e"}
    body.update(extra)
    return encode(name, body)


def sent(client: FleetFreedomClient) -> list[tuple[str, dict[str, Any]]]:
    return [decode(frame) for frame in client.data_to_send()]


def logged_in(**kwargs: Any) -> FleetFreedomClient:
    """A client logged in (connectionResponse 0) and subscribed to company 42."""
    client = FleetFreedomClient(**kwargs)
    client.connection_made(0.0)
    client.receive(encode("connectionResponse", GOOD), 0.0)
    client.send(Command.subscribe(42, ["assetAdvanced", "assetGeneral"]), 0.0)
    client.data_to_send()
    client.events()
    return client


def restart(client: FleetFreedomClient, code: int = 8, now: float = 10.0) -> None:
    """The connection drops and the next one hears ``code`` (the server lost the session)."""
    client.receive_eof(now)
    client.reconnect()
    client.connection_made(now)
    client.events()
    client.receive(response(code), now)


def test_forgotten_session_logs_in_again_and_replays_each_subscription_once() -> None:
    client = logged_in(login=LOGIN)
    restart(client, 8)
    ((name, body),) = sent(client)
    assert (name, body["username"], body["password"]) == ("login", "a@x", "pw")
    held = client.send(Command.get_list("asset", 42), 10.5)  # waits for the login
    assert client.data_to_send() == []
    client.receive(encode("loginResponse", dict(GOOD, reqId=body["reqId"])), 11.0)
    frames = sent(client)
    assert [name for name, _ in frames] == ["subscribe", "getAssetsList"]
    assert frames[0][1]["subscriptionTypes"] == ["assetAdvanced", "assetGeneral"]
    assert frames[1][1]["reqId"] == held
    events = client.events()
    assert SessionForgotten(8, True) in events
    assert SessionRestored(1) in events
    assert client.state is ClientState.LOGGED_IN
    assert isinstance(events[1], trackwire.SessionForgotten)


def test_login_sent_through_send_is_remembered() -> None:
    client = FleetFreedomClient()
    client.send(LOGIN)
    client.connection_made(0.0)
    client.receive(response(8), 0.0)
    ((_, body),) = sent(client)
    client.receive(encode("loginResponse", dict(GOOD, reqId=body["reqId"])), 0.0)
    restart(client, 7)
    assert [name for name, _ in sent(client)] == ["login"]


def test_login_given_at_construction_logs_in_on_the_first_connection() -> None:
    client = FleetFreedomClient(login=LOGIN)
    client.connection_made(0.0)
    client.receive(response(8), 0.0)
    assert [name for name, _ in sent(client)] == ["login"]
    assert not any(isinstance(e, SessionForgotten) for e in client.events())


def test_a_ghost_id_without_credentials_ends_with_a_reason() -> None:
    client = FleetFreedomClient(ghost_id="g-old")
    client.connection_made(0.0)
    client.receive(response(8), 0.0)
    events = client.events()
    assert events[1:] == [
        SessionForgotten(8, False),
        SessionFinished(FinishReason.NO_CREDENTIALS, events[2].detail, 8),  # type: ignore[attr-defined]
        CloseRequested(1000, "session forgotten"),
    ]
    assert not client.resumable


def test_anonymous_use_without_credentials_still_reconnects_anonymously() -> None:
    client = FleetFreedomClient()
    client.connection_made(0.0)
    client.receive(response(8), 0.0)
    restart(client, 8)
    assert client.state is ClientState.ANONYMOUS
    assert client.resumable


@pytest.mark.parametrize(
    ("code", "reason"),
    [(11, FinishReason.LOGIN_REFUSED), (12, FinishReason.LOGIN_REFUSED),
     (73, FinishReason.THROTTLED)],
)  # fmt: skip
def test_a_refused_login_again_ends_for_good(code: int, reason: FinishReason) -> None:
    client = logged_in(login=LOGIN)
    restart(client)
    ((_, body),) = sent(client)
    client.receive(response(code, "loginResponse", reqId=body["reqId"]), 11.0)
    finished = [e for e in client.events() if isinstance(e, SessionFinished)]
    assert [(e.reason, e.error_code) for e in finished] == [(reason, code)]
    assert client.state is ClientState.CLOSING
    assert not client.resumable


def test_failing_logins_retry_after_the_backoff_then_give_up() -> None:
    client = logged_in(login=LOGIN, max_login_failures=3)
    for attempt in range(3):
        restart(client, 8, now=10.0 * (attempt + 1))
        ((_, body),) = sent(client)
        client.receive(response(2, "loginResponse", reqId=body["reqId"]), 10.0 * (attempt + 1))
        events = client.events()
        if attempt < 2:
            assert events[-1] == CloseRequested(1000, "login failed; trying again")
            assert client.resumable
            assert client.login_failures == attempt + 1
    assert any(
        isinstance(e, SessionFinished) and e.reason is FinishReason.LOGIN_FAILED for e in events
    )
    assert not client.resumable


def test_a_login_again_without_answer_counts_as_a_failure() -> None:
    client = logged_in(login=LOGIN, command_timeout=5.0, keepalive=0)
    restart(client)
    sent(client)
    client.events()
    client.handle_timer(20.0)
    events = client.events()
    assert isinstance(events[0], CommandFailed)
    assert events[-1] == CloseRequested(1000, "login failed; trying again")
    assert client.login_failures == 1


def test_expiry_while_connected_logs_in_again_once() -> None:
    client = logged_in(login=LOGIN)
    a = client.send(Command.get("asset", 1), 1.0)
    b = client.send(Command.get("asset", 2), 1.0)
    client.data_to_send()
    client.receive(response(7, "getAssetResponse", reqId=a), 2.0)
    client.receive(response(7, "getAssetResponse", reqId=b), 2.0)
    frames = sent(client)
    assert [name for name, _ in frames] == ["login"]
    client.receive(encode("loginResponse", dict(GOOD, reqId=frames[0][1]["reqId"])), 3.0)
    assert [name for name, _ in sent(client)] == ["subscribe"]


def test_finished_sessions_say_why() -> None:
    for frame, reason in (
        ("sessionEnded {}", FinishReason.SESSION_ENDED),
        (response(9), FinishReason.REFUSED),
    ):
        client = logged_in(login=LOGIN)
        client.receive(frame, 1.0)
        finished = [e for e in client.events() if isinstance(e, SessionFinished)]
        assert [e.reason for e in finished] == [reason]
        assert not client.resumable
    client = logged_in(login=LOGIN)
    req = client.send(Command.logout(), 1.0)
    client.receive(encode("logoutResponse", {"reqId": req, "errorCode": 0}), 2.0)
    finished = [e for e in client.events() if isinstance(e, SessionFinished)]
    assert [e.reason for e in finished] == [FinishReason.LOGGED_OUT]


def test_subscription_refusals_are_events_and_not_replayed() -> None:
    client = logged_in()
    req = client.send(Command.subscribe(2, ["assetGeneral", "bogusType"]), 1.0)
    body = {"reqId": req, "errorCode": 0, "company": {"id": 2}, "merged": [],
            "denied": ["assetGeneral"], "invalid": ["bogusType"]}  # fmt: skip
    client.receive(encode("subscribeResponse", body), 2.0)
    refused = [e for e in client.events() if isinstance(e, SubscriptionRefused)]
    assert refused == [
        SubscriptionRefused(2, ["assetGeneral"], "denied", 0, req),
        SubscriptionRefused(2, ["bogusType"], "invalid", 0, req),
    ]
    req = client.send(Command.subscribe(3, ["assetGeneral"]), 3.0)
    client.receive(response(5, "subscribeResponse", reqId=req), 4.0)
    refused = [e for e in client.events() if isinstance(e, SubscriptionRefused)]
    assert refused == [SubscriptionRefused(3, ["assetGeneral"], "error", 5, req)]
    assert set(client.subscriptions) == {42}


def test_an_unanswered_noop_closes_a_half_open_connection_for_a_reconnect() -> None:
    client = logged_in(keepalive=30.0, command_timeout=10.0)
    client.handle_timer(30.0)
    assert [name for name, _ in sent(client)] == ["noop"]
    client.handle_timer(40.0)
    events = client.events()
    assert isinstance(events[0], CommandFailed)
    assert events[0].reason is FailureReason.TIMEOUT
    assert events[-1] == CloseRequested(1001, "no answer to noop")
    assert client.resumable
    client.receive_eof(41.0)
    client.reconnect()
    assert client.state is ClientState.CONNECTING


def test_keepalives_do_not_pile_up_behind_an_unanswered_one() -> None:
    client = logged_in(keepalive=1.0, command_timeout=3.0)
    for now in (1.0, 2.0, 3.0):
        client.handle_timer(now)
    assert [name for name, _ in sent(client)] == ["noop"]
    client.handle_timer(4.0)
    assert client.events()[-1] == CloseRequested(1001, "no answer to noop")


def test_a_subscription_held_before_the_first_login_goes_out_once() -> None:
    client = FleetFreedomClient(login=LOGIN)
    client.send(Command.subscribe(42, ["assetGeneral"]))
    client.connection_made(0.0)
    client.receive(response(8), 0.0)
    ((_, body),) = sent(client)
    client.receive(encode("loginResponse", dict(GOOD, reqId=body["reqId"])), 1.0)
    assert [name for name, _ in sent(client)] == ["subscribe"]


@pytest.mark.parametrize("code", [0, 8])
def test_subscriptions_sent_while_disconnected_are_not_doubled(code: int) -> None:
    client = logged_in(login=LOGIN)
    client.receive_eof(5.0)
    client.reconnect()
    client.send(Command.subscribe(7, ["assetGeneral"]), 6.0)  # held: no connection
    client.connection_made(7.0)
    if code == 0:
        client.receive(encode("connectionResponse", GOOD), 7.0)
    else:
        client.receive(response(8), 7.0)
        ((_, body),) = sent(client)
        client.receive(encode("loginResponse", dict(GOOD, reqId=body["reqId"])), 8.0)
    companies = [body["company"]["id"] for name, body in sent(client) if name == "subscribe"]
    assert sorted(companies) == [7, 42]


def test_no_room_for_the_login_again_ends_the_session_instead_of_raising() -> None:
    client = logged_in(login=LOGIN, max_pending=3)  # the subscribe and two noops fill it
    client.send(Command.noop(), 1.0)
    client.send(Command.noop(), 1.0)
    client.receive(response(8, "getAssetResponse", reqId=99), 2.0)  # never raises
    finished = [e for e in client.events() if isinstance(e, SessionFinished)]
    assert [e.reason for e in finished] == [FinishReason.LOGIN_FAILED]
    assert not client.resumable
