"""Soak: many clients on every driver and both protocols against the two reference servers.

Each client counts the simulator's numbered updates per vehicle and checks that, while its
connection is up, every ``seq`` between the first and the last one seen for a vehicle arrives
exactly once; the process samples its memory and reports the slope after a warm-up.

::

    python reliability/soak.py --clients 200 --seconds 60 [--json FILE]

Everything binds 127.0.0.1 and stops by itself; ``--server process`` (the default) serves the
reference servers from a child process so that they do not share the clients' CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from trackwire import (
    Event,
    FleetFreedomClient,
    ITrackClient,
    ReconnectPolicy,
    SessionFinished,
    SessionRestored,
)
from trackwire.conformance import (
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)
from trackwire.drivers import asyncio as aio_driver
from trackwire.drivers import blocking as blocking_driver
from trackwire.drivers import trio as trio_driver
from trackwire.drivers.trio import GaveUp, ReconnectFailed, Reconnecting, Server, serve
from trackwire.fleetfreedom import (
    Command,
    CommandFailed,
    ConnectionResponse,
    Merged,
    ObjectCache,
    Response,
)
from trackwire.itrack import (
    FORGOTTEN_CODES,
    ErrorMessage,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    build_auth_request,
    subscription_url,
)
from trackwire.ws import Connected, ConnectionClosed

__all__ = [
    "DRIVERS",
    "PROTOCOLS",
    "ClientSpec",
    "Endpoints",
    "Memory",
    "SoakConfig",
    "SoakResult",
    "Tally",
    "Watcher",
    "run_asyncio_clients",
    "run_blocking_client",
    "run_soak",
    "run_trio_client",
    "serve_references",
]

DRIVERS = ("trio", "asyncio", "blocking")
PROTOCOLS = ("itrack", "fleetfreedom")
TENANTS = ("demo", "other")
QUICK = ReconnectPolicy(initial=0.2, factor=2.0, cap=2.0, jitter=0.2)
"""The soak's reconnect policy: back within a fraction of a second, never minutes."""
_POLL = 0.1
"""How long a thread-driven client waits for an event before it looks at its stop flag."""


