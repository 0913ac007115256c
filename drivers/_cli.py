"""The ``trackwire`` command line: serve a reference server, or watch a live fleet.

``trackwire watch itrack`` and ``trackwire watch fleetfreedom`` connect to a real deployment
with ``--url``, or, without it, to an embedded reference server with a simulated fleet on a
free loopback port, so that they work offline.  On a terminal the fleet is a live table;
elsewhere every update is one plain line (or one JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

import trio

from trackwire import Event
from trackwire.atmosphere import AtmosphereClient, Heartbeat, InactivityTimeout
from trackwire.conformance import (
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)
from trackwire.fleetfreedom import (
    Command,
    CommandFailed,
    ConnectionResponse,
    Deleted,
    FleetFreedomClient,
    InvalidMessage,
    Merged,
    ObjectCache,
    Response,
    SessionEnded,
)
from trackwire.itrack import (
    ErrorMessage,
    ITrackClient,
    LogoutEvent,
    SourceState,
    StateBatchEvent,
    StateBatchRequest,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    Target,
    subscription_url,
)
from trackwire.ws import (
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    HttpHandler,
    Rejected,
    UpgradeRequest,
)

from .trio import GaveUp, ReconnectFailed, Reconnecting, Server, connect, itrack_login, serve

__all__ = ["main"]


# -- the fleet as the watcher sees it ---------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One vehicle's latest known position."""

    id: str
    name: str = ""
    lat: float | None = None
    lng: float | None = None
    speed: float | None = None
    heading: float | None = None
    status: str = ""
    seen: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "lat": self.lat,
            "lng": self.lng,
            "speed": self.speed,
            "heading": self.heading,
            "status": self.status,
        }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class View:
    """Keeps the rows and prints them: a live table on a terminal, lines elsewhere."""

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        as_json: bool,
        clock: Callable[[], float],
        max_updates: int | None = None,
    ):
        self.out = out
        self.max_updates = max_updates
        self.live = live
        self.as_json = as_json
        self.clock = clock
        self.rows: dict[str, Row] = {}
        self.status = "connecting"
        self.updates = 0
        self._rate_window: list[float] = []
        self._drawn_at = 0.0

    def update(self, row: Row) -> None:
        if self.max_updates is not None and self.updates >= self.max_updates:
            return  # --count reached inside a batch: the rest is not shown
        now = self.clock()
        row.seen = now
        known = self.rows.get(row.id)
        if known is not None and not row.name:
            row.name = known.name
        self.rows[row.id] = row
        self.updates += 1
        self._rate_window.append(now)
        if self.as_json:
            print(json.dumps(row.as_json()), file=self.out, flush=True)
        elif not self.live:
            print(
                f"{row.id:>8} {row.name[:24]:<24} {_fmt(row.lat, '.6f'):>11} "
                f"{_fmt(row.lng, '.6f'):>12} {_fmt(row.speed, '.1f'):>6} km/h "
                f"{_fmt(row.heading, '.0f'):>4}° {row.status}",
                file=self.out,
                flush=True,
            )

    def say(self, status: str) -> None:
        """A change of connection status (shown in the status line, or as its own line)."""
        self.status = status
        if not self.live:
            stream = sys.stderr if self.as_json else self.out
            print(f"# {status}", file=stream, flush=True)

    def rate(self) -> float:
        now = self.clock()
        self._rate_window = [t for t in self._rate_window if now - t <= 5.0]
        return len(self._rate_window) / 5.0

    def draw(self, force: bool = False) -> None:
        """Redraw the live table (at most a few times a second)."""
        if not self.live:
            return
        now = self.clock()
        if not force and now - self._drawn_at < 0.25:
            return
        self._drawn_at = now
        lines = [
            f"{'id':>8}  {'name':<24} {'lat':>11} {'lng':>12} {'km/h':>6} {'hdg':>4}  "
            f"{'status':<8} {'age':>5}"
        ]
        for row in sorted(self.rows.values(), key=lambda r: r.id.zfill(12)):
            lines.append(
                f"{row.id:>8}  {row.name[:24]:<24} {_fmt(row.lat, '.6f'):>11} "
                f"{_fmt(row.lng, '.6f'):>12} {_fmt(row.speed, '.1f'):>6} "
                f"{_fmt(row.heading, '.0f'):>4}  {row.status[:8]:<8} {now - row.seen:>4.0f}s"
            )
        lines.append("")
        lines.append(
            f"[{self.status}] {len(self.rows)} vehicles, {self.updates} updates, "
            f"{self.rate():.1f} events/s  (Ctrl-C to quit)"
        )
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()


