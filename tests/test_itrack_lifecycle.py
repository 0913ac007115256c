"""The iTrack client's session lifecycle: a forgotten hash is replaced through the driver's
``user/auth``, a finished session ends with a typed reason, refused trackers are events."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import trackwire
from trackwire import FinishReason, LocalProtocolError
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    Closed,
    Heartbeat,
    InactivityTimeout,
    encode_message,
    parse_open_request,
)
from trackwire.itrack import (
    Directory,
    ErrorMessage,
    ITrackClient,
    ITrackServer,
    LoginRequested,
    LogoutEvent,
    SessionFinished,
    SessionForgotten,
    SessionRestored,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    TrackersRefused,
    build_auth_request,
    subscription_url,
)

AUTH = build_auth_request("http://h/v2/", "alice", "pw")
UUID = "b623a15d-9623-4fd8-a9d3-697036635c"


class Link:
    """A client and a server core joined in memory; the server can lose its memory."""

    def __init__(self, login: Any = AUTH, **client: Any) -> None:
        self.directory = self._directory()
        self.hash = self._auth()
        self.client = ITrackClient(
            subscription_url("http://h/v2/"), self.hash, login=login, **client
        )
        self.uuids = (f"{UUID}{n:02d}" for n in itertools.count())
        self.server = self._server()
        self.client.connection_made(0.0)
        self.server.connection_made(0.0)
        self.events()

    @staticmethod
    def _directory() -> Directory:
        d = Directory()
        d.add_user("alice", "pw")
        d.add_tracker("alice", 1, source_id=101)
        d.add_tracker("alice", 2, source_id=102, status="blocked")
        return d

    def _auth(self) -> str:
        result = self.directory.authenticate("alice", "pw")
        return result.hash  # type: ignore[union-attr]

    def _server(self) -> ITrackServer:
        request = parse_open_request("/" + self.client.url_to_open.split("/", 3)[3])
        transport = AtmosphereServer(
            request, heartbeat_interval_ms=30000, uuid_factory=lambda: next(self.uuids)
        )
        return ITrackServer(request, self.directory, transport=transport)

    def pump(self) -> None:
        for _ in range(5):
            for frame in self.server.data_to_send():
                self.client.receive(frame, 1.0)
            for frame in self.client.data_to_send():
                self.server.receive(frame, 1.0)

    def events(self) -> list[Any]:
        self.pump()
        return [e for e in self.client.events() if not isinstance(e, Heartbeat)]

    def restart_server(self) -> None:
        """The server process dies and comes back: every hash is forgotten."""
        self.client.receive_eof(2.0)
        self.directory = self._directory()
        self.client.reconnect()
        self.server = self._server()
        self.client.connection_made(3.0)
        self.server.connection_made(3.0)

    def subscribes_seen(self) -> int:
        return sum(1 for e in self.server.events() if type(e).__name__ == "ActionReceived")


def test_a_forgotten_hash_is_replaced_and_each_subscription_sent_once() -> None:
    link = Link()
    link.client.send(Subscribe([StateRequest([1])]))
    link.events()
    link.server.events()
    link.restart_server()
    events = link.events()
    kinds = [type(e) for e in events]
    assert ErrorMessage in kinds
    assert SessionForgotten(4, True) in events
    (request,) = [e for e in events if isinstance(e, LoginRequested)]
    assert request.request is AUTH
    assert request.attempt == 1
    assert link.client.logging_in
    # Actions sent while logging in wait for the new hash.
    link.client.send(Subscribe([StateRequest([2])]))
    assert link.client.data_to_send() == []
    link.client.login_succeeded(link._auth(), 4.0)
    events = link.events()
    assert SessionRestored(1) in events
    assert any(isinstance(e, SubscribeResponse) for e in events)
    assert link.subscribes_seen() == 1  # one action holds both trackers: sent once
    assert isinstance(events[0], trackwire.SessionRestored)


def test_without_credentials_a_forgotten_hash_ends_the_session() -> None:
    link = Link(login=None)
    link.client.send(Subscribe([StateRequest([1])]))
    link.events()
    link.restart_server()
    events = link.events()
    assert SessionForgotten(4, False) in events
    (finished,) = [e for e in events if isinstance(e, SessionFinished)]
    assert finished.reason is FinishReason.NO_CREDENTIALS
    assert not link.client.resumable
    with pytest.raises(LocalProtocolError):
        link.client.send(Subscribe([StateRequest([1])]))


@pytest.mark.parametrize(
    ("code", "reason"),
    [(102, FinishReason.LOGIN_REFUSED), (105, FinishReason.THROTTLED)],
)
def test_a_refused_login_ends_for_good(code: int, reason: FinishReason) -> None:
    link = Link()
    link.client.send(Subscribe([StateRequest([1])]))
    link.events()
    link.restart_server()
    link.events()
    link.client.login_failed(code, "no")
    (finished,) = [e for e in link.events() if isinstance(e, SessionFinished)]
    assert (finished.reason, finished.error_code) == (reason, code)
    assert not link.client.resumable


def test_unanswered_logins_are_asked_again_then_given_up() -> None:
    link = Link(max_login_failures=2)
    link.client.send(Subscribe([StateRequest([1])]))
    link.events()
    link.restart_server()
    link.events()
    link.client.login_failed(None, "connection refused")
    (again,) = [e for e in link.events() if isinstance(e, LoginRequested)]
    assert again.attempt == 2
    link.client.login_failed(None, "connection refused")
    (finished,) = [e for e in link.events() if isinstance(e, SessionFinished)]
    assert finished.reason is FinishReason.LOGIN_FAILED


def test_errors_of_actions_already_sent_with_the_old_hash_ask_for_one_login() -> None:
    link = Link()
    link.client.send(Subscribe([StateRequest([1])]))
    link.events()
    link.directory.logout(link.hash)  # expired on the server, connection still up
    link.client.send(Subscribe([StateRequest([2])]))
    link.client.send(Subscribe([StateRequest([1, 2])]))
    events = link.events()
    assert sum(isinstance(e, ErrorMessage) for e in events) == 2
    assert sum(isinstance(e, LoginRequested) for e in events) == 1
    link.client.login_succeeded(link._auth())
    link.pump()
    assert link.subscribes_seen() == 2  # the first subscribe, then one replay


def test_logout_finishes_the_session() -> None:
    link = Link()
    link.client.send(Subscribe([StateRequest([1])]))
    link.events()
    link.server.push_logout(1.0)
    events = link.events()
    logout = next(i for i, e in enumerate(events) if isinstance(e, LogoutEvent))
    finished = next(i for i, e in enumerate(events) if isinstance(e, SessionFinished))
    assert logout < finished
    assert events[finished].reason is FinishReason.SESSION_ENDED  # type: ignore[attr-defined]


def test_blocked_trackers_are_reported() -> None:
    link = Link()
    link.client.send(Subscribe([StateRequest([1, 2, 77])]))
    refused = [e for e in link.events() if isinstance(e, TrackersRefused)]
    assert refused == [TrackersRefused("state", {2: "blocked", 77: "unknown"})]


def test_login_answers_without_a_request_are_misuse() -> None:
    link = Link()
    with pytest.raises(LocalProtocolError):
        link.client.login_succeeded("0" * 32)
    with pytest.raises(LocalProtocolError):
        link.client.login_failed(102, "no")


def test_reconnect_on_timeout_keeps_the_session_for_a_half_open_socket() -> None:
    transport = AtmosphereClient("http://h/v2/event/subscription", inactivity_timeout=5.0,
                                 reconnect_on_timeout=True)  # fmt: skip
    link = Link(transport=transport)
    link.client.handle_timer(100.0)
    events = link.client.events()
    assert events == [InactivityTimeout(None)]
    assert link.client.resumable
    link.client.receive_eof(101.0)
    link.client.reconnect()
    assert "X-Atmosphere-tracking-id=0" not in link.client.url_to_open
    # atmosphere.js's own behaviour stays the default: closed for good.
    plain = Link()
    plain.client.transport.inactivity_timeout = 5.0
    plain.client.handle_timer(100.0)
    assert not plain.client.resumable
    assert not any(isinstance(e, Closed) for e in plain.client.events())


_STATE = '{"type":"event","event":"state","data":{"source_id":101}}'
_ANSWER = (
    '{"type":"response","action":"subscription/subscribe","events":["state"],'
    '"data":{"state":{"success":true,"value":{"1":"normal","2":"blocked"}}}}'
)
_FORGOTTEN = (
    '{"type":"error","action":"subscription/subscribe","status":'
    '{"code":3,"description":"Wrong user hash"}}'
)


def _kinds(events: Any) -> list[str]:
    """The public class of each event (the fast decoder's are subclasses)."""
    return [type(e).__name__.removeprefix("_Fast") for e in events]


@pytest.mark.parametrize("decoder", ["default", "fast"])
def test_answers_among_states_are_reviewed_in_any_frame_layout(decoder: str) -> None:
    """The parser tells the session of each answer, error and logout as it builds it: an
    answer amid states of one frame, or cut across frames, gets its bookkeeping once."""
    trackwire.set_decoder(decoder)  # type: ignore[arg-type]  # (conftest restores it)
    transport = AtmosphereClient("http://h/v2/event/subscription", track_message_length=True)
    client = ITrackClient(transport.url, "a" * 32, transport=transport, login=AUTH)
    client.connection_made(0.0)
    client.receive(encode_message(f"{UUID}00|30000|X|"), 0.0)
    client.send(Subscribe([StateRequest([1, 2])]))
    client.send(Subscribe([StateRequest([1])]))
    assert len(client.data_to_send()) == 2
    client.events()
    frame = "".join(encode_message(m) for m in (_STATE, _ANSWER, _STATE))
    client.receive(frame, 1.0)
    assert _kinds(client.events()) == [
        "StateEvent",
        "SubscribeResponse",
        "StateEvent",
        "TrackersRefused",
    ]
    message = encode_message(_FORGOTTEN)
    client.receive(message[:20], 2.0)
    assert client.events() == []
    client.receive(message[20:] + encode_message(_STATE), 2.0)
    events = client.events()
    assert _kinds(events) == [
        "ErrorMessage",
        "StateEvent",
        "SessionForgotten",
        "LoginRequested",
    ]
    assert client.logging_in
    # Frames of states alone leave the session as it was.
    client.receive(encode_message(_STATE) * 3, 3.0)
    assert _kinds(client.events()) == ["StateEvent"] * 3
    assert client.logging_in
