"""What the client and server stacks share: frames in and out of the core, close, timers."""

from __future__ import annotations

from codecs import utf_8_decode as _utf8_decode
from typing import Any, Generic, TypeVar, cast

from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import Event as WsprotoEvent

from .._core import Core, Event, EventQueue, StateMachine
from .._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .._pieces import WIDTH, compact
from ._events import BinaryMessage, Connected, ConnectionClosed, PongReceived
from ._frames import BAD, CLOSE, INCOMPLETE, TEXT, frame_bounds, holdable
from ._state import TRANSITIONS, StackState, _Input

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CoreT",
    "StackBase",
    "TextCore",
]

TextCore = Core[str, list[str], Event, Any]
"""Any text core: WebSocket text messages in (``receive(str, now)``), ``list[str]`` out."""
CoreT = TypeVar("CoreT", bound=TextCore)

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Largest message accepted, in characters (text) or bytes (binary), fragments included."""
DEFAULT_CLOSE_TIMEOUT = 10.0
"""Seconds to wait for the peer's close frame after sending ours."""
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""Seconds the HTTP phase may take (client: the response; server: each request)."""

_S = StackState
_I = _Input
_ABNORMAL = 1006
_UNSUPPORTED_DATA = 1003
_MESSAGE_TOO_BIG = 1009
_PROTOCOL_ERROR = 1002
_CORE_ENDED = frozenset({"CLOSED", "ERROR"})
_READING = (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING)
"""wsproto states that take bytes (it refuses them once closed)."""
"""State names by which a core says it is finished (every trackwire core uses them)."""


def _not_open(data: str, now: float) -> None:
    raise LocalProtocolError("the WebSocket is not open")


class StackBase(EventQueue[Event], Generic[CoreT]):
    """One WebSocket connection carrying one text core; see :class:`ClientStack` and
    :class:`ServerStack` for the roles.

    The stack offers the core's own surface with bytes: :meth:`receive`/:meth:`receive_eof`,
    :meth:`events` (the core's events and the stack's :class:`WsEvent` in one ordered queue),
    :meth:`send` (forwarded to the core), :meth:`data_to_send` (bytes),
    :meth:`next_deadline`/:meth:`handle_timer` (the earliest of the stack's and the core's).
    Peer misbehaviour never raises: it closes the WebSocket and ends in an event
    (:class:`HandshakeFailed`, :class:`Rejected` or :class:`ConnectionClosed` with ``error``);
    misuse of the API raises :class:`LocalProtocolError`.
    """

    __slots__ = (
        "_checked",
        "_close_info",
        "_conn",
        "_core",
        "_core_receive",
        "_deadline",
        "_deliver",
        "_fast",
        "_held",
        "_machine",
        "_now",
        "_out",
        "_parts",
        "_parts_at",
        "_parts_len",
        "_passing",
        "_quick",
        "accept_binary",
        "close_timeout",
        "close_with_core",
        "handshake_timeout",
        "max_message_size",
    )

    _own_reader = False
    """Read frames in front of wsproto after the upgrade (the client: see
    :meth:`_read_frames`); wsproto must then hold no bytes when the WebSocket opens."""

    def __init__(
        self,
        core: CoreT | None,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        accept_binary: bool = False,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        close_with_core: bool = True,
    ) -> None:
        if max_message_size <= 0:
            raise ValueError("max_message_size must be > 0")
        if close_timeout < 0 or (handshake_timeout is not None and handshake_timeout < 0):
            raise ValueError("timeouts must be >= 0")
        self.max_message_size = max_message_size
        self.accept_binary = accept_binary
        self.close_timeout = close_timeout
        self.handshake_timeout = handshake_timeout
        self.close_with_core = close_with_core
        self._core = core
        self._core_receive = _not_open
        self._machine: StateMachine[StackState, _Input] = StateMachine(_S.IDLE, TRANSITIONS)
        self._conn: Connection | None = None
        EventQueue.__init__(self)
        self._out: list[bytes] = []
        self._now = 0.0
        self._deadline: float | None = None
        self._deliver = False
        """Data messages go to the core: OPEN, and no close under way."""
        self._fast = False
        """``_deliver`` and no fragmented message being assembled: the hot path applies."""
        self._parts: list[Any] = []
        self._parts_len = 0
        self._parts_at = WIDTH
        """``_parts`` is compacted when it holds this many pieces (see ``trackwire._pieces``)."""
        self._quick = False
        """The stack's own frame reader runs in front of wsproto (see :meth:`_read_frames`)."""
        self._held: bytes | bytearray = b""
        """The start of a frame the reader waits to have whole."""
        self._checked = 0
        """Payload bytes of the held text frame whose UTF-8 was checked."""
        self._passing = 0
        """Bytes still to come of a data frame that wsproto reads as it arrives: the reader
        passes them on, then reads on from the frame's end."""
        self._close_info: ConnectionClosed | None = None
        """The close this side started (kept until the peer answers or the stream ends)."""

    # -- introspection ---------------------------------------------------------------

    @property
    def state(self) -> StackState:
        return self._machine.state

    @property
    def core(self) -> CoreT:
        """The text core this connection carries."""
        if self._core is None:
            raise LocalProtocolError("no core yet: the upgrade was not accepted", state=self.state)
        return self._core

    # -- the core surface ------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """The transport (TCP, TLS) is up: start the HTTP phase."""
        self._machine.fire(_I.START)
        self._now = now
        if self.handshake_timeout is not None:
            self._deadline = now + self.handshake_timeout
        self._start(now)

    def receive(self, data: bytes, now: float) -> None:
        """Feed bytes read from the socket."""
        self._now = now
        if self._machine.state is _S.OPEN:
            self._receive_frames(data, now)
            return
        state = self._machine.fire(_I.RECEIVE)  # raises before the start and after the end
        if state is _S.CONNECTING:
            self._receive_http(data, now)
        else:
            self._receive_frames(data, now)

    def receive_eof(self, now: float) -> None:
        """The peer closed its side of the transport (read returned nothing)."""
        self._now = now
        state = self._machine.state
        if state is _S.CONNECTING:
            self._http_eof(now)
        elif state is _S.OPEN:
            self._machine.fire(_I.EOF)
            self._end(ConnectionClosed(_ABNORMAL, "", by_peer=True), now)
        elif state is _S.CLOSING:
            self._machine.fire(_I.EOF)
            assert self._close_info is not None
            self._end(self._close_info, now)
        else:
            self._machine.fire(_I.EOF)

    # The core's events are pulled lazily: the stack's own queue only holds events from the
    # moment the stack emitted one (the core's queue is drained into it first), so the
    # common case -- only core events -- costs no copy.

    def next_event(self) -> Event | None:
        if self._events:
            return EventQueue.next_event(self)
        core = self._core
        return None if core is None else core.next_event()

    def events(self) -> list[Event]:
        if not self._events:
            core = self._core
            return [] if core is None else cast("list[Event]", core.events())
        self._drain_core()
        return EventQueue.events(self)

    def send(self, item: Any, now: float | None = None) -> object:
        """Forward ``item`` to the core (its frames go out with :meth:`data_to_send`).

        Raises :class:`LocalProtocolError` once the WebSocket is closing or closed; before
        it opens the core decides (its output waits until the handshake is done).
        """
        state = self._machine.state
        if state is _S.CLOSING or state is _S.CLOSED:
            raise LocalProtocolError("the WebSocket is closing", state=state)
        if now is not None:
            self._now = now
        return self.core.send(item, now)

    def data_to_send(self) -> bytes:
        """Drain the bytes to write: HTTP, the core's frames, control frames, in order.

        When the core has finished (its state is ``CLOSED``/``ERROR``) and ``close_with_core``
        is on, this also starts the close handshake (1000).
        """
        if self._machine.state is _S.OPEN:
            self._flush_core()
            if self.close_with_core and self.core.state.name in _CORE_ENDED:
                self.close()
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def next_deadline(self) -> float | None:
        deadline = self._deadline
        if self._machine.state is _S.OPEN:
            assert self._core is not None
            core_deadline = self._core.next_deadline()
            if core_deadline is not None and (deadline is None or core_deadline < deadline):
                return core_deadline
        return deadline

    def handle_timer(self, now: float) -> None:
        self._now = now
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            self._deadline = None
            state = self._machine.state
            if state is _S.CONNECTING:
                self._http_timeout(now)
            elif state is _S.CLOSING:
                self._machine.fire(_I.TIMEOUT)
                assert self._close_info is not None
                self._end(self._close_info, now)
        if self._machine.state is _S.OPEN:
            assert self._core is not None
            self._core.handle_timer(now)

    # -- extra controls --------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "", now: float | None = None) -> None:
        """Start the close handshake (idempotent).  Before the WebSocket opens this just
        abandons the connection (state ``CLOSED``, no event)."""
        if now is not None:
            self._now = now
        state = self._machine.state
        if state is _S.OPEN:
            self._send_close(ConnectionClosed(code, reason, by_peer=False))
        elif state is not _S.CLOSING:
            self._machine.fire(_I.ABORT)
            self._deadline = None

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (at most 125 bytes); the answer arrives as :class:`PongReceived`."""
        if self._machine.state is not _S.OPEN:
            raise LocalProtocolError("ping needs an open WebSocket", state=self._machine.state)
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        assert self._conn is not None
        self._flush_core()
        self._out.append(self._conn.send(Ping(payload)))

    # -- role hooks ------------------------------------------------------------------

    def _start(self, now: float) -> None:
        raise NotImplementedError

    def _receive_http(self, data: bytes, now: float) -> None:
        raise NotImplementedError

    def _http_eof(self, now: float) -> None:
        raise NotImplementedError

    def _http_timeout(self, now: float) -> None:
        raise NotImplementedError

    # -- opening ---------------------------------------------------------------------

    def _open(self, conn: Connection, connected: Connected, now: float, data: bytes = b"") -> None:
        """The handshake succeeded: start the core, then read what came with the handshake."""
        core = self.core
        self._machine.fire(_I.ACCEPT)
        self._conn = conn
        self._deadline = None
        self._deliver = self._fast = True
        self._quick = self._own_reader
        self._core_receive = core.receive
        self._emit(connected)
        core.connection_made(now)
        self._receive_frames(data, now)

    # -- the frame path --------------------------------------------------------------

    def _receive_frames(self, data: bytes, now: float) -> None:
        if self._quick:
            self._read_frames(data, now)
        else:
            self._wsproto_frames(data, now)

    def _read_frames(self, data: bytes, now: float) -> None:
        """Whole unfragmented text frames straight to the core; every other frame to wsproto.

        wsproto's frame parser costs several microseconds per frame, more than the rest of
        the path together, and the usual frame from a server is the simplest there is: FIN,
        text, no mask, no reserved bits.  This reader finds frame boundaries itself and gives
        wsproto whole frames only (a run of them in one call, as they came), so wsproto
        never holds part of a frame between two reads.  A frame waits here, incomplete,
        only where wsproto would not react to part of it sooner than to all of it: control
        frames, and text frames, whose UTF-8 is checked as it arrives; and the head of any
        frame.  A data frame that is not whole (binary, or a fragment) goes to wsproto as its
        bytes come, as wsproto reads payload as it arrives; the reader knows where the frame
        ends and reads on from there, so that the hot path is back as soon as no message is
        being assembled.  Anything else -- a header wsproto rejects, a frame over the size
        limit -- goes to wsproto with all that follows, and wsproto reads on from there.
        """
        passing = self._passing
        if passing:
            # The rest of a data frame wsproto is reading, then the frames after it.
            if passing >= len(data):
                self._passing = passing - len(data)
                self._wsproto_frames(data, now)
                return
            self._passing = 0
            try:
                self._wsproto_frames(data[:passing], now)
            except BaseException:
                self._follow(data, passing)
                raise
            data = data[passing:]
        held = self._held
        resume = self._checked if held else 0
        self._checked = 0
        if held:
            held += data
            buf: bytes | bytearray = held
        else:
            buf = data
        size = len(buf)
        pos = 0
        limit = self.max_message_size
        try:
            while pos < size:
                # The hot path: a whole text frame, 7- or 16-bit length, nothing assembling.
                if buf[pos] == TEXT and self._fast and pos + 1 < size:
                    length = buf[pos + 1]
                    start = pos + 2
                    if length == 126 and pos + 4 <= size:
                        length = (buf[pos + 2] << 8) | buf[pos + 3]
                        start = pos + 4 if length >= 126 else -1
                    elif length >= 126:
                        start = -1
                    end = start + length
                    if start > 0 and end <= size and length <= limit:
                        try:
                            text = buf[start:end].decode()
                        except UnicodeDecodeError:
                            pass  # wsproto fails the connection, in its own words
                        else:
                            pos = end  # before the core runs: it may raise
                            try:
                                self._core_receive(text, now)
                            except RemoteProtocolError as exc:
                                self._core_failed(exc)
                            except LocalProtocolError as exc:
                                self._core_refused(exc)
                            continue
                after, whole = self._read_other(buf, pos, resume if pos == 0 else 0, now)
                if after < 0:
                    break  # the frame at pos waits for the next read
                pos = after
                if whole is not None:
                    self._deliver_text(whole, now)
        finally:
            # What is left (also when the core raised) is where the next read starts, unless
            # wsproto took the rest.
            if pos >= size or not self._quick:
                self._held = b""
            elif buf is held and isinstance(held, bytearray):
                del held[:pos]
            else:
                self._held = bytearray(buf[pos:])

    def _read_other(
        self, buf: bytes | bytearray, pos: int, checked: int, now: float
    ) -> tuple[int, str | None]:
        """The frame at ``pos`` is not one for the hot path.  Returns where reading goes on
        (-1: the frame waits for the next read) and a whole text frame's text for the core,
        if it is one; other frames go to wsproto, with the whole frames after them.
        ``checked``: payload bytes of this frame whose UTF-8 an earlier read checked."""
        size = len(buf)
        limit = self.max_message_size
        start, end = frame_bounds(buf, pos, limit)
        if start == BAD:
            return self._hand_over(buf, pos, now), None
        first = buf[pos]
        split = start + checked if first == TEXT and start >= 0 else 0
        if start == INCOMPLETE:
            # A head cut short: wsproto reacts to no part of a head sooner than to all of it
            # (frame_bounds refused what it would reject in the first two bytes).
            return -1, None
        if end > size:
            if not holdable(first):
                # A data frame wsproto reads as its payload arrives: it gets what is here,
                # and the rest as it comes (see _read_frames); the reader reads on after it.
                self._passing = end - size
                try:
                    self._wsproto_frames(bytes(buf[pos:size]), now)
                except BaseException:
                    self._passing = 0
                    self._follow(buf, size)  # the core raised: wsproto reads on alone
                    raise
                return size, None
            if first == TEXT and not self._fast:
                return self._hand_over(buf, pos, now, split), None
            if split:
                # wsproto would check this text's UTF-8 as it arrives: so do we.
                try:
                    _, done = _utf8_decode(buf[split:size], "strict", False)
                except UnicodeDecodeError:
                    return self._hand_over(buf, pos, now, split), None
                self._checked = checked + done
            return -1, None
        if first == TEXT:
            if self._fast:
                # A whole text frame the hot path left: a 64-bit length, or bad UTF-8.
                try:
                    return end, buf[start:end].decode()
                except UnicodeDecodeError:
                    return self._hand_over(buf, pos, now, split), None
            if checked:
                # Brought in part by earlier reads, now whole while a close is under way.
                return self._hand_over(buf, pos, now, split), None
        # A whole frame for wsproto, with the whole frames after it, in one call (a frame
        # not whole yet is left for the next turn of the reader's loop).  A close frame ends
        # the WebSocket: wsproto takes what follows it in the same call too.
        if first == CLOSE:
            return self._hand_over(buf, pos, now), None
        last = end
        while last < size:
            start, end = frame_bounds(buf, last, limit)
            if start == BAD or buf[last] == CLOSE:
                return self._hand_over(buf, pos, now), None
            if start == INCOMPLETE or end > size:
                break
            last = end
        try:
            self._wsproto_frames(bytes(buf[pos:last]), now)
        except BaseException:
            # The core raised with frames of this run still in wsproto: the rest of the
            # stream follows them there, for good.
            self._follow(buf, last)
            raise
        return last, None

    def _hand_over(self, buf: bytes | bytearray, pos: int, now: float, checked: int = 0) -> int:
        """wsproto reads everything from ``pos`` on, for good (the connection is failing, or
        sends what only wsproto reads).  A text frame that earlier reads brought in part is
        given in two pieces, up to ``checked`` (what those reads held, UTF-8 checked) and the
        rest, so that wsproto decodes it in the steps it would have, and words an error in
        it the same way.  Returns the end of ``buf``."""
        self._quick = False
        if checked > pos:
            try:
                self._wsproto_frames(bytes(buf[pos:checked]), now)
            except BaseException:
                self._follow(buf, checked)
                raise
            pos = checked
        self._wsproto_frames(bytes(buf[pos:]), now)
        return len(buf)

    def _follow(self, buf: bytes | bytearray, pos: int) -> None:
        """After the core raised inside wsproto's event loop: wsproto still holds frames it
        did not reach, so it buffers the rest of this read behind them and reads on alone."""
        self._quick = False
        conn = self._conn
        assert conn is not None
        if pos < len(buf) and conn.state in _READING:
            conn.receive_data(bytes(buf[pos:]))

    def _deliver_text(self, text: str, now: float) -> None:
        try:
            self._core_receive(text, now)
        except RemoteProtocolError as exc:
            self._core_failed(exc)
        except LocalProtocolError as exc:
            self._core_refused(exc)

    def _wsproto_frames(self, data: bytes, now: float) -> None:
        conn = self._conn
        assert conn is not None
        conn.receive_data(data)
        limit = self.max_message_size
        for event in conn.events():
            # The common case first: a whole text message, nothing being assembled.
            if (
                type(event) is TextMessage
                and self._fast
                and event.message_finished
                and len(event.data) <= limit
            ):
                try:
                    self._core_receive(event.data, now)
                except RemoteProtocolError as exc:
                    self._core_failed(exc)
                except LocalProtocolError as exc:
                    self._core_refused(exc)
            else:
                self._other_event(event, now)

    def _other_event(self, event: WsprotoEvent, now: float) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            if not self._deliver:
                # Closing: data is discarded, as browsers do once close() was called.
                return
            if isinstance(event, BytesMessage) and not self.accept_binary:
                self._refuse(_UNSUPPORTED_DATA, "binary frames are not accepted")
                return
            self._assemble(event)
        elif isinstance(event, Ping):
            assert self._conn is not None
            if self._conn.state is ConnectionState.OPEN:
                self._flush_core()  # keep the core's frames ahead of the pong, in order
                self._out.append(self._conn.send(event.response()))
        elif isinstance(event, Pong):
            self._emit(PongReceived(bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            self._close_frame(event, now)

    def _assemble(self, event: TextMessage | BytesMessage) -> None:
        """Collect a fragmented (or over-long) message, enforcing the size limit on the way.

        The pieces are compacted as they come (:func:`trackwire._pieces.compact`): however
        the peer cuts a message, it is held in a number of pieces logarithmic in its size,
        not one object per fragment (empty pieces are not kept at all)."""
        parts = self._parts
        data = event.data
        if data:
            self._parts_len += len(data)
            if self._parts_len > self.max_message_size:
                self._refuse(_MESSAGE_TOO_BIG, f"message over {self.max_message_size} long")
                return
            parts.append(data)
            if len(parts) >= self._parts_at:
                self._parts_at = compact(parts, self._parts_at - WIDTH) + WIDTH
        if not event.message_finished:
            self._fast = False
            return
        self._parts = []
        self._parts_len = 0
        self._parts_at = WIDTH
        self._fast = True
        if isinstance(event, TextMessage):
            text = parts[0] if len(parts) == 1 else "".join(parts)
            try:
                self._core_receive(text, self._now)
            except RemoteProtocolError as exc:
                self._core_failed(exc)
            except LocalProtocolError as exc:
                self._core_refused(exc)
        else:
            self._emit(BinaryMessage(b"".join(parts)))

    def _core_refused(self, exc: LocalProtocolError) -> None:
        """The core finished on its own (an iTrack logout closes it) while frames were still
        coming in the same read: like data after a close, they are discarded, and the close
        starts.  Without ``close_with_core`` (the caller closes), or when the core refuses
        input before it finished, the caller's misuse propagates."""
        core = self._core
        if core is None or core.state.name not in _CORE_ENDED or not self.close_with_core:
            raise exc
        self._deliver = self._fast = False
        self.close()

    def _close_frame(self, event: CloseConnection, now: float) -> None:
        conn = self._conn
        assert conn is not None
        if conn.state is ConnectionState.REMOTE_CLOSING:
            # The peer started the close: answer with the same code, and that is the end.
            self._out.append(conn.send(event.response()))
            self._machine.fire(_I.PEER_CLOSE)
            self._end(ConnectionClosed(int(event.code), event.reason or "", by_peer=True), now)
        elif conn.state is ConnectionState.CLOSED:
            # The answer to our close frame.
            self._machine.fire(_I.PEER_CLOSE)
            assert self._close_info is not None
            self._end(self._close_info, now)
        else:
            # wsproto reports a frame it cannot parse as a close event without a state
            # change: the stream is corrupt, so fail the connection (RFC 6455 §7.1.7).
            reason = event.reason or ""
            error = RemoteProtocolError(f"bad WebSocket frame: {reason}", state=self.state)
            if conn.state is ConnectionState.OPEN:
                self._out.append(conn.send(CloseConnection(int(event.code), reason)))
            self._machine.fire(_I.FAIL)
            self._end(ConnectionClosed(int(event.code), reason, by_peer=False, error=error), now)

    def _refuse(self, code: int, reason: str) -> None:
        """Close because of what the peer sent (not a corrupt stream: a clean close)."""
        error = RemoteProtocolError(f"{reason}; closing with {code}", state=self.state)
        self._send_close(ConnectionClosed(code, reason, by_peer=False, error=error))

    def _core_failed(self, exc: RemoteProtocolError) -> None:
        # A core may ask for another code (e.g. 1008, policy) through ``close_code``.
        code = exc.close_code
        self._refuse_with(_PROTOCOL_ERROR if code is None else code, exc)

    def _refuse_with(self, code: int, exc: ProtocolError) -> None:
        self._send_close(ConnectionClosed(code, str(exc), by_peer=False, error=exc))

    def _send_close(self, info: ConnectionClosed) -> None:
        conn = self._conn
        assert conn is not None
        if self._machine.state is not _S.OPEN:
            return
        self._flush_core()
        self._out.append(conn.send(CloseConnection(info.code, info.reason)))
        self._machine.fire(_I.SEND_CLOSE)
        self._close_info = info
        self._deliver = self._fast = False
        self._parts.clear()
        self._parts_len = 0
        self._parts_at = WIDTH
        self._deadline = self._now + self.close_timeout

    def _end(self, info: ConnectionClosed, now: float) -> None:
        """The WebSocket is over: tell the core, then report; ``info`` is the last event."""
        self._deliver = self._fast = False
        self._deadline = None
        self._core_receive = _not_open
        core = self._core
        assert core is not None
        core.receive_eof(now)
        self._emit(info)

    # -- the queues ------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        """Queue a stack event after whatever the core produced so far."""
        self._drain_core()
        self._events.append(event)

    def _drain_core(self) -> None:
        core = self._core
        if core is not None:
            events = core.events()
            if events:
                self._events.extend(events)

    def _flush_core(self) -> None:
        frames = self.core.data_to_send()
        if frames:
            send = self._conn.send  # type: ignore[union-attr]
            out = self._out
            for frame in frames:
                out.append(send(TextMessage(frame)))
