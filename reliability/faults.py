"""Fault injection against the reference servers, on every driver and both protocols.

Scenarios (each bounded in time, 127.0.0.1 only, cleaning up after itself):

``restart``
    kill both servers mid-stream and start them again on the same ports; the reference
    apps (sessions, tracking ids, ghostIds, the fleet) survive, as a server that keeps its
    session store would.  Every client reconnects, resumes, resubscribes, and receives again.
``lost-sessions``
    the same restarts, but the servers forget every session (a restart without a session
    store, as a real process restart does): every client meets an unknown ghostId / hash,
    logs in again by itself and resubscribes once; positions flow again.
``ttl``
    sessions expire every second under load (``session_ttl``): every client logs in again
    each time, nothing is lost or doubled.
``half-open``
    every connection goes silent without closing (a proxy stops forwarding both ways, as
    when a peer vanishes without a FIN); the keep-alive (FleetFreedom ``noop``) and
    inactivity (Atmosphere) timers notice, every client reconnects and receives again.
``proxy``
    clients behind a :class:`~proxy.ChaosProxy` that writes byte by byte, splits at random
    and delays, or stalls; single connections are dropped: those clients reconnect, the
    others see nothing.
``stop-reading``
    one client stops reading; the server aborts it once its buffer bound passes; the others
    go on receiving.
``silent``
    a silent peer: client handshake timeout (every driver), server handshake timeout,
    Atmosphere heartbeat silence (client inactivity timeout), FleetFreedom command timeout.

::

    python reliability/faults.py [--only restart,proxy] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import trio
from proxy import Chaos, ChaosProxy
from soak import (
    DRIVERS,
    PROTOCOLS,
    ClientSpec,
    Endpoints,
    ThreadedClients,
    Watcher,
    run_asyncio_clients,
    run_blocking_client,
    run_trio_client,
)

from trackwire import Event, ReconnectPolicy
from trackwire.atmosphere import InactivityTimeout
from trackwire.conformance import (
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)
from trackwire.drivers import asyncio as aio_driver
from trackwire.drivers import blocking as blocking_driver
from trackwire.drivers import trio as trio_driver
from trackwire.drivers.trio import GaveUp, ReconnectFailed, Server, ServerConnection, serve
from trackwire.fleetfreedom import Command, CommandFailed, FailureReason, FleetFreedomClient
from trackwire.itrack import ITrackClient, StateRequest, Subscribe, subscription_url
from trackwire.ws import ClientStack, Connected, ConnectionClosed, HandshakeFailed, StackState

__all__ = [
    "SCENARIOS",
    "Crowd",
    "FaultResult",
    "Stage",
    "half_open_scenario",
    "lost_sessions_scenario",
    "proxy_scenario",
    "restart_scenario",
    "run_all",
    "silent_scenario",
    "stop_reading_scenario",
    "ttl_scenario",
]

FAST = ReconnectPolicy(initial=0.05, factor=2.0, cap=0.5, jitter=0.1)
"""Reconnect quickly: the scenarios wait for every client to come back."""


class FaultTimeout(Exception):
    """A condition a scenario waited for did not come in time."""


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; :class:`FaultTimeout` naming ``what`` after
    ``timeout`` seconds (a bound so that nothing hangs, not a measurement)."""
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.02)
        return
    raise FaultTimeout(what)


