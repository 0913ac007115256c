"""The real npm ``atmosphere.js`` clients (2.3.6, 3.1.3, 4.0.1, 5.0.45) against our trio server
running the iTrack server core.

Each test runs ``interop/node/harness.js`` as a Node process against
:func:`trackwire.drivers.trio.serve` with :class:`trackwire.itrack.ITrackServer`
(``_atmosphere_peer``), and walks one session: handshake, a subscribe answered with the
response and state events, heartbeats both ways, a dropped socket and the reconnect with the
same tracking id (the application resubscribes on onReopen), and the client's HTTP close
request.  Node and the npm packages are required: run ``npm ci`` in ``interop/node``.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _atmosphere_peer import (
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    SESSION_HASH,
    ITrackTestServer,
    NodeHarness,
    Observation,
    node_setup_problem,
    tracker_state,
)

from trackwire.atmosphere import RECONNECT_PADDING, Heartbeat, encode_message, parse_open_request
from trackwire.itrack import (
    ActionReceived,
    StateRequest,
    Subscribe,
    dumps,
    encode_action,
    encode_event,
    encode_subscribe_response,
)

FRAMEWORK = {"2.3.6": "2.3.3-javascript", "3.1.3": "3.1.3-javascript", "4.0.1": "4.0.1"}
"""What each npm version announces (2.3.6 never bumped its version string)."""

HEARTBEAT_MS = 1000
SERVER_MESSAGES = [
    '{"type":"event","event":"state","data":{"source_id":1}}',
    "héllo wörld ✓ — ünïcödé",
    '{"sat":"🛰","faces":"😀😀"}',
]
SUBSCRIBE = dumps(encode_action(Subscribe([StateRequest([1])]), SESSION_HASH))
SUBSCRIBED = dumps(encode_subscribe_response(["state"], {"state": {1: "normal"}}))


def state_message(speed: float) -> str:
    return dumps(encode_event("state", tracker_state(speed).raw))


@pytest.fixture
def start_server() -> Iterator[Callable[..., ITrackTestServer]]:
    """Starts test servers (keyword arguments of :class:`ITrackTestServer`)."""
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(ITrackTestServer(**kw))


@pytest.fixture
def server(start_server: Callable[..., ITrackTestServer]) -> ITrackTestServer:
    """A server announcing 1 s client heartbeats and writing its own after 1 s of silence."""
    return start_server(heartbeat_interval_ms=HEARTBEAT_MS, server_heartbeat=1.0)


@pytest.fixture
def start_client(
    start_server: Callable[..., ITrackTestServer],
) -> Iterator[Callable[..., NodeHarness]]:
    """Starts harness processes; every one is ended (before any server stops) in teardown."""
    started: list[NodeHarness] = []

    def start(server: ITrackTestServer, version: str, *args: str) -> NodeHarness:
        problem = node_setup_problem(version)
        if problem is not None:
            pytest.fail(f"atmosphere.js {version} cannot run: {problem}", pytrace=False)
        harness = NodeHarness(version, server.url, *args, max_seconds=40)
        started.append(harness)
        harness.start()
        return harness

    try:
        yield start
    finally:
        for harness in started:
            harness.stop()
        assert all(h.proc is None or h.proc.returncode is not None for h in started)
        assert not [t for h in started for t in h.threads if t.is_alive()]


def _connect(conn: int) -> Callable[[Observation], bool]:
    return lambda o: o.kind == "connect" and o.conn == conn


def _sent(data: str) -> Callable[[dict[str, Any]], bool]:
    return lambda x: x["event"] == "ws-send" and x["data"] == data


def _received(conn: int, cls: type) -> Callable[[Observation], bool]:
    return lambda o: o.kind == "event" and o.conn == conn and isinstance(o.event, cls)


@pytest.mark.parametrize("track", [True, False], ids=["tms", "plain"])
@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_session_against_our_server(
    version: str,
    track: bool,
    server: ITrackTestServer,
    start_client: Callable[..., NodeHarness],
) -> None:
    client = start_client(server, version, *(["--track-message-length"] if track else []))
    frame = encode_message if track else (lambda m: m)

    # Handshake: the query the client sends, our handshake frame, onOpen with our uuid.
    opened = client.wait_event("open")
    first = server.wait_for("first connection", _connect(0))
    request = parse_open_request(first.target or "")
    assert request.path == "/v2/event/subscription"
    assert request.tracking_id == "0"
    assert request.framework == FRAMEWORK[version]
    assert request.transport == "websocket"
    assert request.track_message_length is track
    assert request.content_type == "application/json"
    assert request.protocol_enabled
    uuid = first.uuid
    assert opened["uuid"] == uuid
    assert client.lines("frame")[0]["data"] == frame(f"{uuid}|{HEARTBEAT_MS}|X|")

    # Server → client: one frame per write (length-prefixed in UTF-16 units with TMS).
    server.send(0, *SERVER_MESSAGES)
    client.wait_event("message", data=SERVER_MESSAGES[-1])
    assert [m["data"] for m in client.lines("message")] == SERVER_MESSAGES
    frames = [f["data"] for f in client.lines("frame")]
    assert frames[1:4] == [frame(m) for m in SERVER_MESSAGES]

    # Subscribe (client → server, never length-prefixed): the server answers with the
    # response and the tracker's current state, then pushes its next state.
    client.command("push", data=SUBSCRIBE)
    server.wait_for("the subscribe action", _received(0, ActionReceived))
    client.wait_event("message", data=SUBSCRIBED)
    client.wait_event("message", data=state_message(0))
    server.push_state(0, 12.5)
    client.wait_event("message", data=state_message(12.5))
    frames = [f["data"] for f in client.lines("frame")]
    assert frame(state_message(12.5)) in frames

    # Heartbeats: the client sends the padding on the announced cadence and the server core
    # reads them as heartbeats; the server's own heartbeat reaches the client and is not
    # delivered as a message.
    server.wait_for("two client heartbeats", _received(0, Heartbeat), timeout=6, nth=2)
    beat = "1|X" if track else "X"
    client.wait_for("server heartbeat", lambda x: x["event"] == "frame" and x["data"] == beat)
    client.wait_for("two heartbeats sent", _sent("X"), nth=2)
    sent_beats = [x["t"] for x in client.lines("ws-send") if x["data"] == "X"]
    starts = [opened["t"], *sent_beats]
    assert all(b - a >= HEARTBEAT_MS * 0.9 for a, b in itertools.pairwise(starts))
    assert not [m for m in client.lines("message") if m["data"] == "X"]

    # The server drops the socket (a TCP abort, or a clean close 1000: neither is special to
    # the client): it reconnects with the same tracking id and the same query, gets no new
    # handshake, and fires onReopen on the first frame; messages flow again.
    server.drop(0, abort=track)
    client.wait_event("reconnect", uuid=uuid)
    second = server.wait_for("reconnection", _connect(1))
    again = parse_open_request(second.target or "")
    assert again.tracking_id == uuid
    assert second.uuid == uuid
    assert [p for p in again.params if p[0] != "X-Atmosphere-tracking-id"] == [
        p for p in request.params if p[0] != "X-Atmosphere-tracking-id"
    ]
    client.wait_event("reopen", uuid=uuid)
    lines = client.lines()
    reopened_at = [i for i, x in enumerate(lines) if x["event"] == "ws-open"][1]
    after_reopen = (x["data"] for x in lines[reopened_at:] if x["event"] == "frame")
    assert next(after_reopen) == RECONNECT_PADDING
    assert len(client.lines("open")) == 1
    # The application resubscribes on onReopen; state events flow again.
    client.command("push", data=SUBSCRIBE)
    server.wait_for("the subscribe action again", _received(1, ActionReceived))
    client.wait_event("message", data=state_message(12.5))
    server.push_state(1, 30)
    client.wait_event("message", data=state_message(30))

    # close(): the HTTP close request with our tracking id reaches the server, the socket
    # is closed, and onClose reports the unsubscribe.
    client.command("close")
    close = server.wait_for("close request", lambda o: o.kind == "close-request")
    assert close.uuid == uuid
    close_request = parse_open_request(close.target or "")
    assert close_request.path == "/v2/event/subscription"
    assert [name for name, _ in close_request.params] == [
        "X-Atmosphere-Transport",
        "X-Atmosphere-tracking-id",
        "_",
    ]
    assert close_request.is_close
    assert (close_request.get("_") or "").isdigit()
    client.wait_event("close", state="unsubscribe")
    client.wait_event("http-done", status=200)
    server.wait_for("socket closed by the client", lambda o: o.kind == "disconnect" and o.conn == 1)

    assert not client.lines("exception")
    assert not client.lines("bad-line")
    assert not server.observations("error")
    assert [o.conn for o in server.observations("connect")] == [0, 1]


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_client_timeout_closes_for_good(
    version: str,
    start_server: Callable[..., ITrackTestServer],
    start_client: Callable[..., NodeHarness],
) -> None:
    # No heartbeats either way: after --timeout-ms of silence the client gives up.
    server = start_server(heartbeat_interval_ms=0, server_heartbeat=60.0)
    client = start_client(server, version, "--timeout-ms", "700")
    uuid = client.wait_event("open")["uuid"]
    client.wait_event("clientTimeout", uuid=uuid)
    close = server.wait_for("close request", lambda o: o.kind == "close-request")
    assert close.uuid == uuid
    server.wait_for("socket closed", lambda o: o.kind == "disconnect" and o.conn == 0)

    # Observed in all three versions: every state change of the close request's XHR re-arms
    # the client's inactivity timer unless the socket is being torn down.  When the XHR
    # completes after the WebSocket closed, the client times out again one period later and
    # sends another close request for the same tracking id (and so on); when it completes
    # first, nothing follows.  Which comes first is a race on the client's side (our server
    # answers at once).  Either way it never reconnects and onClose is not fired.
    client.wait_event("ws-close")
    client.wait_event("http-done", status=200)
    order = [x["event"] for x in client.lines() if x["event"] in ("ws-close", "http-done")]
    if order[0] == "ws-close":
        server.wait_for("second close request", lambda o: o.kind == "close-request", nth=2)
        client.wait_for("second timeout", lambda x: x["event"] == "clientTimeout", nth=2)
    else:
        time.sleep(1.5)  # two inactivity periods: room for a timeout or a reconnect to show
        assert len(client.lines("clientTimeout")) == 1
        assert len(server.observations("close-request")) == 1
    assert {o.uuid for o in server.observations("close-request")} == {uuid}
    assert [o.conn for o in server.observations("connect")] == [0]
    assert not client.lines("reconnect")
    assert not client.lines("close")
    assert not client.lines("exception")


@pytest.mark.parametrize("track", [True, False], ids=["tms", "plain"])
@pytest.mark.parametrize("version", MODERN_VERSIONS)
def test_modern_session_against_our_server(
    version: str,
    track: bool,
    server: ITrackTestServer,
    start_client: Callable[..., NodeHarness],
) -> None:
    """atmosphere.js 5.x: a TypeScript rewrite with its own open URL, no HTTP close request,
    and a handshake expected on every socket."""
    client = start_client(server, version, *(["--track-message-length"] if track else []))
    frame = encode_message if track else (lambda m: m)

    opened = client.wait_event("open")
    first = server.wait_for("first connection", _connect(0))
    request = parse_open_request(first.target or "")
    assert request.path == "/v2/event/subscription"
    assert [name for name, _ in request.params][:3] == [
        "X-Atmosphere-tracking-id",
        "X-Atmosphere-Framework",
        "X-Atmosphere-Transport",
    ]
    assert request.tracking_id == "0"
    assert request.framework == "5.0.7"  # what 5.0.45 announces
    assert request.track_message_length is track
    assert request.protocol_enabled
    uuid = first.uuid
    assert opened["uuid"] == uuid
    assert client.lines("frame")[0]["data"] == frame(f"{uuid}|{HEARTBEAT_MS}|X|")

    server.send(0, *SERVER_MESSAGES)
    client.wait_event("message", data=SERVER_MESSAGES[-1])
    assert [m["data"] for m in client.lines("message")] == SERVER_MESSAGES

    client.command("push", data=SUBSCRIBE)
    server.wait_for("the subscribe action", _received(0, ActionReceived))
    client.wait_event("message", data=SUBSCRIBED)
    client.wait_event("message", data=state_message(0))
    server.push_state(0, 12.5)
    client.wait_event("message", data=state_message(12.5))

    # Heartbeats on the announced cadence both ways; the server's is not a message.
    server.wait_for("two client heartbeats", _received(0, Heartbeat), timeout=6, nth=2)
    beat = "1|X" if track else "X"
    client.wait_for("server heartbeat", lambda x: x["event"] == "frame" and x["data"] == beat)
    assert not [m for m in client.lines("message") if m["data"] == "X"]

    # A dropped socket: the same tracking id and query again; our server answers a known
    # tracking id with the reconnect padding, as the Java server does.  5.x fires onReopen
    # when the socket opens and, not knowing the padding, hands it to the application as
    # a message of whitespace: applications must ignore blank messages.
    server.drop(0, abort=track)
    client.wait_event("reconnect", uuid=uuid)
    second = server.wait_for("reconnection", _connect(1))
    again = parse_open_request(second.target or "")
    assert again.tracking_id == uuid
    assert [p for p in again.params if p[0] != "X-Atmosphere-tracking-id"] == [
        p for p in request.params if p[0] != "X-Atmosphere-tracking-id"
    ]
    client.wait_event("reopen", uuid=uuid)
    client.wait_event("message", data=RECONNECT_PADDING)  # never length-prefixed
    client.command("push", data=SUBSCRIBE)
    server.wait_for("the subscribe action again", _received(1, ActionReceived))
    server.push_state(1, 30)
    client.wait_event("message", data=state_message(30))

    # close(): no HTTP close request, the socket is closed by the client.
    client.command("close")
    server.wait_for("socket closed by the client", lambda o: o.kind == "disconnect" and o.conn == 1)
    assert not server.observations("close-request")
    assert len(client.lines("open")) == 1
    assert not client.lines("exception")
    assert [o.conn for o in server.observations("connect")] == [0, 1]
