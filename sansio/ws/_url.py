"""Splitting a ws/wss (or http/https) URL into what a socket and a handshake need."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .._redact import redact_target

__all__ = ["WsAddress", "split_ws_url"]

_DEFAULT_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}
_TLS = frozenset({"wss", "https"})
# Everything printable in ASCII but the space stays as it is; the rest is percent-encoded so
# the request line is ASCII (an existing ``%xx`` is kept).
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True, slots=True)
class WsAddress:
    """Where to connect and what to ask for: ``host``/``port`` for the socket, ``tls`` for
    ``wss``/``https``, ``target`` (path and query) for the request line."""

    host: str
    port: int
    target: str
    tls: bool

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host, plus the port when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


def split_ws_url(url: str) -> WsAddress:
    """Split ``ws://host:port/path?query`` (``wss``, ``http``, ``https`` too; the fragment is
    dropped, as WebSocket clients do).  Raises :class:`ValueError` for other schemes,
    a missing host, or credentials in the URL (they would not be sent)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not a ws/wss/http/https URL: {redact_target(url)!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in a WebSocket URL are not supported; use headers")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {redact_target(url)!r}")
    port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WsAddress(host, port, quote(target, safe=_TARGET_SAFE), scheme in _TLS)