@dataclass(slots=True)
class FaultResult:
    """One scenario's outcome: faults injected, what was checked, and whether all held."""

    name: str
    injected: str
    faults: int
    clients: int
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def survived(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def check(self, name: str, ok: bool) -> None:
        self.checks[name] = bool(ok)

    def as_json(self) -> dict[str, Any]:
        return dict(asdict(self), survived=self.survived)


# -- the servers -----------------------------------------------------------------------------


class Stage:
    """Both reference apps, served by the trio driver on fixed 127.0.0.1 ports that survive a
    :meth:`kill` / :meth:`restart`; the fleets keep ticking meanwhile.  ``events`` records
    every server-side (connection, event)."""

    def __init__(
        self,
        vehicles: int = 10,
        rate: float = 5.0,
        *,
        max_buffer: int = trio_driver.DEFAULT_MAX_BUFFER,
        handshake_timeout: float | None = 10.0,
        session_ttl: float | None = None,
    ) -> None:
        self.session_ttl = session_ttl
        self.vehicles = vehicles
        self.rate = rate
        self.max_buffer = max_buffer
        self.handshake_timeout = handshake_timeout
        self.itrack: ITrackReference | None = None
        self.fleetfreedom: FleetFreedomReference | None = None
        self.servers: dict[str, Server[Any]] = {}
        self.ports: dict[str, int] = {}
        self.events: list[tuple[ServerConnection[Any], Event]] = []
        self.hashes: dict[str, str] = {}
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.ports["itrack"], self.ports["fleetfreedom"], self.hashes)

    def _on_event(self, conn: ServerConnection[Any], event: Event) -> None:
        self.events.append((conn, event))

    async def start(self, nursery: trio.Nursery) -> None:
        """Create the apps, serve them, tick them; log in once per iTrack tenant."""
        wall = time.time() - trio.current_time()
        ttl = self.session_ttl
        self.itrack = ITrackReference(
            demo_fleet(self.vehicles, rate=self.rate), wall_offset=wall, session_ttl=ttl
        )
        self.fleetfreedom = FleetFreedomReference(
            demo_fleet(self.vehicles, rate=self.rate), wall_offset=wall, session_ttl=ttl
        )
        self._nursery = nursery
        nursery.start_soon(self._tick, "itrack")
        nursery.start_soon(self._tick, "fleetfreedom")
        await self.restart()
        base = f"http://127.0.0.1:{self.ports['itrack']}/v2/"
        for account in DEMO_ITRACK:
            self.hashes[account.tenant] = await trio_driver.itrack_login(
                base, account.login, account.password
            )

    async def restart(self, *, forget: bool = False) -> None:
        """Serve both apps (again, on the same ports after the first time); ``forget``:
        without the sessions they knew, as a server without a session store restarts."""
        assert self._nursery is not None
        assert self.itrack
        assert self.fleetfreedom
        if forget:
            self.itrack.forget_sessions()
            self.fleetfreedom.forget_sessions()
        apps: dict[str, tuple[Any, Any]] = {
            "itrack": (self.itrack.factory, self.itrack.http_handler),
            "fleetfreedom": (self.fleetfreedom.factory, None),
        }

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    for name, (factory, handler) in apps.items():
                        self.servers[name] = await nursery.start(
                            functools.partial(
                                serve,
                                factory,
                                "127.0.0.1",
                                self.ports.get(name, 0),
                                http_handler=handler,
                                on_event=self._on_event,
                                max_buffer=self.max_buffer,
                                handshake_timeout=self.handshake_timeout,
                            )
                        )
                        self.ports[name] = self.servers[name].port
                    task_status.started()
            self.servers = {}

        await self._nursery.start(run)

    def kill(self) -> None:
        """Stop both servers at once: every connection is cut without a close handshake."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def _tick(self, name: str) -> None:
        app: ITrackReference | FleetFreedomReference | None = (
            self.itrack if name == "itrack" else self.fleetfreedom
        )
        assert app is not None
        while True:
            deadline = app.next_deadline()
            await trio.sleep_until(max(deadline or 0.0, trio.current_time()))
            cores = app.tick(trio.current_time())
            server = self.servers.get(name)
            if server is not None:
                server.flush(cores)

    def held_cores(self) -> dict[str, int]:
        """Connection cores the apps still push to, against the live server connections."""
        assert self.itrack is not None
        assert self.fleetfreedom is not None
        itrack_live = [c for c in self.itrack.connections if c.state.name != "CLOSED"]
        return {
            "itrack_cores": len(itrack_live),
            "fleetfreedom_cores": len(self.fleetfreedom.hub.connections),
            "itrack_connections": len(self._live("itrack")),
            "fleetfreedom_connections": len(self._live("fleetfreedom")),
        }

    def _live(self, name: str) -> list[ServerConnection[Any]]:
        server = self.servers.get(name)
        if server is None:
            return []
        return [c for c in server.connections if c.state is StackState.OPEN]


# -- clients ---------------------------------------------------------------------------------


class Crowd:
    """Watchers on their drivers: trio ones in a nursery, asyncio ones in one thread, blocking
    ones in a thread each."""

    def __init__(
        self,
        watchers: Sequence[Watcher],
        *,
        reconnect: ReconnectPolicy | None = FAST,
        connect_timeout: float = 5.0,
    ) -> None:
        self.watchers = list(watchers)
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.threads = ThreadedClients()
        self._stop = trio.Event()
        self._scope = trio.CancelScope()
        self._done = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        options: dict[str, Any] = {
            "reconnect": self.reconnect,
            "connect_timeout": self.connect_timeout,
        }
        aio = [w for w in self.watchers if w.spec.driver == "asyncio"]
        if aio:
            self.threads.start(
                "asyncio", lambda: run_asyncio_clients(aio, self.threads.stop, **options)
            )
        for w in self.watchers:
            if w.spec.driver == "blocking":
                target = functools.partial(run_blocking_client, w, self.threads.stop, **options)
                self.threads.start(w.spec.name, target)
        trio_ones = [w for w in self.watchers if w.spec.driver == "trio"]

        async def run_trio() -> None:
            try:
                async with trio.open_nursery() as inner:
                    for w in trio_ones:
                        inner.start_soon(
                            functools.partial(run_trio_client, w, self._stop, **options)
                        )
            finally:
                self._done.set()

        nursery.start_soon(run_trio)

    async def stop(self) -> list[str]:
        """Stop every client (gracefully) and join the threads; returns problems found."""
        self._stop.set()
        leftover = await trio.to_thread.run_sync(self.threads.join, 20.0)
        with trio.move_on_after(20):
            await self._done.wait()
        problems = [f"thread left: {name}" for name in leftover]
        problems += self.threads.failures
        if not self._done.is_set():
            problems.append("trio clients did not stop")
        return problems


def _watchers(
    endpoints: Endpoints,
    vehicles: int,
    *,
    drivers: Sequence[str] = DRIVERS,
    protocols: Sequence[str] = PROTOCOLS,
    start: int = 0,
    tenant: str = "demo",
) -> list[Watcher]:
    """One watcher per (driver, protocol), subscribed to the whole tenant's fleet."""
    fleet = demo_fleet(vehicles)
    out = []
    index = start
    for driver in drivers:
        for protocol in protocols:
            w = Watcher(ClientSpec(index, driver, protocol, tenant), endpoints)
            if protocol == "itrack":
                w.subscribe_itrack(v.id for v in fleet.of_tenant(tenant))
            out.append(w)
            index += 1
    return out


