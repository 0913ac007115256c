"""The WebSocket stack in memory: a client stack and a server stack with the Atmosphere cores,
bytes shuttled between them, time passed explicitly."""

from __future__ import annotations

import itertools
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.events import Event as WsprotoEvent

from trackwire import Core, CoreBase, Event, LocalProtocolError, RemoteProtocolError
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    ClientState,
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
)
from trackwire.ws import (
    Accept,
    BinaryMessage,
    ClientStack,
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    PongReceived,
    Refuse,
    Rejected,
    ServerStack,
    StackBase,
    StackState,
    UpgradeRequest,
    WsEvent,
)

URL = "ws://tracker.test/v2/event/subscription"
UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"


def atmosphere_factory(**options: Any) -> Any:
    def factory(request: UpgradeRequest) -> AtmosphereServer:
        return AtmosphereServer(request.target, uuid_factory=lambda: UUID, **options)

    return factory


class Pair:
    """A client stack and a server stack joined in memory."""

    def __init__(
        self,
        client_core: Any = None,
        factory: Any = None,
        *,
        client_options: dict[str, Any] | None = None,
        server_options: dict[str, Any] | None = None,
    ) -> None:
        core = client_core or AtmosphereClient(URL, content_type="application/json")
        self.client: ClientStack[Any] = ClientStack.from_url(
            core, core.url_to_open, **(client_options or {})
        )
        self.server: ServerStack[Any] = ServerStack(
            factory or atmosphere_factory(heartbeat_interval_ms=30000),
            **(server_options or {}),
        )
        self.client_log: list[Event] = []
        self.server_log: list[Event] = []

    def start(self, now: float = 0.0) -> Pair:
        self.client.connection_made(now)
        self.server.connection_made(now)
        self.shuttle(now)
        return self

    def shuttle(self, now: float = 0.0) -> None:
        """Move bytes both ways until neither side has anything to write."""
        while True:
            up = self.client.data_to_send()
            if up and self.server.state is not StackState.CLOSED:
                self.server.receive(up, now)
            down = self.server.data_to_send()
            if down and self.client.state is not StackState.CLOSED:
                self.client.receive(down, now)
            self.client_log += self.client.events()
            self.server_log += self.server.events()
            if not up and not down:
                return

    def take(self) -> tuple[list[Event], list[Event]]:
        logs = self.client_log, self.server_log
        self.client_log, self.server_log = [], []
        return logs


def state_of(stack: StackBase[Any]) -> StackState:
    """The state, through a call (keeps type checkers from narrowing across calls)."""
    return stack.state


def wsproto_peer(role: ConnectionType) -> Connection:
    """A bare wsproto frame layer, to send what our stacks never would."""
    return Connection(role)


def frames(conn: Connection, data: bytes) -> list[WsprotoEvent]:
    conn.receive_data(data)
    return list(conn.events())


def open_server(**server_options: Any) -> tuple[ServerStack[Any], Connection]:
    """A server stack that accepted a handshake, and a raw wsproto client frame layer."""
    pair = Pair(server_options=server_options).start()
    server = pair.server
    server.events()
    return server, wsproto_peer(ConnectionType.CLIENT)


def open_client(**client_options: Any) -> tuple[ClientStack[Any], Connection]:
    pair = Pair(client_options=client_options).start()
    pair.client.events()
    return pair.client, wsproto_peer(ConnectionType.SERVER)


# -- the handshake -------------------------------------------------------------------


def test_handshake_opens_both_sides_and_starts_the_cores() -> None:
    pair = Pair().start()
    client_events, server_events = pair.take()
    target = pair.client.target
    assert target.startswith("/v2/event/subscription?X-Atmosphere-tracking-id=0&")
    assert client_events == [Connected(target, None, []), Opened(UUID, 30000, "X")]
    assert isinstance(server_events[0], Connected)
    assert server_events[0].target == target
    assert ("host", "tracker.test") in server_events[0].headers
    assert server_events[1:] == [Opened(UUID, 30000, "X")]
    assert pair.client.state is pair.server.state is StackState.OPEN
    assert pair.client.core.state is ClientState.OPEN
    assert pair.server.request is not None
    assert pair.server.request.host == "tracker.test"


def test_stacks_offer_the_core_interface() -> None:
    pair = Pair()
    assert isinstance(pair.client, Core)
    assert isinstance(pair.server, Core)


