"""``user/auth`` over HTTP, both roles, sans-IO through h11.

Client: :func:`build_auth_request` makes the request, :class:`AuthExchange` serialises it and
parses the response from bytes in any split.  Server: :class:`AuthResponder` turns a parsed
request into a response against a :class:`~trackwire.itrack.Directory` (what a combined
WebSocket + HTTP stack calls), and :class:`AuthServerConnection` is the same over raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

import h11

from .. import _json
from .._errors import RemoteProtocolError
from .._numbers import MAX_ID_DIGITS, parse_digits
from .._redact import redact_target, redacted_repr
from ._codec import JsonDumps, JsonLoads, dumps
from ._directory import AuthFailure, AuthSuccess, Directory
from ._models import check_hash

__all__ = [
    "DEFAULT_MAX_AUTH_BODY",
    "AuthDecodeError",
    "AuthError",
    "AuthExchange",
    "AuthHTTPError",
    "AuthRequest",
    "AuthResponder",
    "AuthServerConnection",
    "AuthTruncatedError",
    "HttpResponse",
    "LoginRefused",
    "api_key_session",
    "auth_url",
    "build_auth_request",
    "is_auth_target",
    "parse_auth_response",
]

DEFAULT_MAX_AUTH_BODY = 1 << 20
"""Largest ``user/auth`` body buffered, in bytes, in either role."""

_USER_AGENT = "trackwire/0.1"


class AuthError(RemoteProtocolError):
    """The ``user/auth`` answer could not be read as an API answer."""


class LoginRefused(AuthError):
    """``user/auth`` answered an API error (102 wrong login or password, 103, 105, …)."""

    def __init__(self, failure: AuthFailure) -> None:
        super().__init__(f"user/auth refused: {failure.code} {failure.description}")
        self.failure = failure
        self.code = failure.code
        self.description = failure.description


class AuthHTTPError(AuthError):
    """An HTTP error status whose body is not an API error (a proxy page, a 502, …)."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__(f"user/auth answered HTTP {status_code}", frame=body)
        self.status_code = status_code
        self.body = body


class AuthDecodeError(AuthError):
    """A success status with a body that is not JSON, or JSON that is no auth answer."""

    def __init__(self, reason: str, body: bytes) -> None:
        super().__init__(f"user/auth answer unreadable: {reason}", frame=body)
        self.body = body


class AuthTruncatedError(AuthError):
    """The connection ended before the whole response arrived."""


# -- client ---------------------------------------------------------------------------------


def auth_url(base_url: str) -> str:
    """``<base>user/auth`` for an API base URL such as ``https://api.itrack.live/v2/``."""
    return base_url.rstrip("/") + "/user/auth"


@dataclass(slots=True)
class AuthRequest:
    """One ``user/auth`` HTTP request, ready for any HTTP client or for :class:`AuthExchange`."""

    method: str
    target: str
    """The request target (path and query) to put on the request line."""
    headers: list[tuple[str, str]]
    body: bytes
    host: str
    port: int
    tls: bool

    def __repr__(self) -> str:
        # The form body carries the password: shown as *** (``body`` keeps it).
        return redacted_repr(self)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        default = 443 if self.tls else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:
            netloc = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        return f"{scheme}://{netloc}{self.target}"

    def to_h11(self) -> h11.Request:
        return h11.Request(method=self.method, target=self.target, headers=self.headers)


def build_auth_request(
    base_url: str,
    login: str,
    password: str,
    *,
    dealer_id: int | None = None,
    user_agent: str = _USER_AGENT,
) -> AuthRequest:
    """``POST <base>user/auth`` with a form-encoded ``login``, ``password`` (and ``dealer_id``)."""
    split = urlsplit(auth_url(base_url))
    scheme = split.scheme.lower()
    if scheme in ("https", "wss"):
        tls = True
    elif scheme in ("http", "ws"):
        tls = False
    else:
        raise ValueError(f"not an http(s) URL: {redact_target(base_url)!r}")
    if not split.hostname:
        raise ValueError(f"no host in {redact_target(base_url)!r}")
    port = split.port or (443 if tls else 80)
    fields: list[tuple[str, str]] = [("login", login), ("password", password)]
    if dealer_id is not None:
        fields.append(("dealer_id", str(dealer_id)))
    body = urlencode(fields).encode("ascii")
    target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    host_header = split.netloc.rpartition("@")[2]
    headers = [
        ("Host", host_header),
        ("User-Agent", user_agent),
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
    ]
    return AuthRequest("POST", target, headers, body, split.hostname, port, tls)