# -- counting --------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What one client saw: numbered updates per vehicle, connections, errors.

    The law checked: within one connection (``Connected`` to its end) the ``seq`` of each
    vehicle goes up by exactly one from update to update.  A jump is ``lost`` (the missing
    numbers), a repeat or a step back is ``duplicated``.  Across connections a vehicle may
    jump (updates made while disconnected are not replayed, ``skipped_offline``) or repeat
    its last ``seq`` once (the current state a resubscribe sends, ``resent``), never go back
    (``regressions``).
    """

    events: int = 0
    lost: int = 0
    duplicated: int = 0
    regressions: int = 0
    resent: int = 0
    skipped_offline: int = 0
    connections: int = 0
    disconnects: int = 0
    reconnect_failures: int = 0
    gave_up: str | None = None
    errors: list[str] = field(default_factory=list)
    cache_rollbacks: int = 0
    relogins: int = 0
    """Sessions the server forgot and the client logged in again (``SessionRestored``)."""
    finished: str | None = None
    """Why the session ended for good (``SessionFinished``), if it did."""
    events_per_connection: list[int] = field(default_factory=list)
    _epoch: dict[int, int] = field(default_factory=dict, repr=False)
    _last: dict[int, int] = field(default_factory=dict, repr=False)

    def connected(self) -> None:
        """A new connection: its own run of sequence numbers starts."""
        self.connections += 1
        self._epoch = {}
        self.events_per_connection.append(0)

    def closed(self) -> None:
        self.disconnects += 1

    def update(self, vehicle: int, seq: int) -> None:
        """One numbered update of ``vehicle``."""
        self.events += 1
        if self.events_per_connection:
            self.events_per_connection[-1] += 1
        last = self._epoch.get(vehicle)
        if last is None:
            before = self._last.get(vehicle)
            if before is not None:
                if seq < before:
                    self.regressions += 1
                elif seq == before:
                    self.resent += 1
                else:
                    self.skipped_offline += seq - before - 1
        elif seq == last + 1:
            pass
        elif seq <= last:
            self.duplicated += 1
        else:
            self.lost += seq - last - 1
        if last is None or seq > last:
            self._epoch[vehicle] = seq
        if seq > self._last.get(vehicle, -1):
            self._last[vehicle] = seq

    def error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text[:200])

    @property
    def vehicles(self) -> int:
        return len(self._last)

    def current_vehicles(self) -> int:
        """Vehicles seen on the current connection."""
        return len(self._epoch)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_epoch")
        data.pop("_last")
        data["vehicles"] = self.vehicles
        return data


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the two reference servers listen (127.0.0.1)."""

    itrack_port: int
    fleetfreedom_port: int
    hashes: dict[str, str] = field(default_factory=dict)
    """iTrack session hash per tenant (one login per tenant, shared by its clients)."""

    @property
    def itrack_base(self) -> str:
        return f"http://127.0.0.1:{self.itrack_port}/v2/"

    @property
    def fleetfreedom_url(self) -> str:
        return f"ws://127.0.0.1:{self.fleetfreedom_port}/"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One soak client: its number, driver, protocol and tenant."""

    index: int
    driver: str
    protocol: str
    tenant: str

    @property
    def name(self) -> str:
        return f"{self.index:03d}-{self.protocol}-{self.driver}-{self.tenant}"


def plan(
    count: int, drivers: Sequence[str] = DRIVERS, protocols: Sequence[str] = PROTOCOLS
) -> list[ClientSpec]:
    """``count`` clients spread evenly over protocols, drivers and the two tenants."""
    specs = []
    for index in range(count):
        protocol = protocols[index % len(protocols)]
        driver = drivers[(index // len(protocols)) % len(drivers)]
        tenant = TENANTS[(index // (len(protocols) * len(drivers))) % len(TENANTS)]
        specs.append(ClientSpec(index, driver, protocol, tenant))
    return specs


class Watcher:
    """A client's application: builds its core, reacts to events, keeps its :class:`Tally`.

    The same object serves every driver: :meth:`on_event` returns what to send next.
    """

    def __init__(
        self,
        spec: ClientSpec,
        endpoints: Endpoints,
        *,
        command_timeout: float = 30.0,
        inactivity_timeout: float = 300.0,
        keepalive: float = 300.0,
        reconnect_on_timeout: bool = False,
    ) -> None:
        self.spec = spec
        self.tally = Tally()
        # The soak never reads the change feed: keep it short, so memory is flat sooner.
        self.cache = ObjectCache(max_changes=64)
        self.company = 0
        self.ghost_ids: list[str] = []
        """FleetFreedom: the ghostId of the login, then of every resumed connection."""
        self.tracking_ids: list[str] = []
        """iTrack: the Atmosphere tracking id of every (re)opened connection."""
        self._versions: dict[object, tuple[list[int], int]] = {}
        self.command_queue: deque[Any] = deque()
        """Items to send with the next event (filled from any thread)."""
        self.core: ITrackClient | FleetFreedomClient
        if spec.protocol == "itrack":
            base = endpoints.itrack_base
            account = next(a for a in DEMO_ITRACK if a.tenant == spec.tenant)
            # The credentials let the core log in again when the server forgets the hash.
            login = build_auth_request(base, account.login, account.password)
            core = ITrackClient(subscription_url(base), endpoints.hashes[spec.tenant], login=login)
            core.transport.inactivity_timeout = inactivity_timeout
            core.transport.reconnect_on_timeout = reconnect_on_timeout
            self.core = core
        else:
            account = next(a for a in DEMO_FLEETFREEDOM if a.tenant == spec.tenant)
            self.company = account.company or 0
            ff = FleetFreedomClient(
                endpoints.fleetfreedom_url, command_timeout=command_timeout, keepalive=keepalive
            )
            ff.send(Command.login(account.login, account.password, "trackwire-soak"))
            ff.send(Command.subscribe(self.company, ["assetAdvanced"]))
            self.core = ff

    def subscribe_itrack(self, vehicle_ids: Iterable[int]) -> None:
        """Queue the iTrack subscription (held by the core until the handshake)."""
        assert isinstance(self.core, ITrackClient)
        self.core.send(Subscribe([StateRequest(sorted(vehicle_ids))]))

    def on_event(self, event: Event) -> list[Any]:
        """Count ``event``; returns the commands to send now."""
        out = self._on_event(event)
        queue = self.command_queue
        while queue:
            out.append(queue.popleft())
        return out

    def _on_event(self, event: Event) -> list[Any]:
        tally = self.tally
        kind = type(event)
        if kind is StateEvent or isinstance(event, StateEvent):  # the fast decoder: subclasses
            assert isinstance(event, StateEvent)
            state = event.state
            seq = state.raw.get("seq")
            if isinstance(seq, int):
                tally.update(state.source_id, seq)
            else:
                tally.error(f"state without seq: {state.raw!r}")
            return []
        if kind is Merged:
            assert isinstance(event, Merged)
            body = event.body
            seq = body.get("seq")
            key = body.get("id")
            self._apply(event, key)
            if isinstance(seq, int) and isinstance(key, int):
                tally.update(key, seq)
            return []
        if kind is Connected:
            tally.connected()
        elif kind is ConnectionClosed:
            tally.closed()
        elif isinstance(event, Reconnecting):
            pass
        elif isinstance(event, ReconnectFailed):
            tally.reconnect_failures += 1
        elif isinstance(event, GaveUp):
            tally.gave_up = event.reason
        elif isinstance(event, SessionRestored):
            tally.relogins += 1
        elif isinstance(event, SessionFinished):
            tally.finished = f"{event.reason.value}: {event.detail}"
        elif isinstance(event, ConnectionResponse):
            if event.error_code == 0:
                ghost = event.body.get("ghostId")
                if isinstance(ghost, str):
                    self.ghost_ids.append(ghost)
                # A resumed session: read the list again (the cache must not go back).
                return [Command.get_list("asset", self.company)]
        elif isinstance(event, Response):
            if event.request is not None and event.request.name == "login":
                if event.ok:
                    ghost = event.body.get("ghostId")
                    if isinstance(ghost, str):
                        self.ghost_ids.append(ghost)
                    return [Command.get_list("asset", self.company)]
                tally.error(f"login refused: {event.error_code}")
            elif event.ok:
                self._apply_list(event)
            else:
                tally.error(f"{event.name} {event.error_code}")
        elif isinstance(event, CommandFailed):
            tally.error(f"command {event.request.name} failed: {event.reason.value}")
        elif isinstance(event, ErrorMessage):
            if event.code not in FORGOTTEN_CODES:  # a forgotten hash is logged in again
                tally.error(f"iTrack error {event.code}: {event.description}")
        elif isinstance(event, SubscribeResponse):
            pass
        else:
            name = kind.__name__
            if name in ("Opened", "Reopened"):
                self.tracking_ids.append(str(getattr(event, "uuid", "")))
        return []

    def _apply(self, event: Merged | Response, key: object) -> None:
        self.cache.apply(event)
        self._check_version(key)

    def _apply_list(self, event: Response) -> None:
        self.cache.apply(event)
        for obj in self.cache.company_objects("asset", self.company):
            self._check_version(obj.get("id"))

    def _check_version(self, key: object) -> None:
        """The cached asset's version vector and ``seq`` never go back."""
        view = self.cache.get("asset", key)
        if view is None:
            return
        versions = list(view.get("v") or [])
        seq = view.get("seq")
        seq = seq if isinstance(seq, int) else -1
        before = self._versions.get(key)
        if before is not None:
            old_v, old_seq = before
            if seq < old_seq or any(n < o for n, o in zip(versions, old_v, strict=False)):
                self.tally.cache_rollbacks += 1
        self._versions[key] = (versions, seq)


