"""``user/auth`` over HTTP, both roles, sans-IO through h11.

Client: :func:`build_auth_request` makes the request, :class:`AuthExchange` serialises it and
parses the response from bytes in any split.  Server: :class:`AuthResponder` turns a parsed
request into a response against a :class:`~trackwire.itrack.Directory` (what a combined
WebSocket + HTTP stack calls), and :class:`AuthServerConnection` is the same over raw bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import h11

from .._errors import RemoteProtocolError
from .._numbers import MAX_ID_DIGITS, parse_digits
from .._redact import redact_target
from ._codec import JsonDumps, JsonLoads, dumps
from ._directory import AuthFailure, AuthSuccess, Directory
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


class AuthRequest(FormPost):
    """One ``user/auth`` HTTP request, ready for any HTTP client or for :class:`AuthExchange`
    (``method``, ``target``, ``headers``, ``body``, ``host``, ``port``, ``tls``; the form
    body carries the password: the repr shows it as ``***``)."""

    __slots__ = ()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        default = 443 if self.tls else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:
            netloc = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        return f"{scheme}://{netloc}{self.target}"


def build_auth_request(
    base_url: str,
    login: str,
    password: str,
    *,
    dealer_id: int | None = None,
    user_agent: str = USER_AGENT,
) -> AuthRequest:
    """``POST <base>user/auth`` with a form-encoded ``login``, ``password`` (and ``dealer_id``)."""
    fields: list[tuple[str, str]] = [("login", login), ("password", password)]
    if dealer_id is not None:
        fields.append(("dealer_id", str(dealer_id)))
    url = auth_url(base_url)
    return form_post(AuthRequest, url, lambda: fields, user_agent, redact_target(base_url))


def api_key_session(api_key_hash: str) -> AuthSuccess:
    """Use the hash of an API key as the session hash: no ``user/auth`` call needed."""
    return AuthSuccess(check_hash(api_key_hash))


def _interpret(status_code: int, body: bytes, loads: JsonLoads | None) -> AuthSuccess | AuthFailure:
    """An API error body wins over the HTTP status; otherwise the status, then the JSON."""
    decoded, reason = decode_api_body(body, loads)
    api_error = api_error_of(decoded)
    if api_error is not None:
        return AuthFailure(*api_error, decoded)
    if not 200 <= status_code < 300:
        raise AuthHTTPError(status_code, body)
    if reason:
        raise AuthDecodeError(reason, body)
    if type(decoded) is dict and decoded.get("success") is True:
        session_hash = decoded.get("hash")
        if type(session_hash) is str and session_hash:
            return AuthSuccess(session_hash, decoded)
    raise AuthDecodeError("neither a hash nor an API error", body)


class AuthExchange(ApiExchange[AuthSuccess | AuthFailure]):
    """One ``user/auth`` call through an h11 client connection: request bytes out, the
    response's bytes in (any split), a typed answer or an :class:`AuthError` at the end
    (:class:`AuthTruncatedError` if the connection closes before the answer's end)."""

    __slots__ = ()

    def __init__(
        self,
        request: AuthRequest,
        *,
        loads: JsonLoads | None = None,
        max_body: int = DEFAULT_MAX_AUTH_BODY,
    ) -> None:
        super().__init__(request, loads, max_body)

    def _interpret(self, status_code: int, body: bytes) -> AuthSuccess | AuthFailure:
        return _interpret(status_code, body, self._loads)

    def _bad_response_error(self, exc: h11.RemoteProtocolError) -> Exception:
        if self._eof:
            return AuthTruncatedError(f"response cut short: {exc}")
        return AuthError(f"bad HTTP response: {exc}")

    def _too_large_error(self) -> Exception:
        return AuthError(f"response body over {self.max_body} bytes")

    def _closed_error(self, ended: bool) -> Exception:
        if ended:
            return AuthTruncatedError("the connection closed before the response ended")
        return AuthTruncatedError("the connection closed before the response")


def parse_auth_response(
    data: bytes, *, loads: JsonLoads | None = None, request: AuthRequest | None = None
) -> AuthSuccess | AuthFailure:
    """Parse one complete response (the connection's whole input, then its end)."""
    exchange = AuthExchange(request or build_auth_request("http://localhost/", "", ""), loads=loads)
    result = exchange.receive_data(data)
    return result if result is not None else exchange.receive_eof()


# -- server ---------------------------------------------------------------------------------


def is_auth_target(target: str | bytes) -> bool:
    """Whether a request target is ``…/user/auth`` (with or without a trailing slash)."""
    return is_api_target(target, "user/auth")


class AuthResponder(ApiResponder):
    """Answers ``GET``/``POST …/user/auth`` (query, form or JSON body) from a directory.

    Statuses follow the API's habit: 200 with ``success: true``, 403 for a refused login,
    400 for missing or bad parameters, 404/405 for other paths and methods; the JSON body
    carries the API error either way.
    """

    __slots__ = ("_dumps", "directory")

    def __init__(self, directory: Directory, *, dumps: JsonDumps = dumps) -> None:
        self.directory = directory
        self._dumps = dumps

    def __call__(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        body: bytes,
    ) -> HttpResponse:
        params = self._params(method, target, headers, body, "user/auth", json_as_text=True)
        if isinstance(params, HttpResponse):
            return params
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
