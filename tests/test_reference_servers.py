"""The reference servers behind each server driver (trio, asyncio): anonymous connections
closed on time whatever their heartbeat setting, login throttling per (address, login) and
per address, and per-address connection limits -- with clients on distinct loopback
addresses (127.0.0.2, 127.0.0.3: Linux routes all of 127/8 to lo)."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

import pytest
from _server_harness import DRIVERS, ServerThread
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from trackwire.atmosphere import AtmosphereClient
from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet

pytestmark = pytest.mark.parametrize("driver", DRIVERS)

OPEN = AtmosphereClient("http://h/v2/event/subscription").url_to_open.removeprefix("ws://h")
STRANGER = "127.0.0.2"
USER = "127.0.0.3"


def bound_socket(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def ws_from(source: str, port: int, target: str = "/") -> ClientConnection:
    return ws_connect(
        f"ws://127.0.0.1:{port}{target}", sock=bound_socket(source, port), open_timeout=10
    )


def auth_from(source: str, port: int, login: str, password: str) -> tuple[int, Any]:
    body = f"login={login}&password={password}".encode()
    with bound_socket(source, port) as sock:
        sock.sendall(
            b"POST /v2/user/auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def close_code(ws: ClientConnection) -> int | None:
    for _ in range(100):
        try:
            ws.recv(timeout=10)
        except WsConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code
    raise AssertionError("the server never closed")


def itrack_server(driver: str, **options: Any) -> ServerThread:
    app = ITrackReference(demo_fleet(2, rate=5.0), anonymous_timeout=0.3, **options)
    return ServerThread(driver, app.factory, app=app, http_handler=app.http_handler)


@pytest.mark.parametrize("heartbeat", ["0", "60", None])
def test_itrack_anonymous_connections_are_closed_whatever_the_heartbeat(
    driver: str, heartbeat: str | None
) -> None:
    target = OPEN if heartbeat is None else f"{OPEN}&X-Heartbeat-Server={heartbeat}"
    with itrack_server(driver) as st, ws_from(USER, st.port, target) as ws:
        # Without the fix: heartbeat 0 was never closed, the others only at a heartbeat.
        assert close_code(ws) == 1000


def test_itrack_a_stranger_cannot_lock_the_demo_user_out(driver: str) -> None:
    with itrack_server(driver) as st:
        for _ in range(5):
            assert auth_from(STRANGER, st.port, "demo", "guess")[1]["status"]["code"] == 102
        status, body = auth_from(STRANGER, st.port, "demo", "demo")
        assert (status, body["status"]["code"]) == (403, 105)
        status, body = auth_from(USER, st.port, "demo", "demo")
        assert (status, body["success"]) == (200, True)
        # Spraying names from one address is limited too (20 failures a minute).
        for n in range(15):
            auth_from(STRANGER, st.port, f"user{n}", "guess")
        assert auth_from(STRANGER, st.port, "other", "other")[1]["status"]["code"] == 105
        assert auth_from(USER, st.port, "other", "other")[1]["success"] is True


def ff_login(ws: ClientConnection, user: str, password: str) -> int:
    ws.recv(timeout=10)  # connectionResponse
    body = json.dumps({"username": user, "password": password, "reqId": 1})
    ws.send(f"login {body}")
    while True:
        frame = ws.recv(timeout=10)
        assert isinstance(frame, str)
        name, _, rest = frame.partition(" ")
        if name == "loginResponse":
            return int(json.loads(rest)["errorCode"])


def test_fleetfreedom_a_stranger_cannot_lock_the_demo_user_out(driver: str) -> None:
    app = FleetFreedomReference(demo_fleet(2))
    with ServerThread(driver, app.factory, app=app) as st:
        user = "demo@example.com"
        for _ in range(5):
            with ws_from(STRANGER, st.port) as ws:
                assert ff_login(ws, user, "guess") != 0
        with ws_from(STRANGER, st.port) as ws:
            assert ff_login(ws, user, "demo") == 73
        with ws_from(USER, st.port) as ws:
            assert ff_login(ws, user, "demo") == 0


def test_one_address_cannot_take_every_connection(driver: str) -> None:
    app = ITrackReference(demo_fleet(2))
    options = {"max_connections_per_address": 3}
    with (
        ServerThread(driver, app.factory, app=app, **options) as st,
        contextlib.ExitStack() as held,
    ):
        for _ in range(3):
            held.enter_context(ws_from(STRANGER, st.port, OPEN))
        with pytest.raises(InvalidStatus) as refused:
            ws_from(STRANGER, st.port, OPEN)
        assert refused.value.response.status_code == 503
        with ws_from(USER, st.port, OPEN) as ws:
            assert isinstance(ws.recv(timeout=10), str)  # the Atmosphere handshake
