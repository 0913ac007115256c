"""Fan-out on loopback: one position pushed to every one of N served WebSockets.

Two servers run in turn, each in a child process on 127.0.0.1: ours (the trio driver's
``serve`` with an ``ITrackServer`` per connection; every update is one ``StatePush``, so it is
encoded once for all subscribers) and a ``websockets`` asyncio server broadcasting each
update's text (also encoded once, ``websockets.asyncio.server.broadcast``).  The parent opens
N connections to each (raw sockets, one trio task each), measures the server's RSS growth
per idle connection, subscribes them, then asks for M updates: each is pushed to every
connection and the server waits until its write buffers are empty before the next.  The
figures: delivered messages per second (until every client counted every message) and the
server process's CPU time per delivered message.

    python benchmarks/fanout.py [--connections N] [--updates M]
    python benchmarks/fanout.py serve ours|websockets     # a child (reads commands on stdin)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _servers import json_child, raise_fd_limit, stdin_lines
from payloads import STATE_EVENT

HASH = "0123456789abcdef0123456789abcdef"
TRACKER = 10284
TARGET = (
    "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=3.1.3-javascript"
    "&X-Atmosphere-Transport=websocket"
)
SUBSCRIBE = json.dumps(
    {"action": "subscribe", "hash": HASH, "requests": [{"type": "state", "trackers": [TRACKER]}]}
)
TIMEOUT = 120.0
"""Bound on every phase, in seconds."""


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _report(**figures: Any) -> None:
    print(json.dumps(figures), flush=True)


# -- the servers (child processes) ------------------------------------------------------------


def serve_ours() -> None:
    from functools import partial

    import trio

    from trackwire import set_decoder
    from trackwire.drivers.trio import serve
    from trackwire.itrack import Directory, ITrackServer, SourceState, StatePush
    from trackwire.ws import StackState, UpgradeRequest

    set_decoder("default")
    raise_fd_limit(8192)
    directory = Directory()
    directory.add_user("demo", "demo")
    directory.add_api_key("demo", HASH)
    directory.add_tracker("demo", TRACKER, source_id=TRACKER)
    state = SourceState(json.loads(STATE_EVENT)["data"])
    cores: list[ITrackServer] = []

    def factory(request: UpgradeRequest) -> ITrackServer:
        core = ITrackServer(request.target, directory, heartbeat_interval_ms=3_600_000)
        cores.append(core)
        return core

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    serve,
                    factory,
                    "127.0.0.1",
                    0,
                    max_connections=8192,
                    max_connections_per_address=None,  # every client is on 127.0.0.1
                    handshake_timeout=None,
                )
            )
            gc.collect()
            _report(port=server.port, rss=_rss())
            async for line in stdin_lines():
                command, _, arg = line.decode().partition(" ")
                if command == "measure":
                    gc.collect()
                    open_ = sum(1 for c in server.connections if c.state is StackState.OPEN)
                    _report(rss=_rss(), connections=open_)
                elif command == "subscribed":
                    with trio.fail_after(TIMEOUT):
                        while sum(1 for c in cores if c.subscribed) < int(arg):
                            await trio.sleep(0.01)
                    _report(subscribed=sum(1 for c in cores if c.subscribed))
                elif command == "push":
                    live = [c for c in cores if c.subscribed]
                    conns = list(server.connections)
                    cpu, wall = time.process_time(), time.perf_counter()
                    for _ in range(int(arg)):
                        push = StatePush(state)  # one encode per update
                        for core in live:
                            core.push_state(TRACKER, push, trio.current_time())
                        server.flush(live)
                        while any(c.buffered for c in conns):
                            await trio.sleep(0)
                    _report(
                        cpu=time.process_time() - cpu,
                        wall=time.perf_counter() - wall,
                        connections=len(live),
                    )
            nursery.cancel_scope.cancel()

    trio.run(main)


def serve_websockets() -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    raise_fd_limit(8192)
    subscribed: set[ServerConnection] = set()
    connected: set[ServerConnection] = set()
    message = STATE_EVENT
    obj = json.loads(message)

    async def handler(ws: ServerConnection) -> None:
        connected.add(ws)
        try:
            await ws.recv()  # the subscribe action
            subscribed.add(ws)
            await ws.wait_closed()
        finally:
            connected.discard(ws)
            subscribed.discard(ws)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with serve(
            handler,
            "127.0.0.1",
            0,
            compression=None,
            ping_interval=None,
            max_queue=None,
            open_timeout=None,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            gc.collect()
            _report(port=port, rss=_rss())
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            while line := await reader.readline():
                command, _, arg = line.decode().strip().partition(" ")
                if command == "measure":
                    gc.collect()
                    _report(rss=_rss(), connections=len(connected))
                elif command == "subscribed":
                    async with asyncio.timeout(TIMEOUT):
                        while len(subscribed) < int(arg):
                            await asyncio.sleep(0.01)
                    _report(subscribed=len(subscribed))
                elif command == "push":
                    live = list(subscribed)
                    cpu, wall = time.process_time(), time.perf_counter()
                    for _ in range(int(arg)):
                        text = json.dumps(obj, separators=(",", ":"))  # one encode per update
                        broadcast(live, text)
                        while any(ws.transport.get_write_buffer_size() for ws in live):
                            await asyncio.sleep(0)
                    _report(
                        cpu=time.process_time() - cpu,
                        wall=time.perf_counter() - wall,
                        connections=len(live),
                    )

    asyncio.run(main())


# -- the clients (parent process) -------------------------------------------------------------


def _child(kind: str) -> AbstractContextManager[tuple[subprocess.Popen[str], dict[str, Any]]]:
    env = dict(os.environ, TRACKWIRE_DECODER="default")
    argv = [sys.executable, os.environ.get("FANOUT_CHILD", __file__), "serve", kind]
    return json_child(argv, kind, env)


def _ask(proc: subprocess.Popen[str], command: str) -> dict[str, Any]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the server ended during {command!r}")
    return dict(json.loads(line))


class _Reader:
    """Counts the text frames of exactly ``size`` payload bytes on one connection."""

    __slots__ = ("buffer", "count", "size")

    def __init__(self, size: int) -> None:
        self.buffer = b""
        self.count = 0
        self.size = size

    def feed(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            if end - pos < head + length:
                break
            if length == self.size and buffer[pos] == 0x81:
                self.count += 1
            pos += head + length
        self.buffer = buffer[pos:]


def _masked_text(text: str) -> bytes:
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import TextMessage

    return Connection(ConnectionType.CLIENT).send(TextMessage(text))


async def _run(
    kind: str, proc: subprocess.Popen[str], port: int, count: int, updates: int
) -> dict[str, Any]:
    import trio
    from wsproto.connection import ConnectionType
    from wsproto.events import Request
    from wsproto.handshake import H11Handshake

    request = H11Handshake(ConnectionType.CLIENT).send(Request(host="127.0.0.1", target=TARGET))
    subscribe = _masked_text(SUBSCRIBE)
    size = len(STATE_EVENT.encode())
    readers: list[_Reader] = []
    streams: list[trio.SocketStream] = []
    opened = trio.Semaphore(0)
    limiter = trio.CapacityLimiter(100)

    async def one(nursery: trio.Nursery) -> None:
        async with limiter:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    raise RuntimeError("the server closed during the handshake")
                data += chunk
        reader = _Reader(size)
        reader.feed(data.partition(b"\r\n\r\n")[2])
        readers.append(reader)
        streams.append(stream)
        opened.release()
        while True:
            chunk = await stream.receive_some(262144)
            if not chunk:
                return
            reader.feed(chunk)

    async with trio.open_nursery() as nursery:
        with trio.fail_after(TIMEOUT):
            for _ in range(count):
                nursery.start_soon(one, nursery)
            for _ in range(count):
                await opened.acquire()
            await trio.sleep(0.5)  # the last handshakes (and ours' Atmosphere one) settle
            idle = await trio.to_thread.run_sync(_ask, proc, "measure")
            for stream in streams:
                await stream.send_all(subscribe)
            await trio.to_thread.run_sync(_ask, proc, f"subscribed {count}")
            await trio.sleep(0.2)
            before = [r.count for r in readers]
            started = time.perf_counter()
            pushed = await trio.to_thread.run_sync(_ask, proc, f"push {updates}")
            while any(r.count - b < updates for r, b in zip(readers, before, strict=True)):
                await trio.sleep(0.005)
            elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    for stream in streams:
        with trio.move_on_after(1):
            await stream.aclose()
    delivered = sum(r.count - b for r, b in zip(readers, before, strict=True))
    return {
        "server": kind,
        "connections": idle["connections"],
        "idle_rss": idle["rss"],  # made per connection by measure()
        "delivered": delivered,
        "msg_per_s": delivered / elapsed,
        "cpu_us_per_msg": pushed["cpu"] / delivered * 1e6,
        "server_wall": pushed["wall"],
        "wall": elapsed,
    }


def measure(kind: str, count: int, updates: int) -> dict[str, Any]:
    """One server: idle RSS per connection, then ``updates`` pushes to ``count`` clients."""
    import trio

    fds = raise_fd_limit(count + 256)
    if fds < count + 128:  # a low hard limit: fewer connections, rather than a crash
        count = max(1, fds - 128)
    with _child(kind) as (proc, info):
        figures = trio.run(_run, kind, proc, int(info["port"]), count, updates)
    grown = figures.pop("idle_rss") - info["rss"]
    figures["idle_rss_per_connection"] = grown / max(figures["connections"], 1)
    return figures


def compare(count: int, updates: int, rounds: int = 1) -> dict[str, list[dict[str, Any]]]:
    """Both servers, alternately, ``rounds`` times."""
    out: dict[str, list[dict[str, Any]]] = {"ours": [], "websockets": []}
    for _ in range(rounds):
        for kind in ("ours", "websockets"):
            out[kind].append(measure(kind, count, updates))
    return out


def items() -> list[Any]:
    """The fan-out and side-by-side memory figures for ``run.py``."""
    from run import Item, Result, Settings, Target, result

    name = "8 fan-out: one update to every served connection (trio serve, StatePush)"

    def run(settings: Settings) -> list[Result]:
        count = settings.concurrent_connections
        updates = 10 if settings.quick else 50
        rounds = 1 if settings.quick else 3
        runs = compare(count, updates, rounds)
        ours, theirs = runs["ours"], runs["websockets"]

        def med(rows: list[dict[str, Any]], key: str) -> float:
            return float(statistics.median(row[key] for row in rows))

        count = int(ours[0]["connections"])  # fewer when the descriptor limit is low
        note = (
            f"{count:,} connections, {updates} updates, median of {rounds} alternated run(s); "
            f"delivered: ours {med(ours, 'delivered'):,.0f}, "
            f"websockets {med(theirs, 'delivered'):,.0f}"
        )
        rate, base_rate = med(ours, "msg_per_s"), med(theirs, "msg_per_s")
        cpu, base_cpu = med(ours, "cpu_us_per_msg"), med(theirs, "cpu_us_per_msg")
        rss, base_rss = med(ours, "idle_rss_per_connection"), med(theirs, "idle_rss_per_connection")
        baseline = "websockets asyncio broadcast server"
        return [
            result(name, baseline, "msg/s", rate, base_rate, rate / base_rate, None, note=note),
            result(
                "8 fan-out: server CPU per delivered message",
                baseline,
                "us/msg",
                cpu,
                base_cpu,
                cpu / base_cpu,
                None,
            ),
            result(
                "7 loopback: server RSS growth per idle served connection, side by side",
                "websockets asyncio server",
                "B/conn",
                rss,
                base_rss,
                rss / base_rss,
                Target("max-ratio", 1.0),
            ),
        ]

    return [Item(name, run)]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["serve"]:
        {"ours": serve_ours, "websockets": serve_websockets}[args[1]]()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args(args)
    runs = compare(options.connections, options.updates, options.rounds)
    print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
