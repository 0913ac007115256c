"""The watch loops: log in, subscribe, and show every event until ``--count``,
``--duration``, an interrupt or a fatal failure.

Each platform's loop sets its client core up (credentials, subscriptions), then hands every
event to an ``on_event`` that turns it into a record, rows and status lines for the
:class:`~.view.View`; :class:`Watch` reports the connection's own events.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TextIO

import trio

from trackwire import Event, ReconnectPolicy, SessionFinished, SessionForgotten, SessionRestored
from trackwire.atmosphere import AtmosphereClient, InactivityTimeout
from trackwire.fleetfreedom import (
    Command,
    CommandFailed,
    Deleted,
    FleetFreedomClient,
    Merged,
    ObjectCache,
    SubscriptionRefused,
)
from trackwire.fleetfreedom import Response as FFResponse
from trackwire.itrack import (
    AuthError,
    ITrackClient,
    LoginRefused,
    StateBatchRequest,
    StateRequest,
    Subscribe,
    Target,
    TrackerInfo,
    TrackerListError,
    TrackerListRefused,
    TrackersRefused,
    build_auth_request,
    subscription_url,
)
from trackwire.ws import Connected, ConnectionClosed, HandshakeFailed, Rejected

from ..trio import (
    GaveUp,
    ReconnectFailed,
    Reconnecting,
    Stalled,
    connect,
    itrack_login,
    itrack_tracker_list,
)
from .main import Fatal
from .records import fleetfreedom_record, itrack_record, row_of_asset, status_of
from .servers import embedded
from .view import Record, Row, View

__all__ = ["Fatal", "Limits", "Watch", "run_watch"]

_NETWORK = (OSError, trio.TooSlowError, trio.BrokenResourceError)


@dataclass(slots=True)
class Limits:
    """When a watch stops by itself: after ``duration`` seconds (``--count``: the view)."""

    count: int | None = None
    duration: float | None = None


class Watch:
    """Connection bookkeeping shared by both platforms: status lines and fatal failures."""

    def __init__(self, view: View, url: str, wanted: Collection[object] | None = None) -> None:
        self.view = view
        self.url = url
        self.connected = False
        self.wanted = None if wanted is None else set(wanted)
        """What was asked for (FleetFreedom types, iTrack tracker ids; ``None``: not known);
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
        elif isinstance(event, Rejected):
            if self.connected:  # before the first connection, the failure says it all
                view.say(f"the server refused the WebSocket upgrade: HTTP {event.status_code}")
        elif isinstance(event, HandshakeFailed):
            if self.connected:
                view.say(f"handshake failed: {event.error}")
        elif isinstance(event, ConnectionClosed):
            view.say(f"disconnected ({event.code} {event.reason})".rstrip())
        elif isinstance(event, InactivityTimeout):
            view.say("the server went silent: inactivity timeout")
        elif isinstance(event, GaveUp):
            raise Fatal(f"stopped: {event.reason}")

    def session(self, event: Event) -> bool:
        """Session notices and refusals: one status line (and a record with ``--json``);
        :class:`Fatal` when the session ended or nothing asked for can be delivered."""
        refused: Collection[object] = ()
        record: Record
        if isinstance(event, SessionFinished):
            detail = f": {event.detail}" if event.detail else ""
            raise Fatal(f"session ended ({event.reason.value}){detail}")
        if isinstance(event, SessionForgotten):
            how = "logging in again" if event.relogin else "no credentials to log in again"
            line = f"the server forgot the session (error {event.error_code}); {how}"
            record = {"kind": "session_forgotten", "error_code": event.error_code}
        elif isinstance(event, SessionRestored):
            line = f"logged in again; {event.resubscribed} subscription(s) renewed"
            record = {"kind": "session_restored", "resubscribed": event.resubscribed}
        elif isinstance(event, Stalled):
            line = f"stalled: no data for {event.idle:.0f}s"
            record = {"kind": "stalled", "idle": round(event.idle, 3)}
        elif isinstance(event, SubscriptionRefused):
            code = f" (errorCode {event.error_code})" if event.error_code else ""
            line = f"company {event.company}: {', '.join(event.types)} {event.reason}{code}"
            record = {"kind": "subscription_refused", "company": event.company,
                      "types": list(event.types), "reason": event.reason,
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
        self.view.notice(record, line)
        wanted = self.wanted
        if refused and wanted is not None:
            wanted.difference_update(refused)
            if not wanted:
                raise Fatal(f"nothing to watch: {line}")
        return True


# -- iTrack -----------------------------------------------------------------------------------


async def _itrack_session(base: str, args: argparse.Namespace) -> str:
    """The session hash: ``--hash``, or ``user/auth`` with the login (demo/demo on the
    embedded server)."""
    if args.hash is not None:
        return str(args.hash)
    try:
        return await itrack_login(base, args.login or "demo", args.password or "demo")
    except LoginRefused as exc:
        raise Fatal(f"login refused: {exc.code} {exc.description}") from None
    except (*_NETWORK, AuthError) as exc:
        raise Fatal(f"cannot log in at {base}: {exc or type(exc).__name__}") from None


async def _itrack_trackers(base: str, session_hash: str, view: View) -> list[TrackerInfo] | None:
    """The account's trackers (labels, tracker and source ids), or ``None`` when the
    deployment does not list them (the table then shows source ids only); a refused hash or
    an unreachable server ends the watch."""
    try:
        return await itrack_tracker_list(base, session_hash)
    except TrackerListRefused as exc:
        if exc.code in (3, 4):  # the hash itself is refused: nothing will work
            raise Fatal(f"the server refused the session: {exc.code} {exc.description}") from None
        reason = f"{exc.code} {exc.description}"
    except _NETWORK as exc:
        raise Fatal(f"cannot reach {base}: {exc or type(exc).__name__}") from None
    except TrackerListError as exc:  # not offered (an HTTP error page, an old deployment)
        reason = str(exc)
    view.say(f"no tracker list ({reason}): names unknown")
    return None


def _itrack_request(
    args: argparse.Namespace, listed: list[TrackerInfo] | None
) -> StateRequest | StateBatchRequest:
    """What ``--trackers`` and ``--batch`` ask for."""
    ids: list[int] | None = args.trackers
    if args.batch:
        target = Target.all() if ids is None else Target.selected(ids)
        return StateBatchRequest(target, "1s")
    if ids is None:
        if listed is None:
            raise Fatal("cannot list the trackers to subscribe to; use --batch or --trackers ID,…")
        ids = [tracker.tracker_id for tracker in listed]
        if not ids:
            raise Fatal("the account has no trackers")
    return StateRequest(ids)


async def _watch_itrack(args: argparse.Namespace, view: View, limits: Limits) -> int:
    async with trio.open_nursery() as nursery:
        base = args.url
        if base is None:
            base = await embedded(nursery, "itrack", args)
            view.say(f"embedded iTrack server at {base} (login demo / demo)")
        session_hash = await _itrack_session(base, args)
        listed = await _itrack_trackers(base, session_hash, view)
        by_source = {t.source_id: t for t in listed or () if t.source_id is not None}
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
        client = ITrackClient(url, session_hash, transport=transport, login=login)
        request = _itrack_request(args, listed)
        client.send(Subscribe([request]))
        wanted = request.trackers if isinstance(request, StateRequest) else args.trackers
        watch = Watch(view, url, wanted)

        def on_event(event: Event) -> None:
            translated = itrack_record(event, by_source)
            if translated is None:
                watch.transport(event)
                return
            record, rows = translated
            fatal = None
            # (3 and 4 mean a forgotten hash: the client logs in again or says it ends)
            if record["kind"] == "error" and record["code"] not in (3, 4):
                fatal = f"the server refused: {record['code']} {record['description']}"
            view.record(record, rows, status_of(record) if fatal is None else None)
            if fatal is not None and not view.done:
                raise Fatal(fatal)

        await _run_client(client, view, limits, on_event, args.stall_timeout)
        nursery.cancel_scope.cancel()
    return 0


# -- FleetFreedom -----------------------------------------------------------------------------


async def _watch_fleetfreedom(args: argparse.Namespace, view: View, limits: Limits) -> int:
    async with trio.open_nursery() as nursery:
        url = args.url
        if url is None:
            url = await embedded(nursery, "fleetfreedom", args)
            view.say(f"embedded FleetFreedom server at {url} (demo@example.com / demo)")
        client = FleetFreedomClient(url, ghost_id=args.ghost_id)
        cache = ObjectCache()
        login: int | None = None
        if args.ghost_id is None:
            username = args.username or "demo@example.com"
            password = args.password or "demo"
            login = client.send(Command.login(username, password, "trackwire-cli"))
        client.send(Command.subscribe(args.company, args.types))
        client.send(Command.get_list("asset", args.company))
        watch = Watch(view, url, args.types)

        def on_event(event: Event) -> None:
            if isinstance(event, (Merged, Deleted, FFResponse)):
                cache.apply(event)  # after the record: stale pieces are printed too
            translated = fleetfreedom_record(event, login)
            if translated is None:
                if isinstance(event, CommandFailed):
                    failed = {"kind": "command_failed", "name": event.request.name,
                              "req_id": event.req_id, "reason": event.reason.value}  # fmt: skip
                    view.notice(failed, f"{event.request.name} failed: {event.reason.value}")
                else:
                    watch.transport(event)
                return
            record, _ = translated
            rows: list[Row] = []
            if record["kind"] == "merged" and record["company"] == args.company:
                asset = cache.get("asset", record["id"])
                if asset is not None:
                    rows.append(row_of_asset(asset))
            elif record["kind"] == "deleted":
                view.rows.pop(str(record["id"]), None)
            fatal = None
            if record["kind"] == "logged_in" and record["error_code"] != 0:
                fatal = f"login refused: {record['error_code']} {record['text'] or ''}"
            elif record["kind"] == "connected" and record["error_code"] not in (0, 7, 8, 16):
                fatal = f"the server refused the session: {record['error_code']}"
            view.record(record, rows, status_of(record) if fatal is None else None)
            if fatal is not None:
                raise Fatal(fatal)
            if record["kind"] == "response" and record["name"].endswith("ListResponse"):
                for asset in cache.company_objects("asset", args.company):
                    view.rows.setdefault(str(asset.get("id")), row_of_asset(asset))

        await _run_client(client, view, limits, on_event, args.stall_timeout)
        nursery.cancel_scope.cancel()
    return 0


# -- the shared watch loop --------------------------------------------------------------------


WATCH_RECONNECT = ReconnectPolicy(initial=1.0, factor=2.0, cap=10.0)
"""The watch's backoff: a restarted server is found again within seconds."""


async def _run_client(
    core: Any,
    view: View,
    limits: Limits,
    on_event: Callable[[Event], None],
    stall_timeout: float,
) -> None:
    """Connect, show events until ``--count`` or ``--duration``; :class:`Fatal` ends it."""
    deadline = math.inf if limits.duration is None else trio.current_time() + limits.duration
    stall = stall_timeout if stall_timeout > 0 else None  # 0: off
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


def run_watch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``trackwire watch``: the exit code (0 after ``--count`` or ``--duration``)."""
    view = View(
        out,
        live=out.isatty() and not args.json,
        as_json=args.json,
        clock=time.monotonic,
        max_events=args.count,
        err=err,
        sources=args.platform == "itrack",
    )
    limits = Limits(count=args.count, duration=args.duration)
    runner = _watch_itrack if args.platform == "itrack" else _watch_fleetfreedom
    return trio.run(runner, args, view, limits)
