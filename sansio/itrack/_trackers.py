"""``tracker/list`` over HTTP, both roles, sans-IO through h11: the user's trackers, each
with its label and the source id its states carry.

A state event names a *source* id, a subscription names *tracker* ids (spec itrack §3): the
tracker list joins the two.  Client: :func:`build_tracker_list_request` makes the request
(``POST <base>tracker/list`` with the session ``hash``), :class:`TrackerListExchange`
serialises it and reads the answer from bytes in any split.  Server:
:class:`TrackerListResponder` answers it from a :class:`~trackwire.itrack.Directory`, with the
same call shape as :class:`~trackwire.itrack.AuthResponder`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import h11

from .. import _json
from .._errors import RemoteProtocolError
from .._redact import redacted_repr
from ._auth import HttpResponse
from ._codec import JsonDumps, JsonLoads, dumps
from ._directory import Directory
from ._models import BLOCKED, check_hash

__all__ = [
    "DEFAULT_MAX_TRACKER_LIST_BODY",
    "TrackerInfo",
    "TrackerListError",
    "TrackerListExchange",
    "TrackerListRefused",
    "TrackerListRequest",
    "TrackerListResponder",
    "build_tracker_list_request",
    "is_tracker_list_target",
    "parse_tracker_list_response",
    "tracker_list_url",
]

DEFAULT_MAX_TRACKER_LIST_BODY = 16 << 20
"""Largest ``tracker/list`` answer buffered, in bytes (a tracker is a few hundred bytes)."""

_USER_AGENT = "trackwire/0.1"


class TrackerListError(RemoteProtocolError):
    """The ``tracker/list`` answer could not be read as an API answer (an HTTP error page,
    a body that is not JSON or not a list, a connection cut short)."""


class TrackerListRefused(TrackerListError):
    """``tracker/list`` answered an API error (3 wrong hash, 4 session ended, 7, …)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"tracker/list refused: {code} {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class TrackerInfo:
    """One tracker of the list: its id (what subscriptions name), its label, and the id of
    its source (what state events name; ``None`` if the entry has none)."""

    tracker_id: int
    label: str
    source_id: int | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The entry as received (``clone``, ``group_id``, the whole ``source``, …)."""


# -- client ---------------------------------------------------------------------------------


def tracker_list_url(base_url: str) -> str:
    """``<base>tracker/list`` for an API base URL such as ``https://api.itrack.live/v2/``."""
    return base_url.rstrip("/") + "/tracker/list"


@dataclass(slots=True)
class TrackerListRequest:
    """One ``tracker/list`` HTTP request, ready for any HTTP client or for
    :class:`TrackerListExchange`; the session hash travels in the form ``body``."""

    method: str
    target: str
    """The request target (path and query) to put on the request line."""
    headers: list[tuple[str, str]]
    body: bytes
    host: str
    port: int
    tls: bool

    def __repr__(self) -> str:
        # The form body carries the session hash: shown as *** (``body`` keeps it).
        return redacted_repr(self)

    def to_h11(self) -> h11.Request:
        return h11.Request(method=self.method, target=self.target, headers=self.headers)


def build_tracker_list_request(
    base_url: str, session_hash: str, *, user_agent: str = _USER_AGENT
) -> TrackerListRequest:
    """``POST <base>tracker/list`` with a form-encoded ``hash``."""
    split = urlsplit(tracker_list_url(base_url))
    scheme = split.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    if not split.hostname:
        raise ValueError(f"no host in {base_url!r}")
    tls = scheme in ("https", "wss")
    body = urlencode([("hash", check_hash(session_hash))]).encode("ascii")
    headers = [
        ("Host", split.netloc.rpartition("@")[2]),
        ("User-Agent", user_agent),
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
    ]
    target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    return TrackerListRequest(
        "POST", target, headers, body, split.hostname, split.port or (443 if tls else 80), tls
    )


def _entry(index: int, item: Any) -> TrackerInfo:
    if type(item) is not dict or type(item.get("id")) is not int:
        raise TrackerListError(f"tracker/list entry {index} has no integer id")
    label = item.get("label")
    source = item.get("source")
    source_id = source.get("id") if type(source) is dict else None
    return TrackerInfo(
        item["id"],
        label if type(label) is str else "",
        source_id if type(source_id) is int else None,
        item,
    )


def _interpret(status_code: int, body: bytes, loads: JsonLoads | None) -> list[TrackerInfo]:
    """An API error body wins over the HTTP status; otherwise the status, then the JSON."""
    decoded: Any = None
    reason = ""
    try:
        decoded = (loads or _json.loads)(body.decode("utf-8"))
    except Exception as exc:  # any failure of the (replaceable) decoder
        reason = f"not JSON ({exc})"
    if type(decoded) is dict and decoded.get("success") is False:
        status = decoded.get("status")
        if type(status) is dict and type(status.get("code")) is int:
            text = status.get("description")
            raise TrackerListRefused(status["code"], text if type(text) is str else "")
    if not 200 <= status_code < 300:
        raise TrackerListError(f"tracker/list answered HTTP {status_code}", frame=body)
    if reason:
        raise TrackerListError(f"tracker/list answer unreadable: {reason}", frame=body)
    ok = type(decoded) is dict and decoded.get("success") is True
    entries = decoded.get("list") if ok else None
    if type(entries) is list:
        return [_entry(index, item) for index, item in enumerate(entries)]
    raise TrackerListError("tracker/list answer unreadable: no list", frame=body)


