"""TrackMessageSize framing (``<length>|<message>``) and the JavaScript string rules it needs.

Lengths count UTF-16 code units, as Java's ``CharBuffer.length()`` and JavaScript's
``String.length`` do, while Python strings count code points: an astral character (U+10000
and above) is one Python character but two units.  Frames may also carry lone surrogates when
a sender split a message inside a surrogate pair; those count one unit each and are joined
back into one character when the two halves meet in the carry-over buffer.
"""

from __future__ import annotations

import re

from .._errors import RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "JS_WHITESPACE",
    "TrackMessageSizeDecoder",
    "encode_message",
    "js_trim",
    "utf16_len",
]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Largest partial TrackMessageSize message buffered (and largest declared length), in units."""

# What JavaScript's String.prototype.trim removes: WhiteSpace and LineTerminator code points.
# Python's str.strip() differs (it strips U+001C..U+001F and keeps U+FEFF), so we name them.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """``text.trim()`` as JavaScript defines it."""
    return text.strip(JS_WHITESPACE)


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (``String.length`` in JavaScript)."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ch > "\uffff")


def encode_message(message: str, delimiter: str = "|") -> str:
    """Prefix ``message`` with its UTF-16 length, as a TrackMessageSize server does."""
    return f"{utf16_len(message)}{delimiter}{message}"


def _split_astral(ch: str) -> tuple[str, str]:
    code = ord(ch) - 0x10000
    return chr(0xD800 + (code >> 10)), chr(0xDC00 + (code & 0x3FF))


def _join_surrogates(left: str, right: str) -> str:
    """Concatenate, re-forming a surrogate pair split across the boundary."""
    if left and right and "\ud800" <= left[-1] <= "\udbff" and "\udc00" <= right[0] <= "\udfff":
        pair = ((ord(left[-1]) - 0xD800) << 10) + (ord(right[0]) - 0xDC00) + 0x10000
        return left[:-1] + chr(pair) + right[1:]
    return left + right


# JavaScript's ToNumber on a string (used by atmosphere.js as ``+str``): surrounding
# whitespace is ignored, "" is 0, and decimal, exponent, hex, octal and binary spellings count.
_JS_NUMBER = re.compile(
    r"(?P<dec>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|0[xX](?P<hex>[0-9a-fA-F]+)|0[oO](?P<oct>[0-7]+)|0[bB](?P<bin>[01]+)"
    r"|(?P<inf>[+-]?Infinity)"
)


def _length_of(head: str) -> int:
    """The message length a JavaScript client reads from ``head``; corruption raises.

    atmosphere.js converts with unary plus and only rejects ``NaN``.  Of the other numbers it
    accepts, negative lengths make it slice garbage (or loop until out of memory) and
    ``Infinity`` stalls the stream for good, so those are corruption here too; fractions are
    truncated as ``String.prototype.substring`` does.
    """
    if head.isdigit() and head.isascii():
        return int(head)
    text = js_trim(head)
    if not text:
        return 0
    match = _JS_NUMBER.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(f"message length {head[:40]!r} is not a number")
    if match["hex"] is not None:
        return int(match["hex"], 16)
    if match["oct"] is not None:
        return int(match["oct"], 8)
    if match["bin"] is not None:
        return int(match["bin"], 2)
    if match["inf"] is not None:
        raise RemoteProtocolError(f"message length {head[:40]!r} is infinite")
    value = float(match["dec"])
    if value < 0:
        raise RemoteProtocolError(f"message length {head[:40]!r} is negative")
    if value != value or value == float("inf"):
        raise RemoteProtocolError(f"message length {head[:40]!r} is out of range")
    return int(value)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _advance(data: str, start: int, units: int) -> int:
    """Index in ``data`` after ``units`` UTF-16 units from ``start``; -1 when too short.

    An end inside an astral character is reported as ``-(index) - 2``, so that the caller
    can split that character into its surrogates.
    """
    end = start + units
    window = data[start:end]
    if end <= len(data) and (window.isascii() or not _ASTRAL.search(window)):
        return end
    if _SURROGATE.search(window) is None:
        # Every character of the window is one or two units: measure it in UTF-16.
        encoded = window.encode("utf-16-le")
        if len(encoded) < 2 * units:
            return -1
        taken = encoded[: 2 * units].decode("utf-16-le", "surrogatepass")
        last = start + len(taken) - 1
        if "\ud800" <= taken[-1] <= "\udbff":
            return -last - 2
        return last + 1
    # Lone surrogates (a sender split a pair): walk, counting each one as one unit.
    pos = start
    remaining = units
    size = len(data)
    while remaining > 0:
        if pos >= size:
            return -1
        remaining -= 2 if data[pos] > "\uffff" else 1
        pos += 1
    if remaining < 0:
        return -(pos - 1) - 2
    return pos


class TrackMessageSizeDecoder:
    """The client side of TrackMessageSize: a carry-over buffer that yields whole messages.

    Mirrors ``atmosphere.js``: the pending partial message is prepended to each frame before
    looking for the delimiter; a frame that (with the pending text) holds no delimiter is
    delivered raw; a length that is not a number is stream corruption.

    The carry-over is kept as a list of pieces.  While the pending message's length is known
    and its text is ASCII, a frame that does not complete it is only appended, and the one
    that does is joined once: a message split over many frames costs each frame O(1) instead
    of re-joining and re-reading the whole carry-over.
    """

    __slots__ = ("_body", "_need", "_pieces", "_size", "delimiter", "max_size")

    def __init__(self, delimiter: str = "|", max_size: int = DEFAULT_MAX_MESSAGE_SIZE):
        self.delimiter = delimiter
        self.max_size = max_size
        self._pieces: list[str] = []
        self._size = 0
        """Characters in ``_pieces``."""
        self._need = 0
        """Units the pending message still lacks, when known (its header was read and its
        body so far is ASCII); 0 when nothing is pending or the count is not known."""
        self._body = 0
        """Where the pending message's body starts in ``_pieces[0]`` (when ``_need``)."""

    @property
    def partial(self) -> str:
        """The carry-over: the start of a message that has not arrived whole yet."""
        pieces = self._pieces
        if len(pieces) > 1:
            self._pieces = pieces = ["".join(pieces)]
        return pieces[0] if pieces else ""

    @property
    def pending(self) -> bool:
        """Some carry-over is waiting for the next frame."""
        return bool(self._pieces)

    def reset(self) -> None:
        """Forget the carry-over (a new connection, or corruption)."""
        self._pieces = []
        self._size = 0
        self._need = 0

    def feed(self, frame: str) -> list[str]:
        """The complete messages ``frame`` finishes, in order (possibly none)."""
        need = self._need
        if need and frame.isascii():
            size = len(frame)
            pieces = self._pieces
            if size < need:
                if self._size + size <= self.max_size:
                    # Still short of the declared length: keep the piece, read nothing again.
                    pieces.append(frame)
                    self._size += size
                    self._need = need - size
                    return []
            else:
                # This frame completes the pending message: join once.
                pieces[0] = pieces[0][self._body :]
                pieces.append(frame[:need])
                messages = ["".join(pieces)]
                self.reset()
                if size > need:
                    # What follows is read on, as the rest of the same text would be: with
                    # no delimiter in it, it becomes the carry-over, not a raw message.
                    self._scan(frame, need, frame.find(self.delimiter, need), messages)
                return messages
        pieces = self._pieces
        if pieces:
            partial = pieces[0] if len(pieces) == 1 else "".join(pieces)
            data = _join_surrogates(partial, frame)
        else:
            data = frame
        pos = data.find(self.delimiter)
        if pos < 0:
            # No delimiter anywhere: atmosphere.js hands the text over as one message and
            # leaves the carry-over buffer as it was (so a pending partial is delivered glued
            # to this frame, and stays pending).
            return [data]
        messages = []
        self._scan(data, 0, pos, messages)
        return messages

    def _scan(self, data: str, start: int, pos: int, messages: list[str]) -> None:
        """Read messages from ``data[start:]`` (``pos``: the first delimiter at or after
        ``start``, -1 if none) into ``messages``; what is left becomes the carry-over."""
        delimiter = self.delimiter
        step = len(delimiter)
        max_size = self.max_size
        append = messages.append
        need = 0
        body = 0
        ascii_data = data.isascii()
        while pos >= 0:
            head = data[start:pos]
            if head.isdigit() and head.isascii():
                length = int(head)
            else:
                try:
                    length = _length_of(head)
                except RemoteProtocolError:
                    self.reset()  # as atmosphere.js: corruption drops the buffer
                    raise
            if length > max_size:
                self.reset()
                raise RemoteProtocolError(
                    f"message length {length} exceeds the limit of {max_size}"
                )
            body = pos + step
            end = body + length
            if ascii_data:
                # The usual case: ASCII text, where units and characters agree.
                if end > len(data):
                    need = end - len(data)
                    break  # incomplete: wait for the next frame
                append(data[body:end])
                start = end
            else:
                chunk = data[body:end]
                if chunk.isascii():
                    if len(chunk) < length:
                        need = length - len(chunk)
                        break
                    append(chunk)
                    start = end
                else:
                    end = _advance(data, body, length)
                    if end == -1:
                        break
                    if end < -1:
                        # The length ends inside an astral character: JavaScript would cut
                        # the surrogate pair, so we do the same and keep the low half.
                        cut = -end - 2
                        high, low = _split_astral(data[cut])
                        append(data[body:cut] + high)
                        data = low + data[cut + 1 :]
                        start = 0
                    else:
                        append(data[body:end])
                        start = end
            pos = data.find(delimiter, start)
        rest = data[start:] if start else data
        if len(rest) > max_size:
            self.reset()
            raise RemoteProtocolError(
                f"partial message of {len(rest)} characters exceeds the limit of {max_size}"
            )
        if rest:
            self._pieces = [rest]
            self._size = len(rest)
            self._need = need
            self._body = body - start
        else:
            self.reset()
