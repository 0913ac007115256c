"""Reference servers for tests, and the operator hook the kit calls.

:class:`ReferenceServer` runs an iTrack or FleetFreedom reference server (with its simulated
fleet and both demo tenants) on a free loopback port in a thread of its own, and lets a test
script it: report a position, block a tracker, end or expire sessions, restart losing every
session.  Every method is synchronous and thread-safe, so it suits any test, trio or not --
the way ``pytest-httpserver`` serves HTTP users.

:class:`Operator` is what the conformance kit asks of a subject's operator, for the cases
that need a change on the server side (a tracker blocked, a session ended by someone else).
Pass one as ``run_server_cases(..., operator=...)``; :meth:`ReferenceServer.operator` is the
reference implementation, and :func:`operator_for` wraps an app served in the same trio run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import trio

from trackwire.drivers.trio import Server, serve

from ._fleet import Fleet
from ._reference import (
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    DemoAccount,
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)

__all__ = ["Operator", "ReferenceServer", "operator_for"]

Platform = Literal["itrack", "fleetfreedom"]
App = ITrackReference | FleetFreedomReference
T = TypeVar("T")


@runtime_checkable
class Operator(Protocol):
    """The subject's operator, as the kit needs it.  Each method acts at once on the live
    server; one a server cannot do raises :class:`NotImplementedError` (its cases are then
    UNSUPPORTED, saying so)."""

    async def block(self, tracker_id: int) -> None:
        """Block a tracker (iTrack: its subscribers get ``lifecycle`` ``block``)."""

    async def unblock(self, tracker_id: int) -> None:
        """Unblock it (iTrack: ``lifecycle`` ``unblock``, then its current state)."""

    async def end_sessions(self, login: str) -> None:
        """End every session of ``login`` (iTrack ``logout`` event; FleetFreedom
        ``sessionEnded``)."""


def _apply(app: App, server: Server[Any] | None, action: str, argument: Any) -> None:
    """Run one operator action on ``app`` and flush what it queued (inside its trio run)."""
    now = trio.current_time()
    touched: Iterable[object]
    if action == "block" and isinstance(app, ITrackReference):
        touched = app.block(argument, now)
    elif action == "unblock" and isinstance(app, ITrackReference):
        touched = app.unblock(argument, now)
    elif action == "end_sessions" and isinstance(app, ITrackReference):
        touched = app.logout(argument, now)
    elif action == "end_sessions" and isinstance(app, FleetFreedomReference):
        touched = app.end_sessions(argument)
    else:
        raise NotImplementedError(f"the reference {type(app).__name__} cannot {action}")
    if server is not None:
        server.flush(touched)


class _SameRunOperator:
    """An :class:`Operator` for an app served in the kit's own trio run."""

    def __init__(self, app: App, server: Server[Any] | None) -> None:
        self.app = app
        self.server = server

    async def block(self, tracker_id: int) -> None:
        _apply(self.app, self.server, "block", tracker_id)

    async def unblock(self, tracker_id: int) -> None:
        _apply(self.app, self.server, "unblock", tracker_id)

    async def end_sessions(self, login: str) -> None:
        _apply(self.app, self.server, "end_sessions", login)


def operator_for(app: App, server: Server[Any] | None = None) -> Operator:
    """The reference :class:`Operator` of ``app`` served by ``server`` in the same trio run
    as the kit (``server`` is flushed after each action)."""
    return _SameRunOperator(app, server)


class _ThreadOperator:
    """An :class:`Operator` that reaches a :class:`ReferenceServer` in its own thread."""

    def __init__(self, reference: ReferenceServer) -> None:
        self.reference = reference

    async def block(self, tracker_id: int) -> None:
        await trio.to_thread.run_sync(self.reference.block, tracker_id)

    async def unblock(self, tracker_id: int) -> None:
        await trio.to_thread.run_sync(self.reference.unblock, tracker_id)

    async def end_sessions(self, login: str) -> None:
        await trio.to_thread.run_sync(self.reference.end_sessions, login)


