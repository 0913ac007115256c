"""The compiled decoder of FleetFreedom bodies (``trackwire[fast]``, msgspec).

A body is decoded by msgspec's compiled JSON decoder into the same ``dict`` the standard
library would give; whatever msgspec refuses (``NaN``, lone surrogates, numbers out of
range, nesting too deep, bad JSON) is decoded again by the default path, so the value or
the error is the default path's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .._json import stdlib_loads

__all__ = ["decode", "loads"]

decode: Callable[[str], Any] = msgspec.json.Decoder().decode
"""msgspec's decoder alone: a value equal to the default path's, or an exception (then the
default path decodes the text again: :func:`loads`, or the client's own retry)."""


def loads(text: str) -> Any:
    """:func:`json.loads` of ``text``: the same value or error, through msgspec when it can."""
    try:
        return decode(text)
    except Exception:  # refused: the default path gives the value, or its own error
        return stdlib_loads(text)
