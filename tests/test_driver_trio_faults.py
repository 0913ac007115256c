"""The trio driver against bad peers and independent ones: garbage, binary and oversize
frames, a peer that stops reading, too many connections, TLS verification, and the
``websockets`` library as client and as scripted server (asyncio, in a thread)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from websockets.asyncio.server import ServerConnection as WsServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.sync.client import connect as ws_connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage

from trackwire import Event, ReconnectPolicy, RemoteProtocolError
from trackwire.atmosphere import (
    RECONNECT_PADDING,
    AtmosphereClient,
    AtmosphereServer,
    Message,
    Opened,
    Reopened,
    parse_open_request,
)
from trackwire.drivers.trio import (
    Connection,
    GaveUp,
    ReconnectFailed,
    Reconnecting,
    Server,
    ServerConnection,
    connect,
    itrack_login,
    serve,
)
from trackwire.fleetfreedom import (
    Account,
    CloseRequested,
    Command,
    ConnectionResponse,
    FleetFreedomClient,
    FleetFreedomHub,
    SessionEnded,
    ghost_id_from_request,
)
from trackwire.itrack import (
    AuthResponder,
    Directory,
    ITrackClient,
    SourceState,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    dumps,
    encode_event,
    encode_subscribe_response,
    is_auth_target,
    subscription_url,
)
from trackwire.ws import (
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    Headers,
    HttpResponse,
    Rejected,
    UpgradeRequest,
)

E = TypeVar("E", bound=Event)
FAST = ReconnectPolicy(initial=0.01, factor=1.0, cap=0.01, jitter=0.0)
UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"
GHOST = "00000000-0000-4000-8000-000000000001"
PATH = "/v2/event/subscription"


class ServerLog:
    """Every (connection, event) the server reported, with a way to wait for one."""

    def __init__(self) -> None:
        self.items: list[tuple[ServerConnection[Any], Event]] = []
        self._changed = trio.Event()
        self.echo = False

    def __call__(self, conn: ServerConnection[Any], event: Event) -> None:
        self.items.append((conn, event))
        self._changed.set()
        self._changed = trio.Event()
        if self.echo and isinstance(event, Message):
            conn.send("echo " + event.data)

    def of(self, cls: type[E]) -> list[E]:
        return [e for _, e in self.items if isinstance(e, cls)]

    async def wait(
        self, cls: type[E], nth: int = 1, conn: ServerConnection[Any] | None = None
    ) -> tuple[ServerConnection[Any], E]:
        while True:
            changed = self._changed
            found = [(c, e) for c, e in self.items if isinstance(e, cls) and conn in (None, c)]
            if len(found) >= nth:
                conn, event = found[nth - 1]
                assert isinstance(event, cls)
                return conn, event
            await changed.wait()


async def until(conn: Connection[Any], cls: type[E], seen: list[Event] | None = None) -> E:
    async for event in conn:
        if seen is not None:
            seen.append(event)
        if isinstance(event, cls):
            return event
    raise AssertionError(f"no {cls.__name__} before the end")


@asynccontextmanager
async def running(factory: Any, **options: Any) -> AsyncIterator[tuple[Server[Any], ServerLog]]:
    log = ServerLog()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve, factory, on_event=log, **options))
        yield server, log
        nursery.cancel_scope.cancel()


def atmosphere(request: UpgradeRequest) -> AtmosphereServer:
    return AtmosphereServer(request.target, uuid_factory=lambda: UUID)


async def echo_round_trip(port: int) -> None:
    """A well-behaved client: open, send, get the echo, close."""
    core = AtmosphereClient(f"http://127.0.0.1:{port}{PATH}")
    async with connect(core, reconnect=None) as conn:
        await until(conn, Opened)
        await conn.send("ping")
        assert await until(conn, Message) == Message("echo ping")


async def raw_websocket(
    port: int, sock: trio.socket.SocketType | None = None
) -> tuple[trio.SocketStream, WSConnection]:
    """A bare WebSocket client (wsproto on a trio socket) that has completed its handshake."""
    if sock is None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    else:
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    target = AtmosphereClient(f"http://h{PATH}").url_to_open.removeprefix("ws://h")
    await stream.send_all(ws.send(Request(host="127.0.0.1", target=target)))
    while True:
        data = await stream.receive_some(4096)
        assert data, "the server closed during the handshake"
        ws.receive_data(data)
        if any(isinstance(e, AcceptConnection) for e in ws.events()):
            return stream, ws


# -- bad input: the connection ends with a clear event, the server keeps serving ----------------


async def test_garbage_and_a_peer_leaving_mid_handshake_end_in_handshake_failed() -> None:
    with trio.fail_after(10):
        async with running(atmosphere) as (server, log):
            log.echo = True
            garbage = await trio.open_tcp_stream("127.0.0.1", server.port)
            await garbage.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            answer = await garbage.receive_some(4096)
            assert answer.startswith(b"HTTP/1.1 400 ")
            _, failed = await log.wait(HandshakeFailed)
            assert isinstance(failed.error, RemoteProtocolError)
            await garbage.aclose()

            half = await trio.open_tcp_stream("127.0.0.1", server.port)
            await half.send_all(b"GET /v2/event/subscription HTTP/1.1\r\nHost: x\r\nUpg")
            await half.aclose()
            _, cut = await log.wait(HandshakeFailed, nth=2)
            assert "middle of a request" in str(cut.error)

            await echo_round_trip(server.port)


@pytest.mark.parametrize(
    ("payload", "code"),
    [(BytesMessage(b"\x00\x01"), 1003), (TextMessage("x" * 300), 1009)],
    ids=["binary", "oversize"],
)
async def test_binary_and_oversize_frames_close_that_connection_only(
    payload: BytesMessage | TextMessage, code: int
) -> None:
    with trio.fail_after(10):
        async with running(atmosphere, max_message_size=200) as (server, log):
            log.echo = True
            stream, ws = await raw_websocket(server.port)
            await stream.send_all(ws.send(payload))
            close = None
            while close is None:
                ws.receive_data(await stream.receive_some(4096))
                close = next((e for e in ws.events() if isinstance(e, CloseConnection)), None)
            assert close.code == code
            await stream.send_all(ws.send(close.response()))
            _, closed = await log.wait(ConnectionClosed)
            assert (closed.code, closed.by_peer) == (code, False)
            assert isinstance(closed.error, RemoteProtocolError)
            await stream.aclose()
            await echo_round_trip(server.port)


async def test_a_client_that_stops_reading_does_not_stall_the_others() -> None:
    limit = 256 * 1024
    with trio.fail_after(20):
        async with running(atmosphere, max_buffer=limit) as (server, log):
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stream, _ = await raw_websocket(server.port, sock)
            stalled, _ = await log.wait(Connected)
            chunk = "x" * 65536
            # Fill the pipe until the writer is stuck (bytes stay in our buffer).
            for _ in range(2000):
                stalled.send(chunk)
                await trio.sleep(0.001)
                if stalled.buffered:
                    break
            assert stalled.buffered
            # Meanwhile the server answers everybody else.
            log.echo = True
            await echo_round_trip(server.port)
            # Past max_buffer the stuck connection is aborted, with a clear event.
            for _ in range(2000):
                if stalled.state.name == "CLOSED" or stalled not in server.connections:
                    break
                stalled.send(chunk)
                await trio.sleep(0)
            _, closed = await log.wait(ConnectionClosed, conn=stalled)
            assert (closed.code, closed.by_peer) == (1008, False)
            assert isinstance(closed.error, RemoteProtocolError)
            assert f"over {limit} bytes" in closed.reason
            await stream.aclose()
            await echo_round_trip(server.port)


async def test_connections_over_the_limit_are_refused_with_503() -> None:
    with trio.fail_after(10):
        async with running(atmosphere, max_connections=1) as (server, _):
            first = AtmosphereClient(f"http://127.0.0.1:{server.port}{PATH}")
            async with connect(first, reconnect=None) as conn:
                await until(conn, Opened)
                second = AtmosphereClient(f"http://127.0.0.1:{server.port}{PATH}")
                async with connect(second, reconnect=None) as other:
                    events = [e async for e in other]
                assert [type(e) for e in events] == [Rejected, ReconnectFailed, GaveUp]
                assert events[0].status_code == 503
                assert server.refused == 1


async def test_our_client_survives_a_server_that_answers_garbage() -> None:
    async def liar(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)
        await stream.send_all(b"SSH-2.0-OpenSSH\r\n\r\n")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, liar, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            core = FleetFreedomClient(f"ws://127.0.0.1:{port}/")
            async with connect(core, reconnect=None) as conn:
                events = [e async for e in conn]
            assert [type(e) for e in events] == [HandshakeFailed, ReconnectFailed, GaveUp]
            assert "bad handshake response" in events[1].error
            nursery.cancel_scope.cancel()


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 it signed (the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make test certificates", pytrace=False)
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=30)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=trackwire test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "leaf.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")  # fmt: skip
    return {name: d / f"{name}.pem" for name in ("ca", "leaf")} | {"key": d / "leaf.key"}


async def test_tls_is_verified_by_default_and_works_with_the_right_ca(
    certificates: dict[str, Path],
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificates["leaf"], certificates["key"])
    directory = Directory(hash_factory=lambda: "c" * 32)
    directory.add_user("carol", "pw")
    responder = AuthResponder(directory)

    def auth(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
        answer = responder(method, target, headers, body) if is_auth_target(target) else None
        return None if answer is None else (answer.status, answer.headers, answer.body)

    with trio.fail_after(10):
        async with running(atmosphere, ssl_context=server_context, http_handler=auth) as (
            server,
            log,
        ):
            url = f"https://127.0.0.1:{server.port}{PATH}"
            # The default context does not know our CA: the attempt fails, nothing opens.
            async with connect(AtmosphereClient(url), reconnect=None) as conn:
                events = [e async for e in conn]
            assert [type(e) for e in events] == [ReconnectFailed, GaveUp]
            assert "CERTIFICATE_VERIFY_FAILED" in events[0].error
            _, refused = await log.wait(HandshakeFailed)
            assert "TLS handshake failed" in str(refused.error)
            with pytest.raises((ssl.SSLError, trio.BrokenResourceError)):
                await itrack_login(f"https://127.0.0.1:{server.port}/v2/", "carol", "pw")

            trusting = ssl.create_default_context(cafile=str(certificates["ca"]))
            async with connect(AtmosphereClient(url), ssl_context=trusting) as conn:
                assert (await until(conn, Opened)).uuid == UUID
            base = f"https://127.0.0.1:{server.port}/v2/"
            assert await itrack_login(base, "carol", "pw", ssl_context=trusting) == "c" * 32


# -- the websockets library as an independent peer -----------------------------------------------

ACCOUNTS = {("a@x", "pw"): Account("a@x", 42)}


def test_ghost_id_constant_is_a_uuid() -> None:
    assert ghost_id_from_request(f"/{GHOST}") == GHOST


async def test_a_websockets_client_against_our_fleetfreedom_server() -> None:
    ghosts = iter([GHOST, "00000000-0000-4000-8000-000000000002"])
    hub = FleetFreedomHub(lambda u, p: ACCOUNTS.get((u, p)), ghost_ids=lambda: next(ghosts))

    def factory(request: UpgradeRequest) -> Any:
        return hub.connect(ghost_id_from_request(request.target, request.subprotocols))

    def script(port: int) -> list[str]:
        lines = []
        with ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=5, close_timeout=5) as ws:
            lines.append(str(ws.recv(timeout=5)))
            ws.send('login {"reqId":1,"username":"a@x","password":"pw","userAgent":"t"}')
            lines.append(str(ws.recv(timeout=5)))
            ws.send(
                'subscribe {"reqId":2,"company":{"id":42},"subscriptionTypes":["assetGeneral"]}'
            )
            lines.append(str(ws.recv(timeout=5)))
            ws.send("not json at all")
            lines.append(str(ws.recv(timeout=5)))
            ws.send("fooBar {}")
            lines.append(str(ws.recv(timeout=5)))
        return lines

    with trio.fail_after(10):
        async with running(factory) as (server, log):
            lines = await trio.to_thread.run_sync(script, server.port)
            names = [line.split(" ", 1)[0] for line in lines]
            assert names == [
                "connectionResponse",
                "loginResponse",
                "subscribeResponse",
                "notResponse",
                "unknownCommandResponse",
            ]
            assert json.loads(lines[3].split(" ", 1)[1])["errorCode"] == 3
            assert json.loads(lines[1].split(" ", 1)[1])["errorCode"] == 0
            _, closed = await log.wait(ConnectionClosed)
            assert (closed.code, closed.by_peer) == (1000, True)


class ScriptedServer:
    """A ``websockets`` (asyncio) server in its own thread, running ``script`` per connection;
    ``log`` collects what the scripts record."""

    def __init__(self, script: Callable[[WsServerConnection, list[Any]], Awaitable[None]]):
        self.script = script
        self.log: list[Any] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def handler(ws: WsServerConnection) -> None:
            try:
                await self.script(ws, self.log)
            except WsConnectionClosed as exc:
                self.log.append(("closed", exc.rcvd.code if exc.rcvd else None))

        async with ws_serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def settled(self, done: Callable[[list[Any]], bool], timeout: float = 5.0) -> None:
        """Wait until the server thread's scripts have logged what ``done`` looks for (they
        finish on their own time, after the client already saw the end)."""
        with trio.fail_after(timeout):
            while not done(list(self.log)):
                await trio.sleep(0.01)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Callable[[WsServerConnection, list[Any]], Awaitable[None]]) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__()


async def test_our_fleetfreedom_client_against_a_scripted_websockets_server(
    scripted: Callable[..., ScriptedServer],
) -> None:
    async def script(ws: WsServerConnection, log: list[Any]) -> None:
        assert ws.request is not None
        log.append(("path", ws.request.path))
        if ws.request.path == "/":
            await ws.send('connectionResponse {"errorCode":8,"message":"userNotLoggedIn"}')
            log.append(await ws.recv())
            body = {"reqId": 1, "errorCode": 0, "message": "OK", "ghostId": GHOST, "user": {}}
            await ws.send("loginResponse " + json.dumps(body))
            await ws.send(b"\x00binary")  # our client refuses it (1003) and reconnects
        else:
            await ws.send(f'connectionResponse {{"errorCode":0,"ghostId":"{GHOST}","user":{{}}}}')
            await ws.send("sessionEnded {}")
        await ws.wait_closed()
        log.append(("closed", ws.close_code))

    peer = scripted(script)
    core = FleetFreedomClient(f"ws://127.0.0.1:{peer.port}/")
    seen: list[Event] = []
    with trio.fail_after(10):
        async with connect(core, reconnect=FAST) as conn:
            await conn.send(Command.login("a@x", "pw", "t"))
            refused = await until(conn, ConnectionClosed, seen)
            assert (refused.code, refused.by_peer) == (1003, False)
            assert isinstance(refused.error, RemoteProtocolError)
            assert (await until(conn, ConnectionResponse, seen)).error_code == 0
            await until(conn, SessionEnded, seen)
            seen.extend([e async for e in conn])
    assert any(isinstance(e, CloseRequested) for e in seen)
    assert seen[-1] == GaveUp("the session ended for good")
    await peer.settled(lambda log: sum(entry[0] == "closed" for entry in log) == 2)
    paths = [entry[1] for entry in peer.log if entry[0] == "path"]
    assert paths == ["/", f"/{GHOST}"]
    assert peer.log[1].startswith('login {"username":"a@x"')
    assert [entry[1] for entry in peer.log if entry[0] == "closed"] == [1003, 1000]


async def test_our_itrack_client_against_a_scripted_websockets_server(
    scripted: Callable[..., ScriptedServer],
) -> None:
    state = SourceState.create(101, speed=3)

    async def script(ws: WsServerConnection, log: list[Any]) -> None:
        assert ws.request is not None
        request = parse_open_request(ws.request.path)
        log.append(("tracking-id", request.tracking_id))
        if request.tracking_id == "0":
            await ws.send(f"{UUID}|1000|X|")
        else:
            await ws.send(RECONNECT_PADDING)
        action = json.loads(await ws.recv())
        log.append(("action", action["action"], action["hash"]))
        await ws.send(dumps(encode_subscribe_response(["state"], {"state": {1: "normal"}})))
        await ws.send(dumps(encode_event("state", state.raw)))
        if request.tracking_id == "0":
            await ws.close(1000)  # the client comes back with its tracking id
        else:
            await ws.send("x" * 5000)  # over the client's size limit: it closes with 1009
            await ws.wait_closed()
            log.append(("closed", ws.close_code))

    peer = scripted(script)
    url = subscription_url(f"http://127.0.0.1:{peer.port}/v2/")
    core = ITrackClient(url, "d" * 32)
    with trio.fail_after(10):
        async with connect(core, reconnect=FAST, max_message_size=4096) as conn:
            await conn.send(Subscribe([StateRequest([1])]))
            await until(conn, SubscribeResponse)
            assert (await until(conn, StateEvent)).state == state
            assert (await until(conn, Reconnecting)).attempt == 1
            assert await until(conn, Reopened) == Reopened(UUID)
            await until(conn, SubscribeResponse)  # resubscribed by the core
            await until(conn, StateEvent)
            too_big = await until(conn, ConnectionClosed)
            assert (too_big.code, too_big.by_peer) == (1009, False)
            await conn.aclose()
    await peer.settled(lambda log: sum(e[0] == "action" for e in log) == 2)
    assert [e for e in peer.log if e[0] == "tracking-id"] == [
        ("tracking-id", "0"),
        ("tracking-id", UUID),
    ]
    assert [e for e in peer.log if e[0] == "action"] == [("action", "subscribe", "d" * 32)] * 2


def test_no_fd_is_left_behind() -> None:
    before = len(os.listdir("/proc/self/fd"))

    async def session() -> None:
        async with running(atmosphere) as (server, log):
            log.echo = True
            for _ in range(3):
                await echo_round_trip(server.port)

    trio.run(session)
    assert len(os.listdir("/proc/self/fd")) == before