def _stream_checks(result: FaultResult, watchers: Sequence[Watcher]) -> None:
    """The laws every scenario keeps: nothing lost or duplicated while connected, no seq
    and no cached version going back."""
    result.check("no update lost while connected", all(w.tally.lost == 0 for w in watchers))
    result.check("no update duplicated", all(w.tally.duplicated == 0 for w in watchers))
    result.check("no seq going back", all(w.tally.regressions == 0 for w in watchers))
    result.check(
        "FleetFreedom cache never rolled back", all(w.tally.cache_rollbacks == 0 for w in watchers)
    )


def _all_disconnected(watchers: Sequence[Watcher], times: int) -> bool:
    return all(w.tally.disconnects >= times for w in watchers)


def _summaries(watchers: Sequence[Watcher]) -> list[dict[str, Any]]:
    return [dict(w.tally.summary(), name=w.spec.name) for w in watchers]


async def _kill_servers(stage: Stage, watchers: Sequence[Watcher], round_: int) -> None:
    """Kill both servers (the ``round_``-th time), wait until every client saw its connection
    end, and a moment more: the fleet moves on while nobody is connected."""
    stage.kill()
    await wait_for(
        functools.partial(_all_disconnected, watchers, round_),
        "every client saw the connection end",
    )
    await trio.sleep(0.2)


async def _flowing(watchers: Sequence[Watcher], connection: int, what: str) -> None:
    """Wait until every watcher got updates on its ``connection``-th connection (1-based)."""

    def ok() -> bool:
        return all(
            len(w.tally.events_per_connection) >= connection
            and w.tally.events_per_connection[connection - 1] > 0
            for w in watchers
        )

    await wait_for(ok, what)


@contextlib.asynccontextmanager
async def _crowd(
    result: FaultResult, nursery: trio.Nursery, watchers: list[Watcher]
) -> AsyncIterator[None]:
    """The watchers run (as one :class:`Crowd`) for the body; a :class:`FaultTimeout` in it
    fails the check "in time"; then the crowd is stopped, and must stop cleanly."""
    crowd = Crowd(watchers)
    await crowd.start(nursery)
    try:
        yield
    except FaultTimeout as exc:
        result.check(f"in time: {exc}", False)
    problems = await crowd.stop()
    result.check("clients stopped cleanly", not problems)
    result.details["problems"] = problems


# -- scenarios -------------------------------------------------------------------------------