# -- the three drivers -----------------------------------------------------------------------


async def run_trio_client(
    watcher: Watcher,
    stop: trio.Event,
    *,
    reconnect: ReconnectPolicy | None = QUICK,
    connect_timeout: float = 10.0,
    url: str | None = None,
    queue_size: int = trio_driver.DEFAULT_QUEUE_SIZE,
) -> None:
    """Run ``watcher`` on the trio driver until ``stop`` is set, then close gracefully."""
    async with (
        trio_driver.connect(
            watcher.core,
            url,
            reconnect=reconnect,
            connect_timeout=connect_timeout,
            queue_size=queue_size,
        ) as conn,
        trio.open_nursery() as nursery,
    ):

        async def stopper() -> None:
            await stop.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(stopper)
        async for event in conn:
            for item in watcher.on_event(event):
                await conn.send(item)
        nursery.cancel_scope.cancel()


async def _asyncio_client(
    watcher: Watcher,
    stop: threading.Event,
    reconnect: ReconnectPolicy | None,
    connect_timeout: float,
    url: str | None,
) -> None:
    async with aio_driver.connect(
        watcher.core, url, reconnect=reconnect, connect_timeout=connect_timeout
    ) as conn:
        while not stop.is_set():
            event = await conn.next_event(_POLL)
            if event is None:
                if conn.closed:
                    break
                continue
            for item in watcher.on_event(event):
                await conn.send(item)


