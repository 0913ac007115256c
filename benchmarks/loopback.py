"""Loopback cases: our trio client against a ``websockets`` client reading the same fast
stream (6), and concurrent idle connections to the reference server on the trio driver (7).

The servers run in a child process (``_servers.py``) on 127.0.0.1 so that they do not take
the measured interpreter's time; every phase is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import trio
from _servers import json_child, raise_fd_limit
from run import Item, Result, Settings, Target, result
from websockets.asyncio.client import connect as websockets_connect
from wsproto.connection import ConnectionType
from wsproto.events import Request
from wsproto.handshake import H11Handshake

from trackwire.atmosphere import AtmosphereClient
from trackwire.drivers.trio import connect
from trackwire.itrack import ITrackClient, StateEvent, subscription_url
from trackwire.ws import ClientStack

HASH = "0123456789abcdef0123456789abcdef"
TIMEOUT = 60.0
"""Bound on any one phase (a stream read, opening the connections), in seconds."""


def child(
    mode: str, number: int
) -> AbstractContextManager[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Run ``_servers.py mode number``; yields the process and its first JSON line."""
    script = Path(__file__).with_name("_servers.py")
    return json_child([sys.executable, str(script), mode, str(number)], mode)


# -- 6. a fast stream -----------------------------------------------------------------------


async def _ours(port: int, messages: int) -> float:
    """Messages per second our trio client turns into ``StateEvent``."""
    core = ITrackClient(subscription_url(f"http://127.0.0.1:{port}/v2/"), HASH)
    count = 0
    first = last = 0.0
    with trio.fail_after(TIMEOUT):
        async with connect(core, reconnect=None, connect_timeout=5.0, close_timeout=1.0) as conn:
            async for event in conn:
                if type(event) is StateEvent:
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                    elif count == messages:
                        last = time.perf_counter()
                        break
    if count != messages:
        raise RuntimeError(f"our client saw {count} of {messages} messages")
    return (messages - 1) / (last - first)


async def _bare(port: int, messages: int) -> float:
    """Messages per second of a minimal trio loop over :class:`ClientStack` (no driver): read,
    feed, drain events, write.  What the driver could reach; not a product."""
    core = ITrackClient(subscription_url(f"http://127.0.0.1:{port}/v2/"), HASH)
    stack = ClientStack.from_url(core, core.url_to_open)
    count = 0
    first = last = 0.0
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            stack.connection_made(trio.current_time())
            await stream.send_all(stack.data_to_send())
            while count < messages:
                data = await stream.receive_some(65536)
                if not data:
                    break
                stack.receive(bytes(data), trio.current_time())
                for event in stack.events():
                    if type(event) is StateEvent:
                        count += 1
                        if count == 1:
                            first = time.perf_counter()
                        elif count == messages:
                            last = time.perf_counter()
                out = stack.data_to_send()
                if out:
                    await stream.send_all(out)
    if count != messages:
        raise RuntimeError(f"the bare loop saw {count} of {messages} messages")
    return (messages - 1) / (last - first)


async def _theirs(url: str, messages: int) -> float:
    """Messages per second a ``websockets`` asyncio client reads and decodes with json.loads."""
    loads = json.loads
    count = 0
    first = last = 0.0

    async def read() -> None:
        nonlocal count, first, last
        async with websockets_connect(url, max_size=None, compression=None) as ws:
            await ws.recv()  # the Atmosphere handshake
            async for message in ws:
                loads(message)
                count += 1
                if count == 1:
                    first = time.perf_counter()
                elif count == messages:
                    last = time.perf_counter()
                    break

    await asyncio.wait_for(read(), TIMEOUT)
    if count != messages:
        raise RuntimeError(f"the websockets client saw {count} of {messages} messages")
    return (messages - 1) / (last - first)


