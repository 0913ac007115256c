"""The compositions a mutant is judged in: the conformance kit against our reference servers
(server cores) or against our trio clients (client cores), all in one trio run on 127.0.0.1.

The kit's waits are shrunk as in the kit's own tests; nothing here asserts a duration.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from trackwire import Event, ReconnectPolicy
from trackwire.atmosphere import AtmosphereClient, AtmosphereServer
from trackwire.conformance import (
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
    operator_for,
)
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._probes_client import CLOSE_SIGNAL
from trackwire.conformance._report import Report
from trackwire.conformance._runner import run_client_cases_async, run_server_cases_async
from trackwire.drivers.trio import GaveUp, ReconnectFailed, Server, connect, itrack_login, serve
from trackwire.fleetfreedom import (
    Command,
    FleetFreedomClient,
    FleetFreedomServer,
    Response,
    ghost_id_from_request,
)
from trackwire.itrack import ITrackClient, ITrackServer, StateRequest, Subscribe, subscription_url
from trackwire.ws import Accept, Refuse, UpgradeRequest

SERVER_OPTIONS = ProbeOptions(reply_wait=0.8, settle=0.2, push_wait=0.6, idle_wait=1.0)
CLIENT_OPTIONS = ProbeOptions(
    reply_wait=1.0, settle=0.2, heartbeat_ms=150, client_wait=3.0, reconnect_wait=2.0
)
TIMEOUT = 4.0
QUICK = ReconnectPolicy(initial=0.05, factor=1.0, cap=0.05, jitter=0.0, max_attempts=2)
App = ITrackReference | FleetFreedomReference


async def _tick(app: App, server: Server[Any]) -> None:
    """Move the fleet and write its pushes, as ``trackwire serve`` does."""
    while True:
        deadline = app.next_deadline()
        await trio.sleep_until(trio.current_time() + 0.05 if deadline is None else deadline)
        server.flush(app.tick(trio.current_time()))


@asynccontextmanager
async def _serving(
    app: App, factory: Callable[[UpgradeRequest], Any], *, http: bool = False
) -> AsyncIterator[Server[Any]]:
    handler = app.http_handler if http and isinstance(app, ITrackReference) else None
    async with trio.open_nursery() as nursery:
        server: Server[Any] = await nursery.start(
            functools.partial(serve, factory, "127.0.0.1", 0, http_handler=handler)
        )
        nursery.start_soon(_tick, app, server)
        yield server
        nursery.cancel_scope.cancel()


def _itrack_factory(app: ITrackReference) -> Callable[[UpgradeRequest], ITrackServer | Refuse]:
    """The reference iTrack server with a quick server heartbeat (0.5 s)."""

    def factory(request: UpgradeRequest) -> ITrackServer | Refuse:
        if request.target.split("?", 1)[0].rstrip("/") != "/v2/event/subscription":
            return Refuse(404)
        link = AtmosphereServer(request.target, heartbeat_interval_ms=30000, server_heartbeat=0.5)
        core = ITrackServer(request.target, app.directory, transport=link)
        app.connections[core] = None
        return core

    return factory


def _fleetfreedom_factory(
    app: FleetFreedomReference,
) -> Callable[[UpgradeRequest], FleetFreedomServer | Accept[FleetFreedomServer]]:
    def factory(request: UpgradeRequest) -> FleetFreedomServer | Accept[FleetFreedomServer]:
        ghost = ghost_id_from_request(request.target, request.subprotocols)
        made = FleetFreedomServer(app.hub, ghost)
        if ghost is not None and ghost in request.subprotocols:
            return Accept(made, subprotocol=ghost)
        return made

    return factory


async def judge_atmosphere_server() -> Report:
    app = ITrackReference(demo_fleet(3, rate=10))
    async with _serving(app, _itrack_factory(app), http=True) as server:
        url = f"http://127.0.0.1:{server.port}/v2/event/subscription"
        return await run_server_cases_async(
            url, "atmosphere", timeout=TIMEOUT, options=SERVER_OPTIONS
        )


async def judge_itrack_server() -> Report:
    app = ITrackReference(demo_fleet(3, rate=10))
    async with _serving(app, app.factory, http=True) as server:
        return await run_server_cases_async(
            f"http://127.0.0.1:{server.port}/v2/",
            "itrack",
            timeout=TIMEOUT,
            options=SERVER_OPTIONS,
            operator=operator_for(app, server),
            login="demo",
            password="demo",
            second_login="other",
            second_password="other",
        )


async def judge_fleetfreedom_server() -> Report:
    app = FleetFreedomReference(demo_fleet(3, rate=10))
    async with _serving(app, _fleetfreedom_factory(app)) as server:
        return await run_server_cases_async(
            f"ws://127.0.0.1:{server.port}/",
            "fleetfreedom",
            timeout=TIMEOUT,
            options=SERVER_OPTIONS,
            operator=operator_for(app, server),
            username="demo@example.com",
            password="demo",
            second_username="other@example.com",
            second_password="other",
        )


# -- clients -----------------------------------------------------------------------------------

Maker = Callable[[str], Awaitable[Any]]


async def _atmosphere(url: str) -> AtmosphereClient:
    return AtmosphereClient(url)


async def _itrack(url: str) -> ITrackClient:
    client = ITrackClient(subscription_url(url), await itrack_login(url, "someone", "secret"))
    client.send(Subscribe([StateRequest([1, 2])]))
    return client


async def _fleetfreedom(url: str) -> FleetFreedomClient:
    client = FleetFreedomClient(url)
    client.send(Command.login("someone@example.com", "secret", "conformance-test"))
    client.send(Command.subscribe(1, ["assetGeneral", "assetAdvanced"]))
    return client


async def _run_subject(url: str, make: Maker) -> None:
    """Fresh clients one after the other, as a user runs them, each ending its session when
    the kit sends its close signal."""
    while True:
        core = await make(url)
        async with connect(core, reconnect=QUICK) as conn:
            async for event in conn:
                if isinstance(event, (ReconnectFailed, GaveUp)):
                    break
                if _signalled(event):
                    if isinstance(core, FleetFreedomClient):
                        await conn.send(Command.logout())
                        continue
                    break
                request = event.request if isinstance(event, Response) else None
                if request is not None and request.name == "logout":
                    break
        await trio.sleep(0.02)


def _signalled(event: Event) -> bool:
    return CLOSE_SIGNAL in repr(event)


async def _judge_client(protocol: str, make: Maker) -> Report:
    ready = trio.Event()
    where: list[str] = []

    def announce(url: str) -> None:
        where.append(url)
        ready.set()

    async def subject() -> None:
        await ready.wait()
        await _run_subject(where[0], make)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subject)
        report = await run_client_cases_async(
            protocol,
            timeout=TIMEOUT,
            options=CLIENT_OPTIONS,
            ready=announce,
            time_limit=60,
        )
        nursery.cancel_scope.cancel()
    return report


async def judge_atmosphere_client() -> Report:
    return await _judge_client("atmosphere", _atmosphere)


async def judge_itrack_client() -> Report:
    return await _judge_client("itrack", _itrack)


async def judge_fleetfreedom_client() -> Report:
    return await _judge_client("fleetfreedom", _fleetfreedom)
