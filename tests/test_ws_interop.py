"""The stack against an independent WebSocket implementation (the ``websockets`` library):
its sans-IO protocols in memory, and a real server on 127.0.0.1 driven by the README's
select() loop."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection, serve
from websockets.uri import parse_uri

from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    Closed,
    Heartbeat,
    Message,
    Opened,
)
from trackwire.ws import (
    ClientStack,
    Connected,
    ConnectionClosed,
    ServerStack,
    StackState,
    UpgradeRequest,
    split_ws_url,
)

UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"
URL = "ws://tracker.test/v2/event/subscription"


def factory(request: UpgradeRequest) -> AtmosphereServer:
    return AtmosphereServer(request.target, heartbeat_interval_ms=30000, uuid_factory=lambda: UUID)


def frames_of(events: list[Request | Response | Frame]) -> list[tuple[Opcode, bytes]]:
    return [(e.opcode, bytes(e.data)) for e in events if isinstance(e, Frame)]


def test_websockets_client_against_our_server() -> None:
    target = AtmosphereClient(URL).url_to_open.removeprefix("ws://tracker.test")
    peer = ClientProtocol(parse_uri("ws://tracker.test" + target))
    peer.send_request(peer.connect())
    server: ServerStack[AtmosphereServer] = ServerStack(factory)
    server.connection_made(0.0)
    server.receive(b"".join(peer.data_to_send()), 0.0)
    peer.receive_data(server.data_to_send())
    events = peer.events_received()
    assert isinstance(events[0], Response)
    assert events[0].status_code == 101
    assert frames_of(events) == [(Opcode.TEXT, f"{UUID}|30000|X|".encode())]
    assert peer.state is State.OPEN

    peer.send_text(b'{"action":"subscribe"}')
    peer.send_text(b"X")
    peer.send_text("fragmé".encode()[:4], fin=False)
    peer.send_continuation("fragmé".encode()[4:], fin=True)
    peer.send_ping(b"p")
    server.receive(b"".join(peer.data_to_send()), 1.0)
    assert server.events()[1:] == [
        Opened(UUID, 30000, "X"),
        Message('{"action":"subscribe"}'),
        Heartbeat(),
        Message("fragmé"),
    ]
    server.send('{"type":"response"}')
    peer.receive_data(server.data_to_send())
    assert frames_of(peer.events_received()) == [
        (Opcode.PONG, b"p"),
        (Opcode.TEXT, b'{"type":"response"}'),
    ]

    peer.send_binary(b"\x00")
    server.receive(b"".join(peer.data_to_send()), 2.0)
    peer.receive_data(server.data_to_send())
    assert peer.close_rcvd is not None
    assert peer.close_rcvd.code == 1003
    server.receive(b"".join(peer.data_to_send()), 2.0)  # websockets echoes the close
    last = server.events()[-1]
    assert isinstance(last, ConnectionClosed)
    assert (last.code, last.by_peer) == (1003, False)
    assert server.state is StackState.CLOSED


def test_our_client_against_a_websockets_server() -> None:
    core = AtmosphereClient(URL, track_message_length=True)
    client = ClientStack.from_url(core, core.url_to_open, subprotocols=["ghost-1"])
    peer = ServerProtocol(subprotocols=["ghost-1"])  # type: ignore[list-item]
    client.connection_made(0.0)
    peer.receive_data(client.data_to_send())
    (request,) = peer.events_received()
    assert isinstance(request, Request)
    assert request.path == client.target
    peer.send_response(peer.accept(request))
    peer.send_text(f"45|{UUID}|0|X|".encode())
    peer.send_text("5|hello3|€€€".encode())
    peer.send_ping(b"are you there")
    client.receive(b"".join(peer.data_to_send()), 0.0)
    events = client.events()
    assert events[0] == Connected(client.target, "ghost-1", events[0].headers)  # type: ignore[attr-defined]
    assert events[1:] == [Opened(UUID, 0, "X"), Message("hello"), Message("€€€")]

    client.send("hi")
    peer.receive_data(client.data_to_send())
    assert frames_of(peer.events_received()) == [
        (Opcode.PONG, b"are you there"),
        (Opcode.TEXT, b"hi"),
    ]

    peer.send_close(1001, "bye")
    client.receive(b"".join(peer.data_to_send()), 1.0)
    assert client.events() == [Closed(resumable=True), ConnectionClosed(1001, "bye", by_peer=True)]
    peer.receive_data(client.data_to_send())
    assert peer.close_rcvd is not None
    assert (peer.close_rcvd.code, peer.close_rcvd.reason) == (1001, "bye")  # our echo
    peer.receive_eof()  # the driver then closes the socket
    assert peer.state is State.CLOSED


# -- the README example (its body, verbatim), against a real server ------------------


def select_example(url: str) -> list[str]:
    core = AtmosphereClient(url)
    stack = ClientStack.from_url(core, core.url_to_open)
    address = split_ws_url(core.url_to_open)  # wss: wrap the socket with ssl first
    sock = socket.create_connection((address.host, address.port))
    stack.connection_made(time.monotonic())
    received = []
    while stack.state is not StackState.CLOSED:
        sock.sendall(stack.data_to_send())
        deadline = stack.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([sock], [], [], timeout)
        now = time.monotonic()
        if readable:
            data = sock.recv(65536)
            stack.receive(data, now) if data else stack.receive_eof(now)
        if deadline is not None and now >= deadline:
            stack.handle_timer(now)
        for event in stack.events():
            if isinstance(event, Opened):
                stack.send('{"action": "subscribe", "requests": []}')
            elif isinstance(event, Message):
                received.append(event.data)
                stack.close()
    sock.sendall(stack.data_to_send())
    sock.close()
    return received


@pytest.fixture
def echo_server() -> Iterator[str]:
    """An Atmosphere-speaking ``websockets`` server: handshake frame, then echoes."""

    def handler(connection: ServerConnection) -> None:
        connection.send(f"{UUID}|0|X|")
        for message in connection:
            assert isinstance(message, str)
            connection.send(f'{{"echo": {message}}}')

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        yield f"ws://{host}:{port}/v2/event/subscription"
        server.shutdown()
        thread.join(timeout=10)


def test_select_example_runs_against_a_real_server(echo_server: str) -> None:
    assert select_example(echo_server) == ['{"echo": {"action": "subscribe", "requests": []}}']
