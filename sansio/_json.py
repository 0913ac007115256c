"""The one JSON decoding hook every core uses, replaceable at run time.

The default decodes with the standard library's own C scanner, called directly: the same
results and errors as :func:`json.loads` without its Python-level wrappers (about a quarter
of its cost on a 357-byte message).  :func:`set_json_loads` swaps in another decoder that
takes ``str`` and raises ``ValueError`` on bad input, such as ``orjson.loads``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["get_json_loads", "set_json_loads", "stdlib_loads"]

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


def get_json_loads() -> JsonLoads:
    """The JSON decoding hook in use."""
    return loads
