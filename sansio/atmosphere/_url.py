"""The Atmosphere query string: built by the client (spec §1), parsed by the server."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from .._numbers import parse_digits
from .._tables import SharedPairs

__all__ = [
    "DEFAULT_FRAMEWORK",
    "OpenRequest",
    "build_close_url",
    "build_open_url",
    "framework_number",
    "parse_open_request",
    "to_http_url",
    "to_ws_url",
]

DEFAULT_FRAMEWORK = "2.3.6-javascript"
"""The framework string the iTrack documentation shows."""

MIN_PROTOCOL_FRAMEWORK = 221
"""The server sends the handshake only to clients of framework 2.2.1 and later."""
MAX_FRAMEWORK_DIGITS = 9
"""Digits one number of a framework version may have (a Java ``int``); longer reads as 0."""
MAX_HEARTBEAT_SERVER_DIGITS = 9
"""Digits ``X-Heartbeat-Server`` may have (up to 31 years); longer is not a number."""


def _encode_component(text: str) -> str:
    """JavaScript's ``encodeURIComponent``."""
    return quote(text, safe="!*'()")


# The WHATWG URL parser (browsers, and Node's ``ws`` behind atmosphere.js) percent-encodes
# these in the query of a special-scheme URL; what reaches the wire is the encoded form.
_QUERY_UNSAFE = re.compile("[\x00-\x20\"#<>'\x7f-\U0010ffff]")


def _wire_query(query: str) -> str:
    return _QUERY_UNSAFE.sub(lambda m: quote(m.group(), safe=""), query)


def to_ws_url(url: str) -> str:
    """``http`` → ``ws`` and ``https`` → ``wss``, as the client rewrites them."""
    if url.startswith("http"):
        return "ws" + url[4:]
    return url


def to_http_url(url: str) -> str:
    """``ws`` → ``http`` and ``wss`` → ``https``: where the close request goes."""
    if url.startswith("ws"):
        return "http" + url[2:]
    return url


def build_open_url(
    url: str,
    *,
    tracking_id: str = "0",
    framework: str = DEFAULT_FRAMEWORK,
    track_message_length: bool = False,
    heartbeat_server: int | None = None,
    content_type: str | None = None,
    enable_protocol: bool = True,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
) -> str:
    """The WebSocket URL ``atmosphere.js`` opens, parameters in its exact order, as sent.

    ``Content-Type`` is not run through ``encodeURIComponent`` (the client skips it on
    websocket); extra ``headers`` are, both name and value.  The URL parser then encodes what
    may not stand in a query (a space becomes ``%20``, ``'`` becomes ``%27``).
    """
    parts = [
        f"X-Atmosphere-tracking-id={tracking_id}",
        f"X-Atmosphere-Framework={framework}",
        "X-Atmosphere-Transport=websocket",
    ]
    if track_message_length:
        parts.append("X-Atmosphere-TrackMessageSize=true")
    if heartbeat_server is not None:
        parts.append(f"X-Heartbeat-Server={heartbeat_server}")
    if content_type:
        parts.append(f"Content-Type={content_type}")
    if enable_protocol:
        parts.append("X-atmo-protocol=true")
    parts.extend(_encoded_headers(headers))
    base = to_ws_url(url)
    return base + ("&" if "?" in base else "?") + _wire_query("&".join(parts))


