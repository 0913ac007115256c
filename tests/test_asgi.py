"""The ASGI driver in process: an ASGI server played by queues, the app and real cores."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from trackwire import Event
from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet
from trackwire.drivers.asgi import ASGIApp, ASGIConnection
from trackwire.itrack import ITrackServer
from trackwire.ws import (
    AtmosphereCloseRequested,
    Connected,
    ConnectionClosed,
    HttpRequestHandled,
    Refuse,
    Rejected,
    UpgradeRequest,
)

Message = dict[str, Any]
OPEN = (
    "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=4.0.1"
    "&X-Atmosphere-Transport=websocket&X-atmo-protocol=true"
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


class Peer:
    """One ASGI connection as the server sees it: what the app sent, what it will receive."""

    def __init__(self, app: ASGIApp[Any], scope: dict[str, Any]) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self._sent_event = asyncio.Event()
        self.task = asyncio.ensure_future(app(scope, self.inbox.get, self._send))

    async def _send(self, message: Message) -> None:
        self.sent.append(message)
        self._sent_event.set()

    def put(self, message: Message) -> None:
        self.inbox.put_nowait(message)

    async def wait_for(self, test: Callable[[Message], bool], nth: int = 1) -> Message:
        while True:
            found = [m for m in self.sent if test(m)]
            if len(found) >= nth:
                return found[nth - 1]
            self._sent_event.clear()
            await self._sent_event.wait()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]


def ws_scope(target: str, subprotocols: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    path, _, query = target.partition("?")
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1:1")],
        "subprotocols": subprotocols or [],
        "client": ("127.0.0.1", 5555),
        **extra,
    }


def http_scope(method: str, target: str) -> dict[str, Any]:
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1:1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5555),
    }


async def http(app: ASGIApp[Any], method: str, target: str, body: bytes = b"") -> Peer:
    peer = Peer(app, http_scope(method, target))
    peer.put({"type": "http.request", "body": body, "more_body": False})
    await peer.task
    return peer


def itrack_app(
    events: list[tuple[ASGIConnection[Any] | None, Event]] | None = None,
) -> tuple[ASGIApp[Any], ITrackReference]:
    reference = ITrackReference(demo_fleet(3), heartbeat_interval_ms=30000)
    on_event = None if events is None else (lambda conn, event: events.append((conn, event)))
    app = ASGIApp(reference.factory, http_handler=reference.http_handler, on_event=on_event)
    return app, reference


def demo_tracker(reference: ITrackReference) -> int:
    return min(v.id for v in reference.fleet.vehicles.values() if v.tenant == "demo")


async def login(app: ASGIApp[Any]) -> str:
    peer = await http(
        app, "POST", "/v2/user/auth", json.dumps({"login": "demo", "password": "demo"}).encode()
    )
    assert peer.sent[0]["status"] == 200
    return str(json.loads(peer.sent[1]["body"])["hash"])


def test_plain_http_user_auth_404_and_close_request() -> None:
    events: list[tuple[ASGIConnection[Any] | None, Event]] = []

    async def main() -> None:
        app, _ = itrack_app(events)
        assert len(await login(app)) == 32
        missing = await http(app, "GET", "/nowhere")
        assert missing.sent[0]["status"] == 404
        assert missing.sent[1]["body"] == b"Not Found\n"
        query = urlencode({"X-Atmosphere-Transport": "close", "X-Atmosphere-tracking-id": "abc"})
        closed = await http(app, "GET", f"/v2/event/subscription?{query}")
        assert closed.sent[0]["status"] == 200
        head = await http(app, "HEAD", "/nowhere")
        assert head.sent[1]["body"] == b""

    run(main())
    kinds = [type(event) for _, event in events]
    assert kinds == [
        HttpRequestHandled,
        HttpRequestHandled,
        AtmosphereCloseRequested,
        HttpRequestHandled,
    ]
    close = events[2][1]
    assert isinstance(close, AtmosphereCloseRequested)
    assert close.tracking_id == "abc"


def test_http_body_over_the_limit_is_413_and_a_failing_handler_is_500() -> None:
    def broken(method: str, target: str, headers: Any, body: bytes) -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        app = ASGIApp(lambda request: Refuse(), http_handler=broken, max_http_body=10)
        big = Peer(app, http_scope("POST", "/x"))
        big.put({"type": "http.request", "body": b"x" * 6, "more_body": True})
        big.put({"type": "http.request", "body": b"x" * 6, "more_body": False})
        await big.task
        assert big.sent[0]["status"] == 413
        failed = await http(app, "GET", "/x")
        assert failed.sent[0]["status"] == 500

    run(main())


def test_itrack_subscription_over_asgi_heartbeats_and_pushes() -> None:
    async def main() -> None:
        app, reference = itrack_app()
        session_hash = await login(app)
        peer = Peer(app, ws_scope(OPEN))
        peer.put({"type": "websocket.connect"})
        accept = await peer.wait_for(lambda m: m["type"] == "websocket.accept")
        assert accept["subprotocol"] is None
        handshake = await peer.wait_for(lambda m: m["type"] == "websocket.send")
        assert handshake["text"].split("|")[1:] == ["30000", "X", ""]
        action = {
            "action": "subscribe",
            "hash": session_hash,
            "requests": [{"type": "state", "trackers": [demo_tracker(reference)]}],
        }
        peer.put({"type": "websocket.receive", "text": json.dumps(action)})
        await peer.wait_for(lambda m: '"type":"response"' in m.get("text", ""))
        await peer.wait_for(lambda m: '"event":"state"' in m.get("text", ""))
        # A push from outside reaches the socket after flush().
        (core,) = [conn.core for conn in app.connections.values()]
        assert isinstance(core, ITrackServer)
        before = len(peer.texts())
        app.flush(reference.logout("demo", app.clock()))
        await peer.wait_for(lambda m: '"event":"logout"' in m.get("text", ""))
        assert len(peer.texts()) == before + 1
        peer.put({"type": "websocket.disconnect", "code": 1000})
        await peer.task
        assert not app.connections

    run(main())


def test_refused_upgrade_uses_the_http_response_extension_when_offered() -> None:
    async def main() -> None:
        app, _ = itrack_app()
        plain = Peer(app, ws_scope("/elsewhere"))
        plain.put({"type": "websocket.connect"})
        await plain.task
        assert plain.sent == [{"type": "websocket.close", "code": 1008}]
        rich = Peer(app, ws_scope("/elsewhere", extensions={"websocket.http.response": {}}))
        rich.put({"type": "websocket.connect"})
        await rich.task
        assert rich.sent[0]["type"] == "websocket.http.response.start"
        assert rich.sent[0]["status"] == 404
        assert rich.sent[1] == {"type": "websocket.http.response.body", "body": b"Not Found\n"}

    run(main())


LOGIN = 'login {"reqId":1,"username":"demo@example.com","password":"demo","userAgent":"t"}'


GHOST = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_fleetfreedom_ghost_id_as_a_subprotocol_is_echoed() -> None:
    async def main() -> None:
        reference = FleetFreedomReference(demo_fleet(2), ghost_ids=lambda: GHOST)
        app = ASGIApp(reference.factory, ticker=reference)
        first = Peer(app, ws_scope("/"))
        first.put({"type": "websocket.connect"})
        await first.wait_for(lambda m: "connectionResponse" in m.get("text", ""))
        first.put(
            {
                "type": "websocket.receive",
                "text": LOGIN,
            }
        )
        await first.wait_for(lambda m: "loginResponse" in m.get("text", ""))
        first.put({"type": "websocket.disconnect", "code": 1006})
        await first.task
        second = Peer(app, ws_scope("/", subprotocols=[GHOST]))
        second.put({"type": "websocket.connect"})
        accept = await second.wait_for(lambda m: m["type"] == "websocket.accept")
        assert accept["subprotocol"] == GHOST
        resumed = await second.wait_for(lambda m: "connectionResponse" in m.get("text", ""))
        assert '"errorCode":0' in resumed["text"]
        second.put({"type": "websocket.disconnect", "code": 1000})
        await second.task

    run(main())


def test_a_raising_core_closes_its_connection_with_1011_and_the_others_go_on() -> None:
    events: list[tuple[ASGIConnection[Any] | None, Event]] = []

    async def main() -> None:
        app, reference = itrack_app(events)
        real = app.factory

        class Boom(ITrackServer):
            def receive(self, data: str, now: float) -> None:
                if data == "boom":
                    raise ZeroDivisionError("a bug in the core")
                super().receive(data, now)

        def factory(request: UpgradeRequest) -> Any:
            if "boom" in request.target:
                return Boom(request.target.replace("&boom=1", ""), reference.directory)
            return real(request)

        app.factory = factory
        good = Peer(app, ws_scope(OPEN))
        good.put({"type": "websocket.connect"})
        await good.wait_for(lambda m: m["type"] == "websocket.send")
        bad = Peer(app, ws_scope(OPEN + "&boom=1"))
        bad.put({"type": "websocket.connect"})
        await bad.wait_for(lambda m: m["type"] == "websocket.send")
        bad.put({"type": "websocket.receive", "text": "boom"})
        await bad.task
        assert bad.sent[-1] == {"type": "websocket.close", "code": 1011}
        # The other connection still answers.
        good.put(
            {"type": "websocket.receive", "text": '{"action":"subscribe","hash":"x","requests":[]}'}
        )
        await good.wait_for(lambda m: '"type":"error"' in m.get("text", ""))
        good.put({"type": "websocket.disconnect", "code": 1000})
        await good.task

    run(main())
    closes = [event for _, event in events if isinstance(event, ConnectionClosed)]
    assert [c.code for c in closes] == [1011, 1000]
    assert sum(isinstance(event, Connected) for _, event in events) == 2


def test_binary_message_closes_with_1003_and_oversize_with_1009() -> None:
    async def main() -> None:
        app, _ = itrack_app()
        app.max_message_size = 64
        binary = Peer(app, ws_scope(OPEN))
        binary.put({"type": "websocket.connect"})
        binary.put({"type": "websocket.receive", "bytes": b"\x00"})
        await binary.task
        assert binary.sent[-1] == {"type": "websocket.close", "code": 1003}
        big = Peer(app, ws_scope(OPEN))
        big.put({"type": "websocket.connect"})
        big.put({"type": "websocket.receive", "text": "x" * 65})
        await big.task
        assert big.sent[-1] == {"type": "websocket.close", "code": 1009}

    run(main())


def test_core_timers_run_server_heartbeats() -> None:
    skew = [0.0]

    async def main() -> None:
        app, _ = itrack_app()
        app.clock = lambda: time.monotonic() + skew[0]
        peer = Peer(app, ws_scope(OPEN))
        peer.put({"type": "websocket.connect"})
        await peer.wait_for(lambda m: m["type"] == "websocket.send")
        assert not [m for m in peer.sent if m.get("text") == "X"]
        # Past the server's write-inactivity deadline: the core's timer writes a heartbeat.
        (conn,) = app.connections.values()
        deadline = conn.core.next_deadline()
        assert deadline is not None
        skew[0] = deadline - time.monotonic() + 0.001
        conn.flush()
        await peer.wait_for(lambda m: m.get("text") == "X")
        peer.put({"type": "websocket.disconnect", "code": 1000})
        await peer.task

    run(main())


def test_lifespan_runs_the_ticker_and_stops_it() -> None:
    ticks: list[float] = []

    class Ticker:
        def tick(self, now: float) -> list[object]:
            ticks.append(now)
            return []

        def next_deadline(self) -> float | None:
            return 0.0

    async def main() -> None:
        app = ASGIApp(lambda request: Refuse(), ticker=Ticker())
        life = Peer(app, {"type": "lifespan"})
        life.put({"type": "lifespan.startup"})
        await life.wait_for(lambda m: m["type"] == "lifespan.startup.complete")
        while len(ticks) < 3:
            await asyncio.sleep(0.01)
        life.put({"type": "lifespan.shutdown"})
        await life.task
        count = len(ticks)
        await asyncio.sleep(0.05)
        assert len(ticks) == count

    run(main())


def test_rejected_event_for_refusals() -> None:
    events: list[tuple[ASGIConnection[Any] | None, Event]] = []

    async def main() -> None:
        app, _ = itrack_app(events)
        peer = Peer(app, ws_scope("/nope"))
        peer.put({"type": "websocket.connect"})
        await peer.task

    run(main())
    assert [type(e) for _, e in events] == [Rejected]
