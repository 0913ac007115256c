"""An independent WebSocket server for the client-driver tests: the ``websockets`` library's
asyncio server on 127.0.0.1 carrying our server cores (Atmosphere, iTrack, FleetFreedom).

:class:`Peer` runs in the caller's event loop (asyncio driver tests); :class:`ThreadedPeer`
runs one in a background thread with its own loop (blocking driver tests).  Each connection
records the request path and every event of its core; Atmosphere close requests are caught
by the ``process_request`` hook and recorded, and upgrades to ``/forbidden…`` get 403.
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from trackwire import Event
from trackwire.atmosphere import AtmosphereServer
from trackwire.fleetfreedom import Account, FleetFreedomHub, ghost_id_from_request
from trackwire.itrack import AuthResponder, Directory, ITrackServer, SourceState
from trackwire.ws import TextCore

T = TypeVar("T")
Factory = Callable[[Request], TextCore]

UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"
ALICE = "a" * 32
GHOST = "4a0c8f6e-3b1d-4f43-9a57-8e2d7c1b5f60"
DEADLINE = 10.0
"""Seconds any wait in these tests may take before it fails (a bound, never asserted)."""


@dataclass
class PeerConnection:
    """One WebSocket the peer accepted: the request path, the core and what it emitted."""

    path: str
    core: Any
    ws: ServerConnection
    headers: dict[str, str]
    events: list[Event] = field(default_factory=list)
    ended: bool = False


class Peer:
    """The ``websockets`` asyncio server with one of our server cores per connection."""

    def __init__(self, factory: Factory, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.factory = factory
        self.ssl_context = ssl_context
        self.connections: list[PeerConnection] = []
        self.close_requests: list[str] = []
        self.server: Server | None = None
        self.port = 0
        self._closing: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/v2/event/subscription", scheme: str | None = None) -> str:
        scheme = scheme or ("wss" if self.ssl_context else "ws")
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self.server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            ssl=self.ssl_context,
            process_request=self._process_request,
            ping_interval=None,
            compression=None,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server = self.server
        if server is not None:
            server.close()
            await server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if "X-Atmosphere-Transport=close" in request.path:
            self.close_requests.append(request.path)
            return connection.respond(200, "")
        if request.path.startswith("/forbidden"):
            return connection.respond(403, "no entry")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        assert ws.request is not None
        core = self.factory(ws.request)
        conn = PeerConnection(ws.request.path, core, ws, dict(ws.request.headers.raw_items()))
        self.connections.append(conn)
        core.connection_made(loop.time())
        try:
            await self._flush(conn)
            while True:
                deadline = core.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout)
                except asyncio.TimeoutError:
                    core.handle_timer(loop.time())
                else:
                    assert isinstance(message, str)
                    core.receive(message, loop.time())
                await self._flush(conn)
        except ConnectionClosed:
            pass
        finally:
            conn.ended = True
            core.receive_eof(loop.time())
            conn.events.extend(core.events())

    async def _flush(self, conn: PeerConnection) -> None:
        conn.events.extend(conn.core.events())
        for frame in conn.core.data_to_send():
            await conn.ws.send(frame)

    async def run(self, action: Callable[[], T]) -> T:
        """Call ``action`` (a push on the cores, say), then write what every core queued."""
        result = action()
        for conn in self.connections:
            if not conn.ended:
                with suppress(ConnectionClosed):
                    await self._flush(conn)
        return result

    async def drop(self, index: int = -1) -> None:
        """Cut a connection without a close frame (the network went away)."""
        transport = self.connections[index].ws.transport
        transport.abort()

    async def close(self, index: int = -1, code: int = 1001) -> None:
        """Start closing a connection with a close frame (the handshake goes on in the
        background: a blocking client answers only when it next runs)."""
        task = asyncio.get_running_loop().create_task(self.connections[index].ws.close(code))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class ThreadedPeer:
    """A :class:`Peer` served from a thread with its own event loop."""

    def __init__(self, factory: Factory, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.peer = Peer(factory, ssl_context=ssl_context)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedPeer:
        self._thread.start()
        self._call(self.peer.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self.peer.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(DEADLINE)
            self.loop.close()

    def _call(self, coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(DEADLINE)

    @property
    def connections(self) -> list[PeerConnection]:
        return self.peer.connections

    @property
    def close_requests(self) -> list[str]:
        return self.peer.close_requests

    def url(self, path: str = "/v2/event/subscription", scheme: str | None = None) -> str:
        return self.peer.url(path, scheme)

    def run(self, action: Callable[[], T]) -> T:
        return self._call(self.peer.run(action))

    def drop(self, index: int = -1) -> None:
        self._call(self.peer.drop(index))

    def close(self, index: int = -1, code: int = 1001) -> None:
        self._call(self.peer.close(index, code))


# -- the server cores ------------------------------------------------------------------------


def atmosphere_factory(heartbeat_ms: int = 0, server_heartbeat: float = 60.0) -> Factory:
    def factory(request: Request) -> TextCore:
        return AtmosphereServer(
            request.path,
            heartbeat_interval_ms=heartbeat_ms,
            server_heartbeat=server_heartbeat,
            uuid_factory=lambda: UUID,
        )

    return factory


def tracker_state(source_id: int) -> SourceState:
    return SourceState.create(source_id, connection_status="active", movement_status="parked")


def itrack_directory() -> Directory:
    directory = Directory(hash_factory=lambda: ALICE)
    directory.add_user("alice", "pw")
    directory.add_api_key("alice", ALICE)
    directory.add_tracker("alice", 1, state=tracker_state(1_000_001))
    return directory


def itrack_factory(directory: Directory) -> Factory:
    def factory(request: Request) -> TextCore:
        transport = AtmosphereServer(request.path, uuid_factory=lambda: UUID)
        return ITrackServer(request.path, directory, transport=transport)

    return factory


def fleetfreedom_hub() -> FleetFreedomHub:
    def authenticator(username: str, password: str) -> Account | None:
        return Account(username, 7) if (username, password) == ("alice", "pw") else None

    return FleetFreedomHub(authenticator, ghost_ids=lambda: GHOST)


def fleetfreedom_factory(hub: FleetFreedomHub) -> Factory:
    def factory(request: Request) -> TextCore:
        return hub.connect(ghost_id_from_request(request.path))

    return factory


# -- plain HTTP: user/auth -------------------------------------------------------------------


@contextmanager
def auth_server(directory: Directory) -> Iterator[str]:
    """A stdlib HTTP server answering ``user/auth`` from ``directory``; yields its base URL."""
    responder = AuthResponder(directory)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            response = responder(self.command, self.path, list(self.headers.items()), body)
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE)


# -- TLS -------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 made with the ``openssl`` CLI: (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=DEADLINE,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that completes TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(list(Path("/proc/self/fd").iterdir()))