async def restart_scenario(restarts: int = 2, vehicles: int = 10, rate: float = 5.0) -> FaultResult:
    """Kill both servers mid-stream ``restarts`` times; every client must come back."""
    result = FaultResult(
        "restart",
        "both servers killed mid-stream and restarted on the same ports",
        restarts,
        0,
    )
    async with trio.open_nursery() as nursery:
        stage = Stage(vehicles, rate)
        await stage.start(nursery)
        watchers = _watchers(stage.endpoints, vehicles)
        result.clients = len(watchers)
        async with _crowd(result, nursery, watchers):
            await _flowing(watchers, 1, "updates on the first connection")
            for round_ in range(1, restarts + 1):
                await _kill_servers(stage, watchers, round_)
                await stage.restart()
                await _flowing(watchers, round_ + 1, f"updates after restart {round_}")
            # One more tick prunes what the last kill left, then count the cores held.
            await trio.sleep(2.0 / rate)
            held = stage.held_cores()
            result.details["server"] = held
            result.check(
                "apps hold no core of a killed connection",
                held["itrack_cores"] == held["itrack_connections"]
                and held["fleetfreedom_cores"] == held["fleetfreedom_connections"],
            )
        nursery.cancel_scope.cancel()
    result.check(
        "every client reconnected after every restart",
        all(w.tally.connections == restarts + 1 for w in watchers),
    )
    result.check(
        "events flowed on every connection",
        all(all(n > 0 for n in w.tally.events_per_connection) for w in watchers),
    )
    itrack = [w for w in watchers if w.spec.protocol == "itrack"]
    ff = [w for w in watchers if w.spec.protocol == "fleetfreedom"]
    result.check(
        "iTrack sessions resumed with their tracking id",
        all(len(w.tracking_ids) == restarts + 1 and len(set(w.tracking_ids)) == 1 for w in itrack),
    )
    result.check(
        "FleetFreedom sessions resumed with their ghostId",
        all(len(w.ghost_ids) == restarts + 1 and len(set(w.ghost_ids)) == 1 for w in ff),
    )
    _stream_checks(result, watchers)
    result.details["clients"] = _summaries(watchers)
    return result


async def lost_sessions_scenario(
    restarts: int = 2, vehicles: int = 10, rate: float = 5.0
) -> FaultResult:
    """Kill both servers ``restarts`` times; they come back without any session."""
    result = FaultResult(
        "lost-sessions",
        "both servers killed and restarted without their sessions",
        restarts,
        0,
    )
    async with trio.open_nursery() as nursery:
        stage = Stage(vehicles, rate)
        await stage.start(nursery)
        watchers = _watchers(stage.endpoints, vehicles)
        result.clients = len(watchers)
        async with _crowd(result, nursery, watchers):
            await _flowing(watchers, 1, "updates on the first connection")
            for round_ in range(1, restarts + 1):
                await _kill_servers(stage, watchers, round_)
                await stage.restart(forget=True)
                await wait_for(
                    functools.partial(_all_relogged, watchers, round_),
                    f"every client logged in again after restart {round_}",
                )
                await _flowing(watchers, round_ + 1, f"updates after restart {round_}")
            await _every_vehicle(watchers, vehicles, "every vehicle flowing after the last restart")
        nursery.cancel_scope.cancel()
    result.check(
        "every client reconnected after every restart",
        all(w.tally.connections == restarts + 1 for w in watchers),
    )
    result.check(
        "every client logged in again once per restart",
        all(w.tally.relogins == restarts for w in watchers),
    )
    result.check("no session ended for good", all(w.tally.finished is None for w in watchers))
    ff = [w for w in watchers if w.spec.protocol == "fleetfreedom"]
    result.check(
        "FleetFreedom: a new ghostId after every restart",
        all(len(set(w.ghost_ids)) == restarts + 1 for w in ff),
    )
    result.check(
        "events flowed on every connection",
        all(all(n > 0 for n in w.tally.events_per_connection) for w in watchers),
    )
    _stream_checks(result, watchers)
    result.details["clients"] = _summaries(watchers)
    return result


async def ttl_scenario(
    seconds: float = 4.0, ttl: float = 1.0, vehicles: int = 10, rate: float = 5.0
) -> FaultResult:
    """Sessions expire every ``ttl`` seconds under load; clients log in again each time."""
    result = FaultResult("ttl", f"sessions expiring every {ttl:g} s under load", 0, 0)
    async with trio.open_nursery() as nursery:
        stage = Stage(vehicles, rate, session_ttl=ttl)
        await stage.start(nursery)
        watchers = _watchers(stage.endpoints, vehicles)
        result.clients = len(watchers)
        async with _crowd(result, nursery, watchers):
            await _flowing(watchers, 1, "updates on the first connection")
            await trio.sleep(seconds)
            await _every_vehicle(watchers, vehicles, "every vehicle flowing at the end")
        nursery.cancel_scope.cancel()
    result.faults = sum(w.tally.relogins for w in watchers)
    result.check(
        "every client logged in again at least twice", all(w.tally.relogins >= 2 for w in watchers)
    )
    result.check("no session ended for good", all(w.tally.finished is None for w in watchers))
    _stream_checks(result, watchers)
    result.details["clients"] = _summaries(watchers)
    return result


