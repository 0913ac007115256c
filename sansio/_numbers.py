"""Numbers read from the wire: ASCII digits only, an explicit length bound, nothing unbounded.

Every number a core takes from a peer's text (a header, a query parameter, a handshake
field, a JSON object key) goes through :func:`parse_digits` or :func:`leading_int`.  They
refuse what ``str.isdigit`` accepts but ``int`` does not (``²``), digits of other scripts,
and runs longer than the caller's bound, so that no peer value can reach ``int`` with more
digits than Python converts (4300) or become a float too large to represent.  A refusal is
``None``: the caller decides what an unreadable number means for its protocol.
"""

from __future__ import annotations

import re

__all__ = ["MAX_ID_DIGITS", "leading_int", "parse_digits"]

MAX_ID_DIGITS = 19
"""Digits of the largest identifier read from text (a 64-bit integer has at most 19)."""

_LEADING = re.compile(r"[+-]?([0-9]+)")


def parse_digits(text: str, max_digits: int) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``max_digits`` ASCII digits.

    No sign, no spaces, no underscores, no other scripts' digits; anything else (and a longer
    run) is ``None``.
    """
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def leading_int(text: str, max_digits: int) -> int | None:
    """The optionally signed run of ASCII digits at the start of ``text``, as JavaScript's
    ``parseInt(text, 10)`` reads it (the rest is ignored); ``None`` when there is none or the
    run is longer than ``max_digits``."""
    match = _LEADING.match(text)
    if match is None or len(match.group(1)) > max_digits:
        return None
    return int(match.group())