def test_server_core_is_unavailable_before_the_upgrade() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        _ = pair.server.core


def test_handshake_with_extra_headers_and_subprotocols() -> None:
    seen: list[UpgradeRequest] = []

    def factory(request: UpgradeRequest) -> Accept[AtmosphereServer]:
        seen.append(request)
        return Accept(
            AtmosphereServer(request.target, uuid_factory=lambda: UUID),
            subprotocol=request.subprotocols[0],
            headers=[("X-Served-By", "test")],
        )

    core = AtmosphereClient(URL)
    pair = Pair(
        core,
        factory,
        client_options={
            "subprotocols": ["ghost-123", "other"],
            "extra_headers": [("Authorization", "Bearer t")],
        },
    ).start()
    client_events, server_events = pair.take()
    assert seen[0].subprotocols == ["ghost-123", "other"]
    assert seen[0].header("AUTHORIZATION") == "Bearer t"
    assert seen[0].header("missing") is None
    connected = client_events[0]
    assert isinstance(connected, Connected)
    assert connected.subprotocol == "ghost-123"
    assert ("x-served-by", "test") in connected.headers
    assert isinstance(server_events[0], Connected)
    assert server_events[0].subprotocol == "ghost-123"


def test_factory_choosing_an_unoffered_subprotocol_is_a_local_error() -> None:
    def factory(request: UpgradeRequest) -> Accept[AtmosphereServer]:
        return Accept(AtmosphereServer(request.target), subprotocol="nope")

    with pytest.raises(LocalProtocolError, match="subprotocol"):
        Pair(factory=factory).start()


def test_refused_upgrade_reaches_the_client_as_rejected() -> None:
    def factory(request: UpgradeRequest) -> Refuse:
        return Refuse(403, [("Content-Type", "text/plain")], b"who are you?")

    pair = Pair(factory=factory).start()
    client_events, server_events = pair.take()
    assert client_events == [
        Rejected(
            403,
            [("content-type", "text/plain"), ("content-length", "12"), ("connection", "close")],
            b"who are you?",
        )
    ]
    assert server_events == [Rejected(403, [("content-type", "text/plain")], b"who are you?")]
    assert pair.client.state is pair.server.state is StackState.CLOSED
    assert pair.client.core.state is ClientState.CONNECTING  # never started


def test_rejection_body_ending_with_the_connection() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/")
    client.connection_made(0.0)
    client.receive(b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\npartial", 0.0)
    assert client.events() == []
    client.receive_eof(1.0)
    assert client.events() == [Rejected(503, [("connection", "close")], b"partial")]
    assert client.state is StackState.CLOSED


def test_garbage_response_is_a_handshake_failure() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/")
    client.connection_made(0.0)
    client.receive(b"\x16\x03\x01 not http at all\r\n\r\n", 0.0)
    (event,) = client.events()
    assert isinstance(event, HandshakeFailed)
    assert isinstance(event.error, RemoteProtocolError)
    assert "bad handshake response" in str(event.error)
    assert client.state is StackState.CLOSED


def test_101_with_a_wrong_accept_token_is_a_handshake_failure() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/")
    client.connection_made(0.0)
    client.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: wrong\r\n\r\n",
        0.0,
    )
    (event,) = client.events()
    assert isinstance(event, HandshakeFailed)
    assert "accept" in str(event.error).lower()


def test_eof_mid_handshake_on_the_client() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/")
    client.connection_made(0.0)
    client.receive(b"HTTP/1.1 101 Switching", 0.0)
    client.receive_eof(1.0)
    (event,) = client.events()
    assert isinstance(event, HandshakeFailed)
    assert "closed before the handshake response" in str(event.error)
    assert client.state is StackState.CLOSED
    client.receive_eof(2.0)  # idempotent once closed
    assert client.events() == []


def test_eof_mid_request_on_the_server_fails_without_an_answer() -> None:
    server = ServerStack(atmosphere_factory())
    server.connection_made(0.0)
    server.receive(b"GET /v2/event/subscription HTTP/1.1\r\nHost: x\r\n", 0.0)
    server.receive_eof(1.0)
    (event,) = server.events()
    assert isinstance(event, HandshakeFailed)
    assert "middle of a request" in str(event.error)
    assert server.data_to_send() == b""
    assert server.state is StackState.CLOSED