def _all_relogged(watchers: Sequence[Watcher], times: int) -> bool:
    return all(w.tally.relogins >= times for w in watchers)


async def _every_vehicle(watchers: Sequence[Watcher], vehicles: int, what: str) -> None:
    """Wait until each watcher's current connection carried every vehicle of its tenant:
    no subscription was lost on the way."""
    fleet = demo_fleet(vehicles)

    def ok() -> bool:
        return all(
            w.tally.current_vehicles() >= len(fleet.of_tenant(w.spec.tenant)) for w in watchers
        )

    await wait_for(ok, what)


async def half_open_scenario(vehicles: int = 5, rate: float = 5.0) -> FaultResult:
    """Every client's connection goes silent (no FIN); each must notice and reconnect."""
    result = FaultResult("half-open", "every connection frozen both ways, sockets left open", 0, 0)
    async with trio.open_nursery() as nursery:
        stage = Stage(vehicles, rate)
        await stage.start(nursery)
        proxies = {}
        for protocol in PROTOCOLS:
            proxies[protocol] = proxy = ChaosProxy(stage.ports[protocol])
            await nursery.start(proxy.run)
        endpoints = Endpoints(proxies["itrack"].port, proxies["fleetfreedom"].port, stage.hashes)
        fleet = demo_fleet(vehicles)
        watchers = []
        for index, (driver, protocol) in enumerate((d, p) for d in DRIVERS for p in PROTOCOLS):
            w = Watcher(
                ClientSpec(index, driver, protocol, "demo"),
                endpoints,
                command_timeout=1.0,
                inactivity_timeout=1.5,
                keepalive=0.5,
                reconnect_on_timeout=True,
            )
            if protocol == "itrack":
                w.subscribe_itrack(v.id for v in fleet.of_tenant("demo"))
            watchers.append(w)
        result.clients = len(watchers)
        async with _crowd(result, nursery, watchers):
            await _flowing(watchers, 1, "updates on the first connection")
            await wait_for(
                lambda: sum(len(p.links) for p in proxies.values()) == len(watchers),
                "every client through the proxy",
            )
            for proxy in proxies.values():
                for link in proxy.links:
                    link.freeze(down=True, up=True)
                    result.faults += 1
            await _flowing(watchers, 2, "updates after the silence")
        nursery.cancel_scope.cancel()
    result.check(
        "every client noticed the silence and reconnected once",
        all(w.tally.connections == 2 for w in watchers),
    )
    result.check("no session ended for good", all(w.tally.finished is None for w in watchers))
    _stream_checks(result, watchers)
    result.details["clients"] = _summaries(watchers)
    return result


PROXY_MODES = {
    "bytewise": Chaos(max_chunk=1),
    "split+delay": Chaos(max_chunk=16, random_split=True, delay=0.0005, seed=7),
    "stalls": Chaos(stall_every=0.5, stall_for=0.25),
}


