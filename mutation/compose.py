"""The compositions a mutant is judged in: the conformance kit against our reference servers
(server cores) or against our trio clients (client cores), all in one trio run on 127.0.0.1.

The kit's waits are shrunk as in the kit's own tests; nothing here asserts a duration.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import trio

from trackwire import Event, ReconnectPolicy
from trackwire.atmosphere import AtmosphereClient, AtmosphereEvent, AtmosphereServer, Message
from trackwire.conformance import (
    FleetFreedomReference,
    ITrackReference,
    Verdict,
    demo_fleet,
    operator_for,
)
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._probes_client import CLOSE_SIGNAL, RAW_SIGNAL, SIGNAL_NAME
from trackwire.conformance._report import CaseResult, Report
from trackwire.conformance._runner import run_client_cases_async, run_server_cases_async
from trackwire.drivers.trio import GaveUp, ReconnectFailed, Server, connect, itrack_login, serve
from trackwire.fleetfreedom import (
    Broadcast,
    Command,
    FleetFreedomClient,
    FleetFreedomServer,
    InvalidMessage,
    Response,
    UnknownMessage,
    ghost_id_from_request,
)
from trackwire.itrack import (
    ITrackClient,
    ITrackServer,
    StateRequest,
    Subscribe,
    build_auth_request,
    subscription_url,
)
from trackwire.ws import Accept, Refuse, UpgradeRequest

SERVER_OPTIONS = ProbeOptions(reply_wait=0.8, settle=0.2, push_wait=0.6, idle_wait=1.0)
CLIENT_OPTIONS = ProbeOptions(
    reply_wait=1.0, settle=0.2, heartbeat_ms=150, client_wait=3.0, reconnect_wait=2.0
)
TIMEOUT = 4.0
QUICK = ReconnectPolicy(initial=0.05, factor=1.0, cap=0.05, jitter=0.0, max_attempts=2)
App = ITrackReference | FleetFreedomReference


def _wall_offset() -> float:
    """trio's clock starts at a random point: the offset that makes its ``now`` wall time
    (the reference apps' default assumes ``time.monotonic``)."""
    return time.time() - trio.current_time()


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
    """The reference iTrack server with a quick server heartbeat (0.5 s) and an idle-resource
    limit (10 s, longer than any silence of the kit: a configured limit changes nothing a
    conforming client sees)."""

    def factory(request: UpgradeRequest) -> ITrackServer | Refuse:
        if request.target.split("?", 1)[0].rstrip("/") != "/v2/event/subscription":
            return Refuse(404)
        link = AtmosphereServer(
            request.target, heartbeat_interval_ms=30000, server_heartbeat=0.5, idle_timeout=10.0
        )
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


def _echo_factory(request: UpgradeRequest) -> AtmosphereServer | Refuse:
    """A plain Atmosphere endpoint on the core's defaults (the Java server's: no client
    heartbeat, padding X, a server heartbeat after 60 s, no idle limit)."""
    if request.target.split("?", 1)[0].rstrip("/") != "/echo":
        return Refuse(404)
    return AtmosphereServer(request.target)


def _echo(conn: Any, event: Event) -> None:
    """The echo application: every message goes back as it came (sent as an application
    does, without a time)."""
    if isinstance(event, Message) and isinstance(conn.core, AtmosphereServer):
        conn.core.send(event.data)
        conn.flush()


_RANK = (Verdict.FAILED, Verdict.NON_STRICT, Verdict.ERROR, Verdict.OK, Verdict.UNSUPPORTED)


def _merged(first: Report, second: Report) -> Report:
    """One report of two subjects: per case, the worse verdict (a case judged OK on one and
    UNSUPPORTED on the other is OK)."""
    others = {r.id: r for r in second.results}
    results: list[CaseResult] = []
    for result in first.results:
        other = others.get(result.id, result)
        results.append(min(result, other, key=lambda r: _RANK.index(r.verdict)))
    return Report(first.protocol, first.role, f"{first.subject} and {second.subject}", results)


async def judge_atmosphere_server() -> Report:
    """Two subjects: the reference iTrack server, and an echo application on the core's
    defaults (which also sends back what the iTrack application never writes)."""
    app = ITrackReference(demo_fleet(3, rate=10), wall_offset=_wall_offset())
    async with _serving(app, _itrack_factory(app), http=True) as server:
        url = f"http://127.0.0.1:{server.port}/v2/event/subscription"
        itrack = await run_server_cases_async(
            url, "atmosphere", timeout=TIMEOUT, options=SERVER_OPTIONS
        )
    async with trio.open_nursery() as nursery:
        echo_server: Server[Any] = await nursery.start(
            functools.partial(serve, _echo_factory, "127.0.0.1", 0, on_event=_echo)
        )
        url = f"http://127.0.0.1:{echo_server.port}/echo"
        # The default idle wait: its 60-second heartbeat is for --slow (UNSUPPORTED here).
        options = replace(SERVER_OPTIONS, idle_wait=ProbeOptions().idle_wait)
        echo = await run_server_cases_async(url, "atmosphere", timeout=TIMEOUT, options=options)
        nursery.cancel_scope.cancel()
    return _merged(itrack, echo)


async def judge_itrack_server() -> Report:
    app = ITrackReference(demo_fleet(3, rate=10), wall_offset=_wall_offset())
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
    app = FleetFreedomReference(demo_fleet(3, rate=10), wall_offset=_wall_offset())
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


ATMOSPHERE_TIMEOUT = 2.5
"""The Atmosphere clients' inactivity timeout, told to the kit (``--inactivity-timeout``):
longer than any silence of the other scenarios, short enough to wait for."""


async def _atmosphere(url: str) -> AtmosphereClient:
    return AtmosphereClient(url, inactivity_timeout=ATMOSPHERE_TIMEOUT)


async def _atmosphere_tms(url: str) -> AtmosphereClient:
    return AtmosphereClient(url, track_message_length=True, inactivity_timeout=ATMOSPHERE_TIMEOUT)


async def _itrack(url: str) -> ITrackClient:
    """An application with credentials: the driver logs in again when the server forgets
    the hash (as ``trackwire watch itrack`` does)."""
    client = ITrackClient(
        subscription_url(url),
        await itrack_login(url, "someone", "secret"),
        login=build_auth_request(url, "someone", "secret"),
    )
    client.send(Subscribe([StateRequest([1, 2])]))
    return client


FF_KEEPALIVE = 1.0
"""The FleetFreedom client's keep-alive interval here (the kit is told it, ``--keepalive``),
so that the keep-alive is judged within the run instead of needing 5-minute silences."""


async def _fleetfreedom(url: str) -> FleetFreedomClient:
    client = FleetFreedomClient(url, keepalive=FF_KEEPALIVE)
    client.send(Command.login("someone@example.com", "secret", "conformance-test"))
    client.send(Command.subscribe(1, ["assetGeneral", "assetAdvanced"]))
    return client


async def _run_subject(
    url: str, make: Maker, signalled: Callable[[Event], bool] | None = None
) -> None:
    """Fresh clients one after the other, as a user runs them, each ending its session when
    the kit sends its close signal."""
    while True:
        core = await make(url)
        async with connect(core, reconnect=QUICK) as conn:
            async for event in conn:
                if isinstance(event, (ReconnectFailed, GaveUp)):
                    break
                if (signalled or _signalled)(event):
                    if isinstance(core, FleetFreedomClient):
                        await conn.send(Command.logout())
                        continue
                    break
                request = event.request if isinstance(event, Response) else None
                if request is not None and request.name == "logout":
                    break
        await trio.sleep(0.02)


def _signalled(event: Event) -> bool:
    if isinstance(event, AtmosphereEvent):  # an Atmosphere application compares a message
        return isinstance(event, Message) and event.data == CLOSE_SIGNAL
    return CLOSE_SIGNAL in repr(event)


async def _judge_client(
    protocol: str,
    make: Maker,
    signalled: Callable[[Event], bool] | None = None,
    options: ProbeOptions = CLIENT_OPTIONS,
) -> Report:
    ready = trio.Event()
    where: list[str] = []

    def announce(url: str) -> None:
        where.append(url)
        ready.set()

    async def subject() -> None:
        await ready.wait()
        await _run_subject(where[0], make, signalled)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subject)
        report = await run_client_cases_async(
            protocol,
            timeout=TIMEOUT,
            options=options,
            ready=announce,
            time_limit=60,
        )
        nursery.cancel_scope.cancel()
    return report