def test_handshake_timeout_on_the_client() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/", handshake_timeout=5.0)
    client.connection_made(100.0)
    assert client.next_deadline() == 105.0
    client.handle_timer(104.9)
    assert client.events() == []
    client.handle_timer(105.0)
    (event,) = client.events()
    assert isinstance(event, HandshakeFailed)
    assert "within 5.0 s" in str(event.error)
    assert client.state is StackState.CLOSED
    assert client.next_deadline() is None


def test_feeding_before_the_start_or_after_the_end_is_misuse() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/")
    with pytest.raises(LocalProtocolError):
        client.receive(b"x", 0.0)
    client.connection_made(0.0)
    client.close()
    assert client.state is StackState.CLOSED
    assert client.events() == []
    with pytest.raises(LocalProtocolError):
        client.receive(b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        client.connection_made(0.0)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        ClientStack(AtmosphereClient(URL), "h", max_message_size=0)
    with pytest.raises(ValueError, match="timeouts"):
        ClientStack(AtmosphereClient(URL), "h", close_timeout=-1)


# -- messages ------------------------------------------------------------------------


def test_messages_both_ways() -> None:
    pair = Pair().start()
    pair.take()
    pair.client.send('{"action":"subscribe","requests":[]}')
    pair.server.send('{"type":"event","event":"state","data":{"é":"😀"}}')
    pair.server.send("second")
    pair.shuttle(1.0)
    client_events, server_events = pair.take()
    assert client_events == [
        Message('{"type":"event","event":"state","data":{"é":"😀"}}'),
        Message("second"),
    ]
    assert server_events == [Message('{"action":"subscribe","requests":[]}')]


def test_core_output_waits_for_the_handshake() -> None:
    client = ClientStack(AtmosphereClient(URL, enable_protocol=False), "h", "/")
    server = ServerStack(lambda r: AtmosphereServer(r.target))
    client.connection_made(0.0)
    server.connection_made(0.0)
    server.receive(client.data_to_send(), 0.0)
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 ")
    client.receive(response, 0.0)
    client.send("hello")  # the unprotocolled client is open at once
    server.receive(client.data_to_send(), 0.0)
    assert server.events()[-1] == Message("hello")


def test_sending_after_close_is_misuse() -> None:
    pair = Pair().start()
    pair.client.close()
    with pytest.raises(LocalProtocolError, match="closing"):
        pair.client.send("late")


def test_whole_message_splits_into_many_frames() -> None:
    server, peer = open_server()
    data = b"".join(
        [
            peer.send(TextMessage("ab", message_finished=False)),
            peer.send(TextMessage("cd", message_finished=False)),
            peer.send(Ping(b"mid")),  # control frames may sit between fragments
            peer.send(TextMessage("é", message_finished=True)),
        ]
    )
    server.receive(data, 1.0)
    assert server.events() == [Message("abcdé")]
    assert frames(peer, server.data_to_send()) == [Pong(b"mid")]


# -- timers --------------------------------------------------------------------------


def test_heartbeats_run_on_the_fake_clock() -> None:
    core = AtmosphereClient(URL)
    pair = Pair(core, atmosphere_factory(heartbeat_interval_ms=30000, server_heartbeat=60.0))
    pair.start(0.0)
    pair.take()
    # The client heartbeat (30 s) comes before the server's (60 s) and the close timeout.
    assert pair.client.next_deadline() == 30.0
    assert pair.server.next_deadline() == 60.0
    pair.client.handle_timer(30.0)
    pair.shuttle(30.0)
    assert pair.take() == ([], [Heartbeat()])
    pair.server.handle_timer(60.0)
    pair.client.handle_timer(60.0)
    pair.shuttle(60.0)
    assert pair.take() == ([Heartbeat()], [Heartbeat()])


def test_deadline_is_the_earliest_of_stack_and_core() -> None:
    core = AtmosphereClient(URL, inactivity_timeout=300.0)
    pair = Pair(core, atmosphere_factory(heartbeat_interval_ms=0, server_heartbeat=0.0))
    pair.start(0.0)
    assert pair.client.next_deadline() == 300.0  # the core's inactivity timeout
    pair.client.close(now=10.0)
    # Closing: the stack's close timeout; the core is no longer consulted.
    assert pair.client.next_deadline() == 20.0


def test_a_finished_core_closes_the_websocket() -> None:
    core = AtmosphereClient(URL, inactivity_timeout=300.0)
    pair = Pair(core, atmosphere_factory(heartbeat_interval_ms=0, server_heartbeat=0.0))
    pair.start(0.0)
    pair.take()
    pair.client.handle_timer(300.0)
    (timeout,) = pair.client.events()
    assert isinstance(timeout, InactivityTimeout)
    assert timeout.close_url is not None
    assert timeout.close_url.startswith("http://tracker.test/v2/event/subscription?")
    pair.shuttle(300.0)  # data_to_send sees the core CLOSED and starts the close handshake
    client_events, server_events = pair.take()
    assert server_events == [Closed(resumable=True), ConnectionClosed(1000, "", by_peer=True)]
    assert client_events == [ConnectionClosed(1000, "", by_peer=False)]
    assert pair.client.state is pair.server.state is StackState.CLOSED


def test_close_with_core_can_be_turned_off() -> None:
    core = AtmosphereClient(URL)
    pair = Pair(core, client_options={"close_with_core": False}).start()
    core.close(1.0)
    pair.shuttle(1.0)
    assert pair.client.state is StackState.OPEN


# -- control frames and closing ------------------------------------------------------


def test_ping_is_answered_and_pong_reported() -> None:
    pair = Pair().start()
    pair.take()
    pair.client.ping(b"t=1")
    pair.shuttle(1.0)
    assert pair.take() == ([PongReceived(b"t=1")], [])
    with pytest.raises(ValueError, match="125"):
        pair.client.ping(b"x" * 126)


def test_ping_needs_an_open_websocket() -> None:
    client = ClientStack(AtmosphereClient(URL), "h", "/")
    with pytest.raises(LocalProtocolError):
        client.ping()


def test_client_initiated_close_handshake() -> None:
    pair = Pair().start()
    pair.take()
    pair.client.close(1000, "bye")
    assert state_of(pair.client) is StackState.CLOSING
    pair.client.close()  # a second close while closing changes nothing
    pair.shuttle(1.0)
    client_events, server_events = pair.take()
    # Each core hears the end first; ConnectionClosed is the last event, once.
    assert client_events == [Closed(resumable=True), ConnectionClosed(1000, "bye", by_peer=False)]
    assert server_events == [Closed(resumable=True), ConnectionClosed(1000, "bye", by_peer=True)]
    assert pair.client.state is pair.server.state is StackState.CLOSED
    pair.client.close()  # idempotent
    pair.client.receive_eof(2.0)
    assert pair.client.events() == []


def test_server_initiated_close_handshake() -> None:
    pair = Pair().start()
    pair.take()
    pair.server.close(1001, "going away")
    pair.shuttle(1.0)
    client_events, server_events = pair.take()
    assert client_events[-1] == ConnectionClosed(1001, "going away", by_peer=True)
    assert server_events[-1] == ConnectionClosed(1001, "going away", by_peer=False)


def test_close_timeout_when_the_peer_never_answers() -> None:
    client, _ = open_client(close_timeout=5.0)
    client.close(now=10.0)
    assert client.data_to_send()  # the close frame
    assert client.next_deadline() == 15.0
    client.handle_timer(15.0)
    assert client.events() == [Closed(resumable=True), ConnectionClosed(1000, "", by_peer=False)]
    assert client.state is StackState.CLOSED


def test_eof_while_closing_ends_the_close() -> None:
    client, _ = open_client()
    client.close(4000, "app")
    client.receive_eof(1.0)
    assert client.events()[-1] == ConnectionClosed(4000, "app", by_peer=False)


def test_eof_without_close_frame_is_abnormal_and_reaches_the_core() -> None:
    pair = Pair().start()
    pair.take()
    pair.server.receive_eof(1.0)
    assert pair.server.events() == [Closed(resumable=True), ConnectionClosed(1006, by_peer=True)]
    assert pair.server.state is StackState.CLOSED


def test_data_after_our_close_frame_is_discarded() -> None:
    server, peer = open_server()
    server.close(1000)
    server.data_to_send()
    server.receive(peer.send(TextMessage("late")) + peer.send(BytesMessage(b"late")), 1.0)
    assert server.events() == []
    server.receive(peer.send(CloseConnection(1000)), 1.0)
    assert server.events()[-1] == ConnectionClosed(1000, "", by_peer=False)


def test_close_before_open_abandons_quietly() -> None:
    pair = Pair()
    pair.client.connection_made(0.0)
    pair.client.close()
    assert pair.client.state is StackState.CLOSED
    assert pair.client.events() == []


# -- what the peer may not send ------------------------------------------------------


def test_binary_frame_is_refused_with_1003() -> None:
    server, peer = open_server()
    server.receive(peer.send(BytesMessage(b"\x00\x01")), 1.0)
    assert server.state is StackState.CLOSING
    assert server.events() == []
    (close,) = frames(peer, server.data_to_send())
    assert isinstance(close, CloseConnection)
    assert close.code == 1003
    server.receive(peer.send(close.response()), 2.0)
    *_, last = server.events()
    assert isinstance(last, ConnectionClosed)
    assert (last.code, last.by_peer) == (1003, False)
    assert isinstance(last.error, RemoteProtocolError)
    assert "binary" in str(last.error)


def test_binary_frames_reported_when_accepted() -> None:
    server, peer = open_server(accept_binary=True)
    server.receive(
        peer.send(BytesMessage(b"ab", message_finished=False)) + peer.send(BytesMessage(b"c")),
        1.0,
    )
    assert server.events() == [BinaryMessage(b"abc")]
    assert server.state is StackState.OPEN


def test_oversize_message_is_refused_with_1009() -> None:
    server, peer = open_server(max_message_size=100)
    server.receive(peer.send(TextMessage("x" * 100)), 1.0)
    assert server.events() == [Message("x" * 100)]
    server.receive(peer.send(TextMessage("x" * 101)), 1.0)
    assert server.events() == []
    (close,) = frames(peer, server.data_to_send())
    assert isinstance(close, CloseConnection)
    assert close.code == 1009


def test_size_limit_is_enforced_while_assembling_fragments() -> None:
    server, peer = open_server(max_message_size=100)
    server.receive(peer.send(TextMessage("x" * 60, message_finished=False)), 1.0)
    assert server.data_to_send() == b""
    # Over the limit before the last fragment: refused now, not at the end.
    server.receive(peer.send(TextMessage("x" * 60, message_finished=False)), 1.0)
    (close,) = frames(peer, server.data_to_send())
    assert isinstance(close, CloseConnection)
    assert close.code == 1009
    assert server.events() == []


def test_size_limit_holds_for_a_frame_arriving_in_pieces() -> None:
    server, peer = open_server(max_message_size=100)
    data = peer.send(TextMessage("y" * 1000))
    server.receive(data[:60], 1.0)
    assert state_of(server) is StackState.OPEN
    server.receive(data[60:200], 1.0)
    assert server.state is StackState.CLOSING
    server.receive(data[200:], 1.0)
    assert server.events() == []


def test_garbage_frames_fail_the_connection() -> None:
    server, peer = open_server()
    server.receive(b"\xff\xff\xff\xff garbage", 1.0)
    *_, last = server.events()
    assert isinstance(last, ConnectionClosed)
    assert (last.code, last.by_peer) == (1002, False)
    assert isinstance(last.error, RemoteProtocolError)
    assert "bad WebSocket frame" in str(last.error)
    assert server.state is StackState.CLOSED
    (close,) = frames(peer, server.data_to_send())
    assert isinstance(close, CloseConnection)
    assert close.code == 1002


def test_invalid_utf8_fails_with_1007() -> None:
    client, _ = open_client()
    server_frames = Connection(ConnectionType.SERVER)
    frame = bytearray(server_frames.send(TextMessage("ab")))
    frame[-1] = 0xFF
    client.receive(bytes(frame), 1.0)
    *_, last = client.events()
    assert isinstance(last, ConnectionClosed)
    assert last.code == 1007


def test_unmasked_frame_from_a_client_is_a_protocol_error() -> None:
    server, _ = open_server()
    server.receive(Connection(ConnectionType.SERVER).send(TextMessage("unmasked")), 1.0)
    *_, last = server.events()
    assert isinstance(last, ConnectionClosed)
    assert last.code == 1002


class RawServer(CoreBase[Event]):
    """A server core that writes whatever it is given, to break the client core on purpose."""

    state = ClientState.OPEN

    def connection_made(self, now: float) -> None:
        pass

    def receive(self, data: str, now: float) -> None:
        pass

    def receive_eof(self, now: float) -> None:
        pass

    def send(self, item: str, now: float | None = None) -> None:
        self._out.append(item)

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def test_remote_protocol_error_from_the_core_closes_with_1002() -> None:
    core = AtmosphereClient(URL, track_message_length=True)
    pair = Pair(core, lambda request: RawServer()).start()
    pair.take()
    pair.server.send(f"45|{UUID}|0|X|")
    pair.shuttle(1.0)
    assert pair.client_log == [Opened(UUID, 0, "X")]
    pair.take()
    pair.server.send("abc|corrupt")  # not a length: the stream is desynchronised
    pair.shuttle(2.0)
    client_events, _ = pair.take()
    (last,) = client_events  # the core in ERROR reports nothing more on EOF
    assert isinstance(last, ConnectionClosed)
    assert (last.code, last.by_peer) == (1002, False)
    assert isinstance(last.error, RemoteProtocolError)
    assert "not a number" in str(last.error)
    assert core.state is ClientState.ERROR


class StrictCore(RawServer):
    """Raises a RemoteProtocolError that asks for a policy close (1008)."""

    def receive(self, data: str, now: float) -> None:
        raise RemoteProtocolError("not allowed here", frame=data, close_code=1008)


def test_core_error_may_ask_for_another_close_code() -> None:
    core = AtmosphereClient(URL, enable_protocol=False)
    pair = Pair(core, lambda request: StrictCore()).start()
    pair.take()
    pair.client.send("anything")
    pair.shuttle(1.0)
    client_events, server_events = pair.take()
    assert client_events[-1] == ConnectionClosed(
        1008, "not allowed here; frame 'anything'", by_peer=True
    )
    last = server_events[-1]
    assert isinstance(last, ConnectionClosed)
    assert last.code == 1008
    assert last.error is not None


def test_local_protocol_error_from_the_core_propagates() -> None:
    core = AtmosphereClient(URL)
    pair = Pair(core, client_options={"close_with_core": False}).start()
    core.close(1.0)
    pair.server.send("after the core closed")
    with pytest.raises(LocalProtocolError):
        pair.shuttle(1.0)


# -- splitting the stream anywhere ---------------------------------------------------

_NONCE = b"dGhlIHNhbXBsZSBub25jZQ=="


def _server_transcript() -> bytes:
    """Everything a server sends a client (whose nonce is fixed) in one rich session."""
    pair = Pair(AtmosphereClient(URL, track_message_length=True))
    with mock.patch("wsproto.handshake.generate_nonce", return_value=_NONCE):
        pair.client.connection_made(0.0)
    pair.server.connection_made(0.0)
    pair.server.receive(pair.client.data_to_send(), 0.0)
    pair.server.send("hello")
    pair.server.send('{"é": "😀"}')
    raw = Connection(ConnectionType.SERVER)
    return pair.server.data_to_send() + b"".join(
        [
            raw.send(TextMessage("5|ab", message_finished=False)),
            raw.send(Ping(b"p")),
            raw.send(TextMessage("cde3|€€€")),
            raw.send(Pong(b"q")),
            raw.send(TextMessage("1|X")),
            raw.send(CloseConnection(1000, "done")),
        ]
    )


def _client_transcript() -> bytes:
    core = AtmosphereClient(URL)
    client = ClientStack.from_url(core, core.url_to_open)
    client.connection_made(0.0)
    raw = Connection(ConnectionType.CLIENT)
    return client.data_to_send() + b"".join(
        [
            raw.send(TextMessage('{"action":"subscribe"}')),
            raw.send(TextMessage("X")),
            raw.send(TextMessage("frag", message_finished=False)),
            raw.send(TextMessage("mé", message_finished=True)),
            raw.send(Ping(b"p")),
            raw.send(CloseConnection(1001)),
        ]
    )


SERVER_BYTES = _server_transcript()
CLIENT_BYTES = _client_transcript()


def _feed(stack: Any, data: bytes, cuts: list[int]) -> tuple[list[Event], bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    with mock.patch("wsproto.handshake.generate_nonce", return_value=_NONCE):
        stack.connection_made(0.0)
    out = [stack.data_to_send()]
    events: list[Event] = []
    for start, end in itertools.pairwise(points):
        stack.receive(data[start:end], 1.0)
        events += stack.events()
        out.append(stack.data_to_send())
    return events, b"".join(out)


def _fresh_client() -> ClientStack[AtmosphereClient]:
    core = AtmosphereClient(URL, track_message_length=True)
    return ClientStack.from_url(core, core.url_to_open)


def _fresh_server() -> ServerStack[AtmosphereServer]:
    return ServerStack(atmosphere_factory(heartbeat_interval_ms=30000))


def test_transcripts_produce_the_expected_events() -> None:
    client_events, _ = _feed(_fresh_client(), SERVER_BYTES, [])
    assert [e for e in client_events if not isinstance(e, WsEvent)] == [
        Opened(UUID, 30000, "X"),
        Message("hello"),
        Message('{"é": "😀"}'),
        Message("abcde"),
        Message("€€€"),
        Heartbeat(),
        Closed(resumable=True),
    ]
    assert PongReceived(b"q") in client_events
    assert client_events[-1] == ConnectionClosed(1000, "done", by_peer=True)
    server_events, _ = _feed(_fresh_server(), CLIENT_BYTES, [])
    assert [e for e in server_events if not isinstance(e, WsEvent)] == [
        Opened(UUID, 30000, "X"),
        Message('{"action":"subscribe"}'),
        Heartbeat(),
        Message("fragmé"),
        Closed(resumable=True),
    ]
    assert server_events[-1] == ConnectionClosed(1001, "", by_peer=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=12))
def test_splitting_server_bytes_anywhere_gives_the_same_events(cuts: list[int]) -> None:
    whole, _ = _feed(_fresh_client(), SERVER_BYTES, [])
    split, _ = _feed(_fresh_client(), SERVER_BYTES, cuts)
    assert split == whole


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=12))
def test_splitting_client_bytes_anywhere_gives_the_same_events_and_bytes(cuts: list[int]) -> None:
    whole, whole_out = _feed(_fresh_server(), CLIENT_BYTES, [])
    split, split_out = _feed(_fresh_server(), CLIENT_BYTES, cuts)
    assert split == whole
    assert split_out == whole_out


