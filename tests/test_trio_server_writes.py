"""The trio server's writes: at once when the socket takes them, no writer task when idle."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import trio
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Request, TextMessage
from wsproto.handshake import H11Handshake

from trackwire.drivers.trio import Server, serve
from trackwire.itrack import Directory, ITrackServer, SourceState, StatePush

HASH = "0123456789abcdef0123456789abcdef"
TARGET = "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Transport=websocket"


def _directory() -> Directory:
    d = Directory()
    d.add_user("demo", "demo")
    d.add_api_key("demo", HASH)
    d.add_tracker("demo", 7, source_id=70)
    return d


async def _open(port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        H11Handshake(ConnectionType.CLIENT).send(Request(host="127.0.0.1", target=TARGET))
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    return stream


class _Counting(ITrackServer):
    """Counts the timer calls: a reader woken for nothing calls ``handle_timer``."""

    __slots__ = ("timer_calls",)

    def handle_timer(self, now: float) -> None:
        self.timer_calls = getattr(self, "timer_calls", 0) + 1
        super().handle_timer(now)


async def _start(nursery: trio.Nursery, cores: list[ITrackServer]) -> Server[Any]:
    directory = _directory()

    def factory(request: Any) -> ITrackServer:
        core = _Counting(request.target, directory, heartbeat_interval_ms=3_600_000)
        cores.append(core)
        return core

    return await nursery.start(partial(serve, factory, "127.0.0.1", 0))


async def _subscribed(nursery: trio.Nursery, cores: list[ITrackServer]) -> Any:
    server = await _start(nursery, cores)
    stream = await _open(server.port)
    subscribe = {
        "action": "subscribe",
        "hash": HASH,
        "requests": [{"type": "state", "trackers": [7]}],
    }
    await stream.send_all(
        Connection(ConnectionType.CLIENT).send(TextMessage(json.dumps(subscribe)))
    )
    with trio.fail_after(10):
        while not (cores and cores[0].subscribed):
            await trio.sleep(0.01)
        await trio.sleep(0.1)
    return server, stream


async def test_a_push_is_written_before_the_pusher_yields() -> None:
    cores: list[ITrackServer] = []
    async with trio.open_nursery() as nursery:
        server, stream = await _subscribed(nursery, cores)
        (conn,) = server.connections
        cores[0].push_state(
            7, StatePush(SourceState.create(70, speed_note="x")), trio.current_time()
        )
        server.flush(cores)
        assert conn.buffered == 0  # in the socket already: no writer task had to run
        data = b""
        with trio.fail_after(10):
            while b'"speed_note":"x"' not in data:
                data += await stream.receive_some(65536)
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_push_does_not_wake_the_reader() -> None:
    cores: list[ITrackServer] = []
    async with trio.open_nursery() as nursery:
        server, stream = await _subscribed(nursery, cores)
        (core,) = cores
        assert isinstance(core, _Counting)
        core.timer_calls = 0
        for n in range(10):
            core.push_state(7, StatePush(SourceState.create(70, n=n)), trio.current_time())
            server.flush(cores)
            await trio.sleep(0.01)
        assert core.timer_calls == 0  # nothing to do but write: the reader slept on
        data = b""
        with trio.fail_after(10):
            while b'"n":9' not in data:
                data += await stream.receive_some(65536)
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_an_idle_connection_holds_one_task() -> None:
    cores: list[ITrackServer] = []
    async with trio.open_nursery() as nursery:
        server = await _start(nursery, cores)
        streams = [await _open(server.port)]
        await trio.sleep(0.2)
        before = trio.lowlevel.current_statistics().tasks_living
        for _ in range(5):
            streams.append(await _open(server.port))
        with trio.fail_after(10):
            while len(server.connections) < 6:
                await trio.sleep(0.01)
        await trio.sleep(0.2)  # every handshake answered and written
        assert trio.lowlevel.current_statistics().tasks_living - before == 5
        for stream in streams:
            await stream.aclose()
        nursery.cancel_scope.cancel()
