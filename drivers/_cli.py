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
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, cast

import trio

from trackwire import Event, ReconnectPolicy, SessionFinished, SessionForgotten, SessionRestored
from trackwire.atmosphere import AtmosphereClient, InactivityTimeout
from trackwire.conformance import (
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)
from trackwire.conformance import add_subcommands as add_conformance
from trackwire.conformance import run_cli as run_conformance
from trackwire.fleetfreedom import (
    Broadcast,
    Command,
    CommandFailed,
    ConnectionResponse,
    Deleted,
    FleetFreedomClient,
    Merged,
    MessageEvent,
    ObjectCache,
    SessionEnded,
    SubscriptionRefused,
)
from trackwire.fleetfreedom import InvalidMessage as FFInvalid
from trackwire.fleetfreedom import Response as FFResponse
from trackwire.itrack import (
    AuthError,
    ErrorMessage,
    IotMonitorEvent,
    ITrackClient,
    LifecycleEvent,
    LoginRefused,
    LogoutEvent,
    ReadingsBatchEvent,
    SourceState,
    StateBatchEvent,
    StateBatchRequest,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    Target,
    TrackersRefused,
    UnsubscribeResponse,
    build_auth_request,
    check_hash,
    subscription_url,
)
from trackwire.itrack import InvalidMessage as ITrackInvalid
from trackwire.itrack import UnknownMessage as ITrackUnknown
from trackwire.ws import (
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    HttpHandler,
    Rejected,
    UpgradeRequest,
)

from .trio import (
    GaveUp,
    ReconnectFailed,
    Reconnecting,
    Server,
    Stalled,
    connect,
    itrack_login,
    serve,
)

__all__ = ["main"]


# -- what the watcher prints ------------------------------------------------------------------

Record = dict[str, Any]
"""One application event as ``--json`` prints it: ``kind`` plus its fields and ``message``."""