async def proxy_scenario(vehicles: int = 5, rate: float = 2.0, settle: float = 1.0) -> FaultResult:
    """Clients behind misbehaving proxies (plus direct ones); drop single connections."""
    result = FaultResult("proxy", "", 0, 0)
    async with trio.open_nursery() as nursery:
        stage = Stage(vehicles, rate)
        await stage.start(nursery)
        proxies: dict[tuple[str, str], ChaosProxy] = {}
        watchers: list[Watcher] = []
        direct = _watchers(stage.endpoints, vehicles, drivers=("trio", "blocking"), start=0)
        watchers += direct
        index = len(watchers)
        for mode, chaos in PROXY_MODES.items():
            for protocol in PROTOCOLS:
                target = stage.ports[protocol]
                proxy = ChaosProxy(target, chaos)
                await nursery.start(proxy.run)
                proxies[mode, protocol] = proxy
            endpoints = Endpoints(
                proxies[mode, "itrack"].port, proxies[mode, "fleetfreedom"].port, stage.hashes
            )
            driver = DRIVERS[index % len(DRIVERS)]
            for w in _watchers(endpoints, vehicles, drivers=(driver,), start=index):
                w.spec = ClientSpec(w.spec.index, driver, w.spec.protocol, f"demo via {mode}")
                watchers.append(w)
            index += len(PROTOCOLS)
        result.clients = len(watchers)
        result.injected = "; ".join(f"{m}: {c.describe}" for m, c in PROXY_MODES.items())
        victims = {("bytewise", "itrack"), ("split+delay", "fleetfreedom"), ("stalls", "itrack")}
        victim_watchers = [
            w
            for w in watchers
            if any(w.spec.tenant == f"demo via {m}" and w.spec.protocol == p for m, p in victims)
        ]
        async with _crowd(result, nursery, watchers):
            await _flowing(watchers, 1, "updates through every proxy")
            await trio.sleep(settle)
            for key in sorted(victims):
                proxy = proxies[key]
                await wait_for(functools.partial(bool, proxy.links), f"a link through {key}")
                proxy.links[0].drop()
                result.faults += 1
            await _flowing(victim_watchers, 2, "updates after the drop")
            await trio.sleep(settle)
        result.details["proxy_writes"] = {f"{m}/{p}": x.writes for (m, p), x in proxies.items()}
        nursery.cancel_scope.cancel()
    others = [w for w in watchers if w not in victim_watchers]
    result.check(
        "dropped clients reconnected and received again",
        all(
            w.tally.connections == 2 and w.tally.events_per_connection[-1] > 0
            for w in victim_watchers
        ),
    )
    result.check(
        "the other clients were not disturbed",
        all(w.tally.connections == 1 and w.tally.disconnects == 0 for w in others),
    )
    result.check("every client received updates", all(w.tally.events > 0 for w in watchers))
    _stream_checks(result, watchers)
    result.details["clients"] = _summaries(watchers)
    return result


async def stop_reading_scenario(
    vehicles: int = 50, rate: float = 5.0, max_buffer: int = 64 * 1024
) -> FaultResult:
    """A client that stops reading (a tiny receive buffer, and it keeps asking for the
    fleet's current states) is aborted past ``max_buffer``; the others keep receiving."""
    result = FaultResult(
        "stop-reading",
        f"a client stops reading (server buffer bound {max_buffer // 1024} KiB)",
        1,
        0,
    )
    async with trio.open_nursery() as nursery:
        stage = Stage(vehicles, rate, max_buffer=max_buffer)
        await stage.start(nursery)
        watchers = _watchers(stage.endpoints, vehicles)
        result.clients = len(watchers) + 1
        async with _crowd(result, nursery, watchers):
            await _flowing(watchers, 1, "updates before the stall")
            base = stage.endpoints.itrack_base
            core = ITrackClient(subscription_url(base), stage.hashes["demo"])
            ids = [v.id for v in demo_fleet(vehicles).of_tenant("demo")]
            core.send(Subscribe([StateRequest(ids)]))
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", stage.ports["itrack"]))
            stream = trio.SocketStream(sock)
            stack = ClientStack.from_url(core, core.url_to_open)
            stack.connection_made(trio.current_time())
            await stream.send_all(stack.data_to_send())
            while not any(isinstance(e, Connected) for e in stack.events()):
                stack.receive(bytes(await stream.receive_some(4096)), trio.current_time())
            # From here on it never reads again, and keeps re-subscribing (each answer
            # carries every vehicle's current state).
            before = [w.tally.events for w in watchers]

            def aborted() -> bool:
                return any(
                    isinstance(e, ConnectionClosed) and e.code == 1008 for _, e in stage.events
                )

            with trio.move_on_after(20):
                while not aborted():
                    stack.send(Subscribe([StateRequest(ids)]), trio.current_time())
                    with trio.move_on_after(0.05):
                        await stream.send_all(stack.data_to_send())
                    await trio.sleep(0.01)
            closed = [e for _, e in stage.events if isinstance(e, ConnectionClosed)]
            result.details["server_close"] = [str(e) for e in closed]
            result.check("the server aborted the stalled client (1008)", aborted())
            await _flowing(watchers, 1, "updates after the abort")
            await wait_for(
                lambda: all(w.tally.events > b + 5 for w, b in zip(watchers, before, strict=False)),
                "the others receiving after the abort",
            )
            await trio.aclose_forcefully(stream)
        nursery.cancel_scope.cancel()
    result.check(
        "the other clients kept their connection",
        all(w.tally.connections == 1 and w.tally.disconnects == 0 for w in watchers),
    )
    _stream_checks(result, watchers)
    result.details["clients"] = _summaries(watchers)
    return result