class ReferenceServer:
    """A reference server on ``127.0.0.1`` and a free port, in a thread, scriptable.

    ``with ReferenceServer("itrack") as server:`` starts it and stops it (or call
    :meth:`start` and :meth:`stop`).  ``vehicles``, ``rate`` and ``seed`` shape the demo
    fleet; ``moving=False`` keeps it still, so only :meth:`push_position` moves anything.
    """

    def __init__(
        self,
        platform: Platform,
        *,
        vehicles: int = 4,
        rate: float = 1.0,
        seed: int = 1,
        moving: bool = True,
        heartbeat_ms: int = 30000,
    ) -> None:
        if platform not in ("itrack", "fleetfreedom"):
            raise ValueError(f"unknown platform {platform!r}; expected itrack or fleetfreedom")
        self.platform: Platform = platform
        self.moving = moving
        self._shape: dict[str, float] = {"vehicles": vehicles, "rate": rate, "seed": seed}
        self._heartbeat_ms = heartbeat_ms
        self._wall: float | None = None
        self.app: App = self._new_app()
        """The served application (made anew by :meth:`start` and :meth:`restart`)."""
        self._server: Server[Any] | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.port = 0
        self.restarts = 0

    def _new_app(self, fleet: Fleet | None = None) -> App:
        if fleet is None:
            fleet = demo_fleet(
                int(self._shape["vehicles"]),
                rate=float(self._shape["rate"]),
                seed=int(self._shape["seed"]),
            )
        if self.platform == "itrack":
            return ITrackReference(
                fleet, heartbeat_interval_ms=self._heartbeat_ms, wall_offset=self._wall
            )
        return FleetFreedomReference(fleet, wall_offset=self._wall)

    # -- addresses and accounts ------------------------------------------------------------

    @property
    def url(self) -> str:
        """What a client is pointed at: the iTrack API base URL (``…/v2/``) or the
        FleetFreedom WebSocket URL."""
        if self.platform == "itrack":
            return f"http://127.0.0.1:{self.port}/v2/"
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def accounts(self) -> Sequence[DemoAccount]:
        """The two demo tenants (``demo`` first, then ``other``)."""
        return DEMO_ITRACK if self.platform == "itrack" else DEMO_FLEETFREEDOM

    def trackers(self, tenant: str = "demo") -> list[int]:
        """The tracker (iTrack) or asset (FleetFreedom) ids of a tenant's vehicles."""
        return [v.id for v in self.app.fleet.of_tenant(tenant)]

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> ReferenceServer:
        """Start serving (returns once the port is bound)."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        self._thread = threading.Thread(
            target=self._thread_main, name=f"trackwire-{self.platform}-reference", daemon=True
        )
        self._thread.start()
        self._started.wait(30)
        if self._failure is not None:
            raise RuntimeError(f"the reference server did not start: {self._failure}")
        if self._token is None:
            raise RuntimeError("the reference server did not start within 30 s")
        return self

    def stop(self) -> None:
        """Stop serving (every connection is dropped) and wait for the thread to end."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        scope = self._scope
        if scope is not None and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(scope.cancel)
        thread.join(30)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by start()
            self._failure = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        # The fleet runs on trio's clock (which starts anywhere): timestamps need its offset.
        self._wall = time.time() - trio.current_time()
        self.app = self._new_app()

        def factory(request: Any) -> Any:
            return self.app.factory(request)

        def http(method: str, target: str, headers: Any, body: bytes) -> Any:
            app = self.app
            return (
                app.http_handler(method, target, headers, body)
                if isinstance(app, ITrackReference)
                else None
            )

        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                server: Server[Any] = await nursery.start(
                    lambda task_status: serve(
                        factory, "127.0.0.1", 0, http_handler=http, task_status=task_status
                    )
                )
                self._server = server
                self.port = server.port
                nursery.start_soon(self._tick)
                self._token = trio.lowlevel.current_trio_token()
                self._started.set()

    async def _tick(self) -> None:
        while True:
            app = self.app
            deadline = app.next_deadline() if self.moving else None
            await trio.sleep_until(trio.current_time() + 0.05 if deadline is None else deadline)
            if self.moving:
                self._flush(app.tick(trio.current_time()))

    def _flush(self, cores: Iterable[object] | None = None) -> None:
        server = self._server
        if server is not None:
            server.flush(cores)

    def _call(self, function: Callable[[], T]) -> T:
        """Run ``function`` in the server's trio run and return its result; callable from
        any thread, including one running trio itself (the call then blocks it briefly)."""
        token = self._token
        if token is None or self._thread is None:
            raise RuntimeError("the server is not running: call start() first")
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            return trio.from_thread.run_sync(function, trio_token=token)
        box: list[Any] = []

        def hop() -> None:
            try:
                box.append((True, trio.from_thread.run_sync(function, trio_token=token)))
            except BaseException as exc:
                box.append((False, exc))

        helper = threading.Thread(target=hop, daemon=True)
        helper.start()
        helper.join(30)
        if not box:
            raise RuntimeError("the reference server did not answer within 30 s")
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    # -- what a test scripts -----------------------------------------------------------------

    def push_position(
        self,
        vehicle_id: int,
        lat: float,
        lng: float,
        *,
        speed_kmh: float = 0.0,
        heading: int = 0,
    ) -> None:
        """Report a position of one vehicle now: its subscribers get it (iTrack ``state`` or
        the next ``state_batch``; FleetFreedom ``assetAdvancedMerged``)."""

        def act() -> None:
            app = self.app
            vehicle = app.fleet.vehicles[vehicle_id]
            now = trio.current_time()
            vehicle.seq += 1
            base = app.fleet.position(vehicle_id, now)
            update = replace(
                base, seq=vehicle.seq, lat=lat, lng=lng, speed_kmh=speed_kmh, heading=heading,
                moving=speed_kmh > 0.5,
            )  # fmt: skip
            self._flush(app.apply(update, now))

        self._call(act)

    def block(self, tracker_id: int) -> None:
        """iTrack: block a tracker (``lifecycle`` ``block``; no more states)."""
        self._call(lambda: _apply(self.app, self._server, "block", tracker_id))

    def unblock(self, tracker_id: int) -> None:
        """iTrack: unblock it (``lifecycle`` ``unblock``, then its current state)."""
        self._call(lambda: _apply(self.app, self._server, "unblock", tracker_id))

    def end_sessions(self, login: str) -> None:
        """End every session of ``login`` (iTrack ``logout`` event and dead hashes;
        FleetFreedom ``sessionEnded`` and dead ghostIds)."""
        self._call(lambda: _apply(self.app, self._server, "end_sessions", login))

    def expire_sessions(self) -> None:
        """Every session expires now, silently: iTrack hashes stop working (actions get
        error 4), FleetFreedom ghostIds stop resuming and commands get ``sessionExpired``."""

        def act() -> None:
            app = self.app
            if isinstance(app, ITrackReference):
                for account in DEMO_ITRACK:
                    app.directory.logout_user(account.login)
            else:
                app.expire_sessions(trio.current_time())

        self._call(act)

    def restart(self) -> None:
        """Restart as a crashed server would: every connection dropped, every session lost
        (hashes, ghostIds, subscriptions), the fleet where it was; the port stays."""

        def act() -> None:
            self.app = self._new_app(self.app.fleet)
            server = self._server
            if server is not None:
                for conn in list(server.connections):
                    conn.abort("the server restarted")
            self.restarts += 1

        self._call(act)

    def operator(self) -> Operator:
        """The reference :class:`Operator` for the kit (``run_server_cases(operator=…)``)."""
        return _ThreadOperator(self)