class Fatal(Exception):
    """The watch cannot go on (no connection, login refused): one line on stderr, exit 1."""


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


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class View:
    """Prints the watch: JSON records, plain lines, or a live table on a terminal.

    Status changes (connected, reconnecting, …) go to the status line of the live table, and
    to stderr otherwise, so that stdout holds only data.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        as_json: bool,
        clock: Callable[[], float],
        max_events: int | None = None,
        err: TextIO | None = None,
    ):
        self.out = out
        self.err = err or sys.stderr
        self.live = live
        self.as_json = as_json
        self.clock = clock
        self.max_events = max_events
        self.rows: dict[str, Row] = {}
        self.status = "connecting"
        self.events = 0
        self._rate_window: list[float] = []
        self._drawn_at = 0.0

    @property
    def done(self) -> bool:
        """``--count`` application events have been shown."""
        return self.max_events is not None and self.events >= self.max_events

    def record(self, record: Record, rows: Sequence[Row] = ()) -> None:
        """One application event: print it (or its rows) and update the table."""
        if self.done:
            return
        self.events += 1
        now = self.clock()
        self._rate_window.append(now)
        for row in rows:
            row.seen = now
            known = self.rows.get(row.id)
            if known is not None and not row.name:
                row.name = known.name
            self.rows[row.id] = row
        if self.as_json:
            print(json.dumps(record, ensure_ascii=False), file=self.out, flush=True)
        elif not self.live:
            for row in rows:
                print(
                    f"{row.id:>8} {row.name[:24]:<24} {_fmt(row.lat, '.6f'):>11} "
                    f"{_fmt(row.lng, '.6f'):>12} {_fmt(row.speed, '.1f'):>6} km/h "
                    f"{_fmt(row.heading, '.0f'):>4}° {row.status}",
                    file=self.out,
                    flush=True,
                )
            if not rows:
                print(f"# {record['kind']}", file=self.out, flush=True)

    def say(self, status: str) -> None:
        """A change of connection status."""
        self.status = status
        if not self.live:
            print(f"# {status}", file=self.err, flush=True)

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
            f"[{self.status}] {len(self.rows)} vehicles, {self.events} events, "
            f"{self.rate():.1f} events/s  (Ctrl-C to quit)"
        )
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()


def _state_fields(state: SourceState) -> Record:
    gps = state.gps
    location = None if gps is None else gps.location
    return {
        "source_id": state.source_id,
        "lat": None if location is None else location.lat,
        "lng": None if location is None else location.lng,
        "speed": None if gps is None else gps.speed,
        "heading": None if gps is None else gps.heading,
    }


def _row_of_state(state: SourceState) -> Row:
    fields = _state_fields(state)
    return Row(
        id=str(state.source_id),
        lat=fields["lat"],
        lng=fields["lng"],
        speed=fields["speed"],
        heading=fields["heading"],
        status=state.movement_status or state.connection_status or "",
    )


def _row_of_asset(asset: dict[str, Any]) -> Row:
    position = asset.get("position")
    if not isinstance(position, dict):
        position = {}
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


_SECRET_FIELDS = frozenset({"ghostId", "password", "hash"})


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    """A message for printing: session secrets (ghostId, password, hash) masked."""
    return {k: ("…" if k in _SECRET_FIELDS and v else v) for k, v in body.items()}


# -- common driving -------------------------------------------------------------------------


@dataclass(slots=True)
class Limits:
    """When a watch stops by itself: after ``duration`` seconds (``--count``: the view)."""

    count: int | None = None
    duration: float | None = None


class Watch:
    """Connection bookkeeping shared by both platforms: status lines and fatal failures."""

    def __init__(self, view: View, url: str, wanted: set[object] | None = None) -> None:
        self.view = view
        self.url = url
        self.connected = False
        self.wanted = wanted
        """What was asked for (FleetFreedom types, iTrack tracker ids; ``None``: unknown);
        when refusals leave nothing of it, the watch ends with exit 1."""

    def transport(self, event: Event) -> None:
        """Report a connection event; raises :class:`Fatal` when watching cannot go on."""
        view = self.view
        if self.session(event):
            return
        if isinstance(event, Connected):
            self.connected = True
            view.say("connected")
        elif isinstance(event, Reconnecting):
            view.say(f"reconnecting (attempt {event.attempt}, in {event.delay:.1f}s)")
        elif isinstance(event, ReconnectFailed):
            if not self.connected:
                raise Fatal(f"cannot connect to {self.url}: {event.error}")
            view.say(f"connection failed: {event.error}")
        elif isinstance(event, (HandshakeFailed, Rejected)):
            view.say(f"handshake failed: {event}")
        elif isinstance(event, ConnectionClosed):
            view.say(f"disconnected ({event.code} {event.reason})".rstrip())
        elif isinstance(event, InactivityTimeout):
            view.say("the server went silent: inactivity timeout")
        elif isinstance(event, GaveUp):
            raise Fatal(f"stopped: {event.reason}")

    def session(self, event: Event) -> bool:
        """Session notices and refusals: one line on stderr (and a record with ``--json``);
        :class:`Fatal` when the session ended or nothing asked for can be delivered."""
        refused: Sequence[object] = ()
        if isinstance(event, SessionFinished):
            detail = f": {event.detail}" if event.detail else ""
            raise Fatal(f"session ended ({event.reason.value}){detail}")
        if isinstance(event, SessionForgotten):
            how = "logging in again" if event.relogin else "no credentials to log in again"
            line = f"the server forgot the session (error {event.error_code}); {how}"
            record: Record = {"kind": "session_forgotten", "error_code": event.error_code}
        elif isinstance(event, SessionRestored):
            line = f"logged in again; {event.resubscribed} subscription(s) renewed"
            record = {"kind": "session_restored", "resubscribed": event.resubscribed}
        elif isinstance(event, Stalled):
            line = f"stalled: no data for {event.idle:.0f}s"
            record = {"kind": "stalled", "idle": round(event.idle, 3)}
        elif isinstance(event, SubscriptionRefused):
            line = f"company {event.company}: {', '.join(event.types)} {event.reason}" + (
                f" (errorCode {event.error_code})" if event.error_code else ""
            )
            record = {"kind": "subscription_refused", "company": event.company,
                      "types": event.types, "reason": event.reason,
                      "error_code": event.error_code}  # fmt: skip
            refused = event.types
        elif isinstance(event, TrackersRefused):
            shown = ", ".join(f"{t} {s}" for t, s in sorted(event.trackers.items()))
            line = f"{event.event_type}: {shown or 'refused'}"
            record = {"kind": "trackers_refused", "event_type": event.event_type,
                      "trackers": {str(t): s for t, s in event.trackers.items()}}  # fmt: skip
            refused = [t for t, s in event.trackers.items() if s != "blocked"]
        else:
            return False
        self.view.say(line)
        if self.view.as_json:
            print(json.dumps(record, ensure_ascii=False), file=self.view.out, flush=True)
        wanted = self.wanted
        if record["kind"].endswith("_refused") and wanted is not None:
            wanted.difference_update(refused)
            if not wanted:
                raise Fatal(f"nothing to watch: {line}")
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
    ttl = getattr(args, "session_ttl", None)
    if platform == "itrack":
        itrack = ITrackReference(
            fleet, heartbeat_interval_ms=args.heartbeat_ms, wall_offset=wall, session_ttl=ttl
        )
        app, factory, handler = itrack, itrack.factory, itrack.http_handler
    else:
        fleetfreedom = FleetFreedomReference(fleet, wall_offset=wall, session_ttl=ttl)
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
            try:
                session_hash = await itrack_login(
                    base, args.login or "demo", args.password or "demo"
                )
            except LoginRefused as exc:
                raise Fatal(f"login refused: {exc.code} {exc.description}") from None
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, AuthError) as exc:
                raise Fatal(f"cannot log in at {base}: {exc or type(exc).__name__}") from None
        url = subscription_url(base)
        transport = AtmosphereClient(
            url,
            content_type="application/json",
            track_message_length=args.track_message_length,
            reconnect_on_timeout=True,  # a server gone silent: reconnect, not stop
        )
        # With a login (not a bare --hash) the client logs in again when the server forgets
        # the hash (a restart, an expiry).
        login = None
        if args.hash is None:
            login = build_auth_request(base, args.login or "demo", args.password or "demo")
        try:
            client = ITrackClient(url, session_hash, transport=transport, login=login)
        except ValueError as exc:
            raise Fatal(str(exc)) from None
        wanted: set[object] | None = None
        if args.trackers == "all":
            client.send(Subscribe([StateBatchRequest(Target.all(), "1s")]))
        else:
            ids = [int(t) for t in args.trackers.split(",") if t.strip()]
            wanted = set(ids)
            request = (
                StateBatchRequest(Target.selected(ids), "1s") if args.batch else StateRequest(ids)
            )
            client.send(Subscribe([request]))
        watch = Watch(view, url, wanted)

        def on_event(event: Event) -> None:
            translated = _itrack_record(event)
            if translated is None:
                watch.transport(event)
                return
            record, rows = translated
            view.record(record, rows)
            forgotten = record["kind"] == "error" and record["code"] in (3, 4)
            if record["kind"] == "error" and not forgotten and not view.done:
                # (3 and 4 mean a forgotten hash: the client logs in again or says it ends)
                raise Fatal(f"the server refused: {record['code']} {record['description']}")
            if record["kind"] == "subscribed":
                counts: dict[str, int] = {}
                for status in record["trackers"].values():
                    counts[status] = counts.get(status, 0) + 1
                view.say(
                    "subscribed " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "(all)")
                )

        await _run_client(client, view, limits, on_event, args.stall_timeout)
        nursery.cancel_scope.cancel()
    return 0


def _itrack_record(event: Event) -> tuple[Record, list[Row]] | None:
    """The ``--json`` record and table rows of an iTrack application event (``None``: a
    transport event)."""
    record: Record
    if isinstance(event, StateEvent):
        record = {"kind": "state", **_state_fields(event.state), "message": event.raw}
        return record, [_row_of_state(event.state)]
    if isinstance(event, StateBatchEvent):
        record = {
            "kind": "state_batch",
            "states": [_state_fields(s) for s in event.states],
            "message": event.raw,
        }
        return record, [_row_of_state(s) for s in event.states]
    if isinstance(event, LifecycleEvent):
        record = {
            "kind": "lifecycle",
            "source_id": event.source_id,
            "lifecycle_event": event.lifecycle_event,
            "message": event.raw,
        }
        return record, []
    if isinstance(event, LogoutEvent):
        return {"kind": "logout", "reason": event.reason, "message": event.raw}, []
    if isinstance(event, SubscribeResponse):
        trackers = {
            str(tracker): status
            for result in event.results.values()
            for tracker, status in result.trackers.items()
        }
        return {"kind": "subscribed", "events": event.events, "trackers": trackers,
                "message": event.raw}, []  # fmt: skip
    if isinstance(event, UnsubscribeResponse):
        return {"kind": "unsubscribed", "trackers": event.trackers, "message": event.raw}, []
    if isinstance(event, ErrorMessage):
        record = {
            "kind": "error",
            "code": event.code,
            "description": event.description,
            "action": event.action,
            "message": event.raw,
        }
        return record, []
    if isinstance(event, (ReadingsBatchEvent, IotMonitorEvent)):
        return {"kind": "raw", "message": event.raw}, []
    if isinstance(event, (ITrackUnknown, ITrackInvalid)):
        return {"kind": "raw", "message": event.text}, []
    return None


# -- trackwire watch fleetfreedom -----------------------------------------------------------


async def _watch_fleetfreedom(args: argparse.Namespace, view: View, limits: Limits) -> int:
    async with trio.open_nursery() as nursery:
        url = args.url
        if url is None:
            url = await _embedded(nursery, "fleetfreedom", args)
            view.say(f"embedded FleetFreedom server at {url} (demo@example.com / demo)")
        client = FleetFreedomClient(url, ghost_id=args.ghost_id)
        cache = ObjectCache()
        login: int | None = None
        if args.ghost_id is None:
            username = args.username or "demo@example.com"
            password = args.password or "demo"
            login = client.send(Command.login(username, password, "trackwire-cli"))
        types = [t for t in args.types.split(",") if t]
        client.send(Command.subscribe(args.company, types))
        client.send(Command.get_list("asset", args.company))
        watch = Watch(view, url, set(types))

        def on_event(event: Event) -> None:
            if isinstance(event, (Merged, Deleted, FFResponse)):
                cache.apply(event)  # after the record: stale pieces are printed too
            translated = _fleetfreedom_record(event, login)
            if translated is None:
                if isinstance(event, CommandFailed):
                    view.say(f"{event.request.name} failed: {event.reason.value}")
                    if view.as_json:
                        failed = {"kind": "command_failed", "name": event.request.name,
                                  "req_id": event.req_id, "reason": event.reason.value}  # fmt: skip
                        print(json.dumps(failed), file=view.out, flush=True)
                else:
                    watch.transport(event)
                return
            record, _ = translated
            rows: list[Row] = []
            if record["kind"] == "merged" and record["company"] == args.company:
                asset = cache.get("asset", record["id"])
                if asset is not None:
                    rows.append(_row_of_asset(asset))
            elif record["kind"] == "deleted":
                view.rows.pop(str(record["id"]), None)
            view.record(record, rows)
            if record["kind"] == "logged_in" and record["error_code"] != 0:
                raise Fatal(f"login refused: {record['error_code']} {record['text'] or ''}")
            if record["kind"] == "connected" and record["error_code"] not in (0, 7, 8, 16):
                raise Fatal(f"the server refused the session: {record['error_code']}")
            if record["kind"] == "response" and record["error_code"] not in (0, 7, 8, None):
                # 7 and 8 are a forgotten session: the client logs in again and says so
                text = f" {record['text']}" if record["text"] else ""
                view.say(f"{record['name']}: errorCode {record['error_code']}{text}")
            if record["kind"] == "response" and record["name"].endswith("ListResponse"):
                for asset in cache.company_objects("asset", args.company):
                    view.rows.setdefault(str(asset.get("id")), _row_of_asset(asset))

        await _run_client(client, view, limits, on_event, args.stall_timeout)
        nursery.cancel_scope.cancel()
    return 0


def _fleetfreedom_record(event: Event, login: int | None) -> tuple[Record, list[Row]] | None:
    """The ``--json`` record of a FleetFreedom application event (``None``: not one)."""
    record: Record
    if isinstance(event, FFInvalid):
        return {"kind": "raw", "reason": event.reason, "message": event.raw}, []
    if not isinstance(event, MessageEvent):
        return None
    message = {"name": event.name, "body": _redacted(event.body)}
    body = event.body
    if isinstance(event, ConnectionResponse):
        record = {
            "kind": "connected",
            "error_code": event.error_code,
            "text": event.message,
        }
    elif isinstance(event, FFResponse):
        kind = "logged_in" if login is not None and event.req_id == login else "response"
        record = {
            "kind": kind,
            "name": event.name,
            "req_id": event.req_id,
            "error_code": event.error_code,
            "text": event.message,
        }
    elif isinstance(event, Merged):
        record = {"kind": "merged", "type": event.subscription_type, "id": body.get("id"),
                  "company": body.get("company"), "v": body.get("v")}  # fmt: skip
    elif isinstance(event, Deleted):
        record = {"kind": "deleted", "type": event.object_type, "id": event.key,
                  "company": event.company, "v": body.get("v")}  # fmt: skip
    elif isinstance(event, Broadcast):
        record = {"kind": "broadcast", "text": event.message}
    elif isinstance(event, SessionEnded):
        record = {"kind": "session_ended"}
    else:
        record = {"kind": "raw"}
    record["message"] = message
    return record, []


# -- the shared watch loop ------------------------------------------------------------------


WATCH_RECONNECT = ReconnectPolicy(initial=1.0, factor=2.0, cap=10.0)
"""The watch's backoff: a restarted server is found again within seconds."""