def _row_of_state(state: SourceState) -> Row:
    gps = state.gps
    location = None if gps is None else gps.location
    return Row(
        id=str(state.source_id),
        lat=None if location is None else location.lat,
        lng=None if location is None else location.lng,
        speed=None if gps is None else gps.speed,
        heading=None if gps is None else gps.heading,
        status=state.movement_status or state.connection_status or "",
    )


def _row_of_asset(asset: dict[str, Any]) -> Row:
    position = asset.get("position") if isinstance(asset.get("position"), dict) else {}
    assert isinstance(position, dict)
    speed = position.get("speed")
    return Row(
        id=str(asset.get("id")),
        name=str(asset.get("name") or ""),
        lat=position.get("lat"),
        lng=position.get("lng"),
        speed=speed,
        heading=position.get("bearing"),
        status="moving" if isinstance(speed, (int, float)) and speed > 0.5 else "parked",
    )


# -- common driving -------------------------------------------------------------------------


@dataclass(slots=True)
class Limits:
    """When a watch stops by itself: after ``count`` updates or ``duration`` seconds."""

    count: int | None = None
    duration: float | None = None
    started: float = field(default_factory=time.monotonic)

    def reached(self, view: View) -> bool:
        return self.count is not None and view.updates >= self.count


def _transport_status(event: Event, view: View) -> bool:
    """Report connection events; returns False when the session is over."""
    if isinstance(event, Connected):
        view.say("connected")
    elif isinstance(event, Reconnecting):
        view.say(f"reconnecting (attempt {event.attempt}, in {event.delay:.1f}s)")
    elif isinstance(event, ReconnectFailed):
        view.say(f"connection failed: {event.error}")
    elif isinstance(event, (HandshakeFailed, Rejected)):
        view.say(f"handshake failed: {event}")
    elif isinstance(event, ConnectionClosed):
        view.say(f"disconnected ({event.code} {event.reason})".rstrip())
    elif isinstance(event, GaveUp):
        view.say(f"stopped: {event.reason}")
        return False
    return True


async def _start_reference(
    nursery: trio.Nursery, platform: str, host: str, args: argparse.Namespace
) -> Server[Any]:
    """Serve a reference server with a simulated fleet, and move its fleet, in ``nursery``."""
    fleet = demo_fleet(args.vehicles, seed=args.seed, rate=args.rate)
    app: ITrackReference | FleetFreedomReference
    factory: Callable[[UpgradeRequest], Any]
    handler: HttpHandler | None
    # The fleet runs on trio's clock (which starts anywhere): timestamps need its offset.
    wall = time.time() - trio.current_time()
    if platform == "itrack":
        itrack = ITrackReference(fleet, heartbeat_interval_ms=args.heartbeat_ms, wall_offset=wall)
        app, factory, handler = itrack, itrack.factory, itrack.http_handler
    else:
        fleetfreedom = FleetFreedomReference(fleet, wall_offset=wall)
        app, factory, handler = fleetfreedom, fleetfreedom.factory, None
    server: Server[Any] = await nursery.start(
        functools.partial(serve, cast("Any", factory), host, args.port, http_handler=handler)
    )
    nursery.start_soon(_tick_forever, app, server)
    return server


async def _embedded(nursery: trio.Nursery, platform: str, args: argparse.Namespace) -> str:
    """Start a reference server on a free loopback port; returns the URL to watch."""
    server = await _start_reference(nursery, platform, "127.0.0.1", args)
    if platform == "itrack":
        return f"http://127.0.0.1:{server.port}/v2/"
    return f"ws://127.0.0.1:{server.port}/"


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


# -- trackwire serve ------------------------------------------------------------------------