def api_key_session(api_key_hash: str) -> AuthSuccess:
    """Use the hash of an API key as the session hash: no ``user/auth`` call needed."""
    return AuthSuccess(check_hash(api_key_hash))


def _interpret(status_code: int, body: bytes, loads: JsonLoads | None) -> AuthSuccess | AuthFailure:
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
            description = status.get("description")
            return AuthFailure(
                status["code"], description if type(description) is str else "", decoded
            )
    if not 200 <= status_code < 300:
        raise AuthHTTPError(status_code, body)
    if reason:
        raise AuthDecodeError(reason, body)
    if type(decoded) is dict and decoded.get("success") is True:
        session_hash = decoded.get("hash")
        if type(session_hash) is str and session_hash:
            return AuthSuccess(session_hash, decoded)
    raise AuthDecodeError("neither a hash nor an API error", body)


class AuthExchange:
    """One ``user/auth`` call through an h11 client connection: request bytes out, the
    response's bytes in (any split), a typed answer or an :class:`AuthError` at the end."""

    __slots__ = (
        "_body",
        "_conn",
        "_eof",
        "_loads",
        "_request",
        "_result",
        "_status",
        "max_body",
    )

    def __init__(
        self,
        request: AuthRequest,
        *,
        loads: JsonLoads | None = None,
        max_body: int = DEFAULT_MAX_AUTH_BODY,
    ) -> None:
        self._request = request
        self._conn = h11.Connection(h11.CLIENT)
        self._loads = loads
        self.max_body = max_body
        self._body = bytearray()
        self._status: int | None = None
        self._result: AuthSuccess | AuthFailure | None = None
        self._eof = False

    @property
    def result(self) -> AuthSuccess | AuthFailure | None:
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

    def receive_data(self, data: bytes) -> AuthSuccess | AuthFailure | None:
        """Feed response bytes (``b""`` is the end of input, as in h11); returns the answer
        once complete (``None`` until then)."""
        if self._result is not None:
            return self._result
        if not data:
            self._eof = True
        if self._conn.our_state is h11.IDLE:
            self.bytes_to_send()
        self._conn.receive_data(data)
        return self._pump()

    def receive_eof(self) -> AuthSuccess | AuthFailure:
        """The connection closed; raises :class:`AuthTruncatedError` if the answer is partial."""
        self._eof = True
        result = self.receive_data(b"")
        if result is None:
            raise AuthTruncatedError("the connection closed before the response ended")
        return result

    def _pump(self) -> AuthSuccess | AuthFailure | None:
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:
                    raise AuthTruncatedError(f"response cut short: {exc}") from None
                raise AuthError(f"bad HTTP response: {exc}") from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Response):
                self._status = event.status_code
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_body:
                    raise AuthError(f"response body over {self.max_body} bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert self._status is not None
                self._result = _interpret(self._status, bytes(self._body), self._loads)
                return self._result
            elif isinstance(event, h11.ConnectionClosed):
                raise AuthTruncatedError("the connection closed before the response")


def parse_auth_response(
    data: bytes, *, loads: JsonLoads | None = None, request: AuthRequest | None = None
) -> AuthSuccess | AuthFailure:
    """Parse one complete response (the connection's whole input, then its end)."""
    exchange = AuthExchange(request or build_auth_request("http://localhost/", "", ""), loads=loads)
    result = exchange.receive_data(data)
    return result if result is not None else exchange.receive_eof()


# -- server ---------------------------------------------------------------------------------


class HttpResponse(NamedTuple):
    """An HTTP response to write: status, headers (with ``Content-Length``) and body.

    A tuple, so an :class:`AuthResponder` is a ready ``trackwire.ws`` HTTP handler.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def is_auth_target(target: str | bytes) -> bool:
    """Whether a request target is ``…/user/auth`` (with or without a trailing slash)."""
    if isinstance(target, bytes):
        target = target.decode("latin-1")
    path = target.split("?", 1)[0].rstrip("/")
    return path == "/user/auth" or path.endswith("/user/auth")


def _query_of(target: str) -> str:
    """The query of a request target read by hand: ``urlsplit`` raises on a peer's ``//[``."""
    return target.partition("#")[0].partition("?")[2]


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class AuthResponder:
    """Answers ``GET``/``POST …/user/auth`` (query, form or JSON body) from a directory.

    Statuses follow the API's habit: 200 with ``success: true``, 403 for a refused login,
    400 for missing or bad parameters, 404/405 for other paths and methods; the JSON body
    carries the API error either way.
    """

    __slots__ = ("_dumps", "directory")

    def __init__(self, directory: Directory, *, dumps: JsonDumps = dumps) -> None:
        self.directory = directory
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
        if not is_auth_target(target):
            return self._error(404, 2, "Unknown API method")
        if method not in ("GET", "POST"):
            response = self._error(405, 5, "Wrong request format")
            response.headers.append(("Allow", "GET, POST"))
            return response
        params = dict(parse_qsl(_query_of(target), keep_blank_values=True))
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
                    params.update({k: v if type(v) is str else str(v) for k, v in decoded.items()})
                else:
                    text = body.decode("utf-8")
                    params.update(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
            except Exception:  # any failure of the (replaceable) decoder
                return self._error(400, 5, "Wrong request format")
        login = params.get("login")
        password = params.get("password")
        dealer = params.get("dealer_id")
        dealer_id = None if dealer is None else parse_digits(dealer, MAX_ID_DIGITS)
        if not login or password is None or (dealer is not None and dealer_id is None):
            return self._error(400, 7, "Invalid parameters")
        result = self.directory.authenticate(login, password, dealer_id)
        if isinstance(result, AuthFailure):
            return self._error(403, result.code, result.description)
        return self._json(200, {"success": True, "hash": result.hash})


class AuthServerConnection:
    """An h11 server connection that answers every request with an :class:`AuthResponder`.

    Feed bytes with :meth:`receive_data` (``b""`` for end of input), write
    :meth:`data_to_send`; keep-alive requests are answered in turn.  A malformed request gets
    a 400 and the connection closes (:attr:`closed`).
    """

    __slots__ = ("_body", "_conn", "_failed", "_out", "_request", "max_body", "responder")

    def __init__(self, responder: AuthResponder, *, max_body: int = DEFAULT_MAX_AUTH_BODY):
        self.responder = responder
        self.max_body = max_body
        self._conn = h11.Connection(h11.SERVER)
        self._out = bytearray()
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._failed = False

    @property
    def closed(self) -> bool:
        """Nothing more will be read or written (the peer closed, or an error ended it)."""
        return self._failed or self._conn.our_state in (h11.CLOSED, h11.MUST_CLOSE, h11.ERROR)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _write(self, response: HttpResponse) -> None:
        conn = self._conn
        self._out += conn.send(h11.Response(status_code=response.status, headers=response.headers))
        request = self._request
        if request is None or request.method != b"HEAD":  # a HEAD answer has no body
            self._out += conn.send(h11.Data(data=response.body)) or b""
        self._out += conn.send(h11.EndOfMessage()) or b""

    def _fail(self, status: int) -> None:
        self._failed = True
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = b'{"success":false,"status":{"code":5,"description":"Wrong request format"}}'
            headers = [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]
            self._write(HttpResponse(status, headers, body))

    def receive_data(self, data: bytes) -> None:
        conn = self._conn
        if self.closed:
            return
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint)
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body.clear()
                names = {name for name, _ in event.headers}
                if b"content-length" in names and b"transfer-encoding" in names:
                    # Framed twice: a request smuggled behind it must not be answered
                    # (RFC 9112 §6.1): refuse it and close.
                    self._fail(400)
                    return
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_body:
                    self._fail(413)
                    return
            elif isinstance(event, h11.EndOfMessage):
                request = self._request
                assert request is not None
                response = self.responder(
                    request.method, request.target, list(request.headers), bytes(self._body)
                )
                self._write(response)
                self._request = None
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
