"""``user/auth`` over HTTP through h11: the request, the response in any split, the server."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import ProtocolError, RemoteProtocolError
from trackwire.itrack import (
    AuthDecodeError,
    AuthError,
    AuthExchange,
    AuthFailure,
    AuthHTTPError,
    AuthResponder,
    AuthServerConnection,
    AuthSuccess,
    AuthTruncatedError,
    Directory,
    api_key_session,
    build_auth_request,
    is_auth_target,
    parse_auth_response,
)

HASH = "f4bf1b754034213653dad99c78c4b237"
OK_BODY = b'{"success": true, "hash": "' + HASH.encode() + b'"}'
FAIL_BODY = b'{"success": false, "status": {"code": 102, "description": "Wrong login or password"}}'


def response(body: bytes, status: str = "200 OK", chunked: bool = False) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n".encode()
    if chunked:
        middle = len(body) // 2
        chunks = [body[:middle], body[middle:]]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + encoded
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# -- request -------------------------------------------------------------------------------


def test_request_for_the_hosted_base_url() -> None:
    request = build_auth_request("https://api.itrack.live/v2/", "user@x.com", "p&ss", dealer_id=7)
    assert (request.method, request.target) == ("POST", "/v2/user/auth")
    assert (request.host, request.port, request.tls) == ("api.itrack.live", 443, True)
    assert request.url == "https://api.itrack.live/v2/user/auth"
    assert ("Host", "api.itrack.live") in request.headers
    assert ("Content-Type", "application/x-www-form-urlencoded") in request.headers
    assert parse_qsl(request.body.decode()) == [
        ("login", "user@x.com"),
        ("password", "p&ss"),
        ("dealer_id", "7"),
    ]


def test_request_for_an_on_premise_url_with_port() -> None:
    request = build_auth_request("http://api.example.com:8080", "a", "b")
    assert (request.host, request.port, request.tls) == ("api.example.com", 8080, False)
    assert request.target == "/user/auth"
    assert request.url == "http://api.example.com:8080/user/auth"
    assert b"dealer_id" not in request.body


@pytest.mark.parametrize("url", ["ftp://h/", "http:///v2/"])
def test_request_rejects_unusable_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|host"):
        build_auth_request(url, "a", "b")


def test_request_bytes_are_valid_http_that_a_server_reads_back() -> None:
    request = build_auth_request("https://api.itrack.live/v2/", "u", "p")
    exchange = AuthExchange(request)
    data = exchange.bytes_to_send()
    assert exchange.bytes_to_send() == b""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    got = server.next_event()
    assert isinstance(got, h11.Request)
    assert (got.method, got.target) == (b"POST", b"/v2/user/auth")
    body = server.next_event()
    assert isinstance(body, h11.Data)
    assert body.data == b"login=u&password=p"


def test_api_key_hash_is_used_without_a_call() -> None:
    assert api_key_session(HASH) == AuthSuccess(HASH)
    with pytest.raises(ValueError, match="32-character"):
        api_key_session("short")


# -- response ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_success_and_api_error(chunked: bool) -> None:
    assert parse_auth_response(response(OK_BODY, chunked=chunked)) == AuthSuccess(HASH)
    failure = parse_auth_response(response(FAIL_BODY, "403 Forbidden", chunked=chunked))
    assert failure == AuthFailure(102, "Wrong login or password")


def test_api_error_with_a_success_status() -> None:
    assert parse_auth_response(response(FAIL_BODY)) == AuthFailure(102, "Wrong login or password")


def test_informational_response_is_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + response(OK_BODY)
    assert parse_auth_response(data) == AuthSuccess(HASH)


def test_body_until_close() -> None:
    data = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK_BODY
    exchange = AuthExchange(build_auth_request("http://h/", "a", "b"))
    assert exchange.receive_data(data) is None
    assert exchange.receive_eof() == AuthSuccess(HASH)
    assert exchange.result == AuthSuccess(HASH)


def test_http_error_without_api_body() -> None:
    with pytest.raises(AuthHTTPError) as caught:
        parse_auth_response(response(b"<html>Bad gateway</html>", "502 Bad Gateway"))
    assert caught.value.status_code == 502
    assert caught.value.body == b"<html>Bad gateway</html>"
    assert isinstance(caught.value, RemoteProtocolError)


@pytest.mark.parametrize(
    "body", [b"<html>", b"\xff\xfe", b'{"success": true}', b"[1]", b'{"success": "yes"}']
)
def test_unreadable_success_bodies(body: bytes) -> None:
    with pytest.raises(AuthDecodeError):
        parse_auth_response(response(body))


@pytest.mark.parametrize("cut", [0, 10, 40, -5])
def test_truncated_responses(cut: int) -> None:
    data = response(OK_BODY)[:cut]
    with pytest.raises(AuthTruncatedError):
        parse_auth_response(data)
    chunked = response(OK_BODY, chunked=True)[:cut]
    with pytest.raises(AuthTruncatedError):
        parse_auth_response(chunked)


def test_garbage_is_an_auth_error() -> None:
    with pytest.raises(AuthError):
        parse_auth_response(b"SMTP ready\r\n\r\n")


def test_body_limit() -> None:
    exchange = AuthExchange(build_auth_request("http://h/", "a", "b"), max_body=10)
    with pytest.raises(AuthError, match="over 10 bytes"):
        exchange.receive_data(response(OK_BODY))


@settings(max_examples=200)
@given(
    st.sampled_from(
        [
            response(OK_BODY),
            response(OK_BODY, chunked=True),
            response(FAIL_BODY, "403 Forbidden"),
            response(FAIL_BODY, "400 Bad Request", chunked=True),
            response(b"not json"),
            response(b"oops", "500 Internal Server Error", chunked=True),
            response(OK_BODY)[:-3],
            b"HTTP/1.1 200 OK\r\n\r\n" + OK_BODY,
        ]
    ),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_any_split_parses_the_same(data: bytes, cuts: list[int]) -> None:
    def run(pieces: list[bytes]) -> object:
        exchange = AuthExchange(build_auth_request("http://h/", "a", "b"))
        try:
            for piece in pieces:
                if (result := exchange.receive_data(piece)) is not None:
                    return result
            return exchange.receive_eof()
        except ProtocolError as exc:
            return type(exc)

    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert run([p for p in pieces if p]) == run([data])


# -- server --------------------------------------------------------------------------------


def make_directory() -> Directory:
    d = Directory(hash_factory=lambda: HASH)
    d.add_user("alice", "secret", dealer_id=5)
    d.add_user("carol", "pw", active=False)
    return d


def test_is_auth_target() -> None:
    assert is_auth_target("/v2/user/auth")
    assert is_auth_target(b"/user/auth/?login=a")
    assert not is_auth_target("/event/subscription")
    assert not is_auth_target("/user/authx")


def test_responder_form_query_and_json() -> None:
    d = make_directory()
    respond = AuthResponder(d)
    form = [(b"Content-Type", b"application/x-www-form-urlencoded")]
    ok = respond("POST", "/v2/user/auth", form, b"login=alice&password=secret")
    assert ok.status == 200
    assert json.loads(ok.body) == {"success": True, "hash": HASH}
    assert ("Content-Length", str(len(ok.body))) in ok.headers
    assert d.user_of(HASH) == "alice"
    by_query = respond("GET", "/v2/user/auth?login=alice&password=secret&dealer_id=5", [], b"")
    assert by_query.status == 200
    as_json = respond(
        "POST",
        "/user/auth",
        [("content-type", "application/json")],
        b'{"login": "alice", "password": "secret"}',
    )
    assert as_json.status == 200


@pytest.mark.parametrize(
    ("method", "target", "body", "status", "code"),
    [
        ("POST", "/user/auth", b"login=alice&password=nope", 403, 102),
        ("POST", "/user/auth", b"login=bob&password=x", 403, 102),
        ("POST", "/user/auth", b"login=alice&password=secret&dealer_id=6", 403, 102),
        ("POST", "/user/auth", b"login=carol&password=pw", 403, 103),
        ("POST", "/user/auth", b"login=alice", 400, 7),
        ("POST", "/user/auth", b"login=alice&password=secret&dealer_id=x", 400, 7),
        ("POST", "/user/auth", b"\xff=\xfe", 400, 5),
        ("DELETE", "/user/auth", b"", 405, 5),
        ("GET", "/tracker/list", b"", 404, 2),
    ],
)
def test_responder_errors(method: str, target: str, body: bytes, status: int, code: int) -> None:
    answer = AuthResponder(make_directory())(method, target, [], body)
    assert answer.status == status
    assert json.loads(answer.body)["status"]["code"] == code


def test_server_connection_answers_the_client_exchange_end_to_end() -> None:
    d = make_directory()
    server = AuthServerConnection(AuthResponder(d))
    for login, password, expected in [
        ("alice", "secret", AuthSuccess(HASH)),
        ("alice", "bad", AuthFailure(102, "Wrong login or password")),
    ]:
        exchange = AuthExchange(build_auth_request("http://h/v2/", login, password))
        data = exchange.bytes_to_send()
        for i in range(len(data)):  # byte by byte
            server.receive_data(data[i : i + 1])
        assert exchange.receive_data(server.data_to_send()) == expected
    assert not server.closed


def test_server_connection_rejects_malformed_http() -> None:
    server = AuthServerConnection(AuthResponder(make_directory()))
    server.receive_data(b"NOT HTTP AT ALL\r\n\r\n")
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")
    assert server.closed
    server.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    assert server.data_to_send() == b""


def test_server_connection_body_limit() -> None:
    server = AuthServerConnection(AuthResponder(make_directory()), max_body=4)
    server.receive_data(
        b"POST /user/auth HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
    )
    assert server.data_to_send().startswith(b"HTTP/1.1 413 ")
    assert server.closed


def test_server_connection_refuses_a_request_framed_twice_and_what_hides_behind_it() -> None:
    """Content-Length and Transfer-Encoding together: 400 and the connection closes, so a
    request smuggled in the body is never answered (RFC 9112 §6.1)."""
    server = AuthServerConnection(AuthResponder(make_directory()))
    smuggled = b"GET /user/auth?login=alice&password=secret HTTP/1.1\r\nHost: h\r\n\r\n"
    chunk = b"0\r\n\r\n" + smuggled
    server.receive_data(
        b"POST /user/auth HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk
    )
    out = server.data_to_send()
    assert out.startswith(b"HTTP/1.1 400 ")
    assert out.count(b"HTTP/1.1 ") == 1
    assert server.closed
