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
from .._pieces import WIDTH, compact

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
    if text.isascii() or _bmp(text):
        return len(text)
    return _units(text)


def _units(text: str) -> int:
    """UTF-16 units of any text (a lone surrogate is one), read in one C-level pass."""
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def _sizeof_base() -> int | None:
    """What ``str.__sizeof__`` adds to the characters of a compact non-ASCII string, when
    this interpreter lays strings out as CPython does (PEP 393); ``None`` otherwise."""
    try:
        base = "\U00010000".__sizeof__() - 8
        layout = (("\U00010000" * 3, 16), ("\u0100" * 3, 8), ("\u00e9" * 3, 4))
        if all(text.__sizeof__() == base + size for text, size in layout):
            return base
    except (AttributeError, TypeError):  # pragma: no cover - other interpreters
        pass
    return None  # pragma: no cover - other interpreters


_SIZEOF_BASE = _sizeof_base()
NARROW_BELOW = -(1 << 62) if _SIZEOF_BASE is None else _SIZEOF_BASE + 4
"""``text.__sizeof__() - 4 * len(text) < NARROW_BELOW`` is :func:`_narrow`, inlined where a
call per message counts (never true on interpreters that lay strings out otherwise)."""


def _narrow(text: str) -> bool:
    """``text`` is stored in fewer than 4 bytes per character, so it has no character
    beyond U+FFFF: its length in units is ``len(text)``.  ``False`` means "not known".

    CPython stores a string in 1, 2 or 4 bytes per character, the fewest its widest
    character needs (PEP 393), and ``__sizeof__`` tells which without reading the text.
    (Cached UTF-8 can make a narrow string look wide; that only sends it to the exact
    count.)
    """
    return text.__sizeof__() - 4 * len(text) < NARROW_BELOW


def _bmp(text: str) -> bool:
    """``text`` holds no character beyond U+FFFF (in O(1) on CPython, else one C pass)."""
    return _narrow(text) or _units(text) == len(text)


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
# Digits are ASCII only (re.ASCII): JavaScript reads no other digits.  Each run of digits
# has one way to match (the fraction's digits only after its dot), so a failing match backs
# off in linear time, however many digits come before the character that fails it.
_JS_NUMBER = re.compile(
    r"(?P<dec>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|0[xX](?P<hex>[0-9a-fA-F]+)|0[oO](?P<oct>[0-7]+)|0[bB](?P<bin>[01]+)"
    r"|(?P<inf>[+-]?Infinity)",
    re.ASCII,
)

_HUGE = 1 << 53
"""Lengths are read up to here (JavaScript's exact integers); longer ones count as this,
which is over any limit a decoder can have."""
_BASE_DIGITS = {"hex": (16, 14), "oct": (8, 18), "bin": (2, 54)}
"""Base, and the most digits (after leading zeros) worth converting: more reach _HUGE."""


def _bounded_int(digits: str, base: int, most: int) -> int:
    """``int(digits, base)`` capped at _HUGE, never converting more than ``most`` digits."""
    if len(digits) > most:
        return _HUGE
    return min(int(digits, base), _HUGE) if digits else 0


def _length_of(head: str) -> int:
    """The message length a JavaScript client reads from ``head``; corruption raises.

    atmosphere.js converts with unary plus and only rejects ``NaN``.  Of the other numbers it
    accepts, negative lengths make it slice garbage (or loop until out of memory) and
    ``Infinity`` stalls the stream for good, so those are corruption here too; fractions are
    truncated as ``String.prototype.substring`` does.  However many digits ``head`` has, the
    work is linear in it: lengths of 2**53 and more are returned as 2**53.
    """
    if head.isascii() and head.isdigit():  # ASCII text: isdigit() is exactly [0-9]+
        return _bounded_int(head.lstrip("0"), 10, 16)
    text = js_trim(head)
    if not text:
        return 0
    match = _JS_NUMBER.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(f"message length {head[:40]!r} is not a number")
    for group, (base, most) in _BASE_DIGITS.items():
        spelled = match[group]
        if spelled is not None:
            return _bounded_int(spelled.lstrip("0"), base, most)
    if match["inf"] is not None:
        raise RemoteProtocolError(f"message length {head[:40]!r} is infinite")
    value = float(match["dec"])
    if value < 0:
        raise RemoteProtocolError(f"message length {head[:40]!r} is negative")
    if value != value or value == float("inf"):
        raise RemoteProtocolError(f"message length {head[:40]!r} is out of range")
    return min(int(value), _HUGE)


