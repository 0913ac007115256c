"""What every probe stands on: raw WebSocket connections the kit drives frame by frame, the
wire log, the per-case context, and the registry of probes.

The kit never judges a subject through one of our protocol cores: it speaks through a
:class:`RawCore` (text frames in and out, nothing interpreted) carried by the sans-IO
WebSocket stack (:class:`~trackwire.ws.ClientStack` when the subject is a server,
:class:`~trackwire.ws.ServerStack` when it is a client), so it can send what a correct peer
never would and see every frame, in order, with its time.
"""

from __future__ import annotations

import enum
import json
import math
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h11
import trio

from trackwire import Event, LocalProtocolError
from trackwire.drivers._trio import _open_stream
from trackwire.ws import (
    BinaryMessage,
    ClientStack,
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    Rejected,
    StackBase,
    StackState,
    TextCore,
    UpgradeRequest,
    split_ws_url,
)

from ._catalogue import get
from ._report import Direction, WireRecord, clip, mask

__all__ = [
    "SERVER_PROBES",
    "Blocked",
    "Ctx",
    "Findings",
    "Outcome",
    "Peer",
    "Probe",
    "ProbeError",
    "ProbeOptions",
    "RawCore",
    "TextFrame",
    "Unsupported",
    "WireLog",
    "server_probe",
]

_RECEIVE_SIZE = 65536
_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
KIT_MAX_MESSAGE = 64 << 20
"""Largest message the kit accepts from a subject (generous: it judges, it does not guard)."""


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """How long the kit watches for things; the defaults suit real deployments, tests shrink
    them against fast loopback subjects."""

    reply_wait: float = 5.0
    """Seconds to wait for a frame the subject must send (an answer, the handshake)."""
    settle: float = 1.0
    """Seconds to watch for frames the subject must not send (or may still send)."""
    push_wait: float = 5.0
    """Seconds to wait for the subject's own pushes (a moving fleet, batches)."""
    idle_wait: float = 65.0
    """Seconds to wait for a server's idle heartbeat (Atmosphere: 60 s by default)."""
    heartbeat_ms: int = 1000
    """Client cases: the client heartbeat interval the kit announces in its handshakes."""
    client_wait: float = 60.0
    """Client cases: seconds to wait for a (new) client to connect for the next scenario."""
    reconnect_wait: float = 10.0
    """Client cases: seconds to wait for a client to come back after the kit dropped it."""
    slow: bool = False
    """Run the cases that wait minutes (a FleetFreedom client's 5-minute keep-alive, a
    server's 60-second idle heartbeat); without it they are UNSUPPORTED, saying so, unless
    the subject's interval was made short enough (``idle_wait``, ``keepalive``)."""
    keepalive: float = 300.0
    """Client cases: the FleetFreedom client's noop interval (about 5 minutes by the spec;
    give the client's own setting when it is configurable)."""
    inactivity_timeout: float = 300.0
    """Client cases: the Atmosphere client's inactivity timeout (300 s by default in
    atmosphere.js, its ``timeout`` option; give the client's own setting when it is
    configurable)."""


SLOW_LIMIT = 30.0
"""Deliberate waits up to this many seconds run without ``slow``."""


class Unsupported(Exception):
    """The case cannot be judged for this subject (raise it from a probe, with the reason)."""


class ProbeError(Exception):
    """The probe itself could not run (connection refused, upgrade refused, no login)."""


class Blocked(ProbeError):
    """The probe could not run because the subject breaks the rule of case ``root`` on the
    way (a ``loginResponse`` whose ``errorCode`` is a string, so no login can be judged).

    The runner reports the probe's cases as blocked by ``root`` (and ``root`` itself, when
    the probe judges it, as FAILED), so one fault reads as one fault, not a wall of ERRORs.
    """

    def __init__(self, root: str, reason: str) -> None:
        get(root)  # an unknown id fails loudly
        super().__init__(reason)
        self.root = root


class SubjectBroke(ProbeError):
    """The subject failed a request the kit made by the spec: it answered a well-formed
    WebSocket upgrade with a 5xx status, or dropped the connection before answering it.

    That breaks the rule of every case the probe judges, so the runner reports them FAILED
    (a SHOULD one NON-STRICT); later probes that meet the same fault (same ``fault``) are
    reported as blocked by the first case it failed, so one fault reads as one fault.
    """

    def __init__(self, fault: str, reason: str) -> None:
        super().__init__(reason)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class Outcome:
    """A probe's finding on one case: ``passed`` (``None``: could not be judged) and why."""

    passed: bool | None
    details: str = ""


