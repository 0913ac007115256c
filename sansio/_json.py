"""The one JSON decoding hook every core uses, replaceable at run time.

The default decodes with the standard library's own C scanner, called directly: the same
results and errors as :func:`json.loads` without its Python-level wrappers (about a quarter
of its cost on a 357-byte message).  :func:`set_json_loads` swaps in another decoder that
takes ``str`` and raises ``ValueError`` on bad input, such as ``orjson.loads``.

Encoding the other way, :func:`safe_dumps` is what the server cores write replies with: it
never fails on decoded JSON and always yields strict JSON that encodes as UTF-8, whatever a
peer managed to put into a value it echoes (``NaN``, ``1e999999``, a lone surrogate escape,
nesting deep enough to exhaust the stack).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_SAFE_DEPTH",
    "get_json_loads",
    "json_safe",
    "safe_dumps",
    "set_json_loads",
    "stdlib_loads",
]

JsonLoads = Callable[[str], Any]

scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The stdlib's C scanner: ``(value, end)`` of the JSON value at an index; ``StopIteration``
(its ``value`` the index) where none starts."""
_JSON_SPACE = " \t\n\r"


def no_value(text: str, stop: StopIteration) -> json.JSONDecodeError:
    """The error :func:`json.loads` raises where :data:`scan_once` found no value."""
    return json.JSONDecodeError("Expecting value", text, stop.value)


def stdlib_loads(text: str) -> Any:
    """:func:`json.loads` for ``str`` input, through the stdlib scanner directly."""
    if text[:1] in _JSON_SPACE or text[-1:] in _JSON_SPACE:
        return json.loads(text)  # leading/trailing whitespace, or empty: the full path
    try:
        value, end = scan_once(text, 0)
    except StopIteration as exc:
        raise no_value(text, exc) from None
    if end != len(text):
        return json.loads(text)  # trailing data: json.loads' own error (after whitespace)
    return value


loads: JsonLoads = stdlib_loads
"""The hook in use; read it as ``trackwire._json.loads`` so a swap takes effect at once."""


def set_json_loads(func: JsonLoads | None) -> None:
    """Replace the JSON decoding hook of every core (``None`` restores the default)."""
    global loads
    loads = stdlib_loads if func is None else func
    from . import _decoder  # (imported here: it imports this module)

    _decoder.refresh()


def get_json_loads() -> JsonLoads:
    """The JSON decoding hook in use."""
    return loads


# -- encoding what a peer may have shaped ---------------------------------------------------

MAX_SAFE_DEPTH = 64
"""Nesting :func:`json_safe` keeps; deeper arrays and objects become ``null``."""
REPLACEMENT = "\ufffd"

_strict_dumps: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def _safe_str(text: str) -> str:
    """``text`` with surrogates replaced (encoding is the quickest test for them)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text


def _safe(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return _safe_str(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        try:
            str(value)
        except ValueError:  # more digits than Python writes
            return None
        return value
    if kind is list or kind is tuple:
        if depth <= 0:
            return None
        items = [_safe(item, depth - 1) for item in value]
        same = all(a is b for a, b in zip(items, value, strict=True))
        return value if same and kind is list else items
    if kind is dict:
        if depth <= 0:
            return None
        out = {}
        same = True
        for key, item in value.items():
            safe_key = _safe_str(key) if type(key) is str else key
            safe_item = _safe(item, depth - 1)
            same = same and safe_key is key and safe_item is item
            out[safe_key] = safe_item
        return value if same else out
    return value


def json_safe(value: Any, max_depth: int = MAX_SAFE_DEPTH) -> Any:
    """``value`` made writable as strict JSON: non-finite floats and integers too long to
    write become ``None``, surrogates in strings and keys U+FFFD, arrays and objects nested
    deeper than ``max_depth`` ``None``.  Returns ``value`` itself when nothing had to change
    (so ``json_safe(v) is v`` tells that ``v`` was clean)."""
    return _safe(value, max_depth)


def safe_dumps(value: Any) -> str:
    """Compact JSON (non-ASCII kept) that is always strict (no ``NaN``/``Infinity``) and
    always encodes as UTF-8; values that would break either are passed through
    ``json_safe`` first.  Never raises for decoded JSON."""
    try:
        text = _strict_dumps(value)
    except (ValueError, RecursionError):  # NaN/Infinity, a huge int, too deep to write
        text = _strict_dumps(json_safe(value))
    return _safe_str(text)  # only string contents hold non-ASCII: the JSON stays valid