def run_asyncio_clients(
    watchers: Sequence[Watcher],
    stop: threading.Event,
    *,
    reconnect: ReconnectPolicy | None = QUICK,
    connect_timeout: float = 10.0,
    urls: Sequence[str | None] | None = None,
) -> None:
    """Run every watcher on the asyncio driver, all in one event loop in this thread."""

    async def main() -> None:
        targets = urls or [None] * len(watchers)
        await asyncio.gather(
            *(
                _asyncio_client(w, stop, reconnect, connect_timeout, u)
                for w, u in zip(watchers, targets, strict=False)
            )
        )

    asyncio.run(main())


def run_blocking_client(
    watcher: Watcher,
    stop: threading.Event,
    *,
    reconnect: ReconnectPolicy | None = QUICK,
    connect_timeout: float = 10.0,
    url: str | None = None,
) -> None:
    """Run ``watcher`` on the blocking driver in this thread until ``stop`` is set."""
    with blocking_driver.connect(
        watcher.core, url, reconnect=reconnect, connect_timeout=connect_timeout
    ) as conn:
        while not stop.is_set():
            event = conn.next_event(_POLL)
            if event is None:
                if conn.closed:
                    break
                continue
            for item in watcher.on_event(event):
                conn.send(item)


class ThreadedClients:
    """The asyncio clients (one loop, one thread) and the blocking ones (a thread each)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.failures: list[str] = []

    def _guard(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # reported, not lost in a thread
                self.failures.append(f"{name}: {type(exc).__name__}: {exc}")

        return run

    def start(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guard(name, target), name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> list[str]:
        """Stop and join every thread; returns the names of those still alive."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]


# -- servers ---------------------------------------------------------------------------------


async def _tick_forever(app: ITrackReference | FleetFreedomReference, server: Server[Any]) -> None:
    while True:
        deadline = app.next_deadline()
        await trio.sleep_until(max(deadline or 0.0, trio.current_time()))
        server.flush(app.tick(trio.current_time()))


@dataclass(slots=True)
class References:
    """The two reference apps and their servers (same process)."""

    itrack: ITrackReference
    fleetfreedom: FleetFreedomReference
    itrack_server: Server[Any]
    fleetfreedom_server: Server[Any]


