"""Frame boundaries of a server-to-client WebSocket stream (RFC 6455 §5.2), for the client
stack's reader in front of wsproto.

The reader hands whole unfragmented text frames straight to the core and every other frame
to wsproto, always whole, so that wsproto never holds part of a frame between two reads.
These helpers only find where frames start and end and which headers wsproto would reject;
wsproto stays the judge of everything it is given.
"""

from __future__ import annotations

__all__ = ["BAD", "CLOSE", "INCOMPLETE", "TEXT", "frame_bounds", "holdable"]

TEXT = 0x81
"""First byte of an unfragmented text frame without reserved bits."""
CLOSE = 0x88
"""First byte of a close frame."""
INCOMPLETE = -1
""":func:`frame_bounds`: the header is not all there yet."""
BAD = -2
""":func:`frame_bounds`: a header wsproto fails the connection on (or one too long to hold)."""

# First bytes wsproto accepts from a server when no extension was negotiated: FIN and a
# data opcode (continuation, text, binary), or FIN and a control opcode (close, ping, pong).
_VALID_FIRST = frozenset({0x00, 0x01, 0x02, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8A})
_CONTROL = frozenset({CLOSE, 0x89, 0x8A})


def frame_bounds(buf: bytes | bytearray, pos: int, limit: int) -> tuple[int, int]:
    """``(payload start, frame end)`` of the frame at ``pos``, or ``(INCOMPLETE, 0)`` /
    ``(BAD, 0)``.

    ``BAD`` covers what wsproto rejects from a server (unknown opcode, reserved bits, a mask,
    a fragmented or over-long control frame, a length not in its shortest form) and a
    payload over ``limit`` bytes, which the reader does not buffer.
    """
    size = len(buf)
    if size - pos < 2:
        return INCOMPLETE, 0
    first = buf[pos]
    length = buf[pos + 1]
    if first not in _VALID_FIRST or length & 0x80:
        return BAD, 0
    if length < 126:
        start = pos + 2
    elif first in _CONTROL:
        return BAD, 0
    elif length == 126:
        start = pos + 4
        if start > size:
            return INCOMPLETE, 0
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        if length < 126:
            return BAD, 0
    else:
        start = pos + 10
        if start > size:
            return INCOMPLETE, 0
        length = int.from_bytes(buf[pos + 2 : start], "big")
        if length <= 0xFFFF or length >> 63:
            return BAD, 0
    if length > limit:
        return BAD, 0
    return start, start + length


def holdable(first: int) -> bool:
    """A frame starting with ``first`` may wait, incomplete, for the next read without
    wsproto seeing it: wsproto reacts to part of it no earlier than to all of it (control
    frames), or the reader checks what it would react to (text: its UTF-8)."""
    return first == TEXT or first in _CONTROL