def stream_item() -> Item:
    name = "6 loopback stream: trio client -> itrack StateEvent"
    bare_name = "6 loopback stream: bare trio loop over ClientStack (no driver)"

    def run(settings: Settings) -> list[Result]:
        messages = settings.stream_messages
        ours: list[float] = []
        theirs: list[float] = []
        bare: list[float] = []
        with child("stream", messages) as (_, info):
            port = int(info["port"])
            url = AtmosphereClient(f"http://127.0.0.1:{port}/v2/event/subscription").url_to_open
            for _ in range(settings.stream_rounds):
                ours.append(trio.run(_ours, port, messages))
                theirs.append(asyncio.run(_theirs(url, messages)))
                bare.append(trio.run(_bare, port, messages))
        note = (
            f"{messages:,} state events of 357 bytes per round, {settings.stream_rounds} rounds, "
            "server in a child process; rates count from the first message to the last"
        )
        return [
            _rate_row(name, "websockets asyncio client + json.loads", ours, theirs, 1.0, note),
            _rate_row(name, "bare trio loop over ClientStack", ours, bare, None),
            _rate_row(bare_name, "websockets asyncio client + json.loads", bare, theirs, None),
        ]

    return Item(name, run)


def _rate_row(
    name: str,
    baseline: str,
    ours: list[float],
    theirs: list[float],
    target: float | None,
    note: str = "",
) -> Result:
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    return result(
        name,
        baseline,
        "msg/s",
        statistics.median(ours),
        statistics.median(theirs),
        statistics.median(ratios),
        None if target is None else Target("min-ratio", target),
        (min(ratios), max(ratios)),
        note=note,
    )


# -- 7. concurrent idle connections -----------------------------------------------------------


def _frame_complete(data: bytes) -> bool:
    """``data`` holds at least one whole short server frame (the handshake)."""
    return len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F)


async def _hold(
    port: int, count: int, proc: subprocess.Popen[str]
) -> tuple[int, float, dict[str, Any]]:
    """Open ``count`` WebSockets (each up to the Atmosphere handshake), ask the server for
    its figures while they are all open, then close them; (opened, seconds, figures)."""
    target = AtmosphereClient(
        f"http://127.0.0.1:{port}/v2/event/subscription", track_message_length=True
    ).url_to_open.split(f"{port}", 1)[1]
    request = H11Handshake(ConnectionType.CLIENT).send(Request(host="127.0.0.1", target=target))
    streams: list[trio.SocketStream] = []
    limiter = trio.CapacityLimiter(100)

    async def one() -> None:
        async with limiter:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request)
            data = b""
            while True:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    await stream.aclose()
                    return
                data += chunk
                head, found, rest = data.partition(b"\r\n\r\n")
                if found and _frame_complete(rest):
                    break
            if head.startswith(b"HTTP/1.1 101"):
                streams.append(stream)
            else:
                await stream.aclose()

    def ask() -> dict[str, Any]:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write("measure\n")
        proc.stdin.flush()
        return dict(json.loads(proc.stdout.readline()))

    with trio.fail_after(TIMEOUT):
        before = await trio.to_thread.run_sync(ask)
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
        elapsed = time.perf_counter() - started
        await trio.sleep(0.2)  # let the server finish its side of the last handshakes
        after = await trio.to_thread.run_sync(ask)
        opened = len(streams)
        for stream in streams:
            await stream.aclose()
    figures = {key: after[key] - before[key] for key in ("traced", "rss")}
    figures["open"] = after["open"]
    return opened, elapsed, figures


def concurrent_item() -> Item:
    name = "7 loopback: concurrent idle connections, iTrack reference server (trio serve)"

    def run(settings: Settings) -> list[Result]:
        count = settings.concurrent_connections
        fds = raise_fd_limit(count + 256)
        if fds < count + 64:
            note = f"fd limit {fds} is below {count} connections"
            return [
                result(name, "-", "conns", 0, None, None, Target("min-value", count), None, note)
            ]
        with child("reference", count + 100) as (proc, info):
            opened, elapsed, figures = trio.run(_hold, int(info["port"]), count, proc)
        served = figures["open"]
        note = (
            f"{opened:,} clients opened in {elapsed:.1f} s; server fd limit {info['fd_limit']}, "
            f"ours {fds}; heap and RSS are the server process's growth, per connection"
        )
        per = max(served, 1)
        return [
            result(name, "-", "conns", served, None, None, Target("min-value", count), note=note),
            result(
                "7 loopback: server Python heap per idle connection (tracemalloc)",
                "-",
                "B/conn",
                figures["traced"] / per,
                None,
                None,
                Target("max-value", 16 * 1024),
            ),
            result(
                "7 loopback: server RSS growth per idle connection",
                "-",
                "B/conn",
                figures["rss"] / per,
                None,
                None,
                None,
            ),
        ]

    return Item(name, run)


def items() -> list[Item]:
    return [stream_item(), concurrent_item()]