PREFIXES_KEPT = 32
"""Length prefixes (``<digits><delimiter>``) a decoder remembers; it forgets them all when
it has seen this many different ones."""

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

    Every frame costs time linear in its own length, whatever the text and however the
    message is cut.  Once the pending message's length was read, the units it still lacks
    are known: a frame that does not complete it is only counted (in one C-level pass when it
    has astral characters) and appended, and the one that does is joined once.  The pieces
    are compacted as they come (:mod:`trackwire._pieces`), so the carry-over holds a number
    of pieces logarithmic in its length, not one per frame.  A carry-over whose length was
    not read yet (a prefix cut before its delimiter) is re-read with the next frame as the
    real client does; it cannot grow that way (a frame without the delimiter is delivered).

    The length prefixes of a stream repeat (messages of a kind have lengths of the same
    digits, often the same length): the decoder remembers up to ``PREFIXES_KEPT`` (32) of
    them, text and value, and a message that starts with one it knows is read without
    looking for its delimiter or converting its digits.  (The same text reads the same
    anywhere, so this changes no result.)
    """

    __slots__ = (
        "_body",
        "_compact_at",
        "_delimiter",
        "_max_size",
        "_need",
        "_pieces",
        "_prefixes",
        "_short",
        "_size",
        "_width",
    )

    def __init__(self, delimiter: str = "|", max_size: int = DEFAULT_MAX_MESSAGE_SIZE):
        if not delimiter:
            raise ValueError("the delimiter must not be empty")
        self._prefixes: dict[str, int] = {}
        """Length prefixes seen (``"357|"``) and the lengths they declare: all ASCII digits,
        fewer than the limit has."""
        self._width = 0
        """Characters of every prefix kept: where the next message's would end."""
        self.delimiter = delimiter
        self.max_size = max_size
        self._pieces: list[str] = []
        """The carry-over, in pieces (``_pieces[0]`` starts with the pending length)."""
        self._size = 0
        """Characters in ``_pieces``."""
        self._need = 0
        """Units the pending message still lacks once its length was read; 0 when nothing
        is pending or its length was not read yet."""
        self._body = 0
        """Where the pending message's body starts in ``_pieces[0]`` (when ``_need``)."""
        self._compact_at = WIDTH
        """``_pieces`` is compacted when it holds this many pieces."""

    @property
    def delimiter(self) -> str:
        """What ends a message's length."""
        return self._delimiter

    @delimiter.setter
    def delimiter(self, value: str) -> None:
        self._delimiter = value
        self._prefixes.clear()  # prefixes hold the delimiter

    @property
    def max_size(self) -> int:
        """Largest declared length, and largest carry-over in characters."""
        return self._max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._max_size = value
        # A length of fewer digits than the limit is under it: the loop reads such lengths
        # with int() alone (bounded: fewer than len(str(value)) ASCII digits).
        self._short = len(str(value)) if value >= 0 else 0
        self._prefixes.clear()  # they were read against the previous limit

    @property
    def partial(self) -> str:
        """The carry-over: the start of a message that has not arrived whole yet."""
        pieces = self._pieces
        if len(pieces) > 1:
            self._pieces = pieces = ["".join(pieces)]
            self._compact_at = WIDTH
        return pieces[0] if pieces else ""

    @property
    def pending(self) -> bool:
        """Some carry-over is waiting for the next frame."""
        return bool(self._pieces)

    def reset(self) -> None:
        """Forget the carry-over (a new connection, or corruption)."""
        # _size, _body and _compact_at are set whenever _pieces is filled again.
        self._pieces = []
        self._need = 0

    def feed(self, frame: str) -> list[str]:
        """The complete messages ``frame`` finishes, in order (possibly none)."""
        need = self._need
        if need:
            if not frame.isascii():
                return self._feed_text(frame, need)
            size = len(frame)
            pieces = self._pieces
            if size < need:
                # Still short of the declared length: keep the piece, read nothing again.
                if size:
                    total = self._size + size
                    if total > self._max_size:
                        self._over(total)
                    pieces.append(frame)
                    self._size = total
                    self._need = need - size
                    if len(pieces) >= self._compact_at:
                        self._compact_at = compact(pieces, self._compact_at - WIDTH) + WIDTH
                return []
            # This frame completes the pending message: join once.
            pieces[0] = pieces[0][self._body :]
            self._pieces = []
            self._need = 0
            if size == need:
                pieces.append(frame)
                return ["".join(pieces)]
            pieces.append(frame[:need])
            messages = ["".join(pieces)]
            # What follows is read on, as the rest of the same text would be: with no
            # delimiter in it, it becomes the carry-over, not a raw message.
            self._scan(frame, need, frame.find(self._delimiter, need), messages)
            return messages
        if self._pieces:
            # A carry-over whose length was not read: joined to the frame and read again,
            # as the real client does (it cannot grow: see the class docstring).
            data = _join_surrogates(self.partial, frame)
            pos = data.find(self._delimiter)
            if pos < 0:
                # No delimiter anywhere: atmosphere.js hands the text over as one message
                # and leaves the carry-over buffer as it was (so a pending partial is
                # delivered glued to this frame, and stays pending).
                return [data]
            found: list[str] = []
            self._scan(data, 0, pos, found)
            return found
        delimiter = self._delimiter
        # The usual frames first, without the loop: one whole message, or the start of one.
        body = self._width
        length = self._prefixes.get(frame[:body])
        if length is None:
            pos = frame.find(delimiter)
            if pos < 0:
                return [frame]  # no delimiter: delivered raw (see above)
            head = frame[:pos]
            if not (head.isdigit() and len(head) < self._short and head.isascii()):
                found = []
                self._scan(frame, 0, pos, found)
                return found
            body = pos + len(delimiter)
            length = int(head)
            self._learn(frame[:body], length)
        # _narrow(frame), inlined: units are characters.
        if frame.isascii() or frame.__sizeof__() - 4 * len(frame) < NARROW_BELOW:
            size = len(frame)
            end = body + length
            if end == size:
                return [frame[body:]]
            if end > size:
                if size > self._max_size:
                    self._over(size)
                self._pieces = [frame]
                self._size = size
                self._need = end - size
                self._body = body
                self._compact_at = WIDTH
                return []
        found = []
        self._scan(frame, 0, body - len(delimiter), found)
        return found

    def _learn(self, prefix: str, length: int) -> None:
        """Remember that ``prefix`` (ASCII digits, then the delimiter) declares ``length``."""
        prefixes = self._prefixes
        width = len(prefix)
        if width != self._width or len(prefixes) >= PREFIXES_KEPT:
            # All the prefixes kept have one width: a shorter slice (at the end of a frame)
            # can never be taken for one.
            prefixes.clear()
            self._width = width
        prefixes[prefix] = length

    def _feed_text(self, frame: str, need: int) -> list[str]:
        """:meth:`feed` of a non-ASCII frame while ``need`` units are pending."""
        pieces = self._pieces
        last = pieces[-1]
        if "\udc00" <= frame[0] <= "\udfff" and "\ud800" <= last[-1] <= "\udbff":
            # The sender cut a surrogate pair: the halves meet again as one character.
            pieces[-1] = _join_surrogates(last, frame[:1])
            frame = frame[1:]
            need -= 1
        units = len(frame) if _narrow(frame) else _units(frame)
        bmp = units == len(frame)
        if units < need:
            if frame:
                total = self._size + len(frame)
                if total > self._max_size:
                    self._over(total)
                pieces.append(frame)
                self._size = total
                if len(pieces) >= self._compact_at:
                    self._compact_at = compact(pieces, self._compact_at - WIDTH) + WIDTH
            self._need = need - units
            return []
        end = need if bmp else _advance(frame, 0, need)
        if end < -1:
            # The length ends inside an astral character: JavaScript would cut the
            # surrogate pair, so we do the same and keep the low half.
            cut = -end - 2
            high, low = _split_astral(frame[cut])
            tail = frame[:cut] + high
            frame = low + frame[cut + 1 :]
            end = 0
        else:
            tail = frame[:end]
        pieces[0] = pieces[0][self._body :]
        pieces.append(tail)
        messages = ["".join(pieces)]
        self.reset()
        if end < len(frame):
            self._scan(frame, end, frame.find(self._delimiter, end), messages)
        return messages

    def _over(self, total: int) -> None:
        self.reset()
        raise RemoteProtocolError(
            f"partial message of {total} characters exceeds the limit of {self._max_size}"
        )

    def _length(self, head: str) -> int:
        """The length ``head`` declares, checked against the limit; corruption raises."""
        try:
            length = _length_of(head)
        except RemoteProtocolError:
            self.reset()  # as atmosphere.js: corruption drops the buffer
            raise
        if length > self._max_size:
            self.reset()
            raise RemoteProtocolError(
                f"message length {length} exceeds the limit of {self._max_size}"
            )
        return length

    def _scan(self, data: str, start: int, pos: int, messages: list[str]) -> None:
        """Read messages from ``data[start:]`` (``pos``: the first delimiter at or after
        ``start``, -1 if none) into ``messages``; what is left becomes the carry-over."""
        delimiter = self._delimiter
        step = len(delimiter)
        append = messages.append
        need = 0
        body = 0
        size = len(data)
        short = self._short
        find = data.find
        if data.isascii():
            # The usual case.  A prefix known already is read from the memory; else a length
            # of fewer digits than the limit has is under it: int() of a few ASCII digits
            # (isdigit() on ASCII text is [0-9]+) is all it takes.
            known = self._prefixes.get
            width = self._width
            while start < size:
                length = known(data[start : start + width])
                if length is None:
                    if pos < start:  # (``pos`` is only looked for when needed)
                        pos = find(delimiter, start)
                        if pos < 0:
                            break
                    head = data[start:pos]
                    body = pos + step
                    if head.isdigit() and len(head) < short:
                        length = int(head)
                        self._learn(data[start:body], length)
                        width = body - start
                    else:
                        length = self._length(head)
                else:
                    body = start + width
                end = body + length
                if end > size:
                    need = end - size  # incomplete: wait for the next frame
                    break
                append(data[body:end])
                start = end
        elif _bmp(data):
            # Units and characters agree here too; a length must be ASCII digits.
            while pos >= 0:
                head = data[start:pos]
                body = pos + step
                if head.isdigit() and len(head) < short and head.isascii():
                    end = body + int(head)
                else:
                    end = body + self._length(head)
                if end > size:
                    need = end - size
                    break
                append(data[body:end])
                start = end
                pos = find(delimiter, end)
        else:
            while pos >= 0:
                length = self._length(data[start:pos])
                body = pos + step
                end = _advance(data, body, length)
                if end == -1:
                    need = length - _units(data[body:])
                    break
                if end < -1:
                    # The length ends inside an astral character: JavaScript would cut
                    # the surrogate pair, so we do the same and keep the low half.
                    cut = -end - 2
                    high, low = _split_astral(data[cut])
                    append(data[body:cut] + high)
                    data = low + data[cut + 1 :]
                    size = len(data)
                    start = 0
                else:
                    append(data[body:end])
                    start = end
                pos = data.find(delimiter, start)
        rest = data[start:] if start else data
        if len(rest) > self._max_size:
            self._over(len(rest))
        if rest:
            self._pieces = [rest]
            self._size = len(rest)
            self._need = need
            self._body = body - start
            self._compact_at = WIDTH
        else:
            self._pieces = []
            self._need = 0
