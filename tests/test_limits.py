"""Every sans-IO buffer is bounded (docs/limits.md): going over a limit gives a clear error and
leaves nothing behind.  Also the reference servers' login rate limit and the closing of
connections that never log in (time passed in, never read from a clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trackwire import LocalProtocolError, RemoteProtocolError, peer_context
from trackwire.atmosphere import AtmosphereClient, ClientState, Message, TrackMessageSizeDecoder
from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet
from trackwire.conformance._reference import (
    DEFAULT_ADDRESS_FAILURES,
    DEFAULT_ANONYMOUS_TIMEOUT,
    DEFAULT_LOGIN_FAILURES,
    DEFAULT_LOGIN_WINDOW,
    LoginThrottle,
)
from trackwire.fleetfreedom import (
    Account,
    Closed,
    Command,
    CommandFailed,
    ErrorCode,
    FailureReason,
    FleetFreedomClient,
    FleetFreedomHub,
    Response,
    ServerState,
)
from trackwire.fleetfreedom import ClientState as FFClientState
from trackwire.itrack import (
    AuthError,
    AuthExchange,
    AuthResponder,
    AuthServerConnection,
    Directory,
    ITrackClient,
    StateRequest,
    Subscribe,
    build_auth_request,
)
from trackwire.ws import ClientStack, ConnectionClosed, ServerStack, StackState

HANDSHAKE = "b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|"

# -- Atmosphere: TrackMessageSize ------------------------------------------------------------


def test_tms_partial_over_the_limit_is_dropped() -> None:
    decoder = TrackMessageSizeDecoder(max_size=10)
    assert decoder.feed("10|abc") == []
    with pytest.raises(RemoteProtocolError, match="partial message of 12 characters"):
        decoder.feed("defghi")  # still no whole message: "10|abcdefghi" pending
    assert decoder.partial == ""


def test_tms_declared_length_over_the_limit_buffers_nothing() -> None:
    decoder = TrackMessageSizeDecoder(max_size=10)
    with pytest.raises(RemoteProtocolError, match="length 11 exceeds the limit of 10"):
        decoder.feed("11|a")
    assert decoder.partial == ""


def _open_client(**options: Any) -> AtmosphereClient:
    client = AtmosphereClient("ws://h/p", track_message_length=True, **options)
    client.connection_made(0.0)
    client.receive("45|" + HANDSHAKE, 0.0)
    client.events()
    return client


def test_atmosphere_client_partial_limit_is_fatal_and_freed() -> None:
    client = _open_client(max_message_size=64)
    client.receive("63|" + "a" * 30, 1.0)
    with pytest.raises(
        RemoteProtocolError, match="65 characters exceeds the limit of 64"
    ) as caught:
        client.receive("b" * 32, 2.0)  # 62 of 63 units: still partial
    assert "(state OPEN)" in str(caught.value)
    assert client.state is ClientState.ERROR
    client.reconnect()
    client.connection_made(3.0)
    client.receive("2|ok", 3.0)  # nothing of the dropped partial is glued in front
    assert [e for e in client.events() if isinstance(e, Message)] == [Message("ok")]


# -- FleetFreedom: line limit and pending commands --------------------------------------------


def _ff_client(**options: Any) -> FleetFreedomClient:
    client = FleetFreedomClient("wss://h/", **options)
    client.connection_made(0.0)
    client.receive('connectionResponse {"errorCode":0,"ghostId":"g"}', 0.0)
    client.events()
    client.data_to_send()
    return client


def test_fleetfreedom_client_line_limit_counts_utf8_bytes() -> None:
    client = _ff_client(max_line=64)
    line = 'broadcast {"message":"' + "é" * 30 + '"}'  # 54 characters, 84 bytes
    assert len(line) <= 64 < len(line.encode())
    req_id = client.send(Command.noop())
    with pytest.raises(RemoteProtocolError, match="line over 64 bytes"):
        client.receive(line, 1.0)
    assert client.state is FFClientState.ERROR
    assert client.pending == {}
    assert client.events() == [CommandFailed(req_id, Command.noop(), FailureReason.CLOSED)]


def test_fleetfreedom_client_refuses_to_send_an_over_long_line() -> None:
    client = _ff_client(max_line=64)
    with pytest.raises(LocalProtocolError, match="over 64 bytes"):
        client.send(Command("merge", {"name": "x" * 64}))
    assert client.pending == {}
    assert client.data_to_send() == []
    assert client.send(Command.noop()) == 1  # the refused command used no reqId


def test_fleetfreedom_client_pending_limit() -> None:
    client = _ff_client(max_pending=2, keepalive=0)
    client.send(Command.noop())
    client.send(Command.noop())
    with pytest.raises(LocalProtocolError, match="more than 2 commands pending"):
        client.send(Command.noop())
    client.receive('noopResponse {"reqId":1,"errorCode":0}', 1.0)
    assert isinstance(client.events()[0], Response)
    assert client.send(Command.noop()) == 3  # room again once one was answered


def test_fleetfreedom_server_line_limit_detaches_the_connection() -> None:
    hub = FleetFreedomHub(lambda user, pw: Account(user, 1), max_line=80)
    server = hub.connect()
    server.connection_made(0.0)
    server.receive('login {"username":"a","password":"b","reqId":1}', 0.0)
    server.receive('subscribe {"company":{"id":1},"subscriptionTypes":["assetGeneral"]}', 0.0)
    assert hub.subscribers("assetGeneral", 1) == [server]
    with pytest.raises(RemoteProtocolError, match="line over 80 bytes"):
        server.receive('noop {"pad":"' + "p" * 80 + '"}', 1.0)
    assert server.state is ServerState.ERROR
    assert server not in hub.connections
    assert hub.subscribers("assetGeneral", 1) == []


# -- iTrack: held actions and user/auth bodies ------------------------------------------------


def test_itrack_client_held_actions_limit() -> None:
    client = ITrackClient("ws://h/v2/event/subscription", "0" * 32, max_held=2)
    client.send(Subscribe([StateRequest([1])]))
    client.send(Subscribe([StateRequest([2])]))
    with pytest.raises(LocalProtocolError, match="2 actions already wait"):
        client.send(Subscribe([StateRequest([3])]))
    assert client.held == 2
    client.connection_made(0.0)
    client.receive(HANDSHAKE, 0.0)
    assert client.held == 0
    assert len(client.data_to_send()) == 2
    client.send(Subscribe([StateRequest([3])]))  # open: sent at once, nothing held


def test_auth_client_body_limit() -> None:
    exchange = AuthExchange(build_auth_request("http://h/", "a", "b"), max_body=16)
    body = json.dumps({"success": True, "hash": "0" * 32}).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    with pytest.raises(AuthError, match="response body over 16 bytes"):
        exchange.receive_data(head + body)


def test_auth_server_body_limit() -> None:
    conn = AuthServerConnection(AuthResponder(Directory()), max_body=8)
    conn.receive_data(b"POST /v2/user/auth HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n")
    conn.receive_data(b"login=a&password=bbb")
    assert conn.data_to_send().startswith(b"HTTP/1.1 413 ")
    assert conn.closed


# -- the WebSocket stack: message size ---------------------------------------------------------


def _ws_frame(payload: bytes, *, fin: bool = True, opcode: int = 1) -> bytes:
    """A masked (zero key) client frame."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def test_ws_message_size_limit_closes_with_1009() -> None:
    app = ITrackReference(demo_fleet(1), wall_offset=0.0)
    stack: ServerStack[Any] = ServerStack(app.factory, max_message_size=100)
    stack.connection_made(0.0)
    stack.receive(
        b"GET /v2/event/subscription HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
        0.0,
    )
    stack.data_to_send()
    stack.events()
    stack.receive(_ws_frame(b"x" * 60, fin=False), 1.0)  # fragments add up past the limit
    stack.receive(_ws_frame(b"y" * 60, fin=False, opcode=0), 1.0)
    assert stack.state is StackState.CLOSING
    assert stack.data_to_send().startswith(b"\x88")  # our close frame (1009)
    stack.receive(_ws_frame(b"z" * 10, opcode=0), 2.0)  # the rest is discarded
    stack.receive(b"\x88\x82\0\0\0\0\x03\xf1", 2.0)  # the peer's answer: 1009
    assert stack.state.name == "CLOSED"
    (closed,) = [e for e in stack.events() if isinstance(e, ConnectionClosed)]
    assert closed.code == 1009
    assert closed.error is not None
    assert "over 100" in str(closed.error)


