"""Shared state for several processes of one reference server: a backplane.

Every process keeps its own application (:class:`~trackwire.conformance.ITrackReference` or
:class:`~trackwire.conformance.FleetFreedomReference`) as its working copy.  A
:class:`Replica` (pure, like the cores) watches that copy through the hooks of the directory
or hub (``observer``) and of the fleet (:class:`SharedFleet`) and turns every local change
into a :class:`Change`: a JSON record the other processes apply, and the storage operation
that keeps the shared truth (a :class:`Put`, :class:`Expire` or :class:`Delete`).  A
:class:`SharedState` stores those and fans the records out; :func:`run_shared` is the trio
task that moves them both ways and elects the one process that moves the fleet.

Two implementations: :class:`InMemoryState` (replicas in one process share a
:class:`MemoryBackplane`; a single process needs none, which is what ``serve`` does by
default) and :class:`~trackwire.conformance.RedisState`.

What is shared (key → stored record):

- ``session:<id>``: a live session (FleetFreedom ghostId or iTrack hash) and its login; the
  key lives as long as the session (its idle timeout, renewed as it is used);
- ``vehicle:<id>``: the latest fleet update of an iTrack server (its ``seq`` only ever
  grows; a FleetFreedom server's asset pieces carry the ``seq`` instead);
- ``piece:<name>:<key>``: the latest ``<piece>Merged`` of a FleetFreedom object (its ``v``
  only ever grows: a stale write is dropped by the store);
- ``leader``: who moves the fleet (a lock with a time to live).

A process that starts (or takes the lead) loads the stored records first and applies them
like the records it receives, so it continues the versions and sequence numbers where the
others left them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from trackwire.fleetfreedom import PIECE_SLOTS, Account, FleetFreedomServer, key_field, piece_of
from trackwire.itrack import ITrackServer

from ._fleet import Fleet, VehicleUpdate
from ._reference import FleetFreedomReference, ITrackReference

__all__ = [
    "DEFAULT_ITRACK_SESSION_TTL",
    "DEFAULT_LEAD_TTL",
    "Change",
    "Delete",
    "Expire",
    "InMemoryState",
    "MemoryBackplane",
    "Put",
    "Replica",
    "SharedFleet",
    "SharedState",
    "run_shared",
    "shared_demo_fleet",
]

DEFAULT_LEAD_TTL = 3.0
"""Seconds the fleet-moving lock outlives its holder (renewed every third of it)."""
DEFAULT_ITRACK_SESSION_TTL = 86400.0
"""How long a shared iTrack hash lives (the directory's own hashes never expire)."""
TOUCH_STEP = 1.0
"""A session's renewed expiry is shared at most once per this many seconds of extension."""

Record = dict[str, Any]
App = ITrackReference | FleetFreedomReference
Core = ITrackServer | FleetFreedomServer


@dataclass(frozen=True, slots=True)
class Put:
    """Store ``record`` under ``key``; with ``version``, only if it is above the stored one
    (so a value never rolls back); with ``ttl`` (seconds), the key then expires."""

    key: str
    record: Record
    version: int | None = None
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Expire:
    """Renew ``key``'s time to live (nothing if it is gone)."""

    key: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``keys``."""

    keys: tuple[str, ...]


Op = Put | Expire | Delete


@dataclass(frozen=True, slots=True)
class Change:
    """One local change: the ``record`` the other processes apply (``None``: nothing to
    tell them) and the ``op`` that updates the shared truth (``None``: nothing to store)."""

    record: Record | None
    op: Op | None = None


class SharedState(Protocol):
    """Where the replicas of one server meet: a store, a fan-out channel and a lock.

    ``origin`` names this process; records it wrote never come back to it.
    """

    origin: str

    async def load(self) -> list[Record]:
        """Every live stored record (sessions, vehicles, pieces)."""
        ...

    async def write(self, changes: Sequence[Change]) -> None:
        """Apply the ops, then fan the records out to every other process, in order."""
        ...

    async def receive(self) -> list[Record]:
        """The next records other processes wrote (waits for them)."""
        ...

    async def lead(self, ttl: float) -> bool:
        """Take or renew the fleet lock for ``ttl`` seconds; whether this process holds it."""
        ...

    async def aclose(self) -> None:
        """Let go of the connections (the lock expires by itself)."""
        ...


class SharedFleet(Fleet):
    """A :class:`Fleet` that moves only while ``leading`` and reports its moves.

    A follower's :meth:`step` returns nothing; :meth:`follow` records what the leader
    reported, so a process that takes over continues each vehicle's ``seq``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leading = False
        self.on_moved: Callable[[list[VehicleUpdate]], None] | None = None

    def step(self, now: float, ids: Iterable[int] | None = None) -> list[VehicleUpdate]:
        if not self.leading:
            return []
        updates = super().step(now, ids)
        if updates and self.on_moved is not None:
            self.on_moved(updates)
        return updates

    def follow(self, update: VehicleUpdate) -> bool:
        """Take a vehicle update from elsewhere; ``False`` if it is not newer than ours."""
        vehicle = self.vehicles.get(update.vehicle_id)
        if vehicle is None or update.seq <= vehicle.seq:
            return False
        vehicle.seq = update.seq
        self._last[update.vehicle_id] = update
        return True


def shared_demo_fleet(vehicles: int = 10, *, seed: int = 1, rate: float = 1.0) -> SharedFleet:
    """:func:`~trackwire.conformance.demo_fleet` as a :class:`SharedFleet`."""
    return SharedFleet({"demo": vehicles, "other": max(1, vehicles // 2)}, seed=seed, rate=rate)


def _update_record(update: VehicleUpdate, wall_offset: float) -> Record:
    return {
        "k": "moved",
        "id": update.vehicle_id,
        "seq": update.seq,
        "wall": update.time + wall_offset,
        "lat": update.lat,
        "lng": update.lng,
        "speed": update.speed_kmh,
        "heading": update.heading,
        "alt": update.alt,
        "moving": update.moving,
        "odometer": update.odometer_m,
    }


class Replica:
    """Keeps one process's application in step with the others (pure: no I/O).

    Local changes queue as :class:`Change` items (:meth:`drain`; ``wake`` is called when the
    queue stops being empty); :meth:`apply` takes another process's record and returns the
    connections to flush.  The fleet must be a :class:`SharedFleet`.  ``wall_offset`` is
    ``time.time()`` minus the application's clock: records carry wall-clock times.
    """

    def __init__(
        self,
        app: App,
        *,
        wall_offset: float,
        itrack_session_ttl: float = DEFAULT_ITRACK_SESSION_TTL,
    ) -> None:
        if not isinstance(app.fleet, SharedFleet):
            raise TypeError("a shared application needs a SharedFleet (see shared_demo_fleet)")
        self.app = app
        self.fleet: SharedFleet = app.fleet
        self.wall_offset = wall_offset
        self.itrack_session_ttl = itrack_session_ttl
        self.platform = "itrack" if isinstance(app, ITrackReference) else "fleetfreedom"
        self.wake: Callable[[], None] | None = None
        self._out: list[Change] = []
        self._touched: dict[str, float] = {}
        if isinstance(app, ITrackReference):
            self.fleet.on_moved = self._moved
            app.directory.observer = _DirectoryHooks(self)
        else:
            # FleetFreedom's asset pushes carry each vehicle's seq: no separate record.
            app.hub.observer = _HubHooks(self)

    # -- local changes -------------------------------------------------------------------

    def _queue(self, change: Change) -> None:
        self._out.append(change)
        if len(self._out) == 1 and self.wake is not None:
            self.wake()

    def drain(self) -> list[Change]:
        """The changes queued since the last call, oldest first."""
        out, self._out = self._out, []
        return out

    def _moved(self, updates: list[VehicleUpdate]) -> None:
        for update in updates:
            record = _update_record(update, self.wall_offset)
            self._queue(Change(record, Put(f"vehicle:{update.vehicle_id}", record, update.seq)))

    def session_opened(
        self, session_id: str, login: str, timeout: float, expires_at: float | None = None
    ) -> None:
        if expires_at is not None:
            self._touched[session_id] = expires_at + self.wall_offset
        record = {"k": "session", "id": session_id, "login": login, "timeout": timeout}
        self._queue(Change(record, Put(f"session:{session_id}", record, ttl=timeout)))

    def session_touched(self, session_id: str, timeout: float, expires_at: float) -> None:
        wall = expires_at + self.wall_offset
        if wall - self._touched.get(session_id, -math.inf) < TOUCH_STEP:
            return
        self._touched[session_id] = wall
        record = {"k": "touched", "id": session_id, "expires": wall}
        self._queue(Change(record, Expire(f"session:{session_id}", timeout)))

    def session_ended(self, session_id: str, reason: str) -> None:
        self._touched.pop(session_id, None)
        record = {"k": "ended", "id": session_id, "reason": reason}
        self._queue(Change(record, Delete((f"session:{session_id}",))))

    def published(self, name: str, company: int, body: Mapping[str, Any]) -> None:
        record = {"k": "publish", "name": name, "company": company, "body": dict(body)}
        op: Op | None = None
        if name.endswith("Merged"):
            object_type, _ = piece_of(name[:-6])
            key = body.get(key_field(object_type))
            version = body.get("v")
            if key is not None and isinstance(version, list) and version:
                op = Put(f"piece:{name[:-6]}:{key}", record, int(version[0]))
        elif name.endswith("Deleted"):
            object_type = name[:-7]
            key = body.get(key_field(object_type))
            names = [piece for piece, (owner, _) in PIECE_SLOTS.items() if owner == object_type]
            op = Delete(tuple(f"piece:{n}:{key}" for n in names or [object_type]))
        self._queue(Change(record, op))

    # -- remote changes ------------------------------------------------------------------

    def load(self, records: Sequence[Record], now: float) -> None:
        """Apply the stored records (at start, or before taking the lead); sessions get their
        full idle timeout from ``now`` (the store already dropped the expired ones)."""
        order = {"session": 0, "moved": 1, "publish": 2}
        for record in sorted(records, key=lambda r: order.get(r.get("k", ""), 3)):
            self.apply(record, now)

    def apply(self, record: Record, now: float) -> list[Core]:
        """Apply another process's record; returns the connections that got pushes."""
        kind = record.get("k")
        if kind == "moved":
            return self._apply_moved(record, now)
        if isinstance(self.app, ITrackReference):
            return self._apply_itrack(self.app, kind, record, now)
        return self._apply_fleetfreedom(self.app, kind, record, now)

    def _apply_moved(self, record: Record, now: float) -> list[Core]:
        update = VehicleUpdate(
            vehicle_id=int(record["id"]),
            seq=int(record["seq"]),
            time=float(record["wall"]) - self.wall_offset,
            lat=float(record["lat"]),
            lng=float(record["lng"]),
            speed_kmh=float(record["speed"]),
            heading=int(record["heading"]),
            alt=int(record["alt"]),
            moving=bool(record["moving"]),
            odometer_m=float(record["odometer"]),
        )
        if not self.fleet.follow(update):
            return []
        app = self.app
        if not isinstance(app, ITrackReference):
            return []  # FleetFreedom's pushes come as their own records
        state = app.source_state(update)
        app.directory.set_state(update.vehicle_id, state)
        live = [conn for conn in app.connections if conn.state.name != "CLOSED"]
        for conn in live:
            conn.push_state(update.vehicle_id, state, now)
        return list(live)

    def _apply_itrack(
        self, app: ITrackReference, kind: object, record: Record, now: float
    ) -> list[Core]:
        sessions = app.directory.sessions
        if kind == "session" and record["login"] in app.directory.users:
            sessions[str(record["id"])] = str(record["login"])
        elif kind == "ended":
            session_hash = str(record["id"])
            sessions.pop(session_hash, None)
            # As the operator's logout does here: this process's subscribers on that hash
            # get ``logout``.
            live = [conn for conn in app.connections if conn.state.name != "CLOSED"]
            return [conn for conn in live if conn.push_logout(now, session_hash)]
        return []

    def _apply_fleetfreedom(
        self, app: FleetFreedomReference, kind: object, record: Record, now: float
    ) -> list[Core]:
        hub = app.hub
        observer, hub.observer = hub.observer, None  # not our change: do not share it back
        try:
            if kind == "session":
                account: Account | None = app.accounts.get(str(record["login"]))
                if account is not None:
                    timeout = float(record["timeout"])
                    hub.adopt_session(str(record["id"]), account, timeout, now + timeout)
            elif kind == "touched":
                session = hub.sessions.get(str(record["id"]))
                if session is not None:
                    expires = float(record["expires"]) - self.wall_offset
                    session.expires_at = max(session.expires_at, expires)
            elif kind == "ended":
                ghost_id = str(record["id"])
                self._touched.pop(ghost_id, None)
                session = hub.sessions.get(ghost_id)
                if record.get("reason") == "killed":
                    return list(hub.end_session(ghost_id, now))
                if record.get("reason") == "expired" and session and session.expires_at > now:
                    # Another process saw it expire on an older expiry than ours (renewals
                    # travel at most once a second): this process knows better, keep it.
                    return []
                hub.sessions.pop(ghost_id, None)
            elif kind == "publish":
                return self._apply_publish(app, record)
            return []
        finally:
            hub.observer = observer

    def _apply_publish(self, app: FleetFreedomReference, record: Record) -> list[Core]:
        hub = app.hub
        name = str(record["name"])
        body: dict[str, Any] = dict(record["body"])
        company = int(record["company"])
        if name.endswith("Merged"):
            object_type, slot = piece_of(name[:-6])
            key = body.get(key_field(object_type))
            version = body.get("v")
            if key is None or not (isinstance(version, list) and version):
                return []
            stored = hub.get(object_type, key)
            fields = {k: v for k, v in body.items() if k != "v"}
            if object_type == "asset" and isinstance(body.get("seq"), int):
                vehicle = self.fleet.vehicles.get(key) if isinstance(key, int) else None
                if vehicle is not None and body["seq"] > vehicle.seq:
                    vehicle.seq = body["seq"]
            if stored is None:
                slots = hub.store.slots(object_type)
                full = [0] * slots
                full[min(slot, slots - 1)] = int(version[0])
                hub.put(object_type, dict(fields, v=full))
            else:
                current = stored["v"]
                if slot >= len(current) or int(version[0]) <= current[slot]:
                    return []  # stale: this process already has it (or newer)
                stored.update(fields)
                current[slot] = int(version[0])
        elif name.endswith("Deleted"):
            object_type = name[:-7]
            hub.store.objects.pop((object_type, body.get(key_field(object_type))), None)
        return list[Core](hub.publish(name, company, body))


class _DirectoryHooks:
    __slots__ = ("replica",)

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def session_opened(self, session_hash: str, login: str) -> None:
        self.replica.session_opened(session_hash, login, self.replica.itrack_session_ttl)

    def session_ended(self, session_hash: str) -> None:
        self.replica.session_ended(session_hash, "logout")


class _HubHooks:
    __slots__ = ("replica",)

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def session_opened(
        self, ghost_id: str, account: Account, timeout: float, expires_at: float
    ) -> None:
        self.replica.session_opened(ghost_id, account.login, timeout, expires_at)

    def session_touched(self, ghost_id: str, expires_at: float) -> None:
        app = self.replica.app
        assert isinstance(app, FleetFreedomReference)
        session = app.hub.sessions.get(ghost_id)
        if session is not None:
            self.replica.session_touched(ghost_id, session.timeout, expires_at)

    def session_ended(self, ghost_id: str, reason: str) -> None:
        self.replica.session_ended(ghost_id, reason)

    def published(self, name: str, company: int, body: Mapping[str, Any]) -> None:
        self.replica.published(name, company, body)


# -- in memory ---------------------------------------------------------------------------------


@dataclass(slots=True)
class MemoryBackplane:
    """What :class:`InMemoryState` replicas in one process share (a trio program's)."""

    values: dict[str, tuple[int | None, float, Record]] = field(default_factory=dict)
    """key → (version, expiry on ``time.monotonic``, record)."""
    members: dict[str, trio.MemorySendChannel[list[Record]]] = field(default_factory=dict)
    leader: tuple[str, float] | None = None

    def live(self, key: str) -> tuple[int | None, float, Record] | None:
        entry = self.values.get(key)
        if entry is not None and entry[1] <= time.monotonic():
            del self.values[key]
            return None
        return entry


class InMemoryState:
    """A :class:`SharedState` in this process's memory: the replicas that share one
    :class:`MemoryBackplane` behave like server processes on one Redis."""

    def __init__(self, backplane: MemoryBackplane, origin: str | None = None) -> None:
        self.origin = origin or uuid.uuid4().hex
        self.backplane = backplane
        send, self._receive = trio.open_memory_channel[list[Record]](math.inf)
        backplane.members[self.origin] = send

    async def load(self) -> list[Record]:
        plane = self.backplane
        return [entry[2] for key in list(plane.values) if (entry := plane.live(key)) is not None]

    async def write(self, changes: Sequence[Change]) -> None:
        plane = self.backplane
        now = time.monotonic()
        for change in changes:
            op = change.op
            if isinstance(op, Put):
                entry = plane.live(op.key)
                held = None if entry is None else entry[0]
                if op.version is not None and held is not None and op.version <= held:
                    continue
                expiry = math.inf if op.ttl is None else now + op.ttl
                plane.values[op.key] = (op.version, expiry, op.record)
            elif isinstance(op, Expire):
                entry = plane.live(op.key)
                if entry is not None:
                    plane.values[op.key] = (entry[0], now + op.ttl, entry[2])
            elif isinstance(op, Delete):
                for key in op.keys:
                    plane.values.pop(key, None)
        records = [c.record for c in changes if c.record is not None]
        if records:
            for origin, channel in list(plane.members.items()):
                if origin != self.origin:
                    channel.send_nowait(records)

    async def receive(self) -> list[Record]:
        return await self._receive.receive()

    async def lead(self, ttl: float) -> bool:
        plane = self.backplane
        now = time.monotonic()
        if plane.leader is None or plane.leader[0] == self.origin or plane.leader[1] <= now:
            plane.leader = (self.origin, now + ttl)
        return plane.leader[0] == self.origin

    async def aclose(self) -> None:
        plane = self.backplane
        plane.members.pop(self.origin, None)
        if plane.leader is not None and plane.leader[0] == self.origin:
            plane.leader = None


# -- the driver side (trio) --------------------------------------------------------------------


class _Flusher(Protocol):
    def flush(self, cores: Any = None) -> None: ...


async def run_shared(
    replica: Replica,
    state: SharedState,
    server: _Flusher,
    *,
    lead_ttl: float = DEFAULT_LEAD_TTL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``replica``'s application on ``state`` until cancelled: load the stored records,
    then write local changes, apply remote ones (flushing ``server``'s connections), move the
    fleet while holding the lock, and tick the application (anonymous timeouts, expiry).

    Signals ``task_status`` once the stored records are loaded.
    """
    app = replica.app
    wake = trio.Event()

    def set_wake() -> None:
        wake.set()

    replica.wake = set_wake
    replica.load(await state.load(), trio.current_time())
    replica.drain()  # loading changes nothing worth sharing back

    async def writer() -> None:
        nonlocal wake
        while True:
            await wake.wait()
            wake = trio.Event()
            changes = replica.drain()
            if changes:
                await state.write(changes)

    async def reader() -> None:
        while True:
            records = await state.receive()
            now = trio.current_time()
            touched: dict[Core, None] = {}
            for record in records:
                touched.update(dict.fromkeys(replica.apply(record, now)))
            server.flush(list(touched))

    async def elector() -> None:
        while True:
            holds = await state.lead(lead_ttl)
            if holds and not replica.fleet.leading:
                # Continue from the shared truth: versions and seqs never go back.
                replica.load(await state.load(), trio.current_time())
                replica.drain()
            replica.fleet.leading = holds
            await trio.sleep(lead_ttl / 3)

    async def ticker() -> None:
        while True:
            deadline = app.next_deadline() if replica.fleet.leading else None
            now = trio.current_time()
            limit = now + 0.5
            await trio.sleep_until(min(limit, max(deadline, now)) if deadline else limit)
            server.flush(app.tick(trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        nursery.start_soon(reader)
        nursery.start_soon(elector)
        nursery.start_soon(ticker)
        task_status.started()
