"""Glue for the atmosphere.js interop tests: a websockets-based server around our core, and a
runner for the Node harness.

The server is deliberately small (to be replaced by the project's own driver): one asyncio
loop in a background thread, the ``websockets`` library for the sockets, and
:class:`trackwire.atmosphere.AtmosphereServer` for the protocol.  Everything both sides do is
recorded as observations that the test thread waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from trackwire.atmosphere import AtmosphereEvent, AtmosphereServer, parse_open_request

NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"
HARNESS = NODE_DIR / "harness.js"
VERSIONS = ("2.3.6", "3.1.3", "4.0.1")


def node_setup_problem(version: str) -> str | None:
    """Why the harness cannot run for ``version`` (``None`` when it can)."""
    if shutil.which("node") is None:
        return "`node` is not on PATH: install Node.js (>= 18), then run `npm ci` in interop/node"
    package = NODE_DIR / "node_modules" / f"atmosphere-{version}" / "package.json"
    if not package.is_file():
        return f"{package} is missing: run `npm ci` in {NODE_DIR}"
    return None


@dataclass
class Observation:
    """One thing the server saw or did; ``conn`` numbers WebSocket connections from 0."""

    kind: str
    """``connect``, ``event``, ``sent``, ``close-request``, ``http``, ``disconnect``,
    ``binary`` or ``error``."""
    t: float
    conn: int | None = None
    target: str | None = None
    uuid: str | None = None
    event: AtmosphereEvent | None = None
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


@dataclass
class _Conn:
    core: AtmosphereServer
    ws: ServerConnection
    index: int
    wake: asyncio.Future[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AtmosphereTestServer:
    """An Atmosphere server on 127.0.0.1 (ephemeral port), run in a thread by ``with``."""

    def __init__(self, *, heartbeat_interval_ms: int = 1000, server_heartbeat: float = 60.0):
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.server_heartbeat = server_heartbeat
        self.port = 0
        self.log = _Recorder()
        self._conns: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atmosphere-test-server")
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/event/subscription"

    def __enter__(self) -> AtmosphereTestServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test server did not start")
        if self._failure is not None:
            raise RuntimeError("the test server failed to start") from self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._stop.set)
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
        """Queue ``messages`` on connection ``conn`` through the core, then write them."""
        self._call(self._send(conn, messages))

    def drop(self, conn: int, *, abort: bool) -> None:
        """End connection ``conn``: a TCP abort, or a WebSocket close with code 1000."""
        self._call(self._drop(conn, abort))

    def _call(self, coro: Any) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the server thread ------------------------------------------------------------------

    def _record(self, kind: str, **fields: Any) -> None:
        self.log.add(Observation(kind, time.monotonic(), **fields))

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._failure = exc
            self._record("error", data=traceback.format_exc())
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            ping_interval=None,
            compression=None,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP before any upgrade: the client's close request gets a 200."""
        target = request.path
        self._record("http", target=target)
        opened = parse_open_request(target)
        if opened.is_close:
            self._record("close-request", target=target, uuid=opened.tracking_id)
            return ws.respond(http.HTTPStatus.OK, "")
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return ws.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        target = ws.request.path
        core = AtmosphereServer(
            target,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            server_heartbeat=self.server_heartbeat,
        )
        conn = _Conn(core, ws, len(self._conns))
        self._conns.append(conn)
        self._record("connect", conn=conn.index, target=target, uuid=core.uuid)
        timer = asyncio.create_task(self._timer(conn))
        try:
            core.connection_made(time.monotonic())
            await self._flush(conn)
            async for message in ws:
                if isinstance(message, bytes):
                    self._record("binary", conn=conn.index, data=message.hex())
                    continue
                core.receive(message, time.monotonic())
                await self._flush(conn)
        except ConnectionClosed:
            pass
        except Exception:
            self._record("error", conn=conn.index, data=traceback.format_exc())
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            core.receive_eof(time.monotonic())
            for event in core.events():
                self._record("event", conn=conn.index, uuid=core.uuid, event=event)
            code = ws.close_code
            self._record("disconnect", conn=conn.index, uuid=core.uuid, data=f"{code}")

    async def _timer(self, conn: _Conn) -> None:
        """Sleep until the core's deadline (or a wake-up after any write), then run its timers.

        ``asyncio.wait`` rather than ``wait_for``: on Python 3.11 a cancellation that meets a
        finished inner wait is delayed until the timeout, which would stall the teardown.
        """
        loop = asyncio.get_running_loop()
        while True:
            conn.wake = loop.create_future()  # before reading the deadline: no lost wake-up
            deadline = conn.core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait((conn.wake,), timeout=timeout)
            conn.core.handle_timer(time.monotonic())
            try:
                await self._flush(conn)
            except ConnectionClosed:
                return

    async def _flush(self, conn: _Conn) -> None:
        """Record the core's events, then write what it queued, in order."""
        async with conn.lock:
            for event in conn.core.events():
                self._record("event", conn=conn.index, uuid=conn.core.uuid, event=event)
            for frame in conn.core.data_to_send():
                self._record("sent", conn=conn.index, data=frame)
                await conn.ws.send(frame)
        if conn.wake is not None and not conn.wake.done():
            conn.wake.set_result(None)

    async def _send(self, index: int, messages: tuple[str, ...]) -> None:
        conn = self._conns[index]
        for message in messages:
            conn.core.send(message, time.monotonic())
        await self._flush(conn)

    async def _drop(self, index: int, abort: bool) -> None:
        conn = self._conns[index]
        if abort:
            conn.ws.transport.abort()
        else:
            await conn.ws.close(1000)


class NodeHarness:
    """One ``node harness.js`` process: JSON commands in, JSON observations out."""

    def __init__(self, version: str, url: str, *args: str, max_seconds: int = 40):
        self.argv = [
            "node",
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