async def serve_references(
    nursery: trio.Nursery,
    vehicles: int,
    rate: float,
    *,
    max_buffer: int = trio_driver.DEFAULT_MAX_BUFFER,
    session_ttl: float | None = None,
) -> References:
    """Both reference servers on free 127.0.0.1 ports, their fleets ticking, in ``nursery``;
    ``session_ttl`` expires their sessions that long after each login."""
    wall = time.time() - trio.current_time()
    itrack = ITrackReference(
        demo_fleet(vehicles, rate=rate), wall_offset=wall, session_ttl=session_ttl
    )
    ff = FleetFreedomReference(
        demo_fleet(vehicles, rate=rate), wall_offset=wall, session_ttl=session_ttl
    )
    it_server: Server[Any] = await nursery.start(
        functools.partial(
            serve,
            itrack.factory,
            "127.0.0.1",
            0,
            http_handler=itrack.http_handler,
            max_buffer=max_buffer,
            max_connections_per_address=None,  # every client is on 127.0.0.1
        )
    )
    ff_server: Server[Any] = await nursery.start(
        functools.partial(
            serve,
            ff.factory,
            "127.0.0.1",
            0,
            max_buffer=max_buffer,
            max_connections_per_address=None,
        )
    )
    nursery.start_soon(_tick_forever, itrack, it_server)
    nursery.start_soon(_tick_forever, ff, ff_server)
    return References(itrack, ff, it_server, ff_server)


def _server_stats(refs: References) -> dict[str, Any]:
    return {
        "itrack_connections": len(refs.itrack_server.connections),
        "fleetfreedom_connections": len(refs.fleetfreedom_server.connections),
        "itrack_cores_held": len(refs.itrack.connections),
        "fleetfreedom_cores_held": len(refs.fleetfreedom.hub.connections),
    }


async def _child_main(
    vehicles: int, rate: float, sample_every: float, session_ttl: float | None = None
) -> None:
    """``--serve-references``: serve, print the ports, sample memory until stdin closes."""
    memory = Memory(trace=False)
    async with trio.open_nursery() as nursery:
        refs = await serve_references(nursery, vehicles, rate, session_ttl=session_ttl)
        ports = {"itrack": refs.itrack_server.port, "fleetfreedom": refs.fleetfreedom_server.port}
        print(json.dumps(ports), flush=True)

        async def sample() -> None:
            while True:
                memory.sample(trio.current_time())
                await trio.sleep(sample_every)

        nursery.start_soon(sample)
        await trio.to_thread.run_sync(sys.stdin.read)
        stats = _server_stats(refs)
        print(json.dumps({"memory": memory.samples, "stats": stats}), flush=True)
        nursery.cancel_scope.cancel()


