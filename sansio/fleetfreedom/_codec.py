"""The ``name {JSON}`` line codec (spec §1), with one replaceable JSON decoding hook.

Decoding splits at the first space; a frame without a space is a name with an empty body
(as the official C# client reads it).  Encoding is compact JSON.  The size limit counts
UTF-8 bytes; it is checked without encoding unless the text is near the limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import _json
from .._errors import excerpt
from .._json import safe_dumps
from ._types import is_name

__all__ = [
    "BAD_JSON",
    "BAD_NAME",
    "DEFAULT_MAX_LINE",
    "NOT_OBJECT",
    "MessageError",
    "decode",
    "encode",
    "encode_safe",
    "line_too_long",
]

DEFAULT_MAX_LINE = 16 * 1024 * 1024
"""Largest line (in UTF-8 bytes) a core accepts or sends by default: 16 MiB."""

BAD_NAME = "invalid message name"
BAD_JSON = "invalid JSON"
NOT_OBJECT = "body is not a JSON object"

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_dumps = _ENCODER.encode


class MessageError(ValueError):
    """A well-framed message that cannot be used: bad name, bad JSON, body not an object.

    Not a protocol error: the cores turn it into an event carrying the raw text.
    ``name`` is the message name when one could be read (``""`` otherwise).
    """

    def __init__(self, reason: str, name: str, frame: str):
        super().__init__(f"{reason}: {excerpt(frame)}")
        self.reason = reason
        self.name = name
        self.frame = frame


def line_too_long(frame: str, limit: int) -> bool:
    """Whether ``frame`` is over ``limit`` UTF-8 bytes (encodes only near the limit)."""
    size = len(frame)
    if size > limit:
        return True
    if size * 4 <= limit or frame.isascii():
        return False
    return len(frame.encode("utf-8", "surrogatepass")) > limit


def decode(frame: str) -> tuple[str, dict[str, Any]]:
    """Split one frame into its name and JSON-object body; raise :class:`MessageError`."""
    cut = frame.find(" ")
    if cut < 0:
        if not is_name(frame):
            raise MessageError(BAD_NAME, "", frame)
        return frame, {}
    name = frame[:cut]
    if not is_name(name):
        raise MessageError(BAD_NAME, "", frame)
    try:
        body = _json.loads(frame[cut + 1 :])
    except Exception:  # any decoder's error type (ValueError, orjson.JSONDecodeError, ...)
        raise MessageError(BAD_JSON, name, frame) from None
    if type(body) is not dict:
        raise MessageError(NOT_OBJECT, name, frame)
    return name, body


def encode(name: str, body: Mapping[str, Any]) -> str:
    """``name`` + one space + compact JSON; raises ``ValueError`` on a bad name or body."""
    if not is_name(name):
        raise ValueError(f"not a lowerCamelCase message name: {excerpt(name)}")
    return name + " " + _dumps(body)


def encode_safe(name: str, body: Mapping[str, Any]) -> str:
    """:func:`encode` for bodies that may carry what a peer sent (a ``reqId``, an echoed
    list, a stored object): never refuses decoded JSON, and always writes strict JSON that
    encodes as UTF-8 (``NaN``/``Infinity`` become ``null``, lone surrogates U+FFFD)."""
    if not is_name(name):
        raise ValueError(f"not a lowerCamelCase message name: {excerpt(name)}")
    return name + " " + safe_dumps(body)
