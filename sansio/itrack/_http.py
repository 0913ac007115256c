"""What the iTrack HTTP API calls (``user/auth``, ``tracker/list``) share, sans-IO through h11.

Client: :class:`FormPost` is a form-encoded ``POST`` built by :func:`form_post`, and
:class:`ApiExchange` sends one and reads its answer from bytes in any split, leaving the
errors and the reading of the body to each call.  Server: :class:`ApiResponder` answers with
the API's JSON and reads a request's parameters from its query and its form or JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import h11

from .. import _json
from .._redact import redacted_repr
from ._codec import JsonDumps, JsonLoads

__all__ = [
    "USER_AGENT",
    "ApiExchange",
    "ApiResponder",
    "FormPost",
    "HttpResponse",
    "api_error_of",
    "decode_api_body",
    "form_post",
    "is_api_target",
    "text",
]

USER_AGENT = "trackwire/0.1"


# -- client ---------------------------------------------------------------------------------


@dataclass(slots=True)
class FormPost:
    """One HTTP request of the API, ready for any HTTP client or for an exchange."""

    method: str
    target: str
    """The request target (path and query) to put on the request line."""
    headers: list[tuple[str, str]]
    body: bytes
    host: str
    port: int
    tls: bool

    def __repr__(self) -> str:
        # The form body carries a password or a session hash: shown as *** (``body`` keeps it).
        return redacted_repr(self)

    def to_h11(self) -> h11.Request:
        return h11.Request(method=self.method, target=self.target, headers=self.headers)


RequestT = TypeVar("RequestT", bound=FormPost)


def form_post(
    cls: type[RequestT],
    url: str,
    fields: Callable[[], list[tuple[str, str]]],
    user_agent: str,
    shown: str,
) -> RequestT:
    """``POST url`` with the form-encoded ``fields()`` (asked once the URL is found good), as
    a ``cls``; ``shown`` is how the URL is named in the errors of a URL that is no http(s)
    URL or has no host."""
    split = urlsplit(url)
    scheme = split.scheme.lower()
    if scheme in ("https", "wss"):
        tls = True
    elif scheme in ("http", "ws"):
        tls = False
    else:
        raise ValueError(f"not an http(s) URL: {shown!r}")
    if not split.hostname:
        raise ValueError(f"no host in {shown!r}")
    body = urlencode(fields()).encode("ascii")
    headers = [
        ("Host", split.netloc.rpartition("@")[2]),
        ("User-Agent", user_agent),
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
    ]
    target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    port = split.port or (443 if tls else 80)
    return cls("POST", target, headers, body, split.hostname, port, tls)


ResultT = TypeVar("ResultT")


class ApiExchange(Generic[ResultT]):
    """One call through an h11 client connection: request bytes out, the response's bytes
    in (any split), the call's result (read by :meth:`_interpret`) at the end.  The errors
    are the call's own (the ``_…_error`` methods)."""

    __slots__ = ("_body", "_conn", "_eof", "_loads", "_request", "_result", "_status", "max_body")

    def __init__(self, request: FormPost, loads: JsonLoads | None, max_body: int) -> None:
        self._request = request
        self._conn = h11.Connection(h11.CLIENT)
        self._loads = loads
        self.max_body = max_body
        self._body = bytearray()
        self._status: int | None = None
        self._result: ResultT | None = None
        self._eof = False

    # What each call says and reads.

    def _interpret(self, status_code: int, body: bytes) -> ResultT:
        raise NotImplementedError

    def _bad_response_error(self, exc: h11.RemoteProtocolError) -> Exception:
        raise NotImplementedError

    def _too_large_error(self) -> Exception:
        raise NotImplementedError

    def _closed_error(self, ended: bool) -> Exception:
        """The connection closed before the response (``ended``: before its end)."""
        raise NotImplementedError

    @property
    def result(self) -> ResultT | None:
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

    def receive_data(self, data: bytes) -> ResultT | None:
        """Feed response bytes (``b""`` is the end of input, as in h11); returns the answer
        once complete (``None`` until then)."""
        if self._result is not None:
            return self._result
        if not data:
            self._eof = True
        conn = self._conn
        if conn.our_state is h11.IDLE:
            self.bytes_to_send()
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._bad_response_error(exc) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Response):
                self._status = event.status_code
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_body:
                    raise self._too_large_error()
            elif isinstance(event, h11.EndOfMessage):
                assert self._status is not None
                result = self._result = self._interpret(self._status, bytes(self._body))
                return result
            elif isinstance(event, h11.ConnectionClosed):
                raise self._closed_error(False)

    def receive_eof(self) -> ResultT:
        """The connection closed; raises if the answer is partial."""
        self._eof = True
        result = self.receive_data(b"")
        if result is None:
            raise self._closed_error(True)
        return result


