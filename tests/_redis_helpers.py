"""A throwaway ``redis-server`` and ``trackwire serve --redis`` processes on loopback, and a
small TCP balancer (shared by the shared-state tests and ``benchmarks/scale.py``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import trio

_SCRIPT = Path(sys.executable).with_name("trackwire")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "trackwire.drivers"]
_READY = re.compile(r"(?:ws|http)://127\.0\.0\.1:(\d+)/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(timeout: float = 10.0) -> Iterator[str]:
    """A fresh ``redis-server`` on a free loopback port, nothing saved; yields its URL."""
    with redis_process(timeout) as (url, _):
        yield url


@contextlib.contextmanager
def redis_process(timeout: float = 10.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`redis_server`, also yielding the process."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: `apt-get install -y redis-server` (.ci/run does)"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServeProcess:
    """``trackwire serve <platform> --redis URL …`` in a subprocess; :attr:`port` once ready."""

    def __init__(self, platform: str, redis_url: str, *extra: str, duration: float = 120) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "serve", platform, "--redis", redis_url, "--duration", str(duration), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _READY.search(line)
        if match is None:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"serve did not start: {line!r} {err!r}")
        self.port = int(match.group(1))

    def kill(self) -> None:
        """``kill -9``: no goodbye to Redis or to the clients."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def serve_processes(
    platform: str, redis_url: str, count: int, *extra: str, stagger: float = 0.0
) -> Iterator[list[ServeProcess]]:
    """``count`` servers on one Redis, started in order (the first one leads)."""
    started: list[ServeProcess] = []
    try:
        for _ in range(count):
            started.append(ServeProcess(platform, redis_url, *extra))
            time.sleep(stagger)
        yield started
    finally:
        for proc in started:
            proc.stop()


async def balancer(
    ports: Sequence[int], *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """A TCP balancer on a free loopback port: each connection goes to the first of
    ``ports`` that accepts it (a dead backend is skipped).  Runs until cancelled."""

    async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await sink.send_eof()

    async def handle(client: trio.SocketStream) -> None:
        async with client:
            for port in ports:
                try:
                    backend = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    continue
                async with backend, trio.open_nursery() as nursery:
                    nursery.start_soon(pipe, client, backend)
                    nursery.start_soon(pipe, backend, client)
                return

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)
