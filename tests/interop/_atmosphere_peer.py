"""Glue for the atmosphere.js interop tests: our trio server running the iTrack server core,
and a runner for the Node harness.

The server is the project's own driver (:func:`trackwire.drivers.trio.serve`) with
:class:`trackwire.itrack.ITrackServer` over :class:`trackwire.atmosphere.AtmosphereServer`,
run by ``trio.run`` in a background thread.  Everything both sides do is recorded as
observations that the test thread waits for.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from trackwire import Event
from trackwire.atmosphere import AtmosphereServer
from trackwire.drivers.trio import Server, ServerConnection, serve
from trackwire.itrack import Directory, ITrackServer, SourceState
from trackwire.ws import (
    AtmosphereCloseRequested,
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    HttpRequestHandled,
    UpgradeRequest,
)

NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"
HARNESS = NODE_DIR / "harness.js"
LEGACY_VERSIONS = ("2.3.6", "3.1.3", "4.0.1")
"""The jQuery-era client: ``atmosphere.subscribe(request)``, an HTTP close request."""
MODERN_VERSIONS = ("5.0.45",)
"""The TypeScript rewrite (the current npm release): the platform's WebSocket global."""
VERSIONS = LEGACY_VERSIONS + MODERN_VERSIONS


def node_command(version: str) -> list[str]:
    """``node`` and the flags ``version`` needs: 5.x uses the WebSocket global, which Node
    20 and 21 only have with ``--experimental-websocket``."""
    if int(version.split(".")[0]) < 5:
        return ["node"]
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
        major = int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.CalledProcessError):
        return ["node"]
    return ["node", "--experimental-websocket"] if major < 22 else ["node"]


SESSION_HASH = "a1" * 16
"""The live session of user ``alice``, who owns tracker 1 (source 101)."""


def node_setup_problem(version: str) -> str | None:
    """Why the harness cannot run for ``version`` (``None`` when it can)."""
    if shutil.which("node") is None:
        return "`node` is not on PATH: install Node.js (>= 18), then run `npm ci` in interop/node"
    package = NODE_DIR / "node_modules" / f"atmosphere-{version}" / "package.json"
    if not package.is_file():
        return f"{package} is missing: run `npm ci` in {NODE_DIR}"
    return None


def tracker_state(speed: float) -> SourceState:
    """A state of source 101 with non-ASCII text in it (UTF-16 lengths matter with TMS)."""
    return SourceState.create(101, connection_status="active", speed=speed, label="héllo ✓ 🛰")


@dataclass
class Observation:
    """One thing the server saw or did; ``conn`` numbers WebSocket connections from 0."""

    kind: str
    """``connect``, ``event``, ``close-request``, ``http``, ``disconnect`` or ``error``."""
    t: float
    conn: int | None = None
    target: str | None = None
    uuid: str | None = None
    event: Event | None = None
    data: str | None = None


class _Recorder:
    """A list of observations that another thread can wait on."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        with self._cond:
            return list(self.items)

    def wait_for(
        self, predicate: Callable[[Any], bool], timeout: float, what: str, nth: int = 1
    ) -> Any:
        """The ``nth`` recorded item that satisfies ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = found = 0
        with self._cond:
            while True:
                for item in self.items[seen:]:
                    if predicate(item):
                        found += 1
                        if found == nth:
                            return item
                seen = len(self.items)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(left)