async def _client_handshake_timeout(driver: str, url: str, timeout: float) -> list[Event]:
    """One attempt of ``driver`` against a server that never answers the upgrade."""
    core = FleetFreedomClient(url)
    events: list[Event] = []
    if driver == "trio":
        async with trio_driver.connect(core, reconnect=None, connect_timeout=timeout) as conn:
            async for event in conn:
                events.append(event)
        return events

    def in_thread() -> None:
        if driver == "blocking":
            with blocking_driver.connect(core, reconnect=None, connect_timeout=timeout) as bconn:
                events.extend(bconn)
            return

        async def main() -> None:
            async with aio_driver.connect(core, reconnect=None, connect_timeout=timeout) as aconn:
                async for event in aconn:
                    events.append(event)

        import asyncio

        asyncio.run(main())

    await trio.to_thread.run_sync(in_thread)
    return events


async def silent_scenario(timeout: float = 0.5) -> FaultResult:
    """Silent peers: every timeout fires as configured, and only where it should."""
    result = FaultResult("silent", f"silent peers, timeouts set to {timeout:g} s", 0, 0)
    async with trio.open_nursery() as nursery:
        stage = Stage(5, 5.0, handshake_timeout=timeout)
        await stage.start(nursery)
        try:
            # 1. Client handshake timeout: the proxy forwards the upgrade, never the answer.
            frozen = ChaosProxy(stage.ports["fleetfreedom"])
            await nursery.start(frozen.run)
            frozen.freeze_new()
            for driver in DRIVERS:
                with trio.fail_after(10):
                    events = await _client_handshake_timeout(
                        driver, f"ws://127.0.0.1:{frozen.port}/", timeout
                    )
                failed = [e for e in events if isinstance(e, ReconnectFailed)]
                result.faults += 1
                result.check(
                    f"{driver}: handshake timeout ends the attempt",
                    len(failed) == 1
                    and not any(isinstance(e, Connected) for e in events)
                    and isinstance(events[-1], GaveUp),
                )
                result.details[f"{driver}_handshake"] = [str(e) for e in failed]

            # 2. Server handshake timeout: a TCP client that never sends its request is
            # closed quietly (an idle connection); one that stops mid-request is a failure.
            mute = await trio.open_tcp_stream("127.0.0.1", stage.ports["itrack"])
            half = await trio.open_tcp_stream("127.0.0.1", stage.ports["itrack"])
            await half.send_all(b"GET /v2/event/subscription HTTP/1.1\r\nHost: 127.0.0.1\r\nUpg")
            ends = []
            for stream in (mute, half):
                with trio.move_on_after(10):
                    ends.append(await stream.receive_some(4096))
                await stream.aclose()
            result.faults += 2
            failures = [e for _, e in stage.events if isinstance(e, HandshakeFailed)]
            result.check(
                "server: handshake timeout closes a mute and a half-sent upgrade",
                ends == [b"", b""]
                and len(failures) == 1
                and "not complete" in str(failures[0].error),
            )
            result.details["server_handshake"] = [str(e.error) for e in failures]

            # 3. Atmosphere heartbeat silence: updates flow, then the proxy freezes them.
            proxy = ChaosProxy(stage.ports["itrack"])
            await nursery.start(proxy.run)
            endpoints = Endpoints(proxy.port, proxy.port, stage.hashes)
            itrack_watchers = [
                Watcher(
                    ClientSpec(i, driver, "itrack", "demo"),
                    endpoints,
                    inactivity_timeout=timeout * 2,
                )
                for i, driver in enumerate(DRIVERS)
            ]
            # 4. FleetFreedom command timeout: a command the server never answers (the
            # proxy freezes the answers); the connection itself stays up.
            ff_proxy = ChaosProxy(stage.ports["fleetfreedom"])
            await nursery.start(ff_proxy.run)
            ff_endpoints = Endpoints(proxy.port, ff_proxy.port, stage.hashes)
            ff_watchers = [
                Watcher(ClientSpec(10 + i, driver, "fleetfreedom", "demo"), ff_endpoints)
                for i, driver in enumerate(DRIVERS)
            ]
            for w in itrack_watchers:
                w.subscribe_itrack(v.id for v in demo_fleet(5).of_tenant("demo"))
            watchers = itrack_watchers + ff_watchers
            seen: dict[str, list[Event]] = {w.spec.name: [] for w in watchers}
            for w in watchers:
                _record_events(w, seen[w.spec.name])
            crowd = Crowd(watchers)  # reconnecting: the timeout must still end the session
            await crowd.start(nursery)
            await _flowing(watchers, 1, "updates before the silence")
            before = {w.spec.name: w.tally.events for w in itrack_watchers}
            for link in proxy.links:
                link.freeze()
            result.faults += len(itrack_watchers)
            await wait_for(
                lambda: all(
                    any(isinstance(e, InactivityTimeout) for e in seen[w.spec.name])
                    for w in itrack_watchers
                ),
                "iTrack inactivity timeouts",
            )
            # The close handshake needs the server's answer: let bytes flow again.
            for link in proxy.links:
                link.thaw()
            await wait_for(
                lambda: all(w.tally.gave_up is not None for w in itrack_watchers),
                "iTrack clients ending after the inactivity timeout",
            )
            for w in itrack_watchers:
                events = seen[w.spec.name]
                fired = [e for e in events if isinstance(e, InactivityTimeout)]
                result.check(
                    f"{w.spec.driver}: Atmosphere silence fires the inactivity timeout",
                    len(fired) == 1
                    and before[w.spec.name] > 0
                    and not any(isinstance(e, ReconnectFailed) for e in events)
                    and w.tally.connections == 1
                    and w.tally.gave_up == "the session ended for good",
                )
                result.details[f"{w.spec.driver}_inactivity"] = w.tally.gave_up

            # Commands go out, nothing reaches the server; pushes keep coming in.
            for link in ff_proxy.links:
                link.freeze(down=False, up=True)
            for w in ff_watchers:
                w.command_queue.append(Command("getSessionDetails", timeout=timeout))
            result.faults += len(ff_watchers)
            await wait_for(
                lambda: all(
                    any(isinstance(e, CommandFailed) for e in seen[w.spec.name])
                    for w in ff_watchers
                ),
                "FleetFreedom command timeouts",
            )
            for w in ff_watchers:
                timed_out = [e for e in seen[w.spec.name] if isinstance(e, CommandFailed)]
                result.check(
                    f"{w.spec.driver}: FleetFreedom command timeout fires, connection stays",
                    len(timed_out) == 1
                    and timed_out[0].reason is FailureReason.TIMEOUT
                    and w.tally.connections == 1
                    and w.tally.disconnects == 0,
                )
            for link in [*proxy.links, *ff_proxy.links]:
                link.thaw()
            problems = await crowd.stop()
            result.check("clients stopped cleanly", not problems)
            result.details["problems"] = problems
            result.clients = len(watchers) + len(DRIVERS) + 1
            _stream_checks(result, watchers)
            result.details["clients"] = _summaries(watchers)
        except FaultTimeout as exc:
            result.check(f"in time: {exc}", False)
        nursery.cancel_scope.cancel()
    return result