class Findings:
    """Collects what a probe checked; :meth:`outcome` passes when nothing went wrong."""

    __slots__ = ("notes", "problems")

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    def expect(self, condition: object, problem: str) -> bool:
        """Record ``problem`` unless ``condition`` holds; returns whether it held."""
        if not condition:
            self.problems.append(problem)
        return bool(condition)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def outcome(self) -> Outcome:
        if self.problems:
            return Outcome(False, "; ".join(self.problems))
        return Outcome(True, "; ".join(self.notes))


def unsupported(reason: str) -> Outcome:
    return Outcome(None, reason)


# -- the wire log ------------------------------------------------------------------------------

# Secrets (passwords, iTrack hashes, FleetFreedom ghostIds) are masked in the wire log by the
# same rules as every repr and error message (trackwire._redact), and so is the session's
# ``user`` object (a person's data), so reports can be shared.


class WireLog:
    """Every frame of one case, both ways, timed from the case's start (passwords masked)."""

    __slots__ = ("connections", "records", "t0")

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.records: list[WireRecord] = []
        self.connections = 0

    def new_connection(self) -> int:
        self.connections += 1
        return self.connections

    def add(self, connection: int, direction: Direction, kind: str, data: str) -> None:
        self.records.append(
            WireRecord(trio.current_time() - self.t0, connection, direction, kind, clip(mask(data)))
        )

    def note(self, text: str, connection: int = 0) -> None:
        self.add(connection, "info", "note", text)


# -- a raw text core ---------------------------------------------------------------------------


class RawState(enum.Enum):
    IDLE = "idle"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class TextFrame(Event):
    """One text frame from the subject, as it came."""

    data: str


class RawCore:
    """A text core that interprets nothing: received frames become :class:`TextFrame`
    events, and :meth:`send` queues any string as one frame.  Both are logged."""

    __slots__ = ("_events", "_out", "connection", "log", "state", "upgrade_direction")

    def __init__(self, log: WireLog, connection: int) -> None:
        self.log = log
        self.connection = connection
        self.state = RawState.IDLE
        self.upgrade_direction: Direction | None = None
        """Where the ``101 Switching Protocols`` line goes in the log (``received`` when the
        kit is the client): logged as the stack opens the core, before any frame."""
        self._events: list[Event] = []
        self._out: list[str] = []

    def connection_made(self, now: float) -> None:
        self.state = RawState.OPEN
        if self.upgrade_direction is not None:
            self.log.add(self.connection, self.upgrade_direction, "http", "101 Switching Protocols")

    def receive(self, data: str, now: float) -> None:
        self.log.add(self.connection, "received", "text", data)
        self._events.append(TextFrame(data))

    def receive_eof(self, now: float) -> None:
        self.state = RawState.CLOSED

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def send(self, item: str, now: float | None = None) -> None:
        self.log.add(self.connection, "sent", "text", item)
        self._out.append(item)

    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def as_text_core(core: RawCore) -> TextCore:
    return core


# -- one connection ----------------------------------------------------------------------------

Item = str | bytes
"""What :meth:`Peer.recv` returns: a text frame, or the payload of a binary frame."""


