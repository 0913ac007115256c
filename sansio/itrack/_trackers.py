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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import h11

from .._errors import RemoteProtocolError
from ._codec import JsonDumps, JsonLoads, dumps
from ._directory import Directory
from ._http import (
    USER_AGENT,
    ApiExchange,
    ApiResponder,
    FormPost,
    HttpResponse,
    api_error_of,
    decode_api_body,
    form_post,
    is_api_target,
)
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


class TrackerListRequest(FormPost):
    """One ``tracker/list`` HTTP request, ready for any HTTP client or for
    :class:`TrackerListExchange` (``method``, ``target``, ``headers``, ``body``, ``host``,
    ``port``, ``tls``); the session hash travels in the form ``body`` (shown as ``***``)."""

    __slots__ = ()


def build_tracker_list_request(
    base_url: str, session_hash: str, *, user_agent: str = USER_AGENT
) -> TrackerListRequest:
    """``POST <base>tracker/list`` with a form-encoded ``hash``."""

    def fields() -> list[tuple[str, str]]:
        return [("hash", check_hash(session_hash))]

    url = tracker_list_url(base_url)
    return form_post(TrackerListRequest, url, fields, user_agent, base_url)


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
    decoded, reason = decode_api_body(body, loads)
    api_error = api_error_of(decoded)
    if api_error is not None:
        raise TrackerListRefused(*api_error)
    if not 200 <= status_code < 300:
        raise TrackerListError(f"tracker/list answered HTTP {status_code}", frame=body)
    if reason:
        raise TrackerListError(f"tracker/list answer unreadable: {reason}", frame=body)
    ok = type(decoded) is dict and decoded.get("success") is True
    entries = decoded.get("list") if ok else None
    if type(entries) is list:
        return [_entry(index, item) for index, item in enumerate(entries)]
    raise TrackerListError("tracker/list answer unreadable: no list", frame=body)


class TrackerListExchange(ApiExchange[list[TrackerInfo]]):
    """One ``tracker/list`` call through an h11 client connection: request bytes out, the
    response's bytes in (any split), the trackers or a :class:`TrackerListError` at the end."""

    __slots__ = ()

    def __init__(
        self,
        request: TrackerListRequest,
        *,
        loads: JsonLoads | None = None,
        max_body: int = DEFAULT_MAX_TRACKER_LIST_BODY,
    ) -> None:
        super().__init__(request, loads, max_body)

    def _interpret(self, status_code: int, body: bytes) -> list[TrackerInfo]:
        return _interpret(status_code, body, self._loads)

    def _bad_response_error(self, exc: h11.RemoteProtocolError) -> Exception:
        return TrackerListError(f"bad HTTP response to tracker/list: {exc}")

    def _too_large_error(self) -> Exception:
        return TrackerListError(f"tracker/list answer over {self.max_body} bytes")

    def _closed_error(self, ended: bool) -> Exception:
        if ended:
            return TrackerListError("the connection closed before the tracker/list answer ended")
        return TrackerListError("the connection closed before the tracker/list answer")


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
    return is_api_target(target, "tracker/list")


class TrackerListResponder(ApiResponder):
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

    def __call__(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        body: bytes,
    ) -> HttpResponse:
        params = self._params(method, target, headers, body, "tracker/list", json_as_text=False)
        if isinstance(params, HttpResponse):
            return params
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