def _record_events(watcher: Watcher, into: list[Event]) -> None:
    """Keep every event ``watcher`` sees (the silent scenario inspects them)."""
    original = watcher.on_event

    def on_event(event: Event) -> list[Any]:
        into.append(event)
        return original(event)

    watcher.on_event = on_event  # type: ignore[method-assign]


SCENARIOS: dict[str, Callable[[], Awaitable[FaultResult]]] = {
    "restart": restart_scenario,
    "lost-sessions": lost_sessions_scenario,
    "ttl": ttl_scenario,
    "half-open": half_open_scenario,
    "proxy": proxy_scenario,
    "stop-reading": stop_reading_scenario,
    "silent": silent_scenario,
}


async def run_all(names: Sequence[str]) -> list[FaultResult]:
    results = []
    for name in names:
        print(f"# {name}", file=sys.stderr, flush=True)
        with trio.fail_after(120):
            results.append(await SCENARIOS[name]())
    return results


def format_table(results: Sequence[FaultResult]) -> str:
    rows = [("scenario", "faults", "clients", "survived", "injected")]
    for r in results:
        rows.append(
            (r.name, str(r.faults), str(r.clients), "yes" if r.survived else "NO", r.injected)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=False)) + "  " + row[4]
        for row in rows
    ]
    for r in results:
        for name, ok in r.checks.items():
            if not ok:
                lines.append(f"FAILED {r.name}: {name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--json", help="write every check and client count here")
    args = parser.parse_args(argv)
    names = [n for n in (args.only or ",".join(SCENARIOS)).split(",") if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    results = trio.run(run_all, names)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([r.as_json() for r in results], out, indent=1)
    return 0 if all(r.survived for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
