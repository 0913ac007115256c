"""``trackwire watch`` (trio) and the asyncio and blocking drivers across a server that
forgets its sessions, through real processes on loopback: ``kill -9`` of ``trackwire serve``,
a restart on the same port, ``--session-ttl``; every refusal is one line and exit 1."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import pytest

from trackwire import (
    FleetFreedomClient,
    ITrackClient,
    ReconnectPolicy,
    SessionFinished,
    SessionRestored,
)
from trackwire.drivers import asyncio as asyncio_driver
from trackwire.drivers import blocking as blocking_driver
from trackwire.fleetfreedom import Command
from trackwire.itrack import (
    StateBatchRequest,
    Subscribe,
    Target,
    build_auth_request,
    subscription_url,
)

CLI = [sys.executable, "-m", "trackwire.drivers"]
POSITIONS = ("merged", "state", "state_batch")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(platform: str, port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "serve", platform, "--port", str(port), "--vehicles", "3", "--rate", "4",
         "--duration", "90", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert "127.0.0.1" in proc.stdout.readline()  # listening
    return proc


def watch_args(platform: str, port: int) -> list[str]:
    if platform == "itrack":
        return ["watch", "itrack", "--url", f"http://127.0.0.1:{port}/v2/",
                "--login", "demo", "--password", "demo"]  # fmt: skip
    return ["watch", "fleetfreedom", "--url", f"ws://127.0.0.1:{port}/",
            "--username", "demo@example.com", "--password", "demo", "--company", "1"]  # fmt: skip


class Lines:
    """A process's stdout read by a thread: JSON records, waited for with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.strip():
                self.queue.put(json.loads(line))

    def until(self, kinds: tuple[str, ...], within: float = 60.0) -> dict[str, Any]:
        """The next record of one of ``kinds`` (the test's own time bound, not a figure)."""
        end = time.monotonic() + within
        while True:
            record = self.queue.get(timeout=max(0.01, end - time.monotonic()))
            self.seen.append(record)
            if record["kind"] in kinds:
                return record


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("platform", ["itrack", "fleetfreedom"])
def test_watch_shows_positions_again_after_the_server_is_killed_and_restarted(
    platform: str, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    processes.append(serve(platform, port))
    watcher = subprocess.Popen(
        [*CLI, *watch_args(platform, port), "--json", "--duration", "80"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    processes.append(watcher)
    assert watcher.stdout is not None
    lines = Lines(watcher.stdout)
    lines.until(POSITIONS)
    processes[0].kill()  # SIGKILL: every session is lost with the process
    processes[0].wait(timeout=10)
    processes.append(serve(platform, port))
    forgotten = lines.until(("session_forgotten",))
    assert forgotten["error_code"] == (4 if platform == "itrack" else 8)
    restored = lines.until(("session_restored",))
    assert restored["resubscribed"] == 1
    lines.until(POSITIONS)  # positions flow again, the client never restarted
    assert watcher.poll() is None
    watcher.terminate()
    _, err = watcher.communicate(timeout=20)
    assert "logged in again" in err
    assert "Traceback" not in err


def test_sessions_expiring_on_the_server_are_logged_in_again(
    processes: list[subprocess.Popen[str]],
) -> None:
    port = free_port()
    processes.append(serve("fleetfreedom", port, "--session-ttl", "1"))
    watcher = subprocess.Popen(
        [*CLI, *watch_args("fleetfreedom", port), "--json", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    processes.append(watcher)
    assert watcher.stdout is not None
    lines = Lines(watcher.stdout)
    for _ in range(2):
        lines.until(("session_restored",))
        lines.until(POSITIONS)


@pytest.mark.parametrize(
    ("args", "line", "record"),
    [
        (["watch", "fleetfreedom", "--company", "2"],
         "trackwire: nothing to watch: company 2: assetGeneral, assetAdvanced denied",
         {"kind": "subscription_refused", "company": 2, "reason": "denied"}),
        (["watch", "fleetfreedom", "--types", "bogusType"],
         "trackwire: nothing to watch: company 1: bogusType invalid",
         {"kind": "subscription_refused", "types": ["bogusType"], "reason": "invalid"}),
        (["watch", "itrack", "--trackers", "1,2"],
         "trackwire: nothing to watch: state: 1 unknown, 2 unknown",
         {"kind": "trackers_refused", "trackers": {"1": "unknown", "2": "unknown"}}),
    ],
)  # fmt: skip
def test_a_refusal_is_one_line_a_record_and_exit_1(
    args: list[str], line: str, record: dict[str, Any]
) -> None:
    done = subprocess.run(
        [*CLI, *args, "--json", "--duration", "30"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == line
    assert "Traceback" not in done.stderr
    refusals = [json.loads(x) for x in done.stdout.splitlines() if "_refused" in x]
    assert len(refusals) == 1
    assert record.items() <= refusals[0].items()


def test_a_bare_ghost_id_the_server_does_not_know_ends_with_one_line(
    processes: list[subprocess.Popen[str]],
) -> None:
    port = free_port()
    processes.append(serve("fleetfreedom", port))
    done = subprocess.run(
        [*CLI, "watch", "fleetfreedom", "--url", f"ws://127.0.0.1:{port}/",
         "--ghost-id", "5f0e2c1a-0000-4000-8000-000000000000", "--duration", "30"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines()[-1].startswith("trackwire: session ended (no-credentials)")
    )


def test_a_stall_is_a_status_line_and_a_record() -> None:
    done = subprocess.run(
        [*CLI, "watch", "fleetfreedom", "--rate", "0.01", "--stall-timeout", "0.5", "--json",
         "--duration", "4"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    records = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    kinds = [r.get("kind") for r in records]
    stalls = [r for r in records if r.get("kind") == "stalled"]
    assert stalls, kinds
    assert all(r["idle"] >= 0.5 for r in stalls)
    # Once per silence: two reports in a row would be one silence told twice.  (On a loaded
    # machine the first states can arrive after the timeout: that is a second silence.)
    assert not any(a == b == "stalled" for a, b in itertools.pairwise(kinds)), kinds
    assert "# stalled: no data for" in done.stderr


def test_session_ttl_must_be_positive() -> None:
    done = subprocess.run(
        [*CLI, "serve", "itrack", "--session-ttl", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--session-ttl: expected a positive number" in done.stderr


# -- the asyncio and blocking drivers against a killed and restarted process ------------------


def _core(platform: str, port: int) -> Any:
    if platform == "itrack":
        base = f"http://127.0.0.1:{port}/v2/"
        login = build_auth_request(base, "demo", "demo")
        session_hash = blocking_driver.itrack_login(base, "demo", "demo")
        core: Any = ITrackClient(subscription_url(base), session_hash, login=login)
        core.send(Subscribe([StateBatchRequest(Target.all(), "1s")]))
        return core
    core = FleetFreedomClient(
        f"ws://127.0.0.1:{port}/", login=Command.login("demo@example.com", "demo", "tests")
    )
    core.send(Command.subscribe(1, ["assetAdvanced"]))
    return core


def _is_position(event: object) -> bool:
    return type(event).__name__ in ("Merged", "StateEvent", "StateBatchEvent")


class _Script:
    """Kill the server at the first position, restart it, then expect a new login and
    positions again: what every driver must live through."""

    def __init__(self, platform: str, port: int, procs: list[subprocess.Popen[str]]) -> None:
        self.platform, self.port, self.procs = platform, port, procs
        self.stage = 0  # 0: before the kill, 1: restarted, 2: logged in again, 3: done

    def see(self, event: object) -> bool:
        """Feed one event; true once positions flowed after the new login."""
        assert not isinstance(event, SessionFinished), event
        if self.stage == 0 and _is_position(event):
            self.procs[0].kill()
            self.procs[0].wait(timeout=10)
            self.procs.append(serve(self.platform, self.port))
            self.stage = 1
        elif self.stage == 1 and isinstance(event, SessionRestored):
            self.stage = 2
        elif self.stage == 2 and _is_position(event):
            self.stage = 3
        return self.stage == 3


@pytest.mark.parametrize("platform", ["itrack", "fleetfreedom"])
def test_blocking_driver_outlives_a_killed_server(
    platform: str, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    processes.append(serve(platform, port))
    script = _Script(platform, port, processes)
    policy = ReconnectPolicy(initial=0.2, cap=1.0)
    with blocking_driver.connect(_core(platform, port), reconnect=policy) as conn:
        end = time.monotonic() + 60
        while not script.see(conn.next_event(max(0.01, end - time.monotonic()))):
            assert time.monotonic() < end, f"stuck at stage {script.stage}"


@pytest.mark.parametrize("platform", ["itrack", "fleetfreedom"])
def test_asyncio_driver_outlives_a_killed_server(
    platform: str, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    processes.append(serve(platform, port))
    script = _Script(platform, port, processes)
    core = _core(platform, port)

    async def main() -> None:
        policy = ReconnectPolicy(initial=0.2, cap=1.0)
        async with asyncio_driver.connect(core, reconnect=policy) as conn:
            end = time.monotonic() + 60
            while not script.see(await conn.next_event(max(0.01, end - time.monotonic()))):
                assert time.monotonic() < end, f"stuck at stage {script.stage}"

    asyncio.run(main())