class TrackerListExchange:
    """One ``tracker/list`` call through an h11 client connection: request bytes out, the
    response's bytes in (any split), the trackers or a :class:`TrackerListError` at the end."""

    __slots__ = ("_body", "_conn", "_eof", "_loads", "_request", "_result", "_status", "max_body")

    def __init__(
        self,
        request: TrackerListRequest,
        *,
        loads: JsonLoads | None = None,
        max_body: int = DEFAULT_MAX_TRACKER_LIST_BODY,
    ) -> None:
        self._request = request
        self._conn = h11.Connection(h11.CLIENT)
        self._loads = loads
        self.max_body = max_body
        self._body = bytearray()
        self._status: int | None = None
        self._result: list[TrackerInfo] | None = None
        self._eof = False

    @property
    def result(self) -> list[TrackerInfo] | None:
        return self._result

    def bytes_to_send(self) -> bytes:
        """The request, once (later calls return ``b""``)."""
        conn = self._conn
        if conn.our_state is not h11.IDLE:
            return b""
        out = conn.send(self._request.to_h11()) or b""
        out += conn.send(h11.Data(data=self._request.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        return out

    def receive_data(self, data: bytes) -> list[TrackerInfo] | None:
        """Feed response bytes (``b""`` is the end of input, as in h11); returns the trackers
        once the answer is complete (``None`` until then)."""
        if self._result is not None:
            return self._result
        if not data:
            self._eof = True
        if self._conn.our_state is h11.IDLE:
            self.bytes_to_send()
        self._conn.receive_data(data)
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise TrackerListError(f"bad HTTP response to tracker/list: {exc}") from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Response):
                self._status = event.status_code
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_body:
                    raise TrackerListError(f"tracker/list answer over {self.max_body} bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert self._status is not None
                self._result = _interpret(self._status, bytes(self._body), self._loads)
                return self._result
            elif isinstance(event, h11.ConnectionClosed):
                raise TrackerListError("the connection closed before the tracker/list answer")

    def receive_eof(self) -> list[TrackerInfo]:
        """The connection closed; raises :class:`TrackerListError` if the answer is partial."""
        result = self.receive_data(b"")
        if result is None:
            raise TrackerListError("the connection closed before the tracker/list answer ended")
        return result


def parse_tracker_list_response(
    data: bytes, *, loads: JsonLoads | None = None
) -> list[TrackerInfo]:
    """Parse one complete response (the connection's whole input, then its end)."""
    request = build_tracker_list_request("http://localhost/", "0" * 32)
    exchange = TrackerListExchange(request, loads=loads)
    result = exchange.receive_data(data)
    return result if result is not None else exchange.receive_eof()


# -- server ---------------------------------------------------------------------------------


def is_tracker_list_target(target: str | bytes) -> bool:
    """Whether a request target is ``…/tracker/list`` (with or without a trailing slash)."""
    if isinstance(target, bytes):
        target = target.decode("latin-1")
    path = target.split("?", 1)[0].rstrip("/")
    return path == "/tracker/list" or path.endswith("/tracker/list")


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class TrackerListResponder:
    """Answers ``GET``/``POST …/tracker/list`` (``hash`` in the query, a form or a JSON body)
    with the trackers of the session's user, from a directory.

    200 with ``{"success": true, "list": [...]}``; the API error otherwise: 400 with 3 for a
    missing or malformed hash, 403 with 4 for a hash that is no live session, 400 with 5 for
    a body that cannot be read, 404/405 for other paths and methods.  Each entry has ``id``,
    ``label``, ``clone``, ``group_id`` and ``source`` (``id``, ``device_id``, ``model``,
    ``blocked``), as the platform answers.
    """

    __slots__ = ("_dumps", "directory", "model")

    def __init__(
        self, directory: Directory, *, model: str = "trackwire", dumps: JsonDumps = dumps
    ) -> None:
        self.directory = directory
        self.model = model
        self._dumps = dumps

    def _json(self, status: int, payload: dict[str, Any]) -> HttpResponse:
        body = self._dumps(payload).encode("utf-8")
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
        ]
        return HttpResponse(status, headers, body)

    def _error(self, status: int, code: int, description: str) -> HttpResponse:
        payload = {"success": False, "status": {"code": code, "description": description}}
        return self._json(status, payload)

    def __call__(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        body: bytes,
    ) -> HttpResponse:
        method = _text(method).upper()
        target = _text(target)
        if not is_tracker_list_target(target):
            return self._error(404, 2, "Unknown API method")
        if method not in ("GET", "POST"):
            response = self._error(405, 5, "Wrong request format")
            response.headers.append(("Allow", "GET, POST"))
            return response
        params = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        if method == "POST" and body:
            content_type = ""
            for name, value in headers:
                if _text(name).lower() == "content-type":
                    content_type = _text(value).lower()
            try:
                if content_type.startswith("application/json"):
                    decoded = json.loads(body.decode("utf-8"))
                    if type(decoded) is not dict:
                        raise ValueError("not an object")
                    params.update({k: v for k, v in decoded.items() if type(v) is str})
                else:
                    text = body.decode("utf-8")
                    params.update(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
            except Exception:  # any failure of the (replaceable) decoder
                return self._error(400, 5, "Wrong request format")
        session_hash = params.get("hash", "")
        try:
            check_hash(session_hash)
        except ValueError:
            return self._error(400, 3, "Wrong user hash")
        login = self.directory.user_of(session_hash)
        if login is None:
            return self._error(403, 4, "User not found or session ended")
        entries = [
            {
                "id": tracker.tracker_id,
                "label": tracker.label,
                "clone": False,
                "group_id": 0,
                "source": {
                    "id": tracker.source_id,
                    "device_id": str(tracker.source_id),
                    "model": self.model,
                    "blocked": tracker.status == BLOCKED,
                },
            }
            for tracker in self.directory.trackers.values()
            if tracker.owner == login
        ]
        return self._json(200, {"success": True, "list": entries})
