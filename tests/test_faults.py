"""Fault injection on every driver and both protocols against the reference servers:
server restarts, a misbehaving proxy with dropped connections, a client that stops reading,
silent peers.  Each scenario reports named checks; every one must hold."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

RELIABILITY = Path(__file__).resolve().parent.parent / "reliability"
sys.path.insert(0, str(RELIABILITY))

import faults  # noqa: E402
from proxy import Chaos, ChaosProxy  # noqa: E402

from trackwire import Event, FleetFreedomClient  # noqa: E402
from trackwire.conformance import FleetFreedomReference, demo_fleet  # noqa: E402
from trackwire.drivers.trio import ServerConnection, connect, serve  # noqa: E402
from trackwire.fleetfreedom import Command, SubscribeResponse  # noqa: E402
from trackwire.ws import ConnectionClosed  # noqa: E402


def assert_survived(result: faults.FaultResult) -> None:
    failed = [name for name, ok in result.checks.items() if not ok]
    assert not failed, f"{result.name}: {failed}\n{result.details}"
    assert result.survived
    assert result.faults > 0


async def test_server_restart_every_client_resumes_and_the_cache_never_rolls_back() -> None:
    result = await faults.restart_scenario(restarts=2)
    assert_survived(result)
    assert result.clients == 6
    assert "FleetFreedom sessions resumed with their ghostId" in result.checks
    assert "apps hold no core of a killed connection" in result.checks
    for client in result.details["clients"]:
        assert client["connections"] == 3


async def test_a_restart_that_loses_every_session_is_survived_on_every_driver() -> None:
    result = await faults.lost_sessions_scenario(restarts=2)
    assert_survived(result)
    assert result.clients == 6  # trio, asyncio, blocking x iTrack, FleetFreedom
    assert "every client logged in again once per restart" in result.checks
    for client in result.details["clients"]:
        assert client["connections"] == 3
        assert client["relogins"] == 2
        assert client["duplicated"] == 0


async def test_sessions_expiring_under_load_are_logged_in_again() -> None:
    result = await faults.ttl_scenario(seconds=3.0, ttl=1.0)
    assert_survived(result)
    assert all(client["relogins"] >= 2 for client in result.details["clients"])


async def test_a_peer_gone_silent_without_closing_is_noticed_and_reconnected() -> None:
    result = await faults.half_open_scenario()
    assert_survived(result)
    assert result.clients == 6
    for client in result.details["clients"]:
        assert client["connections"] == 2
        assert client["events_per_connection"][-1] > 0


async def test_proxy_rechunks_delays_stalls_and_drops_single_connections() -> None:
    result = await faults.proxy_scenario(settle=0.5)
    assert_survived(result)
    assert result.faults == 3
    assert all(writes > 0 for writes in result.details["proxy_writes"].values())
    reconnected = [c for c in result.details["clients"] if c["connections"] == 2]
    assert len(reconnected) == 3


async def test_a_client_that_stops_reading_is_aborted_and_the_others_go_on() -> None:
    result = await faults.stop_reading_scenario()
    assert_survived(result)
    assert any("1008" in text for text in result.details["server_close"])


async def test_silent_peers_fire_every_timeout() -> None:
    result = await faults.silent_scenario()
    assert_survived(result)
    for driver in ("trio", "asyncio", "blocking"):
        assert f"{driver}: handshake timeout ends the attempt" in result.checks
        assert f"{driver}: Atmosphere silence fires the inactivity timeout" in result.checks
        assert f"{driver}: FleetFreedom command timeout fires, connection stays" in result.checks


async def test_stopping_a_server_tells_every_core_its_connection_ended() -> None:
    """Regression: a cancelled ``serve`` left its cores attached to the application (the
    FleetFreedom hub kept publishing to them, their output grew without bound)."""
    app = FleetFreedomReference(demo_fleet(2))
    seen: list[Event] = []

    def on_event(conn: ServerConnection[Any], event: Event) -> None:
        seen.append(event)

    client = FleetFreedomClient("ws://127.0.0.1:1/")
    client.send(Command.login("demo@example.com", "demo", "tests"))
    client.send(Command.subscribe(1, ["assetAdvanced"]))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server_scope = trio.CancelScope()

            async def run_server(task_status: trio.TaskStatus[int]) -> None:
                with server_scope:
                    async with trio.open_nursery() as inner:
                        server = await inner.start(
                            functools.partial(serve, app.factory, on_event=on_event)
                        )
                        task_status.started(server.port)

            port = await nursery.start(run_server)
            async with connect(client, f"ws://127.0.0.1:{port}/", reconnect=None) as conn:
                async for event in conn:
                    if isinstance(event, SubscribeResponse):
                        break
                assert len(app.hub.connections) == 1
                server_scope.cancel()
                async for event in conn:
                    if isinstance(event, ConnectionClosed):
                        break
    assert app.hub.connections == {}
    assert app.hub.subscribers("assetAdvanced", 1) == []
    assert any(isinstance(e, ConnectionClosed) and e.code == 1006 for e in seen)


async def test_the_proxy_forwards_every_byte_in_order_whatever_the_chunking() -> None:
    received = bytearray()
    payload = bytes(range(256)) * 8

    async def sink(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(4096):
            received.extend(data)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, sink, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            proxy = ChaosProxy(port, Chaos(max_chunk=7, random_split=True, seed=3))
            await nursery.start(proxy.run)
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            await stream.send_all(payload)
            while len(received) < len(payload):
                await trio.sleep(0.01)
            assert proxy.writes > len(payload) // 7
            proxy.links[0].drop()
            with pytest.raises((trio.BrokenResourceError, OSError)):  # noqa: PT012
                while True:
                    if not await stream.receive_some(10):
                        raise trio.BrokenResourceError
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert bytes(received) == payload