async def _serve(args: argparse.Namespace, out: TextIO) -> int:
    async with trio.open_nursery() as nursery:
        server = await _start_reference(nursery, args.platform, args.host, args)
        where = f"{args.host}:{server.port}"
        if args.platform == "itrack":
            demo = DEMO_ITRACK[0]
            line = (
                f"iTrack reference server on http://{where}/v2/ (WebSocket "
                f"ws://{where}/v2/event/subscription); login {demo.login} / password "
                f"{demo.password}"
            )
        else:
            demo = DEMO_FLEETFREEDOM[0]
            line = (
                f"FleetFreedom reference server on ws://{where}/; user {demo.login} / "
                f"password {demo.password}, company {demo.company}"
            )
        print(line, file=out, flush=True)
        if args.duration is not None:
            await trio.sleep(args.duration)
            nursery.cancel_scope.cancel()
    return 0


# -- trackwire watch itrack -----------------------------------------------------------------


async def _watch_itrack(args: argparse.Namespace, view: View, limits: Limits) -> int:
    async with trio.open_nursery() as nursery:
        base = args.url
        if base is None:
            base = await _embedded(nursery, "itrack", args)
            view.say(f"embedded iTrack server at {base} (login demo / demo)")
        session_hash = args.hash
        if session_hash is None:
            session_hash = await itrack_login(base, args.login or "demo", args.password or "demo")
        transport = AtmosphereClient(
            subscription_url(base),
            content_type="application/json",
            track_message_length=args.track_message_length,
        )
        client = ITrackClient(subscription_url(base), session_hash, transport=transport)
        if args.trackers == "all" or args.batch:
            target = (
                Target.all()
                if args.trackers == "all"
                else Target.selected([int(t) for t in args.trackers.split(",")])
            )
            client.send(Subscribe([StateBatchRequest(target, "1s")]))
        else:
            client.send(Subscribe([StateRequest([int(t) for t in args.trackers.split(",")])]))
        code = await _run_client(client, view, limits, _itrack_event)
        nursery.cancel_scope.cancel()
    return code


def _itrack_event(event: Event, view: View) -> bool:
    if isinstance(event, StateEvent):
        view.update(_row_of_state(event.state))
    elif isinstance(event, StateBatchEvent):
        for state in event.states:
            view.update(_row_of_state(state))
    elif isinstance(event, SubscribeResponse):
        counts: dict[str, int] = {}
        for result in event.results.values():
            for status in result.trackers.values():
                counts[status] = counts.get(status, 0) + 1
        view.say("subscribed " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "(all)"))
    elif isinstance(event, ErrorMessage):
        view.say(f"error {event.code}: {event.description}")
    elif isinstance(event, LogoutEvent):
        view.say("logged out by the server")
    elif isinstance(event, InactivityTimeout):
        view.say("server silent: inactivity timeout")
    elif isinstance(event, Heartbeat):
        pass
    else:
        return _transport_status(event, view)
    return True


# -- trackwire watch fleetfreedom -----------------------------------------------------------


async def _watch_fleetfreedom(args: argparse.Namespace, view: View, limits: Limits) -> int:
    async with trio.open_nursery() as nursery:
        url = args.url
        if url is None:
            url = await _embedded(nursery, "fleetfreedom", args)
            view.say(f"embedded FleetFreedom server at {url} (demo@example.com / demo)")
        client = FleetFreedomClient(url, ghost_id=args.ghost_id)
        cache = ObjectCache()
        if args.ghost_id is None:
            client.send(
                Command.login(
                    args.username or "demo@example.com", args.password or "demo", "trackwire-cli"
                )
            )
        types = [t for t in args.types.split(",") if t]
        client.send(Command.subscribe(args.company, types))
        client.send(Command.get_list("asset", args.company))

        def on_event(event: Event, view: View) -> bool:
            return _fleetfreedom_event(event, view, cache, args.company)

        code = await _run_client(client, view, limits, on_event)
        nursery.cancel_scope.cancel()
    return code