async def judge_atmosphere_client() -> Report:
    """Two runs, a client without TrackMessageSize and one with it (each case judged by the
    worse of the two verdicts), so that both framings are exercised."""
    options = dataclasses.replace(CLIENT_OPTIONS, inactivity_timeout=ATMOSPHERE_TIMEOUT)
    plain = await _judge_client("atmosphere", _atmosphere, options=options)
    tms = await _judge_client("atmosphere", _atmosphere_tms, options=options)
    return _merged(plain, tms)


async def judge_itrack_client() -> Report:
    return await _judge_client("itrack", _itrack)


def _fleetfreedom_signalled(event: Event) -> bool:
    """What a FleetFreedom application compares (the kit's contract): the ``message`` of a
    broadcast, or of the unknown message ``trackwireConformance``, and the raw text of a
    line it cannot read."""
    if isinstance(event, Broadcast):
        return event.body.get("message") == CLOSE_SIGNAL
    if isinstance(event, UnknownMessage):
        return event.name == SIGNAL_NAME and event.body.get("message") == CLOSE_SIGNAL
    return isinstance(event, InvalidMessage) and event.raw == RAW_SIGNAL


async def judge_fleetfreedom_client() -> Report:
    options = dataclasses.replace(CLIENT_OPTIONS, keepalive=FF_KEEPALIVE)
    return await _judge_client("fleetfreedom", _fleetfreedom, _fleetfreedom_signalled, options)