class Peer:
    """One WebSocket connection between the kit and the subject, either role.

    A background task reads and feeds the stack; frames the subject sends queue up for
    :meth:`recv`.  Every wait is bounded by the caller; once the connection ends,
    :attr:`closed` says how (and :meth:`recv` returns ``None``).
    """

    def __init__(self, log: WireLog, stream: trio.abc.Stream, number: int) -> None:
        self.log = log
        self.number = number
        self.stream = stream
        self.core = RawCore(log, number)
        self.stack: StackBase[TextCore] | None = None
        self.opened = trio.Event()
        self.ended = trio.Event()
        self.connected: Connected | None = None
        self.closed: ConnectionClosed | None = None
        self.failure: str | None = None
        """Why the WebSocket never opened (refusal, bad handshake), if it did not."""
        self.rejected_status: int | None = None
        self.broke_early = False
        """The subject ended the connection without answering the upgrade."""
        self.binary_frames = 0
        self.request: UpgradeRequest | None = None
        """Client cases: the subject's upgrade request."""
        self.identity: str | None = None
        """Client cases: the session the connection presented (tracking id, ghostId)."""
        self.on_other: Callable[[Event], None] | None = None
        """Called with stack events the peer does not handle itself (plain HTTP requests)."""
        self._send_in, self._receive_out = trio.open_memory_channel[Item](math.inf)
        self._write_lock = trio.Lock()
        self._broken = False
        self._read_scope: trio.CancelScope | None = None

    # -- what probes use ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.stack is not None and self.stack.state is StackState.OPEN

    async def send(self, text: str) -> None:
        """Send one text frame (silently nothing once the connection is closing)."""
        stack = self.stack
        if stack is None or stack.state is not StackState.OPEN:
            self.log.note(f"not sent (connection not open): {text[:80]!r}", self.number)
            return
        stack.send(text, trio.current_time())
        await self._flush()

    async def send_binary(self, payload: bytes) -> None:
        """Send one binary frame (server role: unmasked, at most 125 bytes)."""
        if len(payload) > 125 or not self.is_open:
            raise ValueError("send_binary takes an open connection and at most 125 bytes")
        await self._flush()
        self.log.add(self.number, "sent", "binary", payload.hex())
        async with self._write_lock:
            try:
                await self.stream.send_all(bytes((0x82, len(payload))) + payload)
            except _NETWORK_ERRORS:
                self._broken = True

    def rebind(self, log: WireLog) -> None:
        """Move the connection (and what it logged so far) into another case's log."""
        number = log.new_connection()
        for record in [r for r in self.log.records if r.connection == self.number]:
            log.records.append(
                WireRecord(
                    record.time + self.log.t0 - log.t0,
                    number,
                    record.direction,
                    record.kind,
                    record.data,
                )
            )
        self.log = self.core.log = log
        self.number = self.core.connection = number

    async def recv(self, timeout: float) -> Item | None:
        """The next frame from the subject, or ``None`` after ``timeout`` or at the end."""
        with trio.move_on_after(timeout):
            try:
                return await self._receive_out.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return None
        return None

    async def collect(
        self, duration: float, until: Callable[[Item], bool] | None = None
    ) -> list[Item]:
        """Frames received within ``duration`` (stops early after one ``until`` accepts, or at
        the end of the connection)."""
        frames: list[Item] = []
        deadline = trio.current_time() + duration
        while True:
            left = deadline - trio.current_time()
            if left <= 0:
                return frames
            item = await self.recv(left)
            if item is None:
                return frames
            frames.append(item)
            if until is not None and until(item):
                return frames

    def pending(self) -> list[Item]:
        """Frames already received and not yet taken (no waiting)."""
        frames: list[Item] = []
        while True:
            try:
                frames.append(self._receive_out.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return frames

    async def close(self, code: int = 1000, reason: str = "", wait: float = 1.0) -> None:
        """Start the close handshake and wait (at most ``wait`` s) for the end."""
        stack = self.stack
        if stack is not None and stack.state is StackState.OPEN:
            self.log.add(self.number, "sent", "close", f"{code} {reason}".rstrip())
            stack.close(code, reason, trio.current_time())
            await self._flush()
        elif stack is not None and stack.state is not StackState.CLOSED:
            stack.close()
        with trio.move_on_after(wait):
            await self.ended.wait()
        if not self.ended.is_set():
            await self.abort()

    async def abort(self) -> None:
        """Drop the TCP connection now, without a close handshake."""
        if not self.ended.is_set():
            self.log.add(self.number, "info", "close", "TCP connection dropped by the kit")
        self._broken = True
        await trio.aclose_forcefully(self.stream)
        scope = self._read_scope
        if scope is not None:
            scope.cancel()

    async def wait_ended(self, timeout: float) -> bool:
        """Whether the connection ended within ``timeout``."""
        with trio.move_on_after(timeout):
            await self.ended.wait()
        return self.ended.is_set()

    # -- inside --------------------------------------------------------------------------------

    async def _flush(self) -> None:
        async with self._write_lock:
            stack = self.stack
            if stack is None or self._broken:
                return
            data = stack.data_to_send()
            if not data:
                return
            try:
                await self.stream.send_all(data)
            except _NETWORK_ERRORS:
                self._broken = True
                scope = self._read_scope
                if scope is not None:
                    scope.cancel()

    async def run(self, stack: StackBase[TextCore]) -> None:
        """Pump the connection until the stack is closed (run in the case's nursery)."""
        self.stack = stack
        try:
            stack.connection_made(trio.current_time())
            while True:
                await self._flush()
                if stack.state is StackState.CLOSED:
                    return
                deadline = stack.next_deadline()
                data: bytes | bytearray = b""
                with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                    self._read_scope = scope
                    if not self._broken:
                        try:
                            data = await self.stream.receive_some(_RECEIVE_SIZE)
                        except _NETWORK_ERRORS:
                            self._broken = True
                self._read_scope = None
                now = trio.current_time()
                try:
                    if scope.cancelled_caught and not self._broken:
                        stack.handle_timer(now)
                    elif data:
                        stack.receive(bytes(data), now)
                    else:
                        stack.receive_eof(now)
                except LocalProtocolError as exc:
                    self.log.note(f"the connection cannot go on: {exc}", self.number)
                    return
                for event in stack.events():
                    self._dispatch(event)
        finally:
            if self.closed is None and self.connected is not None:
                self.closed = ConnectionClosed(1006, "connection lost", by_peer=True)
            if self.failure is None and self.connected is None:
                self.failure = "the connection ended before the WebSocket opened"
                self.broke_early = True
            self._send_in.close()
            self.opened.set()
            self.ended.set()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, TextFrame):
            self._send_in.send_nowait(event.data)
        elif isinstance(event, BinaryMessage):
            self.binary_frames += 1
            self.log.add(self.number, "received", "binary", event.data[:256].hex())
            self._send_in.send_nowait(event.data)
        elif isinstance(event, Connected):
            self.connected = event
            self.opened.set()
        elif isinstance(event, ConnectionClosed):
            self.closed = event
            who = "subject" if event.by_peer else "kit"
            error = f" ({event.error})" if event.error is not None else ""
            self.log.add(
                self.number,
                "info",
                "close",
                f"closed by the {who}: {event.code} {event.reason}{error}".rstrip(),
            )
        elif isinstance(event, Rejected):
            self.rejected_status = event.status_code
            self.failure = f"the upgrade was refused with HTTP {event.status_code}"
            self.log.add(self.number, "received", "http", f"HTTP {event.status_code}")
            self.opened.set()
        elif isinstance(event, HandshakeFailed):
            self.failure = f"the WebSocket handshake failed: {event.error}"
            # The subject ended the connection without answering the upgrade.
            self.broke_early = "closed before the handshake response" in str(event.error)
            self.log.note(self.failure, self.number)
            self.opened.set()
        elif self.on_other is not None:
            self.on_other(event)


