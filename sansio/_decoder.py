"""Which decoder turns received messages into events: the default one, or the compiled one.

``pip install 'trackwire[fast]'`` installs msgspec; the cores then decode the hot messages
(iTrack ``state``, ``state_batch``, ``lifecycle``, ``logout``; FleetFreedom bodies) with
msgspec's compiled decoders instead of the standard library.  The events are equal on both
paths: whatever msgspec refuses or reads differently (``NaN``, lone surrogates, numbers
out of range, a field of an unexpected type, …) is decoded again by the default path, and
the decoded JSON object (``raw``) of an iTrack event is decoded on demand by the default
path, so it is the same object either way.

The choice is made once at import from the ``TRACKWIRE_DECODER`` environment variable
(``fast``, ``default`` or ``auto``, the default: fast when msgspec is installed) and can be
changed at any time with :func:`set_decoder`.  A JSON hook set with
:func:`trackwire.set_json_loads` (or a ``loads`` given to a core) takes precedence: the
compiled decoder runs only under the default hook.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from . import _json
from ._json import JsonLoads, stdlib_loads

if TYPE_CHECKING:
    from .itrack._events import ITrackEvent

__all__ = ["ENV_VAR", "DecoderName", "fast_available", "get_decoder", "set_decoder"]

DecoderName = Literal["fast", "default"]
ENV_VAR = "TRACKWIRE_DECODER"
"""The environment variable read at import: ``fast``, ``default`` or ``auto``."""

ITrackParse = Callable[[str, "Callable[[ITrackEvent], None] | None"], "ITrackEvent"]

itrack: ITrackParse | None = None
"""The compiled iTrack message parser selected (``None``: the default path)."""
itrack_active: ITrackParse | None = None
""":data:`itrack` while the JSON hook is the default one (a hook set with
:func:`trackwire.set_json_loads` takes precedence); what the iTrack parser reads."""
_fast_body: JsonLoads | None = None
"""msgspec's decoder of FleetFreedom bodies when the fast decoder is selected."""
body_loads: JsonLoads = stdlib_loads
"""What the FleetFreedom client decodes bodies with: the JSON hook when one was set, else
the standard library or msgspec's compiled decoder itself (no wrapper: see
``body_retry``).  Kept up to date by :func:`set_decoder` and
:func:`trackwire.set_json_loads`, so the client reads one name per message."""
body_retry: JsonLoads | None = None
"""What decodes a body again when ``body_loads`` refused it: the default path under the fast
decoder, ``None`` otherwise (the refusal stands)."""


def refresh() -> None:
    """Recompute :data:`itrack_active`, :data:`body_loads` and :data:`body_retry` from the
    decoder selected and the JSON hook (called whenever either changes)."""
    global body_loads, body_retry, itrack_active
    hook = _json.loads
    itrack_active = itrack if hook is stdlib_loads else None
    if hook is not stdlib_loads or _fast_body is None:
        body_loads = hook
        body_retry = None
    else:
        body_loads = _fast_body
        body_retry = stdlib_loads


def fast_available() -> bool:
    """Whether the compiled decoder can be used (msgspec is importable)."""
    try:
        import msgspec  # noqa: F401
    except ImportError:
        return False
    return True


def set_decoder(name: DecoderName | Literal["auto"] | None = None) -> None:
    """Select the decoder of every core: ``"fast"`` (msgspec; ``ImportError`` when it is not
    installed), ``"default"`` (the JSON hook), or ``"auto"``/``None`` (fast when available).

    Takes effect at once, for cores already built too.
    """
    global itrack, _fast_body
    if name is None or name == "auto":
        name = "fast" if fast_available() else "default"
    if name == "fast":
        try:
            from .fleetfreedom._fast import decode as fast_decode
            from .itrack._fast import parse
        except ImportError as exc:
            raise ImportError(
                "the fast decoder needs msgspec: pip install 'trackwire[fast]'"
            ) from exc
        itrack = parse
        _fast_body = fast_decode
    elif name == "default":
        itrack = None
        _fast_body = None
    else:
        raise ValueError(f"unknown decoder {name!r}: use 'fast', 'default' or 'auto'")
    refresh()


def get_decoder() -> DecoderName:
    """The decoder selected: ``"fast"`` or ``"default"``."""
    return "default" if itrack is None else "fast"


def _from_environment(environ: Any = os.environ) -> None:
    """Apply ``TRACKWIRE_DECODER`` (called once when trackwire is imported)."""
    value = environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in ("fast", "default", "auto"):
        raise ValueError(f"{ENV_VAR}={value!r}: use 'fast', 'default' or 'auto'")
    set_decoder(value)  # type: ignore[arg-type]  # checked just above
