"""The reference servers as ASGI applications inside real uvicorn and hypercorn processes,
judged by real peers: our trio clients and the npm atmosphere.js clients (every version,
including a reconnect with the tracking id after a server restart and the close request).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from _atmosphere_peer import LEGACY_VERSIONS, VERSIONS, NodeHarness, node_setup_problem

from trackwire import FleetFreedomClient, ITrackClient
from trackwire.atmosphere import RECONNECT_PADDING
from trackwire.conformance import demo_fleet
from trackwire.drivers.trio import connect, itrack_login
from trackwire.fleetfreedom import Command, ConnectionResponse, Merged
from trackwire.itrack import StateEvent, StateRequest, Subscribe, subscription_url

BIN = Path(sys.executable).parent
SERVERS = ("uvicorn", "hypercorn")
DEMO = [v.id for v in demo_fleet().of_tenant("demo")]
OTHER = [v.id for v in demo_fleet().of_tenant("other")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AsgiProcess:
    """``uvicorn``/``hypercorn`` serving one of ``trackwire.conformance.asgi``'s apps."""

    def __init__(self, server: str, platform: str, port: int | None = None) -> None:
        self.server = server
        self.platform = platform
        self.port = _free_port() if port is None else port
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def argv(self) -> list[str]:
        if self.server == "uvicorn":
            return [
                str(BIN / "uvicorn"),
                "--factory",
                f"trackwire.conformance.asgi:{self.platform}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
        return [
            str(BIN / "hypercorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--access-logfile",
            "-",
            f"trackwire.conformance.asgi:{self.platform}()",
        ]

    def start(self) -> AsgiProcess:
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            time.sleep(0.05)
        raise AssertionError(f"{self.server} did not listen on {self.port}")

    def kill(self) -> None:
        """``kill -9``: every session and tracking id the process knew is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.log.append(self.proc.stdout.read() if self.proc.stdout else "")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.log.append(self.proc.stdout.read() if self.proc.stdout else "")

    def output(self) -> str:
        return "".join(self.log)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/"


Launch = Callable[[AsgiProcess], AsgiProcess]


@pytest.fixture
def start() -> Iterator[Launch]:
    """Starts server processes; every one is stopped in teardown."""
    started: list[AsgiProcess] = []
    if not (BIN / "uvicorn").exists() or not (BIN / "hypercorn").exists():
        pytest.fail("uvicorn and hypercorn are needed: pip install -e '.[test]'", pytrace=False)

    def launch(proc: AsgiProcess) -> AsgiProcess:
        started.append(proc)
        return proc.start()

    try:
        yield launch
    finally:
        for proc in started:
            proc.stop()


def _login(base: str, login: str = "demo", password: str = "demo") -> str:
    body = json.dumps({"login": login, "password": password}).encode()
    request = urllib.request.Request(
        base + "user/auth", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["hash"])


@pytest.mark.parametrize("server", SERVERS)
async def test_itrack_client_over_asgi(server: str, start: Launch) -> None:
    proc = start(AsgiProcess(server, "itrack"))
    session_hash = await itrack_login(proc.base, "demo", "demo")
    core = ITrackClient(subscription_url(proc.base), session_hash)
    seen: set[int] = set()
    with trio.fail_after(20):
        async with connect(core) as conn:
            await conn.send(Subscribe([StateRequest(DEMO[:2] + OTHER[:1])]))
            async for event in conn:
                if isinstance(event, StateEvent):
                    seen.add(event.state.source_id)
                    if len(seen) == 2:
                        break
    assert seen == {i * 10 for i in DEMO[:2]}  # never the other tenant's tracker


async def _first_merge(core: FleetFreedomClient, **options: Any) -> ConnectionResponse:
    """Connect once (``options`` go to :func:`connect`); the connectionResponse, after the
    first position arrived."""
    response = None
    with trio.fail_after(20):
        async with connect(core, **options) as conn:
            async for event in conn:
                if isinstance(event, ConnectionResponse):
                    response = event
                if isinstance(event, Merged):
                    break
    assert response is not None
    return response


@pytest.mark.parametrize("where", ["path", "query", "subprotocol"])
@pytest.mark.parametrize("server", SERVERS)
async def test_fleetfreedom_client_resumes_its_ghost_id_over_asgi(
    server: str, where: str, start: Launch
) -> None:
    proc = start(AsgiProcess(server, "fleetfreedom"))
    url = f"ws://127.0.0.1:{proc.port}/"
    first = FleetFreedomClient(url)
    first.send(Command.login("demo@example.com", "demo", "trackwire-tests"))
    first.send(Command.subscribe(1, ["assetAdvanced"]))
    assert (await _first_merge(first)).error_code == 8  # no session yet
    ghost = first.session.ghost_id
    assert ghost
    # The same session on a new socket, the ghostId where the platform allows it.
    options: dict[str, Any] = {}
    if where == "path":
        second = FleetFreedomClient(url, ghost_id=ghost)
    else:
        second = FleetFreedomClient(url)
        if where == "query":
            options["url"] = f"{url}?ghostId={ghost}"
        else:
            options["subprotocols"] = [ghost]
    second.send(Command.subscribe(1, ["assetAdvanced"]))
    resumed = await _first_merge(second, **options)
    assert resumed.error_code == 0
    assert second.session.ghost_id == ghost


def _reconnected(harness: NodeHarness, uuid: str) -> None:
    """Wait until the client's socket is open again with its tracking id and the server's
    reconnect padding came (no new handshake: the tracking id is not 0).

    onReopen is not waited for: the legacy clients fire it on the first frame they deliver
    after the padding, and after a failed reconnect attempt (the server still down) often
    not at all (observed with 3.1.3 and 4.0.1), so an application that resubscribes on
    onReopen alone may never get its positions back."""
    harness.wait_for(
        "the socket open again",
        lambda x: x["event"] == "ws-connect" and f"tracking-id={uuid}" in x["url"],
        timeout=30,
    )
    harness.wait_for(
        "the reconnect padding",
        lambda x: x["event"] == "frame" and x["data"] == RECONNECT_PADDING,
        timeout=30,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_atmosphere_js_against_uvicorn_survives_a_restart(version: str, start: Launch) -> None:
    problem = node_setup_problem(version)
    if problem is not None:
        pytest.fail(f"atmosphere.js {version} cannot run: {problem}", pytrace=False)
    proc = start(AsgiProcess("uvicorn", "itrack"))
    url = f"http://127.0.0.1:{proc.port}/v2/event/subscription"
    # 5.0.45 stops for good when one reconnect attempt fails (observed on Node 20: an error,
    # no close event, no further attempt), so its first attempt must find the new process.
    interval = "300" if version in LEGACY_VERSIONS else "6000"
    harness = NodeHarness(
        version, url, "--reconnect-interval-ms", interval, "--max-reconnect", "50"
    )
    harness.start()
    try:
        opened = harness.wait_event("open", timeout=20)
        uuid = opened["uuid"]
        assert uuid
        assert uuid != "0"
        action = {
            "action": "subscribe",
            "hash": _login(proc.base),
            "requests": [{"type": "state", "trackers": DEMO[:1]}],
        }
        harness.command("push", data=json.dumps(action))
        harness.wait_for(
            "a state", lambda x: x["event"] == "message" and '"event":"state"' in x["data"]
        )
        # kill -9 and a new process on the same port: the client reconnects with its
        # tracking id; the application logs in again (the hashes died with the process).
        proc.kill()
        if version in LEGACY_VERSIONS:
            # Down long enough for attempts to fail first (the 5.x client would give up).
            harness.wait_for(
                "a refused attempt",
                lambda x: x["event"] == "ws-close" and x["t"] > opened["t"],
                nth=2,
            )
        again = start(AsgiProcess("uvicorn", "itrack", port=proc.port))
        _reconnected(harness, uuid)
        action["hash"] = _login(again.base)
        count = len(harness.lines("message"))
        harness.command("push", data=json.dumps(action))
        harness.wait_for(
            "a state after the restart",
            lambda x: x["event"] == "message" and '"event":"state"' in x["data"],
            nth=len([m for m in harness.lines("message") if '"event":"state"' in m["data"]]) + 1,
        )
        assert len(harness.lines("message")) > count
        assert len(harness.lines("open")) == 1  # no second handshake
        harness.command("close")
        if version in LEGACY_VERSIONS:
            harness.wait_event("http-done", status=200, timeout=20)
        harness.wait_event("ws-close", timeout=20)
    finally:
        harness.stop()
    again.stop()
    log = again.output()
    reconnected = rf"WebSocket /v2/event/subscription\?\S*tracking-id={uuid}\S* \[accepted\]"
    assert re.search(reconnected, log), log
    if version in LEGACY_VERSIONS:
        closed = rf"X-Atmosphere-Transport=close&X-Atmosphere-tracking-id={uuid}\S* HTTP/1.1\" 200"
        assert re.search(closed, log), log
    assert not harness.lines("exception")


class StarletteExample(AsgiProcess):
    """``examples/asgi_starlette.py`` under uvicorn: both servers mounted below a prefix."""

    def argv(self) -> list[str]:
        examples = Path(__file__).resolve().parents[2] / "examples"
        return [
            str(BIN / "uvicorn"),
            "--app-dir",
            str(examples),
            "asgi_starlette:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]


async def test_starlette_example_mounts_both_servers(
    start: Launch,
) -> None:
    proc = start(StarletteExample("uvicorn", "mounted"))
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/health", timeout=10) as answer:
        assert json.loads(answer.read())["fleet"] == len(DEMO) + len(OTHER)
    base = f"http://127.0.0.1:{proc.port}/itrack/v2/"
    session_hash = await itrack_login(base, "demo", "demo")
    core = ITrackClient(subscription_url(base), session_hash)
    with trio.fail_after(20):
        async with connect(core) as conn:
            await conn.send(Subscribe([StateRequest(DEMO[:1])]))
            async for event in conn:
                if isinstance(event, StateEvent):
                    assert event.state.source_id == DEMO[0] * 10
                    break
    fleet = FleetFreedomClient(f"ws://127.0.0.1:{proc.port}/fleetfreedom/")
    fleet.send(Command.login("demo@example.com", "demo", "trackwire-tests"))
    fleet.send(Command.subscribe(1, ["assetAdvanced"]))
    assert (await _first_merge(fleet)).error_code == 8
