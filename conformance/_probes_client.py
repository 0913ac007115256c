"""Judging clients: the kit serves scripted scenarios and watches what connecting clients send.

How a client under test meets the kit (what ``trackwire conformance client`` prints):

- The kit serves on ``127.0.0.1:PORT``: the Atmosphere endpoint ``http://127.0.0.1:PORT/atmosphere``
  (any path works), the iTrack base URL ``http://127.0.0.1:PORT/v2/`` (``user/auth`` accepts
  any login and answers a fresh hash) or the FleetFreedom endpoint ``ws://127.0.0.1:PORT/``
  (``login`` accepts any credentials).
- iTrack scenarios also answer a subscribe with error 3 or 4 and send ``logout``: from then on
  the client must not send that hash again (it may log in again at ``user/auth``, which
  answers a new hash, and subscribe again with it).
- Scenarios run one at a time, in catalogue order.  Each starts with a **fresh client
  session** (Atmosphere tracking id ``0``, no FleetFreedom ghostId): the next fresh connection
  is given to the scenario waiting for one.  Reconnects that present a session the running
  scenario issued (its tracking UUID or ghostId) stay with it; the kit drops connections on
  purpose to see the client come back.
- When a scenario is over the kit closes its connections and refuses that session from then
  on (HTTP 410 on the upgrade): start a **new client** whenever yours has stopped or was
  refused, until the kit prints its report.  Run the client with reconnects on (short delays
  make the run faster).
- A few cases need the client to close itself: when it receives the text
  :data:`CLOSE_SIGNAL` (Atmosphere: as a message; iTrack: an event ``trackwire-conformance``
  whose data is it; FleetFreedom: ``broadcast`` with it as ``message``), it should end its
  session the way its application normally does (FleetFreedom: ``logout``, then close).  A
  client that ignores the signal gets UNSUPPORTED for those cases, never FAILED.  A
  FleetFreedom application also ends on an unknown message ``trackwireConformance`` whose
  ``message`` is the signal, and on a line it cannot read whose raw text is exactly
  :data:`RAW_SIGNAL`: that is how the kit sees unknown messages and bad lines reach it.

What happens inside a client (what it delivers to its application) cannot be seen from the
wire; those cases are reported UNSUPPORTED.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio

from trackwire import Event
from trackwire.atmosphere import RECONNECT_PADDING, framework_number, parse_open_request, utf16_len
from trackwire.fleetfreedom import ghost_id_from_request
from trackwire.itrack import is_auth_target
from trackwire.ws import (
    AtmosphereCloseRequested,
    HttpRequestHandled,
    HttpResponse,
    Refuse,
    ServerStack,
    TextCore,
    UpgradeRequest,
)

from ._catalogue import get
from ._probes import (
    KIT_MAX_MESSAGE,
    SLOW_LIMIT,
    Findings,
    Item,
    Outcome,
    Peer,
    ProbeError,
    ProbeOptions,
    ProbeResult,
    Unsupported,
    WireLog,
    as_text_core,
    unsupported,
)

__all__ = [
    "CLIENT_SCENARIOS",
    "CLOSE_SIGNAL",
    "RAW_SIGNAL",
    "SIGNAL_NAME",
    "KitServer",
    "Scenario",
    "subject_url",
]

CLOSE_SIGNAL = "trackwire-conformance:close"
"""The text that asks a client under test to end its session (see the module docstring)."""

_PREFIX = re.compile(r"\d+\|")
_TIMESPAN = re.compile(r"\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*")
_GONE = b"this conformance scenario is over: start a fresh client\n"


def subject_url(protocol: str, host: str, port: int) -> str:
    """What the client under test should be pointed at."""
    where = f"{host}:{port}"
    if protocol == "itrack":
        return f"http://{where}/v2/"
    if protocol == "fleetfreedom":
        return f"ws://{where}/"
    return f"http://{where}/atmosphere"


# -- the server side of the kit ----------------------------------------------------------------


class KitServer:
    """Accepts client connections and hands them to the running scenario (see the module
    docstring for the matching rules)."""

    def __init__(self, protocol: str, options: ProbeOptions) -> None:
        self.protocol = protocol
        self.options = options
        self.active: ClientCtx | None = None
        self.finished: set[str] = set()
        self.issued: set[str] = set()
        """Every session identity handed out (tracking UUIDs, ghostIds)."""
        self.hashes: set[str] = set()
        self.honoured_signal = False
        """A client ended its session in order on :data:`CLOSE_SIGNAL` during this run."""
        self._queue_in, self._queue_out = trio.open_memory_channel[Peer](math.inf)

    def _identity(self, request: UpgradeRequest) -> str | None:
        if self.protocol == "fleetfreedom":
            ghost = ghost_id_from_request(request.target, request.subprotocols)
            return ghost if ghost in self.issued else None
        tracking = parse_open_request(request.target).tracking_id
        return tracking if tracking in self.issued else None

    def _route(self, peer: Peer, request: UpgradeRequest) -> TextCore | Refuse:
        shown = f" (subprotocols {', '.join(request.subprotocols)})" if request.subprotocols else ""
        peer.log.add(peer.number, "received", "http", f"GET {request.target}{shown}")
        identity = self._identity(request)
        if identity is not None and identity in self.finished:
            peer.log.add(peer.number, "sent", "http", "HTTP 410 (scenario over)")
            return Refuse(410, [("content-type", "text/plain")], _GONE)
        if self.active is None:
            peer.log.add(peer.number, "sent", "http", "HTTP 503 (no scenario waiting)")
            return Refuse(503, [("content-type", "text/plain")], b"no scenario is waiting\n")
        peer.request = request
        peer.identity = identity
        self._queue_in.send_nowait(peer)
        return as_text_core(peer.core)

    def _http(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> HttpResponse | None:
        if not is_auth_target(target):
            return None
        value = secrets.token_hex(16)
        self.hashes.add(value)
        answer = json.dumps({"success": True, "hash": value}).encode()
        return 200, [("content-type", "application/json")], answer

    def _other(self, event: Event) -> None:
        active = self.active
        if active is None:
            return
        if isinstance(event, AtmosphereCloseRequested):
            active.close_requests.append((trio.current_time(), event.tracking_id, event.target))
            active.log.add(0, "received", "http", f"close request {event.target}")
        elif isinstance(event, HttpRequestHandled):
            text = event.body.decode("utf-8", "replace")
            active.log.add(0, "received", "http", f"{event.method} {event.target} {text}".rstrip())
            active.log.add(0, "sent", "http", f"HTTP {event.status_code}")

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One accepted TCP connection (run by ``trio.serve_listeners``)."""
        peer = Peer(WireLog(trio.current_time()), stream, 1)
        peer.on_other = self._other
        stack: ServerStack[TextCore] = ServerStack(
            lambda request: self._route(peer, request),
            http_handler=self._http,
            accept_binary=True,
            max_message_size=KIT_MAX_MESSAGE,
            handshake_timeout=max(self.options.reply_wait, 1.0),
            close_timeout=1.0,
        )
        await peer.run(stack)

    async def take(self, timeout: float) -> Peer | None:
        """The next live connection for the running scenario (``None`` after ``timeout``)."""
        with trio.move_on_after(timeout):
            while True:
                peer = await self._queue_out.receive()
                if not peer.ended.is_set():
                    return peer
        return None

    def give_back(self, peer: Peer) -> None:
        """Return a connection the running scenario does not want (a new client that came
        early) so that the next scenario gets it."""
        self._queue_in.send_nowait(peer)

    def purge(self, identities: Iterable[str]) -> list[Peer]:
        """Take the queued connections of a finished scenario's sessions out of the queue
        (returned, to be closed)."""
        gone = set(identities)
        kept: list[Peer] = []
        dropped: list[Peer] = []
        while True:
            try:
                peer = self._queue_out.receive_nowait()
            except trio.WouldBlock:
                break
            if peer.identity is not None and peer.identity in gone:
                dropped.append(peer)
            elif not peer.ended.is_set():
                kept.append(peer)
        for peer in kept:
            self._queue_in.send_nowait(peer)
        return dropped


class ClientCtx:
    """What a scenario gets: connections from the client, session identities to hand out,
    the close requests that came, and the wire log."""

    def __init__(self, server: KitServer, log: WireLog, options: ProbeOptions) -> None:
        self.server = server
        self.log = log
        self.options = options
        self.identities: set[str] = set()
        self.peers: list[Peer] = []
        self.close_requests: list[tuple[float, str, str]] = []

    async def connection(self, timeout: float | None = None, *, first: bool = False) -> Peer:
        """The next connection; :class:`ProbeError` when none comes in time."""
        peer = await self.maybe_connection(timeout, first=first)
        if peer is None:
            wait = self.options.client_wait if timeout is None else timeout
            raise ProbeError(f"no client connected within {wait:g} s")
        return peer

    async def maybe_connection(
        self, timeout: float | None = None, *, first: bool = False
    ) -> Peer | None:
        wait = self.options.client_wait if timeout is None else timeout
        peer = await self.server.take(wait)
        if peer is None:
            return None
        peer.rebind(self.log)
        self.peers.append(peer)
        if first and peer.identity is not None:
            self.log.note(f"connection presents session {peer.identity}", peer.number)
        return peer

    def issue(self, identity: str) -> str:
        """Hand out a session identity (its reconnects then come to this scenario)."""
        self.identities.add(identity)
        self.server.issued.add(identity)
        return identity

    async def finish(self) -> None:
        """Close every connection and refuse the scenario's sessions from now on."""
        self.server.finished |= self.identities
        dropped = self.server.purge(self.identities)
        with trio.CancelScope(shield=True):
            for peer in self.peers + dropped:
                if not peer.ended.is_set():
                    await peer.close(1000, "conformance scenario over", wait=0.5)