# -- opening connections to a server -----------------------------------------------------------


async def open_stream(
    host: str, port: int, tls: bool, ssl_context: ssl.SSLContext | None = None
) -> trio.abc.Stream:
    """TCP (and TLS for ``wss``/``https``) to the subject: the trio driver's own opener."""
    return await _open_stream(host, port, tls, ssl_context)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A plain HTTP response the kit received."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (``None`` when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Ctx:
    """What one probe run gets: the subject's address and credentials, the options, the
    wire log, and ways to open connections and make HTTP requests."""

    def __init__(
        self,
        *,
        url: str,
        protocol: str,
        options: ProbeOptions,
        nursery: trio.Nursery,
        log: WireLog,
        credentials: Mapping[str, str | None],
        shared: dict[str, Any],
        ssl_context: ssl.SSLContext | None = None,
        operator: Any = None,
    ) -> None:
        self.url = url
        self.protocol = protocol
        self.options = options
        self.nursery = nursery
        self.log = log
        self.credentials = credentials
        self.shared = shared
        """State kept across the cases of one run (a login hash, a list of trackers)."""
        self.ssl_context = ssl_context
        self.operator = operator
        """The subject's :class:`~trackwire.conformance.Operator`, if the run has one."""

    async def open(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        allow_refusal: bool = False,
    ) -> Peer:
        """Open a WebSocket to ``url`` (the kit is the client) and wait for the upgrade.

        A refused or failed upgrade raises :class:`ProbeError` unless ``allow_refusal`` (then
        the returned peer has :attr:`Peer.failure` set).
        """
        address = split_ws_url(url)
        number = self.log.new_connection()
        extra = f" (subprotocols {', '.join(subprotocols)})" if subprotocols else ""
        self.log.add(number, "sent", "http", f"GET {address.target}{extra}")
        try:
            stream = await open_stream(address.host, address.port, address.tls, self.ssl_context)
        except _NETWORK_ERRORS as exc:
            self.log.note(f"cannot connect: {exc}", number)
            raise ProbeError(f"cannot connect to {address.host}:{address.port}: {exc}") from None
        peer = Peer(self.log, stream, number)
        stack = ClientStack.from_url(
            as_text_core(peer.core),
            url,
            subprotocols=subprotocols,
            accept_binary=True,
            max_message_size=KIT_MAX_MESSAGE,
            handshake_timeout=None,
        )
        peer.core.upgrade_direction = "received"
        self.nursery.start_soon(peer.run, stack)
        await peer.opened.wait()
        if peer.connected is None and not allow_refusal:
            status = peer.rejected_status
            if (status is not None and status >= 500) or peer.broke_early:
                fault = f"HTTP {status}" if status is not None else "dropped"
                raise SubjectBroke(fault, f"{url}: {peer.failure}")
            raise ProbeError(f"{url}: {peer.failure}")
        return peer

    async def http(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> HttpAnswer:
        """One plain HTTP request on its own connection (``Connection: close``)."""
        address = split_ws_url(url)
        number = self.log.new_connection()
        shown = body.decode("utf-8", "replace")
        self.log.add(number, "sent", "http", f"{method} {address.target} {shown}".rstrip())
        try:
            stream = await open_stream(address.host, address.port, address.tls, self.ssl_context)
        except _NETWORK_ERRORS as exc:
            self.log.note(f"cannot connect: {exc}", number)
            raise ProbeError(f"cannot connect to {address.host}:{address.port}: {exc}") from None
        try:
            conn = h11.Connection(h11.CLIENT)
            all_headers = [
                ("Host", address.host_header),
                ("User-Agent", "trackwire-conformance"),
                ("Connection", "close"),
                *headers,
            ]
            if body or method == "POST":
                all_headers.append(("Content-Length", str(len(body))))
            out = conn.send(h11.Request(method=method, target=address.target, headers=all_headers))
            out = (out or b"") + (conn.send(h11.Data(data=body)) or b"" if body else b"")
            await stream.send_all(out + (conn.send(h11.EndOfMessage()) or b""))
            status = 0
            response_headers: list[tuple[str, str]] = []
            chunks: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(_RECEIVE_SIZE)))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    response_headers = [
                        (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers
                    ]
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
        except (*_NETWORK_ERRORS, h11.ProtocolError) as exc:
            self.log.note(f"HTTP request failed: {exc}", number)
            raise ProbeError(f"HTTP {method} {url} failed: {exc}") from None
        finally:
            await trio.aclose_forcefully(stream)
        answer = HttpAnswer(status, response_headers, b"".join(chunks))
        text = answer.body.decode("utf-8", "replace")
        self.log.add(number, "received", "http", f"HTTP {status} {text}".rstrip())
        return answer

    def credential(self, name: str) -> str:
        """A credential given to the run, or :class:`Unsupported` when it was not."""
        value = self.credentials.get(name)
        if value is None:
            raise Unsupported(f"needs --{name} (and the other credentials) to be judged")
        return value

    def needs_operator(self, action: str) -> Any:
        """The run's operator, or :class:`Unsupported` saying why the case needs one."""
        if self.operator is None:
            raise Unsupported(
                f"needs the server's operator to {action}, which no client can do over the "
                "wire: pass operator= to run_server_cases (or --operator MODULE:NAME); "
                "ReferenceServer.operator() is the reference implementation"
            )
        return self.operator


# -- the registry ------------------------------------------------------------------------------

ProbeResult = Outcome | Mapping[str, Outcome]
ProbeFunction = Callable[[Ctx], Awaitable[ProbeResult]]


def _no_extra(options: ProbeOptions) -> float:
    """The time every probe gets on top of the timeout: probes watch pushes (before and
    after an action) and silences, and a slow subject must not turn them into ERRORs."""
    return 2 * options.push_wait + 2 * options.settle


@dataclass(frozen=True, slots=True)
class Probe:
    """A scripted check that judges one or more cases in one run (one wire log)."""

    cases: tuple[str, ...]
    run: ProbeFunction
    extra_time: Callable[[ProbeOptions], float] = _no_extra
    """Time the probe needs on top of the per-case timeout (long deliberate waits; by
    default two push waits and two settles)."""

    @property
    def name(self) -> str:
        return getattr(self.run, "__name__", self.cases[0])


SERVER_PROBES: list[Probe] = []
"""Every server probe, registered by :func:`server_probe` as the probe modules load."""


def server_probe(
    *case_ids: str, extra_time: Callable[[ProbeOptions], float] = _no_extra
) -> Callable[[ProbeFunction], ProbeFunction]:
    """Register a function as the probe of ``case_ids`` (ids are checked against the
    catalogue at import, so a typo fails loudly)."""
    for case_id in case_ids:
        case = get(case_id)
        if case.role == "client":
            raise ValueError(f"{case_id} judges clients, not servers")

    def register(function: ProbeFunction) -> ProbeFunction:
        SERVER_PROBES.append(Probe(case_ids, function, extra_time))
        return function

    return register