# -- the state machine and the event queue -------------------------------------------


def test_every_state_can_end_and_closed_is_final() -> None:
    from trackwire.ws._state import TRANSITIONS

    moves: dict[StackState, set[StackState]] = {state: set() for state in StackState}
    for (state, _), new in TRANSITIONS.items():
        moves[state].add(new)
    assert moves[StackState.CLOSED] == {StackState.CLOSED}
    for state in StackState:
        seen, todo = {state}, [state]
        while todo:
            for new in moves[todo.pop()] - seen:
                seen.add(new)
                todo.append(new)
        assert StackState.CLOSED in seen, state


def test_next_event_gives_the_same_order_as_events() -> None:
    def run(pop_one_by_one: bool) -> list[Event]:
        client, peer = open_client()
        client.receive(
            peer.send(TextMessage("a")) + peer.send(Pong(b"1")) + peer.send(TextMessage("b")), 1.0
        )
        if not pop_one_by_one:
            return client.events()
        popped = []
        while (event := client.next_event()) is not None:
            popped.append(event)
        return popped

    expected = [Message("a"), PongReceived(b"1"), Message("b")]
    assert run(pop_one_by_one=False) == expected
    assert run(pop_one_by_one=True) == expected


def test_frames_after_the_core_finished_in_the_same_read_are_discarded() -> None:
    # An iTrack logout closes the client core; a frame right behind it in the same TCP read
    # must not make the stack raise (it is data after a close) and the close starts.
    import wsproto
    from wsproto.events import AcceptConnection, Request, TextMessage

    from trackwire.itrack import ITrackClient, LogoutEvent

    client = ITrackClient(
        "http://127.0.0.1/v2/event/subscription", "f4bf1b754034213653dad99c78c4b237"
    )
    stack = ClientStack.from_url(client, client.url_to_open)
    stack.connection_made(0.0)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(stack.data_to_send())
    request = next(e for e in server.events() if isinstance(e, Request))
    handshake = server.send(AcceptConnection())
    logout = '{"type":"event","event":"logout","data":"session closed"}'
    burst = b"".join(
        server.send(TextMessage(text))
        for text in ("u-1|0|X|", logout, '{"type":"event","event":"lifecycle","data":{}}')
    )
    assert request.target.startswith("/v2/event/subscription?")
    stack.receive(handshake + burst, 1.0)
    assert any(isinstance(e, LogoutEvent) for e in stack.events())
    assert stack.state is StackState.CLOSING
    assert stack.data_to_send()  # the close frame
