"""The reference servers the command line runs: ``trackwire serve``, and the embedded one
``watch`` starts without ``--url``.

:func:`reference_app` builds a platform's application (pure: no loop, no socket) and
:func:`ready_line` says where it is; serving it is the event loop's job (:func:`run_serve`,
under trio or asyncio).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO, cast

import trio

from trackwire.conformance import (
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    RedisError,
    RedisState,
    Replica,
    demo_fleet,
    run_shared,
    shared_demo_fleet,
)
from trackwire.ws import HttpHandler, UpgradeRequest

from ..asyncio import Server as AsyncioServer
from ..asyncio import start_server
from ..trio import Server, serve
from .args import FleetOptions
from .main import Fatal, _find

__all__ = ["ReferenceApp", "embedded", "ready_line", "reference_app", "run_serve"]


@dataclass(slots=True)
class ReferenceApp:
    """A reference server's application: what any loop serves on one port, and ticks."""

    app: ITrackReference | FleetFreedomReference
    factory: Callable[[UpgradeRequest], Any]
    http_handler: HttpHandler | None


def reference_app(
    platform: str,
    options: FleetOptions,
    wall_offset: float,
    session_ttl: float | None = None,
    *,
    shared: bool = False,
) -> ReferenceApp:
    """The ``itrack`` or ``fleetfreedom`` reference server on a fresh simulated fleet;
    ``wall_offset`` turns the loop's clock into wall-clock time for its timestamps, and
    ``session_ttl`` (seconds) ends every session that long after its login.  ``shared``:
    the fleet is a :class:`~trackwire.conformance.SharedFleet` (it moves only in the
    process that leads)."""
    make_fleet = shared_demo_fleet if shared else demo_fleet
    fleet = make_fleet(options.vehicles, seed=options.seed, rate=options.rate)
    if platform == "itrack":
        itrack = ITrackReference(
            fleet,
            heartbeat_interval_ms=options.heartbeat_ms,
            wall_offset=wall_offset,
            session_ttl=session_ttl,
        )
        return ReferenceApp(itrack, itrack.factory, itrack.http_handler)
    fleetfreedom = FleetFreedomReference(fleet, wall_offset=wall_offset, session_ttl=session_ttl)
    return ReferenceApp(fleetfreedom, fleetfreedom.factory, None)


def ready_line(platform: str, host: str, port: int) -> str:
    """The one line ``serve`` prints: where the server is and its demo account."""
    where = f"{host}:{port}"
    if platform == "itrack":
        demo = DEMO_ITRACK[0]
        return (
            f"iTrack reference server on http://{where}/v2/ (WebSocket "
            f"ws://{where}/v2/event/subscription); login {demo.login} / password "
            f"{demo.password}"
        )
    demo = DEMO_FLEETFREEDOM[0]
    return (
        f"FleetFreedom reference server on ws://{where}/; user {demo.login} / "
        f"password {demo.password}, company {demo.company}"
    )


# -- under trio -------------------------------------------------------------------------------


async def _start(
    nursery: trio.Nursery,
    platform: str,
    host: str,
    options: FleetOptions,
    session_ttl: float | None = None,
    redis: str | None = None,
) -> Server[Any]:
    """Serve a reference server in ``nursery`` and move its fleet on trio's clock; with
    ``redis``, share its state with the other processes on that Redis."""
    # trio's clock starts anywhere: the timestamps need its offset to the wall clock.
    wall_offset = time.time() - trio.current_time()
    reference = reference_app(platform, options, wall_offset, session_ttl, shared=redis is not None)
    replica = None
    if redis is not None:
        replica = Replica(reference.app, wall_offset=wall_offset)
        try:
            state = await RedisState.open(redis, platform)
        except RedisError as exc:
            raise Fatal(str(exc)) from None
    server: Server[Any] = await nursery.start(
        functools.partial(
            serve,
            cast("Any", reference.factory),
            host,
            options.port,
            http_handler=reference.http_handler,
        )
    )
    if replica is None:
        nursery.start_soon(_tick_forever, reference.app, server)
    else:
        nursery.start_soon(_run_shared, replica, state, server)
    return server


async def _run_shared(replica: Replica, state: RedisState, server: Server[Any]) -> None:
    try:
        await run_shared(replica, state, server)
    except Exception as exc:  # a RedisError, inside the nursery's exception groups
        lost = _find(exc, RedisError)
        if lost is None:
            raise
        raise Fatal(f"lost Redis: {lost}") from None
    finally:
        await state.aclose()


async def _tick_forever(app: ITrackReference | FleetFreedomReference, server: Server[Any]) -> None:
    """Move the fleet on the trio clock and write the pushes it queued."""
    while True:
        deadline = app.next_deadline()
        if deadline is not None:
            await trio.sleep_until(max(deadline, trio.current_time()))
        now = trio.current_time()
        server.flush(app.tick(now))
        if deadline is None:
            await trio.sleep(1.0)


async def embedded(nursery: trio.Nursery, platform: str, args: argparse.Namespace) -> str:
    """``watch`` without ``--url``: a reference server on a free loopback port (or
    ``--port``) in ``nursery``; returns the URL to watch."""
    server = await _start(nursery, platform, "127.0.0.1", FleetOptions(args))
    if platform == "itrack":
        return f"http://127.0.0.1:{server.port}/v2/"
    return f"ws://127.0.0.1:{server.port}/"


async def _serve_trio(args: argparse.Namespace, out: TextIO) -> int:
    async with trio.open_nursery() as nursery:
        options = FleetOptions(args)
        server = await _start(
            nursery, args.platform, args.host, options, args.session_ttl, args.redis
        )
        print(ready_line(args.platform, args.host, server.port), file=out, flush=True)
        if args.duration is not None:
            await trio.sleep(args.duration)
            nursery.cancel_scope.cancel()
    return 0


# -- under asyncio ----------------------------------------------------------------------------


async def _tick_asyncio(
    app: ITrackReference | FleetFreedomReference, server: AsyncioServer[Any]
) -> None:
    """Move the fleet on the asyncio loop's clock and write the pushes it queued."""
    loop = asyncio.get_running_loop()
    while True:
        deadline = app.next_deadline()
        await asyncio.sleep(1.0 if deadline is None else max(0.0, deadline - loop.time()))
        server.flush(app.tick(loop.time()))


async def _serve_asyncio(args: argparse.Namespace, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    options = FleetOptions(args)
    wall = time.time() - loop.time()
    reference = reference_app(args.platform, options, wall, args.session_ttl)
    factory = cast("Any", reference.factory)
    async with await start_server(
        factory, args.host, options.port, http_handler=reference.http_handler
    ) as server:
        print(ready_line(args.platform, args.host, server.port), file=out, flush=True)
        ticking = asyncio.ensure_future(_tick_asyncio(reference.app, server))
        try:
            if args.duration is not None:
                await asyncio.sleep(args.duration)
            else:
                await asyncio.Event().wait()
        finally:
            ticking.cancel()
    return 0


def run_serve(args: argparse.Namespace, out: TextIO) -> int:
    """``trackwire serve``: serve until interrupted or ``--duration``; the exit code."""
    if args.loop == "asyncio":
        return asyncio.run(_serve_asyncio(args, out))
    return trio.run(_serve_trio, args, out)
