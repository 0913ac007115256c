"""Servers the loopback cases run in a child process (so that they do not share the client's
interpreter); loopback only.  Each prints one JSON line when it is listening and exits when
its standard input closes.

    python _servers.py stream MESSAGES   # a WebSocket server that streams state events
    python _servers.py reference LIMIT   # the iTrack reference server on the trio driver
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HANDSHAKE = "b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|"


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return int(soft)


async def stdin_lines() -> AsyncIterator[bytes]:
    """The lines of standard input (without their newline) as they come, until it closes:
    how a child server hears the parent's commands (inside trio)."""
    import trio

    stdin = trio.lowlevel.FdStream(os.dup(0))
    pending = b""
    while True:
        data = await stdin.receive_some(4096)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line


@contextlib.contextmanager
def json_child(
    argv: list[str], what: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Run a child server (``argv``); yields the process and its first JSON line, then
    closes its standard input (its signal to exit) and waits for it (killed after 10 s)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {what} server did not start")
        yield proc, json.loads(line)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exit_on_stdin_eof() -> None:
    def wait() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


# -- the stream server -----------------------------------------------------------------------


def stream_bytes(messages: int) -> bytes:
    """The Atmosphere handshake, ``messages`` state events and a close frame, unmasked."""
    from payloads import STATE_EVENT
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import TextMessage

    send = Connection(ConnectionType.SERVER).send
    frame = send(TextMessage(STATE_EVENT))
    close = b"\x88\x02\x03\xe8"
    return send(TextMessage(HANDSHAKE)) + frame * messages + close


def _serve_stream(conn: socket.socket, blob: bytes) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        match = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", head)
        if match is None:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(match.group(1) + _GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" + blob
        )
        # The blob ends with our close frame: wait for the client's answer (or its EOF), then
        # close the TCP connection first, as a WebSocket server does.
        conn.settimeout(10.0)
        with contextlib.suppress(OSError):
            conn.recv(65536)


def stream(messages: int) -> None:
    blob = stream_bytes(messages)
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"port": listener.getsockname()[1], "bytes": len(blob)}), flush=True)
    _exit_on_stdin_eof()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_stream, args=(conn, blob), daemon=True).start()


# -- the reference server --------------------------------------------------------------------


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def reference(limit: int) -> None:
    import tracemalloc
    from functools import partial

    import trio

    from trackwire.conformance import ITrackReference, demo_fleet
    from trackwire.drivers.trio import serve
    from trackwire.ws import StackState

    fds = raise_fd_limit(limit + 256)
    app = ITrackReference(demo_fleet(10))

    def stats(server: Any) -> dict[str, Any]:
        import gc

        gc.collect()
        connections = list(server.connections)
        return {
            "connections": len(connections),
            "open": sum(1 for c in connections if c.state is StackState.OPEN),
            "traced": tracemalloc.get_traced_memory()[0],
            "rss": _rss(),
        }

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    serve,
                    app.factory,
                    "127.0.0.1",
                    0,
                    http_handler=app.http_handler,
                    max_connections=limit,
                    max_connections_per_address=None,  # every client is on 127.0.0.1
                )
            )
            print(json.dumps({"port": server.port, "fd_limit": fds}), flush=True)
            async for line in stdin_lines():
                if line.strip() == b"measure":
                    print(json.dumps(stats(server)), flush=True)
            nursery.cancel_scope.cancel()

    tracemalloc.start()
    trio.run(main)


if __name__ == "__main__":
    mode, number = sys.argv[1], int(sys.argv[2])
    if mode == "stream":
        stream(number)
    elif mode == "reference":
        reference(number)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
