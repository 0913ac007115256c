"""The client stack: the WebSocket opening handshake, then a text core over wsproto."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WsprotoRemoteError

from .._errors import RemoteProtocolError
from ._events import Connected, HandshakeFailed, Headers, Rejected
from ._stack import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    CoreT,
    StackBase,
)
from ._state import StackState, _Input
from ._url import split_ws_url

__all__ = ["MAX_REJECT_BODY", "ClientStack"]

_BLANK_LINE = re.compile(b"\n\r?\n")
"""The end of an HTTP head, as h11 looks for it."""

MAX_REJECT_BODY = 64 * 1024
"""Bytes of a refusal's body kept for :class:`Rejected` (the rest is dropped)."""

HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


def _decode_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in headers]


class ClientStack(StackBase[CoreT]):
    """Client side of one WebSocket connection carrying ``core`` (any text core).

    ``host`` is the ``Host`` header and ``target`` the request target: for Atmosphere the
    path and query of :attr:`AtmosphereClient.url_to_open`, for FleetFreedom ``/<ghostId>``,
    ``/?ghostId=…`` or a subprotocol.  :meth:`from_url` splits a URL for you.  On
    :meth:`connection_made` the upgrade request is queued; when the server accepts,
    :class:`Connected` is emitted and ``core.connection_made`` runs.  A refusal ends in
    :class:`Rejected`, a broken or missing response in :class:`HandshakeFailed`.
    """

    _own_reader = True

    __slots__ = (
        "_handshake",
        "_head_tail",
        "_reject",
        "_reject_body",
        "extra_headers",
        "host",
        "subprotocols",
        "target",
    )

    def __init__(
        self,
        core: CoreT,
        host: str,
        target: str = "/",
        *,
        subprotocols: Sequence[str] = (),
        extra_headers: HeaderPairs = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        accept_binary: bool = False,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        close_with_core: bool = True,
    ) -> None:
        super().__init__(
            core,
            max_message_size=max_message_size,
            accept_binary=accept_binary,
            close_timeout=close_timeout,
            handshake_timeout=handshake_timeout,
            close_with_core=close_with_core,
        )
        self.host = host
        self.target = target
        self.subprotocols = list(subprotocols)
        self.extra_headers = [(_as_bytes(n), _as_bytes(v)) for n, v in extra_headers]
        self._handshake = H11Handshake(ConnectionType.CLIENT)
        self._reject: RejectConnection | None = None
        self._reject_body = bytearray()
        self._head_tail = b""

    @classmethod
    def from_url(
        cls,
        core: CoreT,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        extra_headers: HeaderPairs = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        accept_binary: bool = False,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        close_with_core: bool = True,
    ) -> ClientStack[CoreT]:
        """A stack for ``url`` (``ws``/``wss``/``http``/``https``); the socket's host, port and
        TLS come from :func:`split_ws_url` on the same URL."""
        address = split_ws_url(url)
        return cls(
            core,
            address.host_header,
            address.target,
            subprotocols=subprotocols,
            extra_headers=extra_headers,
            max_message_size=max_message_size,
            accept_binary=accept_binary,
            close_timeout=close_timeout,
            handshake_timeout=handshake_timeout,
            close_with_core=close_with_core,
        )

    def _start(self, now: float) -> None:
        request = Request(
            host=self.host,
            target=self.target,
            subprotocols=self.subprotocols,
            extra_headers=self.extra_headers,
        )
        self._out.append(self._handshake.send(request))

    def _receive_http(self, data: bytes, now: float) -> None:
        handshake = self._handshake
        rest = data
        try:
            while True:
                # The handshake is given the response up to the end of its head, so that the
                # frames after it come to the stack's own frame reader, not into wsproto.
                cut = self._head_end(rest)
                handshake.receive_data(rest[:cut])
                rest = rest[cut:]
                if self._receive_response(handshake, rest, now) or not rest:
                    return
        except WsprotoRemoteError as exc:
            self._failed(f"bad handshake response ({exc})", data)

    def _head_end(self, data: bytes) -> int:
        """How much of ``data`` reaches the end of an HTTP head (its blank line, found as h11
        finds it: ``\\n``, then an optional ``\\r``, then ``\\n``); all of it when no head
        ends in it."""
        seen = self._head_tail + data
        match = _BLANK_LINE.search(seen)
        if match is None:
            self._head_tail = seen[-2:]
            return len(data)
        self._head_tail = b""
        return match.end() - (len(seen) - len(data))

    def _receive_response(self, handshake: H11Handshake, rest: bytes, now: float) -> bool:
        """React to the handshake's events; ``True`` once the HTTP phase is over (``rest``:
        what came after the head, the first frames when the upgrade was accepted)."""
        for event in handshake.events():
            if isinstance(event, AcceptConnection):
                connection = handshake.connection
                assert connection is not None
                connected = Connected(
                    self.target,
                    event.subprotocol,
                    _decode_headers(event.extra_headers),
                )
                self._open(connection, connected, now, rest)
                return True
            if isinstance(event, RejectConnection):
                self._reject = event
                if not event.has_body:
                    self._rejected()
                    return True
            elif isinstance(event, RejectData):
                room = MAX_REJECT_BODY - len(self._reject_body)
                self._reject_body += event.data[: max(room, 0)]
                if event.body_finished:
                    self._rejected()
                    return True
        return False

    def _rejected(self) -> None:
        reject = self._reject
        assert reject is not None
        self._machine.fire(_Input.REJECT)
        self._deadline = None
        headers = _decode_headers(reject.headers)
        self._emit(Rejected(reject.status_code, headers, bytes(self._reject_body)))

    def _failed(self, reason: str, data: bytes | None = None, how: _Input = _Input.FAIL) -> None:
        error = RemoteProtocolError(reason, state=self.state, frame=data)
        self._machine.fire(how)
        self._deadline = None
        self._emit(HandshakeFailed(error))

    def _http_eof(self, now: float) -> None:
        if self._reject is not None:
            # A refusal whose body ends with the connection.
            self._rejected()
        else:
            self._failed("connection closed before the handshake response")

    def _http_timeout(self, now: float) -> None:
        if self._machine.state is StackState.CONNECTING:
            reason = f"no handshake response within {self.handshake_timeout} s"
            self._failed(reason, how=_Input.TIMEOUT)
