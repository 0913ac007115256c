"""What every server driver guarantees, on trio and on asyncio alike: one connection's failure
(its core, the factory, a handler) ends that connection only; connection limits overall and
per address; a peer that stops reading is aborted without stalling the others; bad input
ends in clear events; stopping the server ends every core."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from _server_harness import DRIVERS, ServerThread
from test_driver_trio_faults import certificates as certificates  # a fixture
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from trackwire import Event, LocalProtocolError, RemoteProtocolError, current_peer
from trackwire.atmosphere import AtmosphereClient, AtmosphereServer, Message
from trackwire.drivers._serving import MAX_REFUSING
from trackwire.ws import (
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    Headers,
    HttpRequestHandled,
    HttpResponse,
    UpgradeRequest,
)

pytestmark = pytest.mark.parametrize("driver", DRIVERS)

PATH = "/v2/event/subscription"
TARGET = AtmosphereClient(f"http://h{PATH}").url_to_open.removeprefix("ws://h")
SECRET = "hunter2"


class Boom(AtmosphereServer):
    """An Atmosphere server core that raises on the message ``boom`` (and, once ``armed``,
    when asked for its output): a bug in a core, as far as the driver knows."""

    armed = False

    def receive(self, data: str, now: float) -> None:
        if "boom" in data:
            raise RuntimeError(f"core bug on {data!r} password={SECRET}")
        super().receive(data, now)

    def data_to_send(self) -> list[str]:
        if self.armed:
            raise KeyError(f"hash={SECRET}")
        return super().data_to_send()


def boom_factory(request: UpgradeRequest) -> AtmosphereServer:
    if "explode" in request.target:
        raise ValueError(f"factory bug ghostId={SECRET}")
    return Boom(request.target)


def explosive_http(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
    if "explode" in target:
        raise ZeroDivisionError("handler bug")
    return 200, [], b"fine"


def echo(conn: Any, event: Event) -> None:
    if isinstance(event, Message):
        if event.data == "raise in on_event":
            raise RuntimeError("on_event bug")
        conn.send("echo " + event.data)


UPGRADE = (
    f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def open_ws(port: int, target: str = TARGET) -> ClientConnection:
    return ws_connect(f"ws://127.0.0.1:{port}{target}", open_timeout=10, close_timeout=2)


def expect(ws: ClientConnection, text: str) -> None:
    """Read frames (the Atmosphere handshake, padding…) until one contains ``text``."""
    for _ in range(20):
        frame = ws.recv(timeout=10)
        if isinstance(frame, str) and text in frame:
            return
    raise AssertionError(f"no frame with {text!r}")


def closed_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    for _ in range(20):
        try:
            ws.recv(timeout=10)
        except WsConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code
    raise AssertionError("not closed")


def http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def served(st: ServerThread) -> None:
    """A well-behaved client still gets its answer."""
    with open_ws(st.port) as ws:
        ws.send("still there?")
        expect(ws, "echo still there?")


# -- isolation ---------------------------------------------------------------------------------


def test_a_core_that_raises_closes_its_connection_only(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trackwire.server")
    with ServerThread(driver, boom_factory) as st:
        st.on_event = echo
        with open_ws(st.port) as steady, open_ws(st.port) as doomed:
            steady.send("one")
            expect(steady, "echo one")
            doomed.send("boom")
            assert closed_code(doomed) == 1011
            conn, closed = st.wait(ConnectionClosed)
            assert (closed.code, closed.by_peer) == (1011, False)
            assert isinstance(closed.error, LocalProtocolError)
            # The other connection goes on, both ways.
            steady.send("two")
            expect(steady, "echo two")
            steady_conn = st.of(Connected)[0][0]
            st.call(steady_conn.send, "pushed")
            expect(steady, "pushed")
            assert st.call(lambda: st.server.failed) == 1
            assert conn not in st.call(lambda: list(st.server.connections))
        served(st)
    logged = caplog.text
    assert "RuntimeError" in logged
    assert "closed" in logged
    assert SECRET not in logged


def test_a_core_that_raises_while_flushed_from_outside(driver: str) -> None:
    with ServerThread(driver, boom_factory) as st:
        st.on_event = echo
        with open_ws(st.port) as steady, open_ws(st.port) as doomed:
            steady.send("hello")
            expect(steady, "echo hello")
            doomed.send("hello")
            expect(doomed, "echo hello")
            doomed_conn = st.of(Connected)[1][0]

            def arm_and_flush() -> None:
                doomed_conn.core.armed = True
                st.server.flush()  # must not raise

            st.call(arm_and_flush)
            assert closed_code(doomed) == 1011
            steady.send("after")
            expect(steady, "echo after")


def test_a_factory_or_http_handler_that_raises_gets_500(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trackwire.server")
    with ServerThread(driver, boom_factory, http_handler=explosive_http) as st:
        st.on_event = echo
        with open_ws(st.port) as steady:
            with pytest.raises(InvalidStatus) as refused:
                open_ws(st.port, TARGET + "&explode=1")
            assert refused.value.response.status_code == 500
            answer = http(st.port, b"GET /explode HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 500 ")
            # Pipelined: the answers before the failing request still go out.
            answer = http(
                st.port,
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /explode HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert b"HTTP/1.1 500 " in answer
            _, failed = st.wait(HandshakeFailed)
            assert isinstance(failed.error, LocalProtocolError)
            steady.send("on")
            expect(steady, "echo on")
        served(st)
    assert SECRET not in caplog.text


def test_an_on_event_handler_that_raises_ends_that_connection_only(driver: str) -> None:
    with ServerThread(driver, boom_factory) as st:
        st.on_event = echo
        with open_ws(st.port) as steady, open_ws(st.port) as doomed:
            doomed.send("raise in on_event")
            assert closed_code(doomed) == 1011
            steady.send("fine")
            expect(steady, "echo fine")
        served(st)


# -- limits ------------------------------------------------------------------------------------


def test_connections_over_the_per_address_limit_get_503(driver: str) -> None:
    with ServerThread(driver, boom_factory, max_connections_per_address=2) as st:
        st.on_event = echo
        with open_ws(st.port) as a, open_ws(st.port):
            answer = http(st.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503 ")
            with pytest.raises(InvalidStatus) as refused:
                open_ws(st.port)
            assert refused.value.response.status_code == 503
            assert st.call(lambda: st.server.refused) == 2
            a.send("x")
            expect(a, "echo x")
        # Counted out again when they end: a new one gets in.
        served(st)


def test_connections_over_the_overall_limit_get_503(driver: str) -> None:
    with ServerThread(driver, boom_factory, max_connections=1) as st:
        st.on_event = echo
        with open_ws(st.port):
            answer = http(st.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503 ")
        served(st)


def test_a_flood_of_refused_connections_is_closed_without_waiting(driver: str) -> None:
    with ServerThread(driver, boom_factory, max_connections=1) as st, open_ws(st.port):
        silent = [socket.create_connection(("127.0.0.1", st.port)) for _ in range(MAX_REFUSING)]
        try:
            for _ in range(500):
                if st.call(lambda: st.server.admission.refusing) == MAX_REFUSING:
                    break
                time.sleep(0.01)
            # Every slot to answer 503 is taken by a silent peer: closed without an answer.
            try:
                answer = http(st.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            except ConnectionResetError:
                answer = b""
            assert answer == b""
        finally:
            for sock in silent:
                sock.close()
        for _ in range(500):
            if st.call(lambda: st.server.admission.refusing) == 0:
                break
            time.sleep(0.01)
        assert http(st.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503 ")


def test_the_peer_address_is_known_to_the_factory_and_handlers(driver: str) -> None:
    seen: list[str] = []

    def factory(request: UpgradeRequest) -> AtmosphereServer:
        seen.append(current_peer())
        return AtmosphereServer(request.target)

    def handler(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse:
        seen.append(current_peer())
        return 200, [], b""

    with ServerThread(driver, factory, http_handler=handler) as st:
        http(st.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with open_ws(st.port):
            pass
        st.wait(HttpRequestHandled)
    assert seen == ["127.0.0.1", "127.0.0.1"]


def test_a_client_that_stops_reading_is_aborted_and_stalls_no_one(driver: str) -> None:
    limit = 256 * 1024
    with ServerThread(driver, boom_factory, max_buffer=limit) as st:
        st.on_event = echo
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", st.port))
        sock.sendall(UPGRADE)
        stalled, _ = st.wait(Connected)
        chunk = "x" * 65536

        def push() -> int | None:
            if stalled.state.name != "OPEN":
                return None
            stalled.send(chunk)
            return int(stalled.buffered)

        for _ in range(400):
            buffered = st.call(push)
            if buffered is None:
                break
            if buffered:
                # Meanwhile everybody else is answered.
                with open_ws(st.port) as other:
                    other.send("quick")
                    expect(other, "echo quick")
        _, closed = st.wait(ConnectionClosed, conn=stalled)
        assert (closed.code, closed.by_peer) == (1008, False)
        assert isinstance(closed.error, RemoteProtocolError)
        assert f"over {limit} bytes" in closed.reason
        sock.close()
        served(st)


# -- bad input and the end -------------------------------------------------------------------


def test_garbage_gets_400_an_oversize_message_1009_and_binary_1003(driver: str) -> None:
    with ServerThread(driver, boom_factory, max_message_size=200) as st:
        st.on_event = echo
        answer = http(st.port, b"\x16\x03\x01 not http at all\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        _, failed = st.wait(HandshakeFailed)
        assert isinstance(failed.error, RemoteProtocolError)
        with open_ws(st.port) as ws:
            ws.send("x" * 300)
            assert closed_code(ws) == 1009
        with open_ws(st.port) as ws:
            ws.send(b"\x00\x01")
            assert closed_code(ws) == 1003
        closes = [(e.code, e.by_peer) for _, e in st.of(ConnectionClosed)]
        assert closes == [(1009, False), (1003, False)]
        served(st)


def test_stopping_the_server_ends_every_core(driver: str) -> None:
    with contextlib.ExitStack() as client:
        with ServerThread(driver, boom_factory) as st:
            st.on_event = echo
            ws = client.enter_context(open_ws(st.port))
            ws.send("hi")
            expect(ws, "echo hi")
            conn, _ = st.wait(Connected)
            core = conn.core
        closed = [e for c, e in st.events if isinstance(e, ConnectionClosed) and c is conn]
        assert [(e.code, e.reason) for e in closed] == [(1006, "the server stopped")]
        assert core.state.name == "CLOSED"


def test_tls(driver: str, certificates: dict[str, Path]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["leaf"], certificates["key"])
    trusting = ssl.create_default_context(cafile=str(certificates["ca"]))
    with ServerThread(driver, boom_factory, ssl_context=context) as st:
        st.on_event = echo
        url = f"wss://127.0.0.1:{st.port}{TARGET}"
        with ws_connect(url, ssl=trusting, open_timeout=10) as ws:
            ws.send("secure")
            expect(ws, "echo secure")
        with pytest.raises(ssl.SSLError):
            ws_connect(url, ssl=ssl.create_default_context(), open_timeout=10)