class ITrackTestServer:
    """Our trio server with the iTrack core on 127.0.0.1 (ephemeral port), run in a thread
    by ``with``; ``alice`` (hash :data:`SESSION_HASH`) owns tracker 1."""

    def __init__(self, *, heartbeat_interval_ms: int = 1000, server_heartbeat: float = 60.0):
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.server_heartbeat = server_heartbeat
        self.port = 0
        self.log = _Recorder()
        self.directory = Directory(hash_factory=lambda: SESSION_HASH)
        self.directory.add_user("alice", "pw")
        self.directory.authenticate("alice", "pw")
        self.directory.add_tracker("alice", 1, source_id=101, state=tracker_state(0))
        self._conns: list[ServerConnection[ITrackServer]] = []
        self._index: dict[ServerConnection[Any], int] = {}
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="itrack-test-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/event/subscription"

    def __enter__(self) -> ITrackTestServer:
        self._thread.start()
        if not self._ready.wait(10) or self._token is None:
            raise RuntimeError(f"the test server did not start: {self.observations('error')}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(15)
        if self._thread.is_alive():
            raise RuntimeError("the test server thread did not stop")

    # -- called from the test thread --------------------------------------------------------

    def wait_for(
        self,
        what: str,
        predicate: Callable[[Observation], bool],
        timeout: float = 10.0,
        nth: int = 1,
    ) -> Observation:
        """The ``nth`` observation matching ``predicate`` (waits; fails after ``timeout``)."""
        try:
            return self.log.wait_for(predicate, timeout, what, nth)  # type: ignore[no-any-return]
        except AssertionError as exc:
            seen = "\n".join(map(repr, self.log.snapshot()))
            raise AssertionError(f"{exc}\nserver observations:\n{seen}") from None

    def observations(self, kind: str | None = None) -> list[Observation]:
        return [o for o in self.log.snapshot() if kind is None or o.kind == kind]

    def send(self, conn: int, *messages: str) -> None:
        """Queue raw ``messages`` on connection ``conn`` through the core, then write them."""

        def send() -> None:
            target = self._conns[conn]
            for message in messages:
                target.send(message)

        self._call(send)

    def push_state(self, conn: int, speed: float) -> None:
        """Tracker 1 moved: the core sends a ``state`` event where it is subscribed."""

        def push() -> None:
            target = self._conns[conn]
            assert target.core is not None
            target.core.push_state(1, tracker_state(speed), trio.current_time())
            target.flush()

        self._call(push)

    def drop(self, conn: int, *, abort: bool) -> None:
        """End connection ``conn``: a TCP abort, or a WebSocket close with code 1000."""
        target = self._conns[conn]
        self._call(target.abort if abort else target.close)

    def _call(self, fn: Callable[[], None]) -> None:
        assert self._token is not None
        trio.from_thread.run_sync(fn, trio_token=self._token)

    # -- the server thread ------------------------------------------------------------------

    def _record(self, kind: str, **fields: Any) -> None:
        self.log.add(Observation(kind, time.monotonic(), **fields))

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException:
            self._record("error", data=traceback.format_exc())
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            server: Server[ITrackServer] = await nursery.start(
                partial(serve, self._factory, on_event=self._on_event)
            )
            self.port = server.port
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def _factory(self, request: UpgradeRequest) -> ITrackServer:
        transport = AtmosphereServer(
            request.target,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            server_heartbeat=self.server_heartbeat,
        )
        return ITrackServer(request.target, self.directory, transport=transport)

    def _on_event(self, conn: ServerConnection[Any], event: Event) -> None:
        core = conn.core
        uuid = core.transport.uuid if isinstance(core, ITrackServer) else None
        if isinstance(event, Connected):
            self._index[conn] = len(self._conns)
            self._conns.append(conn)
            self._record("connect", conn=self._index[conn], target=event.target, uuid=uuid)
        elif isinstance(event, AtmosphereCloseRequested):
            self._record("close-request", target=event.target, uuid=event.tracking_id)
        elif isinstance(event, HttpRequestHandled):
            self._record("http", target=event.target, data=str(event.status_code))
        elif isinstance(event, HandshakeFailed):
            self._record("error", data=f"{conn.remote}: {event.error}")
        elif isinstance(event, ConnectionClosed):
            index = self._index.get(conn)
            if event.error is not None:
                self._record("error", conn=index, data=f"{event.code} {event.error}")
            self._record("disconnect", conn=index, uuid=uuid, data=str(event.code))
        else:
            self._record("event", conn=self._index.get(conn), uuid=uuid, event=event)


class NodeHarness:
    """One ``node harness.js`` process: JSON commands in, JSON observations out."""

    def __init__(self, version: str, url: str, *args: str, max_seconds: int = 40):
        self.argv = [
            *node_command(version),
            str(HARNESS),
            "--version",
            version,
            "--url",
            url,
            "--max-seconds",
            str(max_seconds),
            *args,
        ]
        self.log = _Recorder()
        self.stderr: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.proc: subprocess.Popen[str] | None = None
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="surrogatepass",
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        for name, stream, sink in (
            ("stdout", self.proc.stdout, self._stdout_line),
            ("stderr", self.proc.stderr, self.stderr.put),
        ):
            thread = threading.Thread(
                target=self._pump, args=(stream, sink), name=f"harness-{name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    @staticmethod
    def _pump(stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line)

    def _stdout_line(self, line: str) -> None:
        try:
            self.log.add(json.loads(line))
        except json.JSONDecodeError:
            self.log.add({"event": "bad-line", "line": line})

    def command(self, cmd: str, **fields: Any) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def wait_for(
        self,
        what: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
        nth: int = 1,
    ) -> dict[str, Any]:
        """The ``nth`` output line matching ``predicate`` (waits; fails after ``timeout``)."""
        try:
            return self.log.wait_for(predicate, timeout, what, nth)  # type: ignore[no-any-return]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.transcript()}") from None

    def wait_event(self, event: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        def match(line: dict[str, Any]) -> bool:
            return line.get("event") == event and all(line.get(k) == v for k, v in fields.items())

        return self.wait_for(f"harness event {event} {fields or ''}", match, timeout)

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        return [x for x in self.log.snapshot() if event is None or x.get("event") == event]

    def stderr_text(self) -> str:
        out = []
        while True:
            try:
                out.append(self.stderr.get_nowait())
            except queue.Empty:
                return "".join(out)

    def transcript(self) -> str:
        return "harness stdout:\n" + "\n".join(json.dumps(x) for x in self.log.snapshot())

    def stop(self) -> None:
        """End the process for sure: stdin closed, then a kill if it lingers."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        finally:
            if proc.poll() is None:  # pragma: no cover - only when kill() failed
                proc.kill()
            for thread in self.threads:
                thread.join(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@contextlib.contextmanager
def running_harness(version: str, url: str, *args: str) -> Iterator[NodeHarness]:
    """Start the harness and make sure the process is gone when the block ends."""
    harness = NodeHarness(version, url, *args)
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()
        if harness.proc is not None and harness.proc.returncode not in (0, None):
            print(harness.stderr_text(), file=sys.stderr)