def _encoded_headers(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [f"{_encode_component(name)}={_encode_component(value)}" for name, value in items]


def build_close_url(
    url: str,
    tracking_id: str,
    timestamp_ms: int,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
) -> str:
    """The HTTP GET the client sends before closing (spec §6); extra headers ride along."""
    base = to_http_url(url)
    parts = [
        "X-Atmosphere-Transport=close",
        f"X-Atmosphere-tracking-id={tracking_id}",
        *_encoded_headers(headers),
        f"_={timestamp_ms}",
    ]
    return base + ("&" if "?" in base else "?") + _wire_query("&".join(parts))


def framework_number(framework: str) -> int:
    """The server's reading of a framework string: its first three numbers, concatenated.

    ``2.3.6-javascript`` → 236, ``4.0.1`` → 401.  Fewer than three dot-separated numbers
    before the ``-`` read as 0, as the Java server's version parser does; so do numbers of
    more than ``MAX_FRAMEWORK_DIGITS`` (9) digits.
    """
    parts = framework.split("-", 1)[0].split(".", 3)
    if len(parts) < 3:
        return 0
    numbers = [parse_digits(p, MAX_FRAMEWORK_DIGITS) for p in parts[:3]]
    if None in numbers:
        return 0
    return int("".join(parts[:3]))


_SHARED_PARAMS = frozenset(
    (
        "x-atmosphere-framework",
        "x-atmosphere-transport",
        "x-atmo-protocol",
        "x-atmosphere-trackmessagesize",
        "x-atmosphere-tracking-id",
        "x-heartbeat-server",
        "content-type",
    )
)
"""Parameters every connection of a client repeats (a tracking id only as ``0``): their
decoded pairs are shared between the requests that hold them."""
_PARAMS_KEPT = 64
_PARAM_KEPT = 128
_params: SharedPairs[str, tuple[str, str]] = SharedPairs(_PARAMS_KEPT)


def _split_query(query: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        pair = _params.get(piece)
        if pair is None:
            name, _, value = piece.partition("=")
            pair = (unquote(name), unquote(value))
            if _shared(pair, piece):
                _params.keep(piece, pair)
        pairs.append(pair)
    return pairs


def _shared(pair: tuple[str, str], piece: str) -> bool:
    """``pair`` (read from ``piece``) is kept for the next requests: one of
    ``_SHARED_PARAMS``, short, and not a tracking id other than ``0``."""
    name = pair[0].lower()
    if len(piece) > _PARAM_KEPT or name not in _SHARED_PARAMS:
        return False
    return name != "x-atmosphere-tracking-id" or pair[1] == "0"


@dataclass(slots=True)
class OpenRequest:
    """What a server reads from a client's request target (parameters act as headers).

    ``params`` keeps every parameter in order, known or not; the first occurrence of a name
    wins for the typed fields.
    """

    path: str
    params: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of parameter ``name`` (header names are case-insensitive)."""
        lowered = name.lower()
        for key, value in self.params:
            if key.lower() == lowered:
                return value
        return default

    @property
    def tracking_id(self) -> str:
        return self.get("X-Atmosphere-tracking-id") or "0"

    @property
    def transport(self) -> str | None:
        return self.get("X-Atmosphere-Transport")

    @property
    def framework(self) -> str | None:
        return self.get("X-Atmosphere-Framework")

    @property
    def track_message_length(self) -> bool:
        return (self.get("X-Atmosphere-TrackMessageSize") or "").lower() == "true"

    @property
    def protocol_enabled(self) -> bool:
        return self.get("X-atmo-protocol") is not None

    @property
    def content_type(self) -> str | None:
        return self.get("Content-Type")

    @property
    def heartbeat_server(self) -> int | None:
        """``X-Heartbeat-Server`` in seconds, or ``None`` when absent or not a number (ASCII
        digits only, at most ``MAX_HEARTBEAT_SERVER_DIGITS`` (9) of them)."""
        raw = self.get("X-Heartbeat-Server")
        if raw is None:
            return None
        return parse_digits(raw.strip(), MAX_HEARTBEAT_SERVER_DIGITS)

    @property
    def is_close(self) -> bool:
        """This is the client's close request (``X-Atmosphere-Transport=close``, any case)."""
        return (self.transport or "").lower() == "close"

    @property
    def is_reconnect(self) -> bool:
        return self.tracking_id != "0"

    @property
    def wants_handshake(self) -> bool:
        """Spec §1: tracking id 0, ``X-atmo-protocol`` present, framework ≥ 2.2.1."""
        return (
            self.tracking_id == "0"
            and self.protocol_enabled
            and framework_number(self.framework or "") >= MIN_PROTOCOL_FRAMEWORK
        )


def parse_open_request(target: str) -> OpenRequest:
    """Parse a request target (``/path?query``, or a full URL) in any parameter order."""
    try:
        split = urlsplit(target)
    except ValueError:
        # A bracket where urlsplit expects a host ("//[x", from the peer): read it by hand.
        path, _, query = target.partition("#")[0].partition("?")
    else:
        path, query = split.path, split.query
    return OpenRequest(path=unquote(path or "/"), params=_split_query(query))
