"""The Atmosphere client core: what ``atmosphere.js`` (2.3.x – 4.x) does with each frame."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence

from .._core import CoreBase, Event, StateMachine
from .._errors import LocalProtocolError, RemoteProtocolError
from .._numbers import leading_int
from .._pieces import WIDTH
from ._events import (
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
    Reopened,
)
from ._framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    JS_WHITESPACE,
    NARROW_BELOW,
    TrackMessageSizeDecoder,
    _narrow,
    js_trim,
)
from ._url import DEFAULT_FRAMEWORK, build_close_url, build_open_url

__all__ = ["AtmosphereClient", "ClientState"]


class ClientState(enum.Enum):
    """Where an Atmosphere client connection stands."""

    CONNECTING = "connecting"
    """No socket yet: a new core, or one that :meth:`AtmosphereClient.reconnect` prepared."""
    AWAITING_HANDSHAKE = "awaiting-handshake"
    AWAITING_REOPEN = "awaiting-reopen"
    """Reconnected; the first frame from the server completes the reopen."""
    OPEN = "open"
    CLOSED = "closed"
    ERROR = "error"


class _Input(enum.Enum):
    SOCKET_OPEN = enum.auto()
    SOCKET_OPEN_RESUMED = enum.auto()
    SOCKET_OPEN_UNPROTOCOLLED = enum.auto()
    HANDSHAKE = enum.auto()
    FIRST_FRAME = enum.auto()
    RECEIVE = enum.auto()
    SEND = enum.auto()
    EOF = enum.auto()
    TIMEOUT = enum.auto()
    CLOSE = enum.auto()
    RECONNECT = enum.auto()
    CORRUPTION = enum.auto()


_S = ClientState
_I = _Input
_CONNECTED = (_S.AWAITING_HANDSHAKE, _S.AWAITING_REOPEN, _S.OPEN)

TRANSITIONS: dict[tuple[ClientState, _Input], ClientState] = {
    (_S.CONNECTING, _I.SOCKET_OPEN): _S.AWAITING_HANDSHAKE,
    (_S.CONNECTING, _I.SOCKET_OPEN_RESUMED): _S.AWAITING_REOPEN,
    (_S.CONNECTING, _I.SOCKET_OPEN_UNPROTOCOLLED): _S.OPEN,
    (_S.CONNECTING, _I.EOF): _S.CLOSED,
    (_S.CONNECTING, _I.CLOSE): _S.CLOSED,
    (_S.CONNECTING, _I.RECONNECT): _S.CONNECTING,
    (_S.AWAITING_HANDSHAKE, _I.HANDSHAKE): _S.OPEN,
    (_S.AWAITING_REOPEN, _I.FIRST_FRAME): _S.OPEN,
    (_S.OPEN, _I.SEND): _S.OPEN,
    (_S.CLOSED, _I.CLOSE): _S.CLOSED,
    (_S.CLOSED, _I.EOF): _S.CLOSED,
    (_S.CLOSED, _I.RECONNECT): _S.CONNECTING,
    (_S.ERROR, _I.CLOSE): _S.ERROR,
    (_S.ERROR, _I.EOF): _S.ERROR,
    (_S.ERROR, _I.RECONNECT): _S.CONNECTING,
    **{(state, _I.RECEIVE): state for state in _CONNECTED},
    **{(state, _I.EOF): _S.CLOSED for state in _CONNECTED},
    **{(state, _I.TIMEOUT): _S.CLOSED for state in _CONNECTED},
    **{(state, _I.CLOSE): _S.CLOSED for state in _CONNECTED},
    **{(state, _I.CORRUPTION): _S.ERROR for state in _CONNECTED},
}
"""Every legal (state, input) pair; anything else raises :class:`LocalProtocolError`."""

MAX_INTERVAL_DIGITS = 15
"""Significant digits the handshake's heartbeat interval may have (milliseconds; 15 digits
are over 30 000 years); a longer one reads as ``NaN``: no client heartbeat.  Leading zeros
do not count (``parseInt`` reads ``0000000000000150`` as 150)."""

_LEADING_ZEROS = re.compile(r"([+-]?)0+(?=[0-9])")


def _js_parse_int(text: str) -> int | None:
    """JavaScript's ``parseInt(text, 10)``; ``None`` stands for ``NaN``.

    Leading digits count and the rest is ignored: ``"6e4"`` reads 6, ``"0x10"`` reads 0.
    More than :data:`MAX_INTERVAL_DIGITS` significant digits read as ``NaN`` too.
    """
    text = js_trim(text)
    zeros = _LEADING_ZEROS.match(text)
    if zeros is not None:
        text = zeros.group(1) + text[zeros.end() :]
    return leading_int(text, MAX_INTERVAL_DIGITS)


class AtmosphereClient(CoreBase[Event]):
    """Sans-IO Atmosphere WebSocket client, one instance for a whole session of reconnects.

    ``url`` is the endpoint (``http``/``https``/``ws``/``wss``); :attr:`url_to_open` is the
    exact WebSocket URL for the next connection.  Frames fed to :meth:`receive` produce
    :class:`Opened`, :class:`Reopened`, :class:`Message`, :class:`Heartbeat`,
    :class:`InactivityTimeout` and :class:`Closed`; heartbeats leave through
    :meth:`data_to_send` when :meth:`handle_timer` says they are due.
    """

    __slots__ = (
        "_decoder",
        "_handshake_seen",
        "_heartbeat_at",
        "_last_received",
        "_machine",
        "_resumable",
        "content_type",
        "enable_protocol",
        "framework",
        "headers",
        "heartbeat_interval",
        "heartbeat_server",
        "inactivity_timeout",
        "message_factory",
        "padding",
        "reconnect_on_timeout",
        "track_message_length",
        "tracking_id",
        "url",
        "wall_offset",
    )

    def __init__(
        self,
        url: str,
        *,
        track_message_length: bool = False,
        heartbeat_server: int | None = None,
        content_type: str | None = None,
        enable_protocol: bool = True,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        framework: str = DEFAULT_FRAMEWORK,
        inactivity_timeout: float = 300.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        delimiter: str = "|",
        message_factory: Callable[[str], Event] = Message,
        reconnect_on_timeout: bool = False,
        wall_offset: float | None = None,
    ) -> None:
        super().__init__()
        if not delimiter:
            raise ValueError("the message delimiter must not be empty")
        if inactivity_timeout < 0:
            raise ValueError("inactivity_timeout must be >= 0 (0 turns it off)")
        self.url = url
        self.track_message_length = track_message_length
        self.heartbeat_server = heartbeat_server
        self.content_type = content_type
        self.enable_protocol = enable_protocol
        self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)
        self.framework = framework
        self.inactivity_timeout = inactivity_timeout
        self.reconnect_on_timeout = reconnect_on_timeout
        """After the inactivity timeout, reconnect (the peer may have vanished without
        closing: a half-open socket) instead of ending for good as atmosphere.js does; no
        close request is sent then."""
        self.wall_offset = wall_offset
        """Seconds to add to ``now`` for the time since the Unix epoch, which stamps the close
        request's ``_`` as atmosphere.js does (``time.time() - your_clock()``); the drivers
        set it for their clock when it is ``None``.  Left ``None``, ``now`` itself is the
        stamp."""
        self.message_factory = message_factory
        """Turns each delivered message into its event (:class:`Message` by default); a layer
        above (iTrack) plugs its decoder in here, so a message becomes its final event in one
        step."""
        self.tracking_id = "0"
        self.heartbeat_interval = 0.0
        """Seconds between client heartbeats, from the handshake (0 = none)."""
        self.padding: str | None = "X"
        """The heartbeat string from the handshake (``X`` until one arrives; ``None`` when the
        handshake had no padding field)."""
        self._decoder = TrackMessageSizeDecoder(delimiter, max_message_size)
        self._machine: StateMachine[ClientState, _Input] = StateMachine(_S.CONNECTING, TRANSITIONS)
        self._handshake_seen = False
        self._heartbeat_at: float | None = None
        self._last_received = 0.0
        self._resumable = True

    # -- introspection ---------------------------------------------------------------

    @property
    def delimiter(self) -> str:
        """What ends a message's length (TrackMessageSize) and separates the handshake's
        fields; the TrackMessageSize decoder reads with the same one."""
        return self._decoder.delimiter

    @delimiter.setter
    def delimiter(self, value: str) -> None:
        if not value:
            raise ValueError("the message delimiter must not be empty")
        self._decoder.delimiter = value

    @property
    def state(self) -> ClientState:
        return self._machine.state

    @property
    def url_to_open(self) -> str:
        """The WebSocket URL of the next connection (tracking id ``0``, then the UUID)."""
        return build_open_url(
            self.url,
            tracking_id=self.tracking_id,
            framework=self.framework,
            track_message_length=self.track_message_length,
            heartbeat_server=self.heartbeat_server,
            content_type=self.content_type,
            enable_protocol=self.enable_protocol,
            headers=self.headers,
        )

    @property
    def last_received(self) -> float:
        """When the last frame arrived (or the connection opened): the inactivity clock."""
        return self._last_received

    @property
    def resumable(self) -> bool:
        """Another connection makes sense: the session was not closed for good (by
        :meth:`close` or the inactivity timeout).  Before any handshake the next connection
        simply starts afresh with tracking id ``0``."""
        return self._resumable

    @property
    def handshake_received(self) -> bool:
        """The handshake arrived on some connection of this session (reconnects then resume)."""
        return self._handshake_seen

    # -- inputs ----------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """The WebSocket is open: wait for the handshake (or the reopen frame)."""
        if not self.enable_protocol:
            # No protocol: atmosphere.js opens on the socket's own open event.
            self._machine.fire(_I.SOCKET_OPEN_UNPROTOCOLLED)
            self._events.append(Opened(self.tracking_id, 0, self.padding))
        elif self.handshake_received:
            self._machine.fire(_I.SOCKET_OPEN_RESUMED)
        else:
            self._machine.fire(_I.SOCKET_OPEN)
        self._last_received = now

    def receive(self, data: str, now: float) -> None:
        """Feed one WebSocket text message from the server."""
        self._last_received = now
        machine = self._machine
        state = machine.state
        if state is not _OPEN:
            machine.fire(_I.RECEIVE)  # raises unless connected
            if state is _S.AWAITING_HANDSHAKE:
                data = self._handshake(data, now)
                if not data:
                    return
            elif state is _S.AWAITING_REOPEN:
                machine.fire(_I.FIRST_FRAME)
                self._start_heartbeat(now)
                self._events.append(Reopened(self.tracking_id))
        if self.track_message_length:
            decoder = self._decoder
            need = decoder._need
            if need:
                # A message is pending, its length read.  An ASCII frame that leaves it short
                # is kept, and one that completes it exactly is joined to it: the decoder's
                # own steps for these frames, inlined (a message cut across frames costs one
                # call per frame); any other frame goes to the decoder.
                size = len(data)
                if size < need:
                    pieces = decoder._pieces
                    total = decoder._size + size
                    if (
                        size
                        and data.isascii()
                        and total <= decoder._max_size
                        and len(pieces) + 1 < decoder._compact_at
                    ):
                        pieces.append(data)
                        decoder._size = total
                        decoder._need = need - size
                        return
                elif size == need and data.isascii():
                    pieces = decoder._pieces
                    pieces[0] = pieces[0][decoder._body :]
                    pieces.append(data)
                    decoder._pieces = []
                    decoder._need = 0
                    data = "".join(pieces)
                    need = -1  # a whole message: delivered below
                if need >= 0:
                    self._feed(decoder, data, state)
                    return
            elif decoder._pieces:
                # A carry-over whose length was not read: the decoder reads it with the frame.
                self._feed(decoder, data, state)
                return
            else:
                # The usual frame starts with a length prefix the decoder has seen before: its
                # length without a delimiter search (the decoder's memory).  One whole message,
                # its length in characters its length in UTF-16 units when no character is
                # beyond U+FFFF (told without a scan), is delivered at once; the start of one
                # becomes the decoder's carry-over at once, as the decoder's own entry does.
                width = decoder._width
                length = decoder._prefixes.get(data[:width])
                if length is not None and (
                    data.isascii() or data.__sizeof__() - 4 * len(data) < NARROW_BELOW
                ):  # (_narrow(data), inlined)
                    size = len(data)
                    end = width + length
                    if end == size:
                        data = data[width:]
                    elif end > size and size <= decoder._max_size:
                        decoder._pieces = [data]
                        decoder._size = size
                        decoder._need = end - size
                        decoder._body = width
                        decoder._compact_at = WIDTH
                        return
                    else:
                        self._feed(decoder, data, state)
                        return
                else:
                    head, found, rest = data.partition(decoder._delimiter)
                    # One whole message with a canonical length (its prefix then kept in the
                    # decoder's memory); anything else (several messages, a partial, lone
                    # digits, astral text) takes the decoder.
                    if not found or str(len(rest)) != head or not (rest.isascii() or _narrow(rest)):
                        self._feed(decoder, data, state)
                        return
                    if len(head) < decoder._short:
                        decoder._learn(head + found, len(rest))
                    data = rest
        # The hot path, inlined: a message that needs no trimming and is not the padding.
        if data and data[0] not in _JS_WS and data[-1] not in _JS_WS and data != self.padding:
            factory = self.message_factory
            if factory is Message:
                event = _new(Message)  # its one field set here: no __init__ call
                event.data = data
                self._events.append(event)
            else:
                self._events.append(factory(data))
        else:
            self._deliver(data)

    def _corrupt(
        self, exc: RemoteProtocolError, state: ClientState, frame: str
    ) -> RemoteProtocolError:
        """The stream is corrupt: forget the carry-over, stop; the error to raise."""
        self._decoder.reset()
        self._machine.fire(_I.CORRUPTION)
        self._heartbeat_at = None
        return RemoteProtocolError(str(exc), state=state, frame=frame)

    def _feed(self, decoder: TrackMessageSizeDecoder, data: str, state: ClientState) -> None:
        """Read ``data`` with the TrackMessageSize decoder; deliver what it completes."""
        try:
            messages = decoder.feed(data)
        except RemoteProtocolError as exc:
            raise self._corrupt(exc, state, data) from None
        if messages:
            self._deliver_all(messages)

    def _deliver_all(self, messages: list[str]) -> None:
        """Deliver the messages the decoder completed, in order."""
        factory = self.message_factory
        padding = self.padding
        append = self._events.append
        for message in messages:
            # The hot path again: no trimming needed, not the padding.
            if (
                message
                and message[0] not in _JS_WS
                and message[-1] not in _JS_WS
                and message != padding
            ):
                if factory is Message:
                    event = _new(Message)
                    event.data = message
                    append(event)
                else:
                    append(factory(message))
            else:
                self._deliver(message)

    def _deliver(self, message: str) -> None:
        # atmosphere.js trims every message; empty ones (the 2048-space reconnect padding
        # among them) are not delivered, and one equal to the padding is the server's
        # heartbeat.
        if message[:1] in _JS_WS or message[-1:] in _JS_WS:
            message = message.strip(JS_WHITESPACE)
        if message == self.padding:  # the padding untrimmed, as the real client compares
            self._events.append(Heartbeat())
        elif message:
            self._events.append(self.message_factory(message))

    def _handshake(self, frame: str, now: float) -> str:
        """Read the handshake as atmosphere.js does; returns what is left to deliver."""
        if not js_trim(frame):
            return frame
        fields = frame.split(self.delimiter)
        pos = 1 if self.track_message_length else 0
        if len(fields) <= pos + 1:
            # Too few fields: an ordinary message; the client keeps waiting.
            return frame
        self._machine.fire(_I.HANDSHAKE)
        self._handshake_seen = True
        # The uuid is trimmed.  (A server that omits the length prefix the client asked for
        # makes the real client take "0" as its uuid here; so do we.)
        self.tracking_id = js_trim(fields[pos])
        # parseInt: NaN, 0 or a negative interval all mean no client heartbeat.
        interval = _js_parse_int(fields[pos + 1]) or 0
        self.heartbeat_interval = interval / 1000.0 if interval > 0 else 0.0
        # The padding is taken as it is, untrimmed; a missing field leaves it undefined, and
        # the real client then sends the text "undefined" as its heartbeat.
        self.padding = fields[pos + 2] if len(fields) > pos + 2 else None
        self._resumable = True
        self._events.append(Opened(self.tracking_id, interval, self.padding))
        self._start_heartbeat(now)
        # Trailing data: only two or more pieces after the handshake are delivered (joined);
        # a single trailing piece is dropped, as the 2.x-4.x clients do.
        first = pos + 3
        if len(fields) > first + 1:
            return self.delimiter.join(fields[first:])
        return ""

    def receive_eof(self, now: float) -> None:
        """The socket closed: stop heartbeats; :meth:`reconnect` may follow."""
        before = self._machine.state
        self._machine.fire(_I.EOF)
        self._heartbeat_at = None
        self._decoder.reset()
        if before in _CONNECTED or before is _S.CONNECTING:
            self._events.append(Closed(self._resumable))

    # -- outputs ---------------------------------------------------------------------

    def send(self, item: str, now: float | None = None) -> None:
        """Queue one application message; allowed once the transport is open."""
        if self._machine.state is not _S.OPEN:
            self._machine.fire(_I.SEND)
        self._out.append(item)

    def close(self, now: float, *, timestamp_ms: int | None = None) -> str | None:
        """End the session for good; returns the HTTP close request URL to send, if any.

        The real client sends it only when the protocol is on and the handshake arrived.
        ``timestamp_ms`` (the ``_`` cache buster) defaults to ``now`` plus
        :attr:`wall_offset`, in milliseconds: the time since the epoch, as atmosphere.js
        stamps it, once a driver (or you) set the offset for the clock ``now`` comes from.
        """
        already = not self._resumable  # closed by close() or the inactivity timeout
        self._machine.fire(_I.CLOSE)
        self._heartbeat_at = None
        self._resumable = False
        # The close request goes once per session: not again after a timeout or a close.
        return None if already else self._close_url(now, timestamp_ms)

    def _close_url(self, now: float, timestamp_ms: int | None = None) -> str | None:
        if not (self.enable_protocol and self.handshake_received):
            return None
        if timestamp_ms is None:
            timestamp_ms = int((now + (self.wall_offset or 0.0)) * 1000)
        stamp = timestamp_ms
        return build_close_url(self.url, self.tracking_id, stamp, self.headers)

    def reconnect(self) -> None:
        """Prepare the next connection: same tracking id, no handshake expected.

        Allowed after the connection ended (:meth:`receive_eof`) or broke (``ERROR``), and
        as a no-op while an attempt never opened (``CONNECTING``).
        """
        if not self._resumable:
            raise LocalProtocolError("the session was closed for good", state=self.state)
        self._machine.fire(_I.RECONNECT)
        self._decoder.reset()
        self._heartbeat_at = None

    # -- time ------------------------------------------------------------------------

    def _start_heartbeat(self, now: float) -> None:
        if self.heartbeat_interval > 0:
            self._heartbeat_at = now + self.heartbeat_interval

    def next_deadline(self) -> float | None:
        deadline = self._heartbeat_at
        if self.inactivity_timeout and self._machine.state in _CONNECTED:
            idle = self._last_received + self.inactivity_timeout
            if deadline is None or idle < deadline:
                deadline = idle
        return deadline

    def handle_timer(self, now: float) -> None:
        state = self._machine.state
        if (
            self.inactivity_timeout
            and state in _CONNECTED
            and now >= self._last_received + self.inactivity_timeout
        ):
            # atmosphere.js reports onClientTimeout, sends the close request, closes the
            # socket and does not reconnect (unless reconnect_on_timeout says otherwise).
            again = self.reconnect_on_timeout
            close_url = None if again else self._close_url(now)
            self._machine.fire(_I.TIMEOUT)
            self._heartbeat_at = None
            self._resumable = again
            self._events.append(InactivityTimeout(close_url))
            return
        at = self._heartbeat_at
        if at is not None and now >= at and state is _S.OPEN:
            padding = self.padding
            self._out.append("undefined" if padding is None else padding)
            # Fixed cadence: slots missed while the caller slept are skipped, not bunched.
            interval = self.heartbeat_interval
            missed = int((now - at) // interval)
            self._heartbeat_at = at + (missed + 1) * interval


_JS_WS = frozenset(JS_WHITESPACE) | {""}
_new = object.__new__
_OPEN = ClientState.OPEN
