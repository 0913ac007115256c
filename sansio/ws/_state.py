"""The stack's states and its one transition table (shared by the client and server stacks)."""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "StackState"]


class StackState(enum.Enum):
    """Where a WebSocket connection stands, from the stack's point of view."""

    IDLE = "idle"
    """Built; :meth:`connection_made` not called yet."""
    CONNECTING = "connecting"
    """The HTTP phase: the client awaits the handshake response; the server reads requests
    (plain HTTP ones are answered here, keep-alive included)."""
    OPEN = "open"
    CLOSING = "closing"
    """This side sent its close frame and waits for the peer's (or the close timeout)."""
    CLOSED = "closed"
    """Over: write what :meth:`data_to_send` still returns, then close the socket."""


class _Input(enum.Enum):
    START = enum.auto()
    RECEIVE = enum.auto()
    ACCEPT = enum.auto()
    REJECT = enum.auto()
    FAIL = enum.auto()
    HTTP_DONE = enum.auto()
    SEND_CLOSE = enum.auto()
    PEER_CLOSE = enum.auto()
    EOF = enum.auto()
    TIMEOUT = enum.auto()
    ABORT = enum.auto()


_S = StackState
_I = _Input

TRANSITIONS: dict[tuple[StackState, _Input], StackState] = {
    (_S.IDLE, _I.START): _S.CONNECTING,
    (_S.IDLE, _I.EOF): _S.CLOSED,
    (_S.IDLE, _I.ABORT): _S.CLOSED,
    (_S.CONNECTING, _I.RECEIVE): _S.CONNECTING,
    (_S.CONNECTING, _I.ACCEPT): _S.OPEN,
    (_S.CONNECTING, _I.REJECT): _S.CLOSED,
    (_S.CONNECTING, _I.FAIL): _S.CLOSED,
    (_S.CONNECTING, _I.HTTP_DONE): _S.CLOSED,
    (_S.CONNECTING, _I.EOF): _S.CLOSED,
    (_S.CONNECTING, _I.TIMEOUT): _S.CLOSED,
    (_S.CONNECTING, _I.ABORT): _S.CLOSED,
    (_S.OPEN, _I.RECEIVE): _S.OPEN,
    (_S.OPEN, _I.SEND_CLOSE): _S.CLOSING,
    (_S.OPEN, _I.PEER_CLOSE): _S.CLOSED,
    (_S.OPEN, _I.EOF): _S.CLOSED,
    (_S.OPEN, _I.FAIL): _S.CLOSED,
    (_S.CLOSING, _I.RECEIVE): _S.CLOSING,
    (_S.CLOSING, _I.PEER_CLOSE): _S.CLOSED,
    (_S.CLOSING, _I.EOF): _S.CLOSED,
    (_S.CLOSING, _I.TIMEOUT): _S.CLOSED,
    (_S.CLOSING, _I.FAIL): _S.CLOSED,
    (_S.CLOSED, _I.EOF): _S.CLOSED,
    (_S.CLOSED, _I.ABORT): _S.CLOSED,
}
"""Every legal (state, input) pair; anything else raises :class:`LocalProtocolError`
(feeding bytes before :meth:`connection_made` or after ``CLOSED``, for instance)."""