# -- memory ----------------------------------------------------------------------------------


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class Memory:
    """Samples of RSS, Python's allocated blocks and (optionally) tracemalloc's total."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.samples: list[tuple[float, int, int, int]] = []
        """(seconds, rss bytes, allocated blocks, traced bytes or 0)."""
        self._t0: float | None = None

    def sample(self, now: float) -> None:
        if self._t0 is None:
            self._t0 = now
        traced = tracemalloc.get_traced_memory()[0] if self.trace else 0
        self.samples.append((now - self._t0, _rss_bytes(), sys.getallocatedblocks(), traced))

    @staticmethod
    def report(samples: Sequence[Sequence[float]], warmup: float) -> dict[str, float]:
        """Start/end after warm-up and the least-squares slope per minute of each measure."""
        after = [s for s in samples if s[0] >= warmup] or list(samples[-2:])
        out: dict[str, float] = {"samples": float(len(after))}
        for index, name in ((1, "rss_mib"), (2, "blocks_k"), (3, "traced_mib")):
            scale = 1 / (1 << 20) if index != 2 else 1 / 1000
            xs = [s[0] for s in after]
            ys = [s[index] * scale for s in after]
            out[f"{name}_start"] = round(ys[0], 2) if ys else 0.0
            out[f"{name}_end"] = round(ys[-1], 2) if ys else 0.0
            out[f"{name}_slope_per_min"] = round(_slope(xs, ys) * 60, 3)
        return out


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / var


# -- the soak --------------------------------------------------------------------------------


@dataclass(slots=True)
class SoakConfig:
    clients: int = 200
    seconds: float = 60.0
    vehicles: int = 50
    rate: float = 2.0
    """Updates per second per vehicle: 200 clients of 50/25 vehicles at 2 Hz are ~15,000
    events/s, what two cores carry with room to spare (5 Hz saturates them)."""
    warmup: float | None = None
    """Seconds of the run left out of the memory slope (default: a quarter, at most 15)."""
    server: str = "process"
    """``process``: the reference servers run in a child process; ``inline``: in this one."""
    drivers: tuple[str, ...] = DRIVERS
    protocols: tuple[str, ...] = PROTOCOLS
    sample_every: float = 0.5
    trace: bool = False
    """Also sample ``tracemalloc`` (slows everything down noticeably)."""
    session_ttl: float | None = None
    """Expire every server session this long after its login: clients log in again."""

    @property
    def warmup_seconds(self) -> float:
        return self.warmup if self.warmup is not None else min(15.0, self.seconds / 4)


@dataclass(slots=True)
class SoakResult:
    config: dict[str, Any]
    clients: list[dict[str, Any]]
    totals: dict[str, Any]
    memory: dict[str, float]
    server_memory: dict[str, float]
    server_stats: dict[str, Any]
    thread_failures: list[str]
    leftover_threads: list[str]
    elapsed: float

    @property
    def clean(self) -> bool:
        """No loss, no duplicate, no rollback, no thread left, every client got updates."""
        t = self.totals
        return (
            t["lost"] == 0
            and t["duplicated"] == 0
            and t["regressions"] == 0
            and t["cache_rollbacks"] == 0
            and t["silent_clients"] == 0
            and t.get("finished_sessions", 0) == 0
            and not self.thread_failures
            and not self.leftover_threads
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "totals": self.totals,
            "memory": self.memory,
            "server_memory": self.server_memory,
            "server_stats": self.server_stats,
            "thread_failures": self.thread_failures,
            "leftover_threads": self.leftover_threads,
            "elapsed": self.elapsed,
            "clean": self.clean,
            "clients": self.clients,
        }


def _totals(watchers: Sequence[Watcher]) -> dict[str, Any]:
    keys = (
        "events",
        "lost",
        "duplicated",
        "regressions",
        "resent",
        "skipped_offline",
        "connections",
        "disconnects",
        "reconnect_failures",
        "cache_rollbacks",
        "relogins",
    )
    totals: dict[str, Any] = {key: sum(getattr(w.tally, key) for w in watchers) for key in keys}
    totals["clients"] = len(watchers)
    totals["silent_clients"] = sum(1 for w in watchers if w.tally.events == 0)
    totals["errors"] = sum(len(w.tally.errors) for w in watchers)
    totals["finished_sessions"] = sum(1 for w in watchers if w.tally.finished)
    by: dict[str, int] = {}
    for w in watchers:
        for key in (w.spec.driver, w.spec.protocol):
            by[key] = by.get(key, 0) + w.tally.events
    totals["events_by"] = by
    return totals


async def _start_child(config: SoakConfig) -> tuple[trio.Process, dict[str, int]]:
    args = [
        sys.executable,
        os.path.abspath(__file__),
        "--serve-references",
        "--vehicles",
        str(config.vehicles),
        "--rate",
        str(config.rate),
    ]
    if config.session_ttl is not None:
        args += ["--session-ttl", str(config.session_ttl)]
    proc = await trio.lowlevel.open_process(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = b""
    with trio.fail_after(30):
        while not line.endswith(b"\n"):
            chunk = await proc.stdout.receive_some(1)
            if not chunk:
                raise RuntimeError("the server process ended before it listened")
            line += chunk
    return proc, json.loads(line)


async def _stop_child(proc: trio.Process) -> dict[str, Any]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    await proc.stdin.aclose()
    data = b""
    with trio.move_on_after(15):
        while True:
            chunk = await proc.stdout.receive_some(65536)
            if not chunk:
                break
            data += chunk
        await proc.wait()
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
    try:
        return dict(json.loads(data.decode().strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {}


async def run_soak(config: SoakConfig, progress: Callable[[str], None] | None = None) -> SoakResult:
    """Run one soak as configured (in trio); returns the counts and the memory report."""
    say = progress or (lambda _text: None)
    if config.trace:
        tracemalloc.start()
    memory = Memory(config.trace)
    specs = plan(config.clients, config.drivers, config.protocols)
    threaded = ThreadedClients()
    child: trio.Process | None = None
    server_report: dict[str, Any] = {}
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        refs: References | None = None
        if config.server == "inline":
            refs = await serve_references(
                nursery, config.vehicles, config.rate, session_ttl=config.session_ttl
            )
            ports = {
                "itrack": refs.itrack_server.port,
                "fleetfreedom": refs.fleetfreedom_server.port,
            }
        else:
            child, ports = await _start_child(config)
        base = f"http://127.0.0.1:{ports['itrack']}/v2/"
        hashes = {
            a.tenant: await trio_driver.itrack_login(base, a.login, a.password) for a in DEMO_ITRACK
        }
        endpoints = Endpoints(ports["itrack"], ports["fleetfreedom"], hashes)
        fleet = demo_fleet(config.vehicles, rate=config.rate)
        watchers = [Watcher(spec, endpoints) for spec in specs]
        for watcher in watchers:
            if watcher.spec.protocol == "itrack":
                watcher.subscribe_itrack(v.id for v in fleet.of_tenant(watcher.spec.tenant))
        say(f"{len(watchers)} clients against {endpoints.itrack_base} and "
            f"{endpoints.fleetfreedom_url}")  # fmt: skip
        stop = trio.Event()
        async with trio.open_nursery() as clients:
            aio = [w for w in watchers if w.spec.driver == "asyncio"]
            if aio:
                threaded.start("asyncio-clients", lambda: run_asyncio_clients(aio, threaded.stop))
            for w in watchers:
                if w.spec.driver == "blocking":
                    threaded.start(
                        w.spec.name,
                        functools.partial(run_blocking_client, w, threaded.stop),
                    )
                elif w.spec.driver == "trio":
                    clients.start_soon(run_trio_client, w, stop)
            end = trio.current_time() + config.seconds
            while trio.current_time() < end:
                memory.sample(trio.current_time())
                await trio.sleep(min(config.sample_every, max(0.0, end - trio.current_time())))
            memory.sample(trio.current_time())
            say("stopping the clients")
            stop.set()
            leftover = await trio.to_thread.run_sync(threaded.join, 30.0)
        if refs is not None:
            server_report = {"stats": _server_stats(refs)}
        if child is not None:
            server_report = await _stop_child(child)
        nursery.cancel_scope.cancel()
    if config.trace:
        tracemalloc.stop()
    warmup = config.warmup_seconds
    return SoakResult(
        config=asdict(config),
        clients=[dict(w.tally.summary(), name=w.spec.name) for w in watchers],
        totals=_totals(watchers),
        memory=Memory.report(memory.samples, warmup),
        server_memory=Memory.report(server_report.get("memory") or [(0, 0, 0, 0)], warmup),
        server_stats=server_report.get("stats", {}),
        thread_failures=threaded.failures,
        leftover_threads=leftover,
        elapsed=round(time.monotonic() - started, 2),
    )


def format_table(result: SoakResult) -> str:
    """The summary table the README shows."""
    t = result.totals
    m = result.memory
    s = result.server_memory
    c = result.config
    rows = [
        ("clients", f"{t['clients']} ({', '.join(c['drivers'])}; {', '.join(c['protocols'])})"),
        ("fleet", f"{c['vehicles']} + {max(1, c['vehicles'] // 2)} vehicles at {c['rate']} Hz"),
        ("duration", f"{c['seconds']} s (warm-up {SoakConfig(**c).warmup_seconds:g} s)"),
        ("events", f"{t['events']} ({t['events'] / max(c['seconds'], 1e-9):.0f}/s)"),
        ("events by", ", ".join(f"{k} {v}" for k, v in sorted(t["events_by"].items()))),
        ("lost", str(t["lost"])),
        ("duplicated", str(t["duplicated"])),
        ("regressions / cache rollbacks", f"{t['regressions']} / {t['cache_rollbacks']}"),
        ("connections / disconnects", f"{t['connections']} / {t['disconnects']}"),
        (
            "session ttl: logged in again / ended",
            f"{c.get('session_ttl')} s: {t['relogins']} / {t['finished_sessions']}",
        ),
        ("clients without events", str(t["silent_clients"])),
        ("errors", str(t["errors"])),
        (
            "client RSS start → end (slope)",
            f"{m['rss_mib_start']:.1f} → {m['rss_mib_end']:.1f} MiB "
            f"({m['rss_mib_slope_per_min']:+.2f} MiB/min)",
        ),
        (
            "client blocks start → end (slope)",
            f"{m['blocks_k_start']:.0f}k → {m['blocks_k_end']:.0f}k "
            f"({m['blocks_k_slope_per_min']:+.1f}k/min)",
        ),
    ]
    if result.config["trace"]:
        rows.append(
            (
                "client traced start → end (slope)",
                f"{m['traced_mib_start']:.1f} → {m['traced_mib_end']:.1f} MiB "
                f"({m['traced_mib_slope_per_min']:+.2f} MiB/min)",
            )
        )
    if s.get("rss_mib_end"):
        rows.append(
            (
                "server RSS start → end (slope)",
                f"{s['rss_mib_start']:.1f} → {s['rss_mib_end']:.1f} MiB "
                f"({s['rss_mib_slope_per_min']:+.2f} MiB/min)",
            )
        )
    rows.append(("threads left / thread errors", f"{len(result.leftover_threads)} / "
                 f"{len(result.thread_failures)}"))  # fmt: skip
    rows.append(("verdict", "clean" if result.clean else "PROBLEMS"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--vehicles", type=int, default=50, help="demo tenant (other: half)")
    parser.add_argument("--rate", type=float, default=2.0, help="updates/s per vehicle")
    parser.add_argument("--warmup", type=float, help="seconds left out of the memory slope")
    parser.add_argument("--server", choices=("process", "inline"), default="process")
    parser.add_argument("--drivers", default=",".join(DRIVERS))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations")
    parser.add_argument("--json", help="write the full result (every client) here")
    parser.add_argument("--session-ttl", type=float, help="expire server sessions (seconds)")
    parser.add_argument("--serve-references", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_references:
        trio.run(_child_main, args.vehicles, args.rate, 0.5, args.session_ttl)
        return 0
    config = SoakConfig(
        clients=args.clients,
        seconds=args.seconds,
        vehicles=args.vehicles,
        rate=args.rate,
        warmup=args.warmup,
        server=args.server,
        drivers=tuple(d for d in args.drivers.split(",") if d),
        protocols=tuple(p for p in args.protocols.split(",") if p),
        trace=args.tracemalloc,
        session_ttl=args.session_ttl,
    )
    result = trio.run(run_soak, config, lambda text: print("#", text, file=sys.stderr))
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result.as_json(), out, indent=1)
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