async def _run_client(
    core: Any,
    view: View,
    limits: Limits,
    on_event: Callable[[Event], None],
    stall_timeout: float | None = None,
) -> None:
    """Connect, show events until ``--count`` or ``--duration``; :class:`Fatal` ends it."""
    deadline = math.inf if limits.duration is None else trio.current_time() + limits.duration
    stall = stall_timeout if stall_timeout and stall_timeout > 0 else None  # 0: off
    try:
        with trio.move_on_at(deadline):
            async with connect(core, reconnect=WATCH_RECONNECT, stall_timeout=stall) as conn:
                async for event in conn:
                    on_event(event)
                    if view.done:
                        break
                    view.draw()
    finally:
        view.draw(force=True)


# -- argument parsing -----------------------------------------------------------------------


def _hash_argument(value: str) -> str:
    try:
        return check_hash(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(value: str) -> float:
    """A positive number of seconds (argparse type)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {value!r}")
    return seconds


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
    srv.add_argument(
        "--session-ttl", type=_seconds, help="expire every session this many seconds after login"
    )
    fleet_options(srv)

    watch = commands.add_parser("watch", help="watch a live fleet")
    platforms = watch.add_subparsers(dest="platform", required=True)

    def watch_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="one JSON object per update")
        p.add_argument("--count", type=int, help="stop after this many updates")
        p.add_argument("--duration", type=float, help="stop after this many seconds")
        p.add_argument(
            "--stall-timeout",
            type=float,
            default=30.0,
            help="report a stall after this many seconds without data (0: never)",
        )
        fleet_options(p)

    itrack = platforms.add_parser("itrack", help="iTrack / Navixy (Atmosphere)")
    itrack.add_argument("--url", help="API base URL, e.g. https://api.itrack.live/v2/")
    itrack.add_argument("--login")
    itrack.add_argument("--password")
    itrack.add_argument(
        "--hash", type=_hash_argument, help="a session or API-key hash instead of a login"
    )
    itrack.add_argument("--trackers", default="all", help="all, or tracker ids: 1,2,3")
    itrack.add_argument("--batch", action="store_true", help="state_batch instead of state")
    itrack.add_argument("--track-message-length", action="store_true")
    watch_options(itrack)

    add_conformance(commands)

    ff = platforms.add_parser("fleetfreedom", help="FleetFreedom / Trak-iT")
    ff.add_argument("--url", help="WebSocket URL, e.g. wss://socket.trakit.ca/")
    ff.add_argument("--username")
    ff.add_argument("--password")
    ff.add_argument("--ghost-id", help="resume this session instead of logging in")
    ff.add_argument("--company", type=int, default=1)
    ff.add_argument("--types", default="assetGeneral,assetAdvanced")
    watch_options(ff)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``trackwire`` console script: 0 done, 1 failed, 2 bad usage."""
    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    errors = err or sys.stderr
    try:
        if args.command == "serve":
            return trio.run(_serve, args, stream)
        if args.command == "conformance":
            return run_conformance(args, stream)
        live = stream.isatty() and not args.json
        view = View(
            stream,
            live=live,
            as_json=args.json,
            clock=time.monotonic,
            max_events=args.count,
            err=errors,
        )
        limits = Limits(count=args.count, duration=args.duration)
        runner = _watch_itrack if args.platform == "itrack" else _watch_fleetfreedom
        return trio.run(runner, args, view, limits)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``trackwire … | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # trio wraps what the tasks raised in exception groups
        reason = _failure_of(exc)
        if reason is None:
            raise
        print(f"trackwire: {reason}", file=errors, flush=True)
        return 1


def _failure_of(exc: BaseException) -> str | None:
    """The one line to print for an expected failure (inside exception groups too)."""
    if isinstance(exc, Fatal):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    for inner in getattr(exc, "exceptions", ()):
        reason = _failure_of(inner)
        if reason is not None:
            return reason
    return None