def decode_api_body(body: bytes, loads: JsonLoads | None) -> tuple[Any, str]:
    """The decoded JSON of an answer and ``""``, or ``None`` and why it is not JSON."""
    try:
        return (loads or _json.loads)(body.decode("utf-8")), ""
    except Exception as exc:  # any failure of the (replaceable) decoder
        return None, f"not JSON ({exc})"


def api_error_of(decoded: Any) -> tuple[int, str] | None:
    """The code and description of an API error answer (``success: false`` with a status
    code), or ``None``."""
    if type(decoded) is dict and decoded.get("success") is False:
        status = decoded.get("status")
        if type(status) is dict and type(status.get("code")) is int:
            description = status.get("description")
            return status["code"], description if type(description) is str else ""
    return None


# -- server ---------------------------------------------------------------------------------


class HttpResponse(NamedTuple):
    """An HTTP response to write: status, headers (with ``Content-Length``) and body.

    A tuple, so an :class:`AuthResponder` is a ready ``trackwire.ws`` HTTP handler.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def text(value: str | bytes) -> str:
    """A request's method, target or header as text (bytes read as latin-1)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def is_api_target(target: str | bytes, path: str) -> bool:
    """Whether a request target is ``…/<path>`` (with or without a trailing slash)."""
    if isinstance(target, bytes):
        target = target.decode("latin-1")
    found = target.split("?", 1)[0].rstrip("/")
    return found == f"/{path}" or found.endswith(f"/{path}")


def _query_of(target: str) -> str:
    """The query of a request target read by hand: ``urlsplit`` raises on a peer's ``//[``."""
    return target.partition("#")[0].partition("?")[2]


class ApiResponder:
    """What the API's responders share: JSON answers, API errors, and a request's
    parameters."""

    __slots__ = ()

    _dumps: JsonDumps

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

    def _params(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        body: bytes,
        path: str,
        *,
        json_as_text: bool,
    ) -> dict[str, str] | HttpResponse:
        """The parameters of a ``GET``/``POST …/<path>`` (its query, then its form or JSON
        body), or the error to answer: 404 for another path, 405 for another method, 400
        for a body that cannot be read.  A JSON body's non-text values are kept as their
        ``str()`` with ``json_as_text``, left out otherwise."""
        method = text(method).upper()
        target = text(target)
        if not is_api_target(target, path):
            return self._error(404, 2, "Unknown API method")
        if method not in ("GET", "POST"):
            response = self._error(405, 5, "Wrong request format")
            response.headers.append(("Allow", "GET, POST"))
            return response
        params = dict(parse_qsl(_query_of(target), keep_blank_values=True))
        if method == "POST" and body:
            content_type = ""
            for name, value in headers:
                if text(name).lower() == "content-type":
                    content_type = text(value).lower()
            try:
                if content_type.startswith("application/json"):
                    decoded = json.loads(body.decode("utf-8"))
                    if type(decoded) is not dict:
                        raise ValueError("not an object")
                    if json_as_text:
                        params.update(
                            {k: v if type(v) is str else str(v) for k, v in decoded.items()}
                        )
                    else:
                        params.update({k: v for k, v in decoded.items() if type(v) is str})
                else:
                    form = body.decode("utf-8")
                    params.update(parse_qsl(form, keep_blank_values=True, strict_parsing=True))
            except Exception:  # any failure of the (replaceable) decoder
                return self._error(400, 5, "Wrong request format")
        return params
