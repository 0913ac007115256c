"""The asyncio server end to end: both reference servers (their fleets ticking on the loop's
clock) with our asyncio client on one asyncio loop, a clean stop by cancellation, and the
conformance kit judging the reference servers served by it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from _server_harness import ServerThread
from test_conformance_runner import (
    FAST,
    FF_LOGIN,
    FF_SECOND,
    ITRACK_LOGIN,
    ITRACK_SECOND,
    TIMEOUT,
    assert_probed_musts_pass,
    itrack_factory,
)

from trackwire import Event, FleetFreedomClient, ITrackClient
from trackwire.conformance import FleetFreedomReference, ITrackReference, Verdict, demo_fleet
from trackwire.conformance._runner import run_server_cases_async
from trackwire.drivers.asyncio import Server, connect, itrack_login, serve, start_server
from trackwire.fleetfreedom import Command, ConnectionResponse, Merged, SessionResponse
from trackwire.itrack import StateEvent, StateRequest, Subscribe, subscription_url
from trackwire.ws import Connected, ConnectionClosed

DEADLINE = 20.0


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), DEADLINE)

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def reference(app: Any, **options: Any) -> AsyncIterator[Server[Any]]:
    """``app`` served by the asyncio server, its fleet ticking as ``trackwire serve`` does."""
    loop = asyncio.get_running_loop()

    async def tick(server: Server[Any]) -> None:
        while True:
            deadline = app.next_deadline()
            await asyncio.sleep(1.0 if deadline is None else max(0.0, deadline - loop.time()))
            server.flush(app.tick(loop.time()))

    async with await start_server(app.factory, **options) as server:
        ticker = loop.create_task(tick(server))
        try:
            yield server
        finally:
            ticker.cancel()


async def first(conn: Any, cls: type[Event]) -> Event:
    async for event in conn:
        if isinstance(event, cls):
            return event
    raise AssertionError(f"no {cls.__name__}")


def test_itrack_reference_login_subscribe_and_states() -> None:
    async def main() -> None:
        app = ITrackReference(demo_fleet(3, rate=20.0), wall_offset=0.0)
        async with reference(app, http_handler=app.http_handler) as server:
            base = f"http://127.0.0.1:{server.port}/v2/"
            session_hash = await itrack_login(base, "demo", "demo")
            core = ITrackClient(subscription_url(base), session_hash)
            async with connect(core, reconnect=None) as conn:
                await conn.send(Subscribe([StateRequest(sorted(app.fleet.vehicles))]))
                for _ in range(3):
                    state = await first(conn, StateEvent)
                    assert isinstance(state, StateEvent)

    run(main)


def test_fleetfreedom_reference_login_subscribe_and_pushes() -> None:
    async def main() -> None:
        app = FleetFreedomReference(demo_fleet(3, rate=20.0), wall_offset=0.0)
        async with reference(app) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(FleetFreedomClient(url), reconnect=None) as conn:
                await first(conn, ConnectionResponse)
                await conn.send(Command.login("demo@example.com", "demo", "tests"))
                login = await first(conn, SessionResponse)
                assert isinstance(login, SessionResponse)
                assert login.error_code == 0
                await conn.send(Command.subscribe(1, ["assetAdvanced"]))
                merged = await first(conn, Merged)
                assert isinstance(merged, Merged)

    run(main)


def test_cancelling_serve_ends_every_connection_and_its_core() -> None:
    async def main() -> None:
        app = ITrackReference(demo_fleet(2), wall_offset=0.0)
        events: list[tuple[Any, Event]] = []
        started: asyncio.Future[Server[Any]] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(
            serve(
                app.factory,
                http_handler=app.http_handler,
                on_event=lambda conn, event: events.append((conn, event)),
                started=started.set_result,
            )
        )
        server = await started
        base = f"http://127.0.0.1:{server.port}/v2/"
        core = ITrackClient(subscription_url(base), await itrack_login(base, "demo", "demo"))
        async with connect(core, reconnect=None) as conn:
            await first(conn, Connected)
            while not server.connections:
                await asyncio.sleep(0.01)
            (served,) = server.connections
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert not server.connections
            assert served.core is not None
            assert served.core.state.name == "CLOSED"
            closed = [e for c, e in events if c is served and isinstance(e, ConnectionClosed)]
            assert [(e.code, e.reason) for e in closed] == [(1006, "the server stopped")]
            await first(conn, ConnectionClosed)  # the client sees the end too

    run(main)


# -- the conformance kit judges the reference servers on the asyncio server too ----------------


async def test_conformance_kit_passes_the_reference_servers_on_asyncio() -> None:
    itrack = ITrackReference(demo_fleet(3, rate=10))
    with ServerThread("asyncio", itrack_factory(itrack), app=itrack) as st:
        url = f"http://127.0.0.1:{st.port}/v2/event/subscription"
        report = await run_server_cases_async(url, "atmosphere", timeout=TIMEOUT, options=FAST)
    assert_probed_musts_pass(report)
    with ServerThread(
        "asyncio", itrack.factory, app=itrack, http_handler=itrack.http_handler
    ) as st:
        url = f"http://127.0.0.1:{st.port}/v2/"
        report = await run_server_cases_async(
            url, "itrack", timeout=TIMEOUT, options=FAST, **ITRACK_LOGIN, **ITRACK_SECOND
        )
    # The operator's cases need the server's own hand (the trio run of the kit gives it one);
    # here they must say so, and everything else must pass.
    operated = ("itrack.events.lifecycle", "itrack.events.blocked", "itrack.events.logout")
    for case in operated:
        result = report.result(case)
        assert result.verdict is Verdict.UNSUPPORTED, (case, result.details)
        assert "operator" in result.details
    assert_probed_musts_pass(report, but=operated)
    fleetfreedom = FleetFreedomReference(demo_fleet(3, rate=10))
    with ServerThread("asyncio", fleetfreedom.factory, app=fleetfreedom) as st:
        url = f"ws://127.0.0.1:{st.port}/"
        report = await run_server_cases_async(
            url, "fleetfreedom", timeout=TIMEOUT, options=FAST, **FF_LOGIN, **FF_SECOND
        )
    ended = report.result("fleetfreedom.session.session-ended")
    assert ended.verdict is Verdict.UNSUPPORTED, ended.details
    assert "operator" in ended.details
    assert_probed_musts_pass(report, but=("fleetfreedom.session.session-ended",))