def _fleetfreedom_event(event: Event, view: View, cache: ObjectCache, company: int) -> bool:
    if isinstance(event, (Merged, Deleted, Response)):
        cache.apply(event)
    if isinstance(event, Merged) and event.body.get("id") is not None:
        asset = cache.get("asset", event.body["id"])
        if asset is not None and asset.get("company") == company:
            view.update(_row_of_asset(asset))
    elif isinstance(event, Deleted):
        view.rows.pop(str(event.body.get("id")), None)
    elif isinstance(event, ConnectionResponse):
        view.say(f"session: {event.message or event.error_code}")
    elif isinstance(event, Response):
        if not event.ok:
            view.say(f"{event.request.name if event.request else 'command'} refused: "
                     f"{event.error_code} {event.message or ''}".rstrip())  # fmt: skip
        for asset in cache.company_objects("asset", company):
            if str(asset.get("id")) not in view.rows:
                view.rows[str(asset.get("id"))] = _row_of_asset(asset)
    elif isinstance(event, CommandFailed):
        view.say(f"command {event.req_id} failed: {event.reason.value}")
    elif isinstance(event, SessionEnded):
        view.say("the server ended the session")
    elif isinstance(event, InvalidMessage):
        view.say(f"unreadable message: {event.reason}")
    else:
        return _transport_status(event, view)
    return True


# -- the shared watch loop ------------------------------------------------------------------


async def _run_client(
    core: Any, view: View, limits: Limits, on_event: Callable[[Event, View], bool]
) -> int:
    deadline = math.inf if limits.duration is None else trio.current_time() + limits.duration
    code = 0
    with trio.move_on_at(deadline):
        async with connect(core) as conn:
            redraw = trio.current_time()
            async for event in conn:
                if not on_event(event, view):
                    code = 1 if view.updates == 0 else 0
                    break
                if limits.reached(view):
                    break
                if trio.current_time() >= redraw:
                    view.draw()
                    redraw = trio.current_time() + 0.25
    view.draw(force=True)
    return code


# -- argument parsing -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackwire",
        description="Watch a live GPS fleet over the iTrack or FleetFreedom real-time APIs, "
        "or serve a reference server with a simulated fleet.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def fleet_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--vehicles", type=int, default=10, help="simulated vehicles (default 10)")
        p.add_argument("--rate", type=float, default=1.0, help="updates per second per vehicle")
        p.add_argument("--seed", type=int, default=1, help="the simulation's seed")
        p.add_argument("--heartbeat-ms", type=int, default=30000, help="iTrack client heartbeat")
        p.add_argument("--port", type=int, default=0, help="port (default: a free one)")

    srv = commands.add_parser("serve", help="run a reference server with a simulated fleet")
    srv.add_argument("platform", choices=("itrack", "fleetfreedom"))
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--duration", type=float, help="stop after this many seconds")
    fleet_options(srv)

    watch = commands.add_parser("watch", help="watch a live fleet")
    platforms = watch.add_subparsers(dest="platform", required=True)

    def watch_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="one JSON object per update")
        p.add_argument("--count", type=int, help="stop after this many updates")
        p.add_argument("--duration", type=float, help="stop after this many seconds")
        fleet_options(p)

    itrack = platforms.add_parser("itrack", help="iTrack / Navixy (Atmosphere)")
    itrack.add_argument("--url", help="API base URL, e.g. https://api.itrack.live/v2/")
    itrack.add_argument("--login")
    itrack.add_argument("--password")
    itrack.add_argument("--hash", help="a session or API-key hash instead of a login")
    itrack.add_argument("--trackers", default="all", help="all, or tracker ids: 1,2,3")
    itrack.add_argument("--batch", action="store_true", help="state_batch instead of state")
    itrack.add_argument("--track-message-length", action="store_true")
    watch_options(itrack)

    ff = platforms.add_parser("fleetfreedom", help="FleetFreedom / Trak-iT")
    ff.add_argument("--url", help="WebSocket URL, e.g. wss://socket.trakit.ca/")
    ff.add_argument("--username")
    ff.add_argument("--password")
    ff.add_argument("--ghost-id", help="resume this session instead of logging in")
    ff.add_argument("--company", type=int, default=1)
    ff.add_argument("--types", default="assetGeneral,assetAdvanced")
    watch_options(ff)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``trackwire`` console script."""
    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        if args.command == "serve":
            return trio.run(_serve, args, stream)
        live = stream.isatty() and not args.json
        view = View(
            stream, live=live, as_json=args.json, clock=time.monotonic, max_updates=args.count
        )
        limits = Limits(count=args.count, duration=args.duration)
        runner = _watch_itrack if args.platform == "itrack" else _watch_fleetfreedom
        return trio.run(runner, args, view, limits)
    except KeyboardInterrupt:
        return 130