# -- scenarios -----------------------------------------------------------------------------------

ScenarioFunction = Callable[[ClientCtx], Awaitable[ProbeResult]]


def _client_wait(options: ProbeOptions) -> float:
    return (
        options.client_wait
        + options.reconnect_wait
        + 8 * options.settle
        + 2 * options.reply_wait
        + 4 * options.heartbeat_ms / 1000.0
    )


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scripted server session that judges the cases of one client session."""

    protocol: str
    cases: tuple[str, ...]
    run: ScenarioFunction
    extra_time: Callable[[ProbeOptions], float] = _client_wait

    @property
    def name(self) -> str:
        return getattr(self.run, "__name__", self.cases[0])


CLIENT_SCENARIOS: list[Scenario] = []


def scenario(
    *case_ids: str, extra_time: Callable[[ProbeOptions], float] = _client_wait
) -> Callable[[ScenarioFunction], ScenarioFunction]:
    """Register a scenario judging ``case_ids`` (checked against the catalogue)."""
    protocols = {get(case_id).protocol for case_id in case_ids}
    if len(protocols) != 1 or any(get(c).role == "server" for c in case_ids):
        raise ValueError(f"a scenario judges client cases of one protocol: {case_ids}")

    def register(function: ScenarioFunction) -> ScenarioFunction:
        CLIENT_SCENARIOS.append(Scenario(protocols.pop(), case_ids, function, extra_time))
        return function

    return register


def _query(peer: Peer) -> list[tuple[str, str]]:
    target = peer.request.target if peer.request is not None else ""
    return parse_qsl(urlsplit(target).query, keep_blank_values=True)


def _param(query: list[tuple[str, str]], name: str) -> str | None:
    for key, value in query:
        if key.lower() == name.lower():
            return value
    return None


def _tms(peer: Peer) -> bool:
    return _param(_query(peer), "X-Atmosphere-TrackMessageSize") == "true"


def _frame(peer: Peer, message: str) -> str:
    """A server write as the client asked for it (length-prefixed with TrackMessageSize)."""
    if _tms(peer) and message.strip():
        return f"{utf16_len(message)}|{message}"
    return message


async def _handshake(
    ctx: ClientCtx, peer: Peer, interval_ms: int, padding: str, width: int = 0
) -> str:
    """Send the handshake (the interval zero-padded to ``width`` digits: parseInt reads
    ``0000000000000150`` as 150) and return its tracking UUID."""
    tracking = ctx.issue(str(uuid.uuid4()))
    await peer.send(_frame(peer, f"{tracking}|{interval_ms:0{width}d}|{padding}|"))
    return tracking


def _text(frames: Iterable[Item]) -> list[str]:
    return [f for f in frames if isinstance(f, str)]


def _times(frames: list[tuple[float, Item]], padding: str) -> list[float]:
    return [t for t, f in frames if f == padding]


async def _timed(peer: Peer, duration: float) -> list[tuple[float, Item]]:
    got: list[tuple[float, Item]] = []
    deadline = trio.current_time() + duration
    while True:
        item = await peer.recv(max(0.0, deadline - trio.current_time()))
        if item is None:
            return got
        got.append((trio.current_time(), item))


# -- Atmosphere ----------------------------------------------------------------------------------

_PADDING = " hb "
"""The heartbeat padding the kit announces: spaces around it, to see the client keep it."""

_OPEN_CASES = (
    "atmosphere.open.tracking-id-zero-first",
    "atmosphere.open.transport-and-framework",
    "atmosphere.open.framework-version",
    "atmosphere.open.atmo-protocol",
)


def _judge_query(query: list[tuple[str, str]]) -> dict[str, Outcome]:
    tracking = _param(query, "X-Atmosphere-tracking-id")
    transport = _param(query, "X-Atmosphere-Transport")
    framework = _param(query, "X-Atmosphere-Framework")
    number = framework_number(framework) if framework else None
    protocol = _param(query, "X-atmo-protocol")
    return {
        "atmosphere.open.tracking-id-zero-first": Outcome(
            tracking == "0", f"X-Atmosphere-tracking-id={tracking}"
        ),
        "atmosphere.open.transport-and-framework": Outcome(
            transport == "websocket" and bool(framework),
            f"X-Atmosphere-Transport={transport}, X-Atmosphere-Framework={framework}",
        ),
        "atmosphere.open.framework-version": Outcome(
            number is not None and number >= 221, f"X-Atmosphere-Framework={framework} ({number})"
        ),
        "atmosphere.open.atmo-protocol": Outcome(protocol == "true", f"X-atmo-protocol={protocol}"),
    }


@scenario(
    *_OPEN_CASES,
    "atmosphere.handshake.client-waits",
    "atmosphere.handshake.client-short-frame",
    "atmosphere.heartbeat.client-padding-exact",
    "atmosphere.heartbeat.client-cadence",
    "atmosphere.tms.client-frames-unprefixed",
    "atmosphere.handshake.client-second-is-data",
    "atmosphere.frames.client-ignores-blank",
    "atmosphere.reconnect.client-reconnects",
    "atmosphere.reconnect.tracking-id-reuse",
    "atmosphere.reconnect.client-reopens-on-first-frame",
)
async def atmosphere_session(ctx: ClientCtx) -> dict[str, Outcome]:
    options = ctx.options
    interval = options.heartbeat_ms / 1000.0
    peer = await ctx.connection(first=True)
    query = _query(peer)
    results = _judge_query(query)
    early = await peer.collect(options.settle)
    results["atmosphere.handshake.client-waits"] = Outcome(
        not early, f"sent before the handshake: {early[:2]!r}" if early else "nothing before"
    )
    await peer.send(_frame(peer, "hello"))
    await trio.sleep(options.settle / 2)
    # The interval zero-padded to 16 digits: its value, not its digit count, is what counts.
    tracking = await _handshake(ctx, peer, options.heartbeat_ms, _PADDING, width=16)
    opened = trio.current_time()

    async def server_heartbeats() -> None:
        # The kit writes every half interval: a client whose heartbeat restarts on every
        # frame it reads (no fixed cadence) then never beats.
        while True:
            await trio.sleep(interval / 2)
            await peer.send(_frame(peer, _PADDING))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_heartbeats)
        frames = await _timed(peer, 3.6 * interval)
        nursery.cancel_scope.cancel()
    beats = _times(frames, _PADDING)
    others = [f for _, f in frames if f != _PADDING]
    near = [f for f in _text(others) if f.strip() == _PADDING.strip()]
    if near:
        results["atmosphere.heartbeat.client-padding-exact"] = Outcome(
            False, f"heartbeat sent as {near[0]!r}, not {_PADDING!r}"
        )
    elif beats:
        results["atmosphere.heartbeat.client-padding-exact"] = Outcome(
            True, f"{len(beats)} heartbeat(s) exactly {_PADDING!r}"
        )
    else:
        results["atmosphere.heartbeat.client-padding-exact"] = unsupported(
            "no heartbeat to judge (see atmosphere.heartbeat.client-cadence)"
        )
    cadence = Findings()
    if cadence.expect(len(beats) >= 2, f"{len(beats)} heartbeat(s) in {3.6 * interval:.1f} s"):
        gaps = [b - a for a, b in zip([opened, *beats], beats, strict=False)]
        cadence.expect(
            all(0.5 * interval <= gap <= 1.6 * interval for gap in gaps),
            f"heartbeat gaps {', '.join(f'{g:.2f}' for g in gaps)} s for {interval:g} s",
        )
        cadence.note(f"{len(beats)} heartbeats, gaps {', '.join(f'{g:.2f}' for g in gaps)} s")
    results["atmosphere.heartbeat.client-cadence"] = cadence.outcome()
    prefixed = [f for f in _text(f for _, f in frames) if _PREFIX.match(f)]
    results["atmosphere.tms.client-frames-unprefixed"] = Outcome(
        not prefixed,
        f"length-prefixed client frame {prefixed[0]!r}"
        if prefixed
        else f"{len(frames)} client frame(s), none prefixed (TrackMessageSize {_tms(peer)})",
    )
    other = str(uuid.uuid4())
    await peer.send(_frame(peer, f"{other}|30000|X|"))
    for blank in ("", "   ", RECONNECT_PADDING):
        await peer.send(blank)
    await peer.collect(options.settle)
    results["atmosphere.frames.client-ignores-blank"] = Outcome(
        peer.is_open,
        "still open after blank frames"
        if peer.is_open
        else f"the client closed after blank frames: {peer.closed}",
    )
    await peer.abort()
    again = await ctx.maybe_connection(options.reconnect_wait)
    if again is None:
        none = f"no reconnect within {options.reconnect_wait:g} s of dropping the connection"
        results["atmosphere.reconnect.client-reconnects"] = Outcome(False, none)
        for case in (
            "atmosphere.reconnect.tracking-id-reuse",
            "atmosphere.handshake.client-short-frame",
            "atmosphere.handshake.client-second-is-data",
            "atmosphere.reconnect.client-reopens-on-first-frame",
        ):
            results[case] = unsupported("the client did not reconnect")
        return results
    results["atmosphere.reconnect.client-reconnects"] = Outcome(True, "reconnected")
    second = _query(again)
    used = _param(second, "X-Atmosphere-tracking-id")
    reuse = Findings()
    reuse.expect(used == tracking, f"reconnected with tracking id {used}, not {tracking}")
    rest = sorted((k, v) for k, v in second if k.lower() != "x-atmosphere-tracking-id")
    before = sorted((k, v) for k, v in query if k.lower() != "x-atmosphere-tracking-id")
    reuse.expect(rest == before, f"query changed: {before} then {rest}")
    results["atmosphere.reconnect.tracking-id-reuse"] = reuse.outcome()
    results["atmosphere.handshake.client-short-frame"] = Outcome(
        used == tracking, f"after 'hello' then the handshake, reconnected with {used}"
    )
    results["atmosphere.handshake.client-second-is-data"] = Outcome(
        used != other,
        f"a second handshake-like frame took over: {used}"
        if used == other
        else f"reconnected with the first UUID {used}",
    )
    quiet = [f for f in await again.collect(options.settle) if f != _PADDING]
    results["atmosphere.reconnect.client-reopens-on-first-frame"] = Outcome(
        not quiet, f"sent before the server's first frame: {quiet[:2]!r}" if quiet else ""
    )
    await again.send(RECONNECT_PADDING)
    reopened = trio.current_time()
    resumed = _times(await _timed(again, max(options.settle, 2.5 * interval)), _PADDING)
    if results["atmosphere.heartbeat.client-cadence"].passed and not resumed:
        results["atmosphere.heartbeat.client-cadence"] = Outcome(
            False,
            f"no heartbeat within {2.5 * interval:.2f} s of the reopen (the first frame after "
            "the reconnect): the cadence did not start again",
        )
    elif resumed:
        cadence.note(f"first heartbeat {resumed[0] - reopened:.2f} s after the reopen")
        results["atmosphere.heartbeat.client-cadence"] = cadence.outcome()
    return results


@scenario("atmosphere.heartbeat.client-none-when-zero")
async def atmosphere_no_heartbeat(ctx: ClientCtx) -> Outcome:
    peer = await ctx.connection(first=True)
    await _handshake(ctx, peer, 0, "X")
    # Long enough for a client that takes 0 for a default interval of a second or so.
    options = ctx.options
    frames = await peer.collect(
        max(3 * options.heartbeat_ms / 1000.0, options.reply_wait) + options.settle
    )
    beats = [f for f in frames if f == "X"]
    return Outcome(not beats, f"{len(beats)} heartbeat(s) after an interval of 0")


async def _await_close(ctx: ClientCtx, peer: Peer) -> bool:
    await peer.send(_frame(peer, CLOSE_SIGNAL))
    return await peer.wait_ended(ctx.options.reply_wait)


def _in_order(ctx: ClientCtx, peer: Peer, tracking: str) -> bool:
    """The client ended its session the way an application does (a close it started with
    1000 or no status, or a dropped socket after the HTTP close request for ``tracking``),
    not on a protocol error (1002 and the like)."""
    closed = peer.closed
    if closed is None or closed.error is not None:
        return False
    if closed.code == 1006:
        return any(r[1] == tracking for r in ctx.close_requests)
    return closed.by_peer and closed.code in (1000, 1005)


async def _signal_variant(
    ctx: ClientCtx, peer: Peer, tracking: str, frames: list[str]
) -> tuple[bool | None, str]:
    """Send ``frames``, which a conforming client delivers as exactly :data:`CLOSE_SIGNAL`.

    ``True``: the client ended its session on them; ``False``: it did not, but it ended its
    session on the plain signal sent afterwards (so they were not delivered as the signal),
    or it ended the connection on a protocol error, or it ended on neither though it ended an
    earlier session of this run on the signal (the frames broke it); ``None``: it ended on
    neither (it does not honour the signal).  The text says what happened."""
    for frame in frames:
        await peer.send(frame)
    if await peer.wait_ended(ctx.options.reply_wait):
        await trio.sleep(ctx.options.settle / 2)  # the close request may trail the close
        if _in_order(ctx, peer, tracking):
            ctx.server.honoured_signal = True
            return True, "the client ended its session on it"
        return False, f"the connection ended on a protocol error: {peer.closed}"
    if await _await_close(ctx, peer):
        ctx.server.honoured_signal = True
        return False, "the client ended its session only on the plain signal sent afterwards"
    if ctx.server.honoured_signal:
        # It ended an earlier session on the signal: these frames broke it.
        return (
            False,
            "the client ended its session on neither, though it honoured the signal "
            "in an earlier session",
        )
    return None, f"the client did not close on the signal {CLOSE_SIGNAL!r}"


def _sessions_wait(sessions: int) -> Callable[[ProbeOptions], float]:
    """Time for a scenario that runs ``sessions`` fresh client sessions, one after the other."""

    def wait(options: ProbeOptions) -> float:
        each = options.client_wait + 2 * options.reply_wait + 2 * options.settle
        return _client_wait(options) + (sessions - 1) * each

    return wait


async def _fresh_variant(
    ctx: ClientCtx, frames: Callable[[Peer], list[str]], padding: str = "X"
) -> tuple[bool | None, str]:
    """A fresh client session: the handshake (interval 0, ``padding``), then
    :func:`_signal_variant` with ``frames(peer)``."""
    peer = await ctx.connection(first=True)
    tracking = await _handshake(ctx, peer, 0, padding)
    await peer.collect(ctx.options.settle / 2)
    return await _signal_variant(ctx, peer, tracking, frames(peer))


_ONE_SIDED = (
    (f"\t{CLOSE_SIGNAL}", "a blank before it only"),
    (f"{CLOSE_SIGNAL}\n", "a blank after it only"),
)


@scenario("atmosphere.tms.client-trims", extra_time=_sessions_wait(6))
async def atmosphere_trims(ctx: ClientCtx) -> Outcome:
    # Every variant in a fresh session: a conforming client ends its session on each.  The
    # blanks sit on both sides, on one side, in a frame of its own and (TrackMessageSize)
    # behind another message in the same frame; then the padding, which is no message.
    peer = await ctx.connection(first=True)
    tracking = await _handshake(ctx, peer, 0, "X")
    await peer.collect(ctx.options.settle / 2)
    for blank in ("", "   "):
        await peer.send(blank)
    padded = f" \t{CLOSE_SIGNAL} \n"
    ended, why = await _signal_variant(ctx, peer, tracking, [_frame(peer, padded)])
    if ended is None:
        return unsupported(why)
    if not ended:
        return Outcome(False, f"the message {padded!r} (the signal with blanks around): {why}")
    tms = _tms(peer)
    findings = Findings()
    findings.note(f"{padded!r} (the signal with blanks around) ended the session")
    variants = [(text, how, False) for text, how in _ONE_SIDED]
    if tms:
        after = ", behind 'hello' in one frame"
        variants += [(text, how + after, True) for text, how in _ONE_SIDED]
    for text, how, behind in variants:

        def frames(peer: Peer, text: str = text, behind: bool = behind) -> list[str]:
            return [(_frame(peer, "hello") if behind else "") + _frame(peer, text)]

        ended, why = await _fresh_variant(ctx, frames)
        findings.expect(bool(ended), f"the message {text!r} (the signal with {how}): {why}")
    # The padding is the server's heartbeat, not a message: announced as the signal itself,
    # sending it must end nothing.
    peer = await ctx.connection(first=True)
    await _handshake(ctx, peer, 0, CLOSE_SIGNAL)
    await peer.collect(ctx.options.settle / 2)
    await peer.send(_frame(peer, CLOSE_SIGNAL))
    if _tms(peer):
        await peer.send(_frame(peer, "hello") + _frame(peer, CLOSE_SIGNAL))
    findings.expect(
        not await peer.wait_ended(ctx.options.reply_wait),
        "the handshake's padding (here the signal) reached the application as a message: "
        f"the client ended its session on it ({peer.closed})",
    )
    return findings.outcome()


@scenario("atmosphere.tms.client-carry-over", extra_time=_sessions_wait(3))
async def atmosphere_carry_over(ctx: ClientCtx) -> Outcome:
    peer = await ctx.connection(first=True)
    if not _tms(peer):
        return unsupported("the client did not ask for TrackMessageSize")
    tracking = await _handshake(ctx, peer, 0, "X")
    await peer.collect(ctx.options.settle / 2)
    # Two messages in one frame, the second cut across two frames.
    stream = _frame(peer, "hello") + _frame(peer, CLOSE_SIGNAL)
    cut = len(stream) - len(CLOSE_SIGNAL) // 2
    frames = [stream[:cut], stream[cut:]]
    ended, why = await _signal_variant(ctx, peer, tracking, frames)
    if ended is None:
        return unsupported(why)
    if not ended:
        return Outcome(False, f"the signal after 'hello' in one frame, cut across two: {why}")
    findings = Findings()
    findings.note("the signal after 'hello' in one frame, cut across two, ended the session")
    # The handshake frame carries messages too (45|uuid|0|X|5|hello delivers hello): the
    # signal alone behind it, then behind 'hello'.
    for before in ("", "hello"):
        peer = await ctx.connection(first=True)
        tracking = ctx.issue(str(uuid.uuid4()))
        messages = [m for m in (before, CLOSE_SIGNAL) if m]
        frame = "".join(_frame(peer, m) for m in [f"{tracking}|0|X|", *messages])
        ended, why = await _signal_variant(ctx, peer, tracking, [frame])
        findings.expect(bool(ended), f"the handshake frame {frame!r}: {why}")
    return findings.outcome()


def _close_time(options: ProbeOptions) -> float:
    wait = _sessions_wait(2)(options)
    if options.slow or options.inactivity_timeout <= SLOW_LIMIT:
        wait += options.client_wait + 1.3 * options.inactivity_timeout + 3 * options.reply_wait
    return wait


async def _close_request(ctx: ClientCtx, tracking: str, since: float) -> str | None:
    """The target of the close request for ``tracking``, if one comes promptly after
    ``since`` (it travels on a connection of its own, so its arrival cannot be ordered
    against the socket's close to the millisecond on a loaded machine)."""
    with trio.move_on_at(since + max(ctx.options.reply_wait, ctx.options.settle)):
        while True:
            mine = [r for r in ctx.close_requests if r[1] == tracking]
            if mine:
                return mine[0][2]
            await trio.sleep(0.01)
    return None


def _judge_close_request(findings: Findings, target: str | None, how: str) -> None:
    if findings.expect(target is not None, f"the socket closed without a close request ({how})"):
        query = dict(parse_qsl(urlsplit(target or "").query))
        stamp = query.get("_")
        number = stamp is not None and stamp.isascii() and stamp.isdigit() and len(stamp) < 20
        if findings.expect(number, f"close request without a _ timestamp in ms ({how}): {target}"):
            # A date in milliseconds since the epoch (atmosphere.js: jQuery.now()), within a
            # year of the kit's clock: not seconds, not a monotonic clock.
            off = abs(int(stamp or "0") - time.time() * 1000) / 86_400_000
            findings.expect(off < 366, f"_={stamp} is {off:.0f} days from now ({how})")


@scenario(
    "atmosphere.close.http-request",
    "atmosphere.heartbeat.client-inactivity-timeout",
    extra_time=_close_time,
)
async def atmosphere_close(ctx: ClientCtx) -> dict[str, Outcome]:
    options = ctx.options
    findings = Findings()
    timeout_case = "atmosphere.heartbeat.client-inactivity-timeout"
    # Before any handshake there is no session to close: the signal, a frame with too few
    # fields, is an ordinary message; a client ending on it sends no close request.
    peer = await ctx.connection(first=True)
    await peer.collect(options.settle / 2)
    if await _await_close(ctx, peer):
        await trio.sleep(options.settle)
        early = list(ctx.close_requests)
        findings.expect(not early, f"a close request before any handshake: {early[:1]}")
        peer = await ctx.connection(first=True)
    tracking = await _handshake(ctx, peer, 0, "X")
    await peer.collect(options.settle / 2)
    ended = await _await_close(ctx, peer)
    spare: Peer | None = None
    closed_at = trio.current_time()
    if not ended:
        reason = f"the client did not close on the signal {CLOSE_SIGNAL!r}"
        results = {"atmosphere.close.http-request": unsupported(reason)}
        if findings.problems:
            results["atmosphere.close.http-request"] = findings.outcome()
    else:
        target = await _close_request(ctx, tracking, closed_at)
        await trio.sleep(options.settle)
        _judge_close_request(findings, target, "close()")
        again = await ctx.maybe_connection(options.settle)
        findings.expect(
            again is None or again.identity != tracking, "the client reconnected after close()"
        )
        if again is not None and again.identity is None:
            spare = again  # a fresh client already: the next route's
        elif again is not None:
            # The closed session came back: refuse it from now on, so a fresh client follows.
            ctx.server.finished.add(tracking)
            await again.close(1000, "closed for good", wait=0.5)
        results = {"atmosphere.close.http-request": findings.outcome()}
    wait = options.inactivity_timeout
    if wait > SLOW_LIMIT and not options.slow:
        results[timeout_case] = unsupported(
            f"waits {wait:g} s of silence for the client's inactivity timeout: run with --slow, "
            "or give the client's timeout with --inactivity-timeout S when it is configurable"
        )
        return results
    # The inactivity timeout: the kit goes silent after the handshake (on the connection
    # still open when the client ignored the signal).
    if not peer.is_open:
        peer = spare if spare is not None and spare.is_open else await ctx.connection(first=True)
        tracking = await _handshake(ctx, peer, 0, "X")
    quiet_from = trio.current_time()
    for record in reversed(ctx.log.records):
        if record.connection == peer.number and record.direction == "sent":
            quiet_from = min(quiet_from, ctx.log.t0 + record.time)
            break
    timed_out = await peer.wait_ended(1.3 * wait + options.reply_wait)
    ended_at = trio.current_time()
    silence = ended_at - quiet_from
    if not timed_out:
        results[timeout_case] = Outcome(False, f"still open after {silence:.1f} s of silence")
        return results
    target = await _close_request(ctx, tracking, ended_at)
    await trio.sleep(options.settle)
    again = await ctx.maybe_connection(options.settle)
    back = again is not None and again.identity == tracking
    timeout = Findings()
    timeout.expect(silence >= 0.5 * wait, f"closed after {silence:.1f} s of silence, not {wait:g}")
    timeout.expect(target is not None, "no close request on the timeout")
    timeout.expect(not back, "the client reconnected after its inactivity timeout")
    timeout.note(f"closed after {silence:.1f} s of silence")
    results[timeout_case] = timeout.outcome()
    if silence >= 0.5 * wait:
        # The client timed out: the close request is due on that route too.
        _judge_close_request(findings, target, "the inactivity timeout")
        findings.expect(not back, "the client reconnected after its inactivity timeout")
        results["atmosphere.close.http-request"] = findings.outcome()
    return results


@scenario("atmosphere.tms.client-bad-length")
async def atmosphere_bad_length(ctx: ClientCtx) -> Outcome:
    # Last of the Atmosphere scenarios: a client whose stream went corrupt may not be able
    # to end its session afterwards (atmosphere.js 3.x and 4.x linger).
    peer = await ctx.connection(first=True)
    if not _tms(peer):
        return unsupported("the client did not ask for TrackMessageSize")
    tracking = await _handshake(ctx, peer, 0, "X")
    await peer.collect(ctx.options.settle / 2)
    bad = f"x|{CLOSE_SIGNAL}"
    await peer.send(bad)
    if await peer.wait_ended(ctx.options.reply_wait):
        await trio.sleep(ctx.options.settle / 2)
        if _in_order(ctx, peer, tracking):
            return Outcome(False, f"the frame {bad!r} reached the application as the signal")
        return Outcome(True, f"the stream was corrupt: {peer.closed}")
    # Whether the client still honours the plain signal after a corrupt stream is its own
    # business (atmosphere.js 2.3.6 does not): the frame delivered nothing it acted on.
    return Outcome(True, f"{bad!r} ended nothing (not delivered as the signal)")


# -- iTrack --------------------------------------------------------------------------------------


def _action(frame: str) -> Any:
    try:
        return json.loads(frame)
    except ValueError:
        return frame


def _valid_target(target: Any) -> bool:
    if not isinstance(target, dict):
        return False
    if target.get("type") == "all":
        return True
    ids = target.get("tracker_ids")
    return (
        target.get("type") == "selected"
        and isinstance(ids, list)
        and all(type(i) is int for i in ids)
    )


def _request_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return f"request {request!r:.80} is not an object"
    kind = request.get("type")
    if kind == "state":
        trackers = request.get("trackers")
        if not (isinstance(trackers, list) and all(type(t) is int for t in trackers)):
            return f"state request trackers {trackers!r:.80}"
        return None
    if kind in ("state_batch", "readings_batch", "iot_monitor"):
        if not _valid_target(request.get("target")):
            return f"{kind} target {request.get('target')!r:.80}"
        rate = request.get("rate_limit")
        if rate is not None and not (isinstance(rate, str) and _TIMESPAN.fullmatch(rate)):
            return f"{kind} rate_limit {rate!r}"
        return None
    return f"unknown request type {kind!r}"


def _requests_of(action: dict[str, Any]) -> list[str]:
    requests = action.get("requests")
    if isinstance(requests, list):
        return sorted(json.dumps(r, sort_keys=True) for r in requests)
    return [json.dumps({"legacy": action.get("events"), "trackers": action.get("trackers")})]


def _itrack_answer(action: dict[str, Any]) -> list[str]:
    """The kit's answers to a subscribe: the normal response, then the shapes a client must
    also accept (no ``success``; the deprecated format)."""
    ids: list[int] = []
    names: list[str] = []
    for request in action.get("requests") or []:
        if isinstance(request, dict):
            names.append(str(request.get("type")))
            trackers = request.get("trackers")
            if isinstance(trackers, list):
                ids += [t for t in trackers if type(t) is int]
    statuses = {str(i): "normal" for i in ids}
    data = {name: {"value": statuses, "success": True} for name in names or ["state"]}
    normal = {"type": "response", "action": "subscription/subscribe", "events": names, "data": data}
    bare = dict(normal, data={name: {"value": statuses} for name in names or ["state"]})
    legacy = dict(normal, data={"state": statuses})
    return [json.dumps(m, separators=(",", ":")) for m in (normal, bare, legacy)]


_ITRACK_PATH = urlsplit(subject_url("itrack", "127.0.0.1", 80)).path + "event/subscription"
"""Where the WebSocket endpoint is under the kit's iTrack base URL (:func:`subject_url`)."""


def _path_problem(peer: Peer) -> str | None:
    target = peer.request.target if peer.request is not None else ""
    path = urlsplit(target).path
    return None if path in (_ITRACK_PATH, _ITRACK_PATH + "/") else f"opened {path!r}"


@scenario(
    "itrack.open.client-path",
    "itrack.session.subscribe-after-handshake",
    "itrack.actions.action-and-hash",
    "itrack.actions.client-valid-requests",
    "itrack.responses.client-tolerates-variants",
    "itrack.errors.client-null-action",
    "itrack.errors.client-bad-json",
    "itrack.session.resubscribe-after-reconnect",
)
async def itrack_session(ctx: ClientCtx) -> dict[str, Outcome]:
    options = ctx.options
    peer = await ctx.connection(first=True)
    early = [f for f in await peer.collect(options.settle) if f != "X"]
    tracking = await _handshake(ctx, peer, options.heartbeat_ms, "X")
    actions: list[Any] = []

    async def serve_actions(peer: Peer, duration: float) -> list[Any]:
        got: list[Any] = []
        deadline = trio.current_time() + duration
        while (item := await peer.recv(max(0.0, deadline - trio.current_time()))) is not None:
            if item == "X" or not isinstance(item, str):
                continue
            action = _action(item)
            got.append(action)
            if isinstance(action, dict) and action.get("action") == "subscribe":
                for answer in _itrack_answer(action):
                    await peer.send(_frame(peer, answer))
        return got

    actions += await serve_actions(peer, options.settle)
    results: dict[str, Outcome] = {}
    results["itrack.session.subscribe-after-handshake"] = Outcome(
        not early, f"sent before the handshake: {early[:1]!r}" if early else "waited"
    )
    subscribes = [a for a in actions if isinstance(a, dict) and a.get("action") == "subscribe"]
    if not actions:
        reason = "the client sent no action (it must subscribe to something to be judged)"
        for case in ("itrack.actions.action-and-hash", "itrack.actions.client-valid-requests"):
            results[case] = unsupported(reason)
    else:
        shape = Findings()
        for action in actions:
            if not shape.expect(isinstance(action, dict), f"not a JSON object: {action!r:.80}"):
                continue
            shape.expect(
                action.get("action") in ("subscribe", "unsubscribe"),
                f"action {action.get('action')!r}",
            )
            value = action.get("hash")
            shape.expect(
                isinstance(value, str) and len(value) == 32, f"hash {value!r} is not 32 characters"
            )
            if ctx.server.hashes and isinstance(value, str):
                shape.expect(
                    value in ctx.server.hashes, f"hash {value} was not issued by user/auth"
                )
        results["itrack.actions.action-and-hash"] = shape.outcome()
        valid = Findings()
        for action in subscribes:
            requests = action.get("requests")
            if requests is None:
                trackers = action.get("trackers")
                valid.expect(
                    isinstance(trackers, list) and all(type(t) is int for t in trackers),
                    f"legacy trackers {trackers!r:.80}",
                )
                continue
            if valid.expect(isinstance(requests, list), f"requests {requests!r:.80}"):
                for request in requests:
                    problem = _request_problem(request)
                    valid.expect(problem is None, problem or "")
        results["itrack.actions.client-valid-requests"] = valid.outcome()
    # Each odd frame is sent on its own and judged on what follows it, so a client that
    # ends its session on one of them is judged on that one only.
    actions += await serve_actions(peer, options.settle)
    if subscribes:
        results["itrack.responses.client-tolerates-variants"] = Outcome(
            peer.is_open,
            "after responses without success and in the deprecated format, "
            + (
                "the connection stays open" if peer.is_open else f"the client closed: {peer.closed}"
            ),
        )
    else:
        results["itrack.responses.client-tolerates-variants"] = unsupported(
            "the client subscribed nothing, so no response variant was sent"
        )
    raw = Findings()
    for text in ("this is not json", '{"no":"type"}'):
        if not peer.is_open:
            break
        await peer.send(_frame(peer, text))
        actions += await serve_actions(peer, options.settle)
        raw.expect(peer.is_open, f"the client closed after {text!r}: {peer.closed}")
    raw.note("the connection stays open after a non-JSON frame and a frame without type")
    results["itrack.errors.client-bad-json"] = (
        raw.outcome() if raw.problems or peer.is_open else unsupported("the client had ended")
    )
    last = peer
    if not subscribes:
        results["itrack.session.resubscribe-after-reconnect"] = unsupported(
            "the client subscribed nothing"
        )
    elif peer.is_open:
        await peer.abort()
        again = await ctx.maybe_connection(options.reconnect_wait)
        if again is None or _param(_query(again), "X-Atmosphere-tracking-id") != tracking:
            results["itrack.session.resubscribe-after-reconnect"] = unsupported(
                "the client did not reconnect with its tracking id"
            )
        else:
            last = again
            # What comes before the kit's first frame is told apart (the reopen should
            # happen on that frame).
            premature = [f for f in await again.collect(options.settle) if f != "X"]
            await again.send(RECONNECT_PADDING)
            resent = await serve_actions(again, options.settle + options.heartbeat_ms / 1000.0)
            resent = [_action(f) for f in premature if isinstance(f, str)] + resent
            wanted = sorted({r for a in subscribes for r in _requests_of(a)})
            got = sorted({r for a in resent if isinstance(a, dict) for r in _requests_of(a)})
            missing = [r for r in wanted if r not in got]
            again_ok = Findings()
            again_ok.expect(not missing, f"not subscribed again: {missing[:2]}")
            # Sending them before the kit's first frame (a reopen reported at socket open)
            # still re-sends them: that timing is a SHOULD of Atmosphere §5, judged as
            # atmosphere.reconnect.client-reopens-on-first-frame, not a failure of this MUST.
            if premature:
                again_ok.note(
                    f"sent {premature[0]!r:.80} before the server's first frame: the reopen "
                    "was reported at socket open (see atmosphere.reconnect."
                    "client-reopens-on-first-frame, a SHOULD)"
                )
            again_ok.note(f"{len(wanted)} request(s) subscribed again")
            results["itrack.session.resubscribe-after-reconnect"] = again_ok.outcome()
    else:
        results["itrack.session.resubscribe-after-reconnect"] = unsupported(
            "the client had ended its session"
        )
    results["itrack.errors.client-null-action"] = await _null_action_error(ctx, last, serve_actions)
    paths = Findings()
    for each in (peer, last) if last is not peer else (peer,):
        problem = _path_problem(each)
        paths.expect(problem is None, f"{problem}, not <base>event/subscription")
    paths.note(f"opened {_ITRACK_PATH}")
    results["itrack.open.client-path"] = paths.outcome()
    return results


def _open(peer: Peer) -> bool:
    return peer.is_open


async def _null_action_error(
    ctx: ClientCtx, peer: Peer, serve: Callable[[Peer, float], Awaitable[list[Any]]]
) -> Outcome:
    """Send an error with action ``"null"`` last: the client passes if the connection stays
    up, or if it ends its session in order (a close it starts, code 1000: the error reached
    the application, which chose to stop); dropping the connection or closing with an error
    code fails."""
    if not peer.is_open:
        return unsupported("the client had ended its session before the error could be sent")
    error = {"type": "error", "action": "null", "status": {"code": 1, "description": "Test error"}}
    await peer.send(_frame(peer, json.dumps(error, separators=(",", ":"))))
    await serve(peer, ctx.options.settle)
    if _open(peer):
        return Outcome(True, "the connection stays open after an error with action null")
    closed = peer.closed
    if closed is not None and closed.by_peer and closed.code == 1000 and closed.error is None:
        return Outcome(True, "the client ended its session in order (close 1000) on the error")
    return Outcome(False, f"the connection ended badly after an error with action null: {closed}")


def _hash_of(action: Any) -> Any:
    return action.get("hash") if isinstance(action, dict) else None


def _subscribes(actions: Iterable[Any]) -> list[dict[str, Any]]:
    return [a for a in actions if isinstance(a, dict) and a.get("action") == "subscribe"]


async def _first_subscribe(ctx: ClientCtx, peer: Peer) -> dict[str, Any] | None:
    """The handshake, then the client's first subscribe (``None`` when none comes)."""
    options = ctx.options
    await _handshake(ctx, peer, options.heartbeat_ms, "X")
    deadline = trio.current_time() + options.settle + options.reply_wait
    while (item := await peer.recv(max(0.0, deadline - trio.current_time()))) is not None:
        if isinstance(item, str) and item != "X" and (found := _subscribes([_action(item)])):
            return found[0]
    return None


def _ended_in_order(peer: Peer) -> bool:
    """The connection is still up, or the client closed it with 1000 (its application chose
    to stop); a dropped socket or an error close is not in order."""
    closed = peer.closed
    return peer.is_open or (
        closed is not None and closed.by_peer and closed.code == 1000 and closed.error is None
    )


@scenario("itrack.session.client-forgotten-hash")
async def itrack_forgotten_hash(ctx: ClientCtx) -> Outcome:
    """Answer the client's subscribe with error 3, then its next one (if it logs in again)
    with error 4: each time the dead hash must not come back, and a client that logs in
    again must subscribe again with the fresh hash."""
    options = ctx.options
    peer = await ctx.connection(first=True)
    last = await _first_subscribe(ctx, peer)
    if last is None:
        return unsupported("the client subscribed nothing, so no error could answer it")
    wanted = set(_requests_of(last))
    found = Findings()
    for code in (3, 4):
        dead = _hash_of(last)
        known = set(ctx.server.hashes)
        error = {
            "type": "error",
            "action": "subscription/subscribe",
            "status": {"code": code, "description": "Wrong hash" if code == 3 else "Session ended"},
            "data": {"events": ["state"], "trackers": []},
        }
        await peer.send(_frame(peer, json.dumps(error, separators=(",", ":"))))
        got: list[Any] = []
        subscribed: set[str] = set()
        deadline = trio.current_time() + options.settle + 2 * options.reply_wait
        while (item := await peer.recv(max(0.0, deadline - trio.current_time()))) is not None:
            if not isinstance(item, str) or item == "X":
                continue
            action = _action(item)
            got.append(action)
            if _hash_of(action) == dead:
                break
            fresh = ctx.server.hashes - known
            if _subscribes([action]) and _hash_of(action) in fresh:
                subscribed |= set(_requests_of(action))
                if wanted <= subscribed:
                    break
        again = [a for a in got if _hash_of(a) == dead]
        found.expect(not again, f"after error {code} the client sent its dead hash again")
        if not found.expect(
            _ended_in_order(peer), f"the connection ended badly after error {code}: {peer.closed}"
        ):
            break
        fresh = ctx.server.hashes - known
        if not peer.is_open:
            found.note(f"the client ended its session after error {code}")
            break
        if not fresh:
            found.note(f"the client did not log in again after error {code}")
            break
        stale = [a for a in got if _hash_of(a) not in fresh and _hash_of(a) != dead]
        found.expect(
            not stale,
            f"after logging in again, an action without the fresh hash: {stale[:1]!r:.80}",
        )
        missing = sorted(wanted - subscribed)
        found.expect(
            not missing,
            f"logged in again after error {code} but did not subscribe again with the fresh "
            f"hash: {missing[:2]}",
        )
        if found.problems:
            break
        found.note(f"after error {code} the client logged in again and subscribed again")
        last = [a for a in _subscribes(got) if _hash_of(a) in fresh][-1]
    if not found.problems and peer.is_open:
        await peer.send(_frame(peer, _itrack_answer(last)[0]))
    return found.outcome()


@scenario("itrack.events.client-logout")
async def itrack_logout(ctx: ClientCtx) -> Outcome:
    """Answer the client's subscribe, then send ``logout``: its hash must not come back, on
    this connection or on a reconnect of the session."""
    options = ctx.options
    peer = await ctx.connection(first=True)
    first = await _first_subscribe(ctx, peer)
    if first is None:
        return unsupported("the client subscribed nothing, so there was no session to end")
    tracking = next(iter(ctx.identities))
    dead = _hash_of(first)
    await peer.send(_frame(peer, _itrack_answer(first)[0]))
    await peer.collect(options.settle)
    logout = {"type": "event", "event": "logout", "data": "session closed"}
    await peer.send(_frame(peer, json.dumps(logout, separators=(",", ":"))))
    found = Findings()
    frames = [f for f in await peer.collect(options.settle + options.reply_wait) if f != "X"]
    found.expect(
        not [f for f in frames if isinstance(f, str) and _hash_of(_action(f)) == dead],
        "after logout the client sent its dead hash again",
    )
    found.expect(_ended_in_order(peer), f"the connection ended badly after logout: {peer.closed}")
    if peer.is_open:
        found.note("the connection stays open after logout")
        return found.outcome()
    found.note(f"the client closed after logout: {peer.closed}")
    again = await ctx.maybe_connection(options.reconnect_wait)
    if again is not None and again.identity != tracking:
        ctx.peers.remove(again)
        ctx.server.give_back(again)  # a new session: the next scenario's
    elif again is not None:
        await again.send(RECONNECT_PADDING)
        frames = [f for f in await again.collect(options.settle + options.reply_wait) if f != "X"]
        found.expect(
            not [f for f in frames if isinstance(f, str) and _hash_of(_action(f)) == dead],
            "after logout the client reconnected and sent its dead hash again",
        )
        found.note("the client reconnected after logout")
    return found.outcome()


# -- FleetFreedom --------------------------------------------------------------------------------


def _ff(name: str, body: dict[str, Any]) -> str:
    return f"{name} {json.dumps(body, separators=(',', ':'))}"


def _now_iso() -> str:
    return "2024-01-01T00:00:00.000Z"


class _FleetFreedomPeer:
    """Serves one FleetFreedom client connection the way a permissive server would: any
    login succeeds, every command is answered, subscriptions are recorded."""

    def __init__(self, ctx: ClientCtx, peer: Peer) -> None:
        self.ctx = ctx
        self.peer = peer
        self.frames: list[str] = []
        self.subscribed: set[tuple[str, str]] = set()
        self.logged_out_at: float | None = None
        self.ghost: str | None = None
        """The last ghostId this connection handed the client."""

    async def greet(self, code: int, ghost: str, logged_in: bool = False) -> None:
        body: dict[str, Any] = {
            "errorCode": code,
            "message": "Please login" if code == 8 else "OK",
            "serverTime": _now_iso(),
            "ghostId": ghost,
            "expiry": _now_iso(),
        }
        self.ghost = ghost
        if logged_in:
            body.update(_session_fields())
        await self.peer.send(_ff("connectionResponse", body))

    async def serve(self, duration: float) -> None:
        deadline = trio.current_time() + duration
        while (item := await self.peer.recv(max(0.0, deadline - trio.current_time()))) is not None:
            if isinstance(item, str):
                self.frames.append(item)
                await self.answer(item)

    async def answer(self, frame: str) -> None:
        name, _, rest = frame.partition(" ")
        try:
            body = json.loads(rest) if rest else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await self.peer.send(_ff(name + "Response", {"errorCode": 3, "message": "invalidData"}))
            return
        reply: dict[str, Any] = {"errorCode": 0, "message": "OK"}
        if "reqId" in body:
            reply = {"reqId": body["reqId"], **reply}
        if name == "login":
            ghost = self.ghost = self.ctx.issue(str(uuid.uuid4()))
            reply.update(serverTime=_now_iso(), ghostId=ghost, expiry=_now_iso())
            reply.update(_session_fields())
        elif name == "logout":
            self.logged_out_at = trio.current_time()
            reply.update(ghostId="", expiry=_now_iso())
        elif name in ("subscribe", "unsubscribe"):
            company = body.get("company")
            key = json.dumps(company, sort_keys=True)
            types = body.get("subscriptionTypes")
            types = [t for t in types if isinstance(t, str)] if isinstance(types, list) else []
            if name == "subscribe":
                self.subscribed |= {(key, t) for t in types}
            reply.update(company=company, merged=types, denied=[], invalid=[])
        elif name.startswith("get") and name.endswith("List"):
            plural = name[3:-4]
            reply.update(company=body.get("company"), **{plural[:1].lower() + plural[1:]: []})
        await self.peer.send(_ff(name + "Response", reply))


def _session_fields() -> dict[str, Any]:
    return {
        "user": {"login": "conformance@example.com", "company": 1},
        "sessionPolicy": {},
        "passwordPolicy": {},
    }


def _line_problems(frames: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Frames that are not ``name {object}``, bare names, and loose (non-compact) JSON."""
    shape: list[str] = []
    bare: list[str] = []
    loose: list[str] = []
    for frame in frames:
        name, space, rest = frame.partition(" ")
        if not space:
            bare.append(frame)
            continue
        try:
            body = json.loads(rest)
        except ValueError:
            body = None
        if not re.fullmatch(r"[a-z][A-Za-z0-9]*", name) or not isinstance(body, dict):
            shape.append(frame)
        elif json.dumps(body, separators=(",", ":"), ensure_ascii=False) != rest and any(
            c in rest for c in " \n\t"
        ):
            loose.append(frame)
    return shape, bare, loose


@scenario(
    "fleetfreedom.session.no-command-before-connection-response",
    "fleetfreedom.framing.client-always-body",
    "fleetfreedom.framing.line-format",
    "fleetfreedom.framing.compact-json",
    "fleetfreedom.session.client-accepted-codes",
    "fleetfreedom.client.reconnect-same-ghost-id",
    "fleetfreedom.subscriptions.client-resubscribe",
    "fleetfreedom.framing.client-binary-is-error",
)
async def fleetfreedom_session(ctx: ClientCtx) -> dict[str, Outcome]:
    options = ctx.options
    peer = await ctx.connection(first=True)
    early = _text(await peer.collect(options.settle))
    results: dict[str, Outcome] = {
        "fleetfreedom.session.no-command-before-connection-response": Outcome(
            not early, f"sent before connectionResponse: {early[:2]!r}" if early else "waited"
        )
    }
    served = _FleetFreedomPeer(ctx, peer)
    served.frames += early
    ghost = ctx.issue(str(uuid.uuid4()))
    await served.greet(8, ghost)
    for frame in early:
        await served.answer(frame)
    await served.serve(options.settle)
    accepted = Findings()
    accepted.expect(peer.is_open, f"closed after connectionResponse 8: {peer.closed}")
    expected = served.ghost or ghost
    await peer.abort()
    again = await ctx.maybe_connection(options.reconnect_wait)
    if again is None:
        results["fleetfreedom.client.reconnect-same-ghost-id"] = unsupported(
            "the client did not reconnect after the connection dropped"
        )
        results["fleetfreedom.subscriptions.client-resubscribe"] = unsupported("no reconnect")
        results["fleetfreedom.framing.client-binary-is-error"] = unsupported("no reconnect")
    else:
        request = again.request
        presented = ghost_id_from_request(request.target, request.subprotocols) if request else None
        results["fleetfreedom.client.reconnect-same-ghost-id"] = Outcome(
            presented == expected, f"reconnected presenting {presented!r} (session {expected})"
        )
        resumed = _FleetFreedomPeer(ctx, again)
        await resumed.greet(0, expected, logged_in=True)
        await resumed.serve(options.settle)
        accepted.expect(again.is_open, f"closed after connectionResponse 0: {again.closed}")
        if served.subscribed:
            missing = served.subscribed - resumed.subscribed
            results["fleetfreedom.subscriptions.client-resubscribe"] = Outcome(
                not missing,
                f"not subscribed again: {sorted(missing)[:3]}"
                if missing
                else f"{len(served.subscribed)} subscription(s) renewed",
            )
        else:
            results["fleetfreedom.subscriptions.client-resubscribe"] = unsupported(
                "the client subscribed nothing before the reconnect"
            )
        served.frames += resumed.frames
        await again.send_binary(b"\x00binary")
        ended = await again.wait_ended(options.reply_wait)
        results["fleetfreedom.framing.client-binary-is-error"] = Outcome(
            ended,
            f"closed on a binary frame: {again.closed}"
            if ended
            else "the connection stayed open after a binary frame",
        )
    accepted.note("went on after codes 8 and 0 (7 and 16 are not tried)")
    results["fleetfreedom.session.client-accepted-codes"] = accepted.outcome()
    shape, bare, loose = _line_problems(served.frames)
    results["fleetfreedom.framing.client-always-body"] = Outcome(
        not bare, f"bare name {bare[0]!r}" if bare else f"{len(served.frames)} frame(s) with a body"
    )
    results["fleetfreedom.framing.line-format"] = Outcome(
        not shape, f"not <name> <JSON object>: {shape[0]!r:.100}" if shape else ""
    )
    results["fleetfreedom.framing.compact-json"] = Outcome(
        not loose, f"loose JSON: {loose[0]!r:.100}" if loose else ""
    )
    return results


async def _ended_session(ctx: ClientCtx, frame: str) -> tuple[bool, Peer | None, set[str]]:
    """Serve a session, send ``frame``; whether the client closed, and a reconnect (if any)."""
    peer = await ctx.connection(first=True)
    served = _FleetFreedomPeer(ctx, peer)
    await served.greet(8, ctx.issue(str(uuid.uuid4())))
    await served.serve(ctx.options.settle)
    await peer.send(frame)
    ended = await peer.wait_ended(ctx.options.reply_wait)
    again = None
    if ended:
        again = await ctx.maybe_connection(ctx.options.settle * 2)
        if again is not None and again.identity not in ctx.identities:
            ctx.peers.remove(again)
            ctx.server.give_back(again)
            again = None
    return ended, again, set(ctx.identities)


@scenario("fleetfreedom.session.client-session-ended", "fleetfreedom.client.no-reconnect-after-end")
async def fleetfreedom_session_ended(ctx: ClientCtx) -> dict[str, Outcome]:
    ended, again, _ = await _ended_session(ctx, "sessionEnded {}")
    return {
        "fleetfreedom.session.client-session-ended": Outcome(
            ended and again is None,
            "closed for good"
            if ended and again is None
            else ("reconnected after sessionEnded" if ended else "stayed open after sessionEnded"),
        ),
        "fleetfreedom.client.no-reconnect-after-end": (
            Outcome(again is None, "reconnected after sessionEnded" if again else "")
            if ended
            else unsupported("the client did not close after sessionEnded")
        ),
    }


@scenario("fleetfreedom.framing.client-reads-bare-name")
async def fleetfreedom_bare_name(ctx: ClientCtx) -> Outcome:
    ended, again, _ = await _ended_session(ctx, "sessionEnded")
    return Outcome(
        ended and again is None,
        "a bare sessionEnded ended the session"
        if ended
        else "a bare sessionEnded was not read as sessionEnded",
    )


def _keepalive_time(options: ProbeOptions) -> float:
    if not options.slow and options.keepalive > SLOW_LIMIT:
        return 0.0
    return _client_wait(options) + 1.3 * options.keepalive


@scenario("fleetfreedom.session.client-keepalive", extra_time=_keepalive_time)
async def fleetfreedom_keepalive(ctx: ClientCtx) -> Outcome:
    every = ctx.options.keepalive
    if every > SLOW_LIMIT and not ctx.options.slow:
        raise Unsupported(
            f"waits about {every:g} s of silence for the client's noop: run with --slow, or "
            "give the client's interval with --keepalive S when it is configurable"
        )
    peer = await ctx.connection(first=True)
    served = _FleetFreedomPeer(ctx, peer)
    await served.greet(8, ctx.issue(str(uuid.uuid4())))
    await served.serve(ctx.options.settle)
    last = trio.current_time()
    for record in reversed(ctx.log.records):
        if record.connection == peer.number and record.direction == "received":
            last = ctx.log.t0 + record.time
            break
    deadline = last + 1.3 * every + ctx.options.settle
    noop: tuple[float, Any] | None = None
    others: list[str] = []
    while (item := await peer.recv(max(0.0, deadline - trio.current_time()))) is not None:
        if not isinstance(item, str):
            continue
        await served.answer(item)
        name, _, rest = item.partition(" ")
        if name == "noop":
            noop = (trio.current_time(), _action(rest))
            break
        others.append(item)
    findings = Findings()
    pings = [f for f in others if f.split(" ", 1)[0].lower() == "ping"]
    findings.expect(not pings, f"the client sent {pings[0][:60]!r}: there is no ping command"
                    if pings else "")  # fmt: skip
    if findings.expect(noop is not None, f"no noop within {1.3 * every:g} s of silence"):
        assert noop is not None
        at, body = noop
        findings.expect(
            isinstance(body, dict) and "reqId" in body, f"noop without reqId: {body!r:.80}"
        )
        findings.expect(
            at - last >= 0.5 * every,
            f"noop after {at - last:.1f} s of silence, not about {every:g} s",
        )
        findings.note(f"noop after {at - last:.1f} s of silence")
    return findings.outcome()


@scenario("fleetfreedom.session.client-refused-closes")
async def fleetfreedom_refused(ctx: ClientCtx) -> Outcome:
    peer = await ctx.connection(first=True)
    served = _FleetFreedomPeer(ctx, peer)
    await served.greet(9, ctx.issue(str(uuid.uuid4())))
    ended = await peer.wait_ended(ctx.options.reply_wait)
    closed = peer.closed
    if not ended:
        return Outcome(False, "stayed open after connectionResponse errorCode 9")
    return Outcome(
        closed is not None and closed.by_peer and closed.code == 1008,
        f"closed with {closed.code if closed is not None else None} after errorCode 9",
    )


class _StrictPeer(_FleetFreedomPeer):
    """Serves like :class:`_FleetFreedomPeer`, but as a server that knows no session on this
    connection: until a ``login`` succeeded every command but logout and noop is answered
    errorCode 8 (userNotLoggedIn), and nothing it asked for takes effect."""

    def __init__(self, ctx: ClientCtx, peer: Peer) -> None:
        super().__init__(ctx, peer)
        self.logins: list[Any] = []

    async def answer(self, frame: str) -> None:
        name, _, rest = frame.partition(" ")
        if name == "login":
            self.logins.append(_action(rest))
        elif not self.logins and name not in ("logout", "noop"):
            body = _action(rest)
            reply: dict[str, Any] = {"errorCode": 8, "message": "userNotLoggedIn"}
            if isinstance(body, dict) and "reqId" in body:
                reply = {"reqId": body["reqId"], **reply}
            await self.peer.send(_ff(name + "Response", reply))
            return
        await super().answer(frame)


def _username(login: Any) -> Any:
    return login.get("username") if isinstance(login, dict) else None


@scenario("fleetfreedom.session.client-login-again")
async def fleetfreedom_login_again(ctx: ClientCtx) -> Outcome:
    """A client that logged in and subscribed reconnects to a server that forgot its session
    (a restart): ``connectionResponse`` 8 on the resume.  It must stay, log in again (with
    the same user) and, once logged in, subscribe again to all it had."""
    options = ctx.options
    peer = await ctx.connection(first=True)
    served = _StrictPeer(ctx, peer)
    await served.greet(8, ctx.issue(str(uuid.uuid4())))
    await served.serve(options.settle)
    if not served.logins or not served.subscribed:
        return unsupported("the client did not log in and subscribe on its first connection")
    await peer.abort()
    again = await ctx.maybe_connection(options.reconnect_wait)
    if again is None:
        return unsupported("the client did not reconnect after the connection dropped")
    resumed = _StrictPeer(ctx, again)
    await resumed.greet(8, ctx.issue(str(uuid.uuid4())))
    deadline = trio.current_time() + options.reply_wait
    while (
        again.is_open
        and trio.current_time() < deadline
        and not (resumed.logins and served.subscribed <= resumed.subscribed)
    ):
        await resumed.serve(min(0.1, max(0.0, deadline - trio.current_time())))
    await resumed.serve(options.settle)
    findings = Findings()
    findings.expect(again.is_open, f"closed after connectionResponse 8 on a resume: {again.closed}")
    if findings.expect(resumed.logins, "did not log in again after connectionResponse 8"):
        user = _username(served.logins[-1])
        findings.expect(
            _username(resumed.logins[0]) == user,
            f"logged in again as {_username(resumed.logins[0])!r}, not {user!r}",
        )
        missing = served.subscribed - resumed.subscribed
        findings.expect(not missing, f"not subscribed again once logged in: {sorted(missing)[:3]}")
    findings.note(f"logged in again and renewed {len(served.subscribed)} subscription(s)")
    return findings.outcome()


SIGNAL_NAME = "trackwireConformance"
"""A message name no FleetFreedom client models: ``trackwireConformance {"message": <signal>}``
reaches a conforming client's application as an unknown message carrying the signal."""
RAW_SIGNAL = f"{SIGNAL_NAME} {CLOSE_SIGNAL}"
"""A line whose body is not JSON: a conforming client hands it to its application as an
unreadable line with exactly this raw text."""


def _ff_signal() -> str:
    return _ff("broadcast", {"kind": "maintenance", "message": CLOSE_SIGNAL})


async def _ff_ends(served: _FleetFreedomPeer, wait: float) -> bool:
    """Serve (answering logout) until the connection ends or ``wait`` passed."""
    peer = served.peer
    deadline = trio.current_time() + wait
    while not peer.ended.is_set() and trio.current_time() < deadline:
        await served.serve(min(0.1, max(0.0, deadline - trio.current_time())))
    return peer.ended.is_set()


def _ff_in_order(served: _FleetFreedomPeer, since: float) -> bool:
    """The client ended its session the way its application does (logout since ``since``,
    then a close it started with 1000 or no status), not on a protocol error."""
    closed = served.peer.closed
    return (
        served.logged_out_at is not None
        and served.logged_out_at >= since
        and closed is not None
        and closed.error is None
        and closed.by_peer
        and closed.code in (1000, 1005)
    )


async def _ff_signal_variant(
    ctx: ClientCtx, served: _FleetFreedomPeer, frames: list[str]
) -> tuple[bool | None, str]:
    """Send ``frames``, the last of which a conforming client delivers as the close signal
    (see :func:`fleetfreedom_keeps_unknown`); the answer reads as :func:`_signal_variant`'s."""
    since = trio.current_time()
    for frame in frames:
        await served.peer.send(frame)
    if await _ff_ends(served, ctx.options.reply_wait):
        if _ff_in_order(served, since):
            return True, "the client ended its session on it"
        return False, f"the connection ended without a logout or on an error: {served.peer.closed}"
    since = trio.current_time()
    await served.peer.send(_ff_signal())
    if await _ff_ends(served, ctx.options.reply_wait) and _ff_in_order(served, since):
        return False, "the client ended its session only on the plain signal sent afterwards"
    return None, f"the client did not close on the signal {CLOSE_SIGNAL!r}"


async def _ff_session(ctx: ClientCtx) -> _FleetFreedomPeer:
    peer = await ctx.connection(first=True)
    served = _FleetFreedomPeer(ctx, peer)
    await served.greet(8, ctx.issue(str(uuid.uuid4())))
    await served.serve(ctx.options.settle)
    return served


@scenario("fleetfreedom.subscriptions.client-keeps-unknown")
async def fleetfreedom_keeps_unknown(ctx: ClientCtx) -> Outcome:
    """Messages a client does not model, then ``trackwireConformance {"message": <signal>}``;
    then, to a second fresh client, the signal as a broadcast.

    The contract: an application ends its session (logout, then close) on the close signal
    as the ``message`` of a ``broadcast``, and as the ``message`` of an unknown message named
    ``trackwireConformance`` (which it receives only if the client hands unknown messages
    on).  A client that ends on neither is UNSUPPORTED; one that ends only on the other
    form sent afterwards, or drops the connection, fails."""
    served = await _ff_session(ctx)
    others = [
        _ff("assetSuspended", {"id": 1, "company": 1}),
        _ff("assetDeleted", {"id": 2, "company": 1}),
        _ff("assetGeneralMerged", {"id": 3, "company": 1, "name": "x", "v": [1]}),
        _ff("broadcast", {"kind": "upgrade", "message": "not the signal"}),
        _ff("geofenceAlert", {"id": 4, "company": 1}),
        _ff("unknownCommandResponse", {"errorCode": 61, "message": "unknownCommand"}),
    ]
    unknown = _ff(SIGNAL_NAME, {"message": CLOSE_SIGNAL})
    ended, why = await _ff_signal_variant(ctx, served, [*others, unknown])
    if ended is None:
        return unsupported(why)
    findings = Findings()
    findings.expect(ended, f"{len(others)} messages it may not model, then {unknown!r}: {why}")
    if not ended:
        return findings.outcome()
    second = await _ff_session(ctx)
    if await _ff_ends(second, 0) or not second.peer.is_open:
        return findings.outcome()
    since = trio.current_time()
    await second.peer.send(_ff_signal())
    if await _ff_ends(second, ctx.options.reply_wait):
        findings.expect(
            _ff_in_order(second, since),
            f"the connection ended on the broadcast signal without a logout: {second.peer.closed}",
        )
    else:
        since = trio.current_time()
        await second.peer.send(unknown)
        findings.expect(
            not (await _ff_ends(second, ctx.options.reply_wait) and _ff_in_order(second, since)),
            "the broadcast signal did not reach the application as a broadcast (the client "
            f"ended its session on {unknown!r} sent afterwards)",
        )
    findings.note("unknown messages and the broadcast reached the application")
    return findings.outcome()


@scenario("fleetfreedom.errors.client-bad-json")
async def fleetfreedom_bad_json(ctx: ClientCtx) -> Outcome:
    """Lines with a bad body that hold the signal, then :data:`RAW_SIGNAL`.

    None of the bad lines may end the session (none is a broadcast); the contract: an
    application ends its session on an unreadable line whose raw text is exactly
    :data:`RAW_SIGNAL` (which it receives only if the client keeps such lines raw), and on
    the plain broadcast signal.  Ending on a bad line fails, as does ending only on the
    plain signal sent afterwards; a client that ends on neither is UNSUPPORTED."""
    served = await _ff_session(ctx)
    peer = served.peer
    since = trio.current_time()
    bad = [
        'broadcast {"kind":"maintenance","message":"' + CLOSE_SIGNAL + '"',
        f'broadcast ["{CLOSE_SIGNAL}"]',
        f'broadcast "{CLOSE_SIGNAL}"',
        "broadcast null",
    ]
    for frame in bad:
        await peer.send(frame)
    if await _ff_ends(served, ctx.options.settle):
        if _ff_in_order(served, since):
            return Outcome(False, f"a line with a bad body ended the session: {bad!r:.160}")
        return Outcome(False, f"the connection ended after lines with a bad body: {peer.closed}")
    ended, why = await _ff_signal_variant(ctx, served, [RAW_SIGNAL])
    if ended is None:
        return unsupported(why)
    return Outcome(ended, f"{len(bad)} lines with a bad body, then {RAW_SIGNAL!r}: {why}")


@scenario("fleetfreedom.session.client-closes-after-logout", "fleetfreedom.client.close-code")
async def fleetfreedom_close(ctx: ClientCtx) -> dict[str, Outcome]:
    peer = await ctx.connection(first=True)
    served = _FleetFreedomPeer(ctx, peer)
    await served.greet(8, ctx.issue(str(uuid.uuid4())))
    await served.serve(ctx.options.settle)
    await peer.send(_ff("broadcast", {"kind": "maintenance", "message": CLOSE_SIGNAL}))
    deadline = trio.current_time() + ctx.options.reply_wait
    while not peer.ended.is_set() and trio.current_time() < deadline:
        await served.serve(min(0.1, max(0.0, deadline - trio.current_time())))
    if not peer.ended.is_set():
        reason = f"the client did not close on the signal {CLOSE_SIGNAL!r}"
        return {
            "fleetfreedom.session.client-closes-after-logout": unsupported(reason),
            "fleetfreedom.client.close-code": unsupported(reason),
        }
    closed = peer.closed
    code = closed.code if closed is not None else None
    reason_bytes = len(closed.reason.encode()) if closed is not None else 0
    results = {
        "fleetfreedom.client.close-code": Outcome(
            closed is not None and closed.by_peer and code == 1000 and reason_bytes <= 123,
            f"closed with code {code} and a {reason_bytes}-byte reason",
        )
    }
    if served.logged_out_at is None:
        results["fleetfreedom.session.client-closes-after-logout"] = unsupported(
            "the client closed without logging out"
        )
    else:
        results["fleetfreedom.session.client-closes-after-logout"] = Outcome(
            True, "closed after logoutResponse"
        )
    return results


def scenario_cases(protocol: str) -> frozenset[str]:
    return frozenset(c for s in CLIENT_SCENARIOS if s.protocol == protocol for c in s.cases)