# -- the reference servers: login rate limit, anonymous connections ----------------------------


class Clock:
    """A fake clock for the reference servers."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_login_throttle_sliding_window() -> None:
    throttle = LoginThrottle(3, 60.0)
    for t in (0.0, 10.0, 20.0):
        assert throttle.allowed("a", t)
        throttle.failed("a", t)
    assert not throttle.allowed("a", 30.0)
    assert throttle.allowed("b", 30.0)  # per login
    assert not throttle.allowed("a", 59.9)
    assert throttle.allowed("a", 60.0)  # the first failure left the window
    throttle.succeeded("a")
    assert throttle.tracked == 0
    assert (DEFAULT_LOGIN_FAILURES, DEFAULT_LOGIN_WINDOW) == (5, 60.0)


def test_login_throttle_tracks_a_bounded_number_of_logins() -> None:
    throttle = LoginThrottle(1, 60.0, max_logins=100, max_address_failures=None)
    for n in range(1000):
        throttle.failed(f"guess{n}", 0.0)
    assert throttle.tracked == 100
    assert not throttle.allowed("guess999", 1.0)
    assert throttle.allowed("guess0", 1.0)  # the stalest were dropped
    bounded = LoginThrottle(max_addresses=10)
    for n in range(100):
        bounded.failed("demo", 0.0, f"10.0.0.{n}")
    assert bounded.tracked_addresses == 10


def test_login_throttle_a_stranger_cannot_lock_a_user_out() -> None:
    throttle = LoginThrottle(5, 60.0)
    for t in range(5):
        throttle.failed("demo", float(t), "203.0.113.66")
    assert not throttle.allowed("demo", 5.0, "203.0.113.66")
    assert throttle.allowed("demo", 5.0, "198.51.100.7")  # the real user, elsewhere
    assert throttle.allowed("other", 5.0, "203.0.113.66")  # other names, for now
    throttle.succeeded("demo", "198.51.100.7")
    assert not throttle.allowed("demo", 5.0, "203.0.113.66")  # not the stranger's success


def test_login_throttle_limits_failures_per_address_whatever_the_names() -> None:
    throttle = LoginThrottle(5, 60.0, max_address_failures=20)
    for n in range(20):
        assert throttle.allowed(f"name{n}", float(n), "203.0.113.66")
        throttle.failed(f"name{n}", float(n), "203.0.113.66")
    assert not throttle.allowed("demo", 20.0, "203.0.113.66")  # spraying: every name
    assert throttle.allowed("demo", 20.0, "198.51.100.7")
    throttle.succeeded("name0", "203.0.113.66")  # a success does not reset the address
    assert not throttle.allowed("demo", 59.0, "203.0.113.66")
    assert throttle.allowed("demo", 60.0, "203.0.113.66")  # the first failure left
    assert DEFAULT_ADDRESS_FAILURES == 20


def _auth(app: ITrackReference, password: str) -> tuple[int, dict[str, Any]]:
    answer = app.http_handler(
        "POST", "/v2/user/auth", [], f"login=demo&password={password}".encode()
    )
    assert answer is not None
    status, _, body = answer
    return status, json.loads(body)


def test_itrack_reference_throttles_per_address_and_login() -> None:
    app = ITrackReference(demo_fleet(1), wall_offset=0.0, clock=Clock())
    with peer_context("203.0.113.66"):
        for _ in range(5):
            assert _auth(app, "wrong")[1]["status"]["code"] == 102
        assert _auth(app, "demo")[1]["status"]["code"] == 105
    with peer_context("198.51.100.7"):
        status, body = _auth(app, "demo")  # the real user is not locked out
    assert (status, body["success"]) == (200, True)
    with peer_context("203.0.113.99"):
        for n in range(20):
            answer = app.http_handler(
                "POST", "/v2/user/auth", [], f"login=user{n}&password=x".encode()
            )
            assert answer is not None
            assert json.loads(answer[2])["status"]["code"] == 102
        assert _auth(app, "demo")[1]["status"]["code"] == 105  # spraying is limited too


def test_itrack_reference_rate_limits_user_auth() -> None:
    clock = Clock()
    app = ITrackReference(demo_fleet(1), wall_offset=0.0, clock=clock)
    for _ in range(5):
        assert _auth(app, "wrong")[1]["status"]["code"] == 102
    status, body = _auth(app, "demo")  # even the right password is refused now
    assert status == 403
    assert body["status"] == {"code": 105, "description": "Login attempts limit exceeded"}
    clock.now = 60.0
    status, body = _auth(app, "demo")
    assert status == 200
    assert body["success"] is True
    assert _auth(app, "wrong")[1]["status"]["code"] == 102  # the success reset the count


def _ff_login(app: FleetFreedomReference, user: str, password: str, now: float) -> object:
    server = app.hub.connect()
    server.connection_made(now)
    server.data_to_send()
    server.receive(f'login {{"username":"{user}","password":"{password}","reqId":1}}', now)
    (frame,) = server.data_to_send()
    server.receive_eof(now)
    return json.loads(frame.split(" ", 1)[1])["errorCode"]


def test_fleetfreedom_reference_rate_limits_logins() -> None:
    clock = Clock()
    app = FleetFreedomReference(
        demo_fleet(1), wall_offset=0.0, clock=clock, login_throttle=LoginThrottle(2, 30.0)
    )
    user = "demo@example.com"
    assert _ff_login(app, user, "nope", 0.0) == ErrorCode.INVALID_CREDENTIALS
    assert _ff_login(app, user, "nope", 0.0) == ErrorCode.INVALID_CREDENTIALS
    assert _ff_login(app, user, "demo", 1.0) == ErrorCode.SESSION_THROTTLED
    assert _ff_login(app, "other@example.com", "other", 1.0) == ErrorCode.SUCCESS
    clock.now = 30.0
    assert _ff_login(app, user, "demo", 30.0) == ErrorCode.SUCCESS


def test_fleetfreedom_reference_throttles_per_address_and_login() -> None:
    app = FleetFreedomReference(demo_fleet(1), wall_offset=0.0, clock=Clock())
    user = "demo@example.com"
    with peer_context("203.0.113.66"):
        for _ in range(5):
            assert _ff_login(app, user, "nope", 0.0) == ErrorCode.INVALID_CREDENTIALS
        assert _ff_login(app, user, "demo", 0.0) == ErrorCode.SESSION_THROTTLED
    with peer_context("198.51.100.7"):
        assert _ff_login(app, user, "demo", 0.0) == ErrorCode.SUCCESS
    with peer_context("203.0.113.99"):
        for n in range(20):
            assert _ff_login(app, f"u{n}@x", "nope", 0.0) == ErrorCode.INVALID_CREDENTIALS
        assert _ff_login(app, user, "demo", 0.0) == ErrorCode.SESSION_THROTTLED


def test_fleetfreedom_reference_closes_connections_that_never_log_in() -> None:
    app = FleetFreedomReference(demo_fleet(1), wall_offset=0.0, clock=Clock())
    idle = app.hub.connect()
    busy = app.hub.connect()
    idle.connection_made(0.0)
    busy.connection_made(0.0)
    assert idle.next_deadline() == DEFAULT_ANONYMOUS_TIMEOUT == 60.0
    busy.receive('noop {"reqId":1}', 30.0)  # traffic does not extend the grace period
    busy.receive('login {"username":"demo@example.com","password":"demo","reqId":2}', 59.0)
    assert busy.next_deadline() is None
    for server in (idle, busy):
        server.events()
        server.handle_timer(60.0)
    assert idle.state is ServerState.CLOSED
    assert idle.events() == [Closed(False)]
    assert idle not in app.hub.connections
    assert busy.state is ServerState.LOGGED_IN
    busy.receive('logout {"reqId":3}', 70.0)  # anonymous again: a new grace period
    assert busy.next_deadline() == 130.0


def test_anonymous_timeout_is_off_by_default_in_the_hub() -> None:
    hub = FleetFreedomHub(lambda user, pw: None)
    server = hub.connect()
    server.connection_made(0.0)
    assert server.next_deadline() is None
    with pytest.raises(ValueError, match="anonymous_timeout"):
        FleetFreedomHub(lambda user, pw: None, anonymous_timeout=0)


def test_anonymous_close_goes_through_the_stack() -> None:
    app = FleetFreedomReference(demo_fleet(1), wall_offset=0.0, anonymous_timeout=5.0)
    server: ServerStack[Any] = ServerStack(app.factory)
    core = FleetFreedomClient("ws://h/")
    client: ClientStack[Any] = ClientStack.from_url(core, core.url_to_open)
    server.connection_made(0.0)
    client.connection_made(0.0)
    for _ in range(3):
        server.receive(client.data_to_send(), 0.0)
        client.receive(server.data_to_send(), 0.0)
    assert server.next_deadline() == 5.0
    server.handle_timer(5.0)
    client.receive(server.data_to_send(), 5.0)  # the close frame
    server.receive(client.data_to_send(), 5.0)  # the client's answer
    assert server.state is StackState.CLOSED
    (closed,) = [e for e in client.events() if isinstance(e, ConnectionClosed)]
    assert (closed.code, closed.by_peer) == (1000, True)
