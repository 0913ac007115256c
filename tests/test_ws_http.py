"""The server stack's plain HTTP side (before any upgrade) and the URL helper."""

from __future__ import annotations

import h11
import pytest

from trackwire.atmosphere import AtmosphereServer, build_close_url
from trackwire.ws import (
    AtmosphereCloseRequested,
    HandshakeFailed,
    Headers,
    HttpRequestHandled,
    HttpResponse,
    ServerStack,
    StackState,
    UpgradeRequest,
    WsAddress,
    chain_handlers,
    split_ws_url,
)

UPGRADE_HEADERS = (
    b"Host: tracker.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def factory(request: UpgradeRequest) -> AtmosphereServer:
    return AtmosphereServer(request.target)


def auth_handler(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
    """A stand-in for the iTrack ``user/auth`` responder."""
    if not target.startswith("/v2/user/auth"):
        return None
    return 200, [("Content-Type", "application/json")], b'{"success": true, "hash": "h"}'


def server(**options: object) -> ServerStack[AtmosphereServer]:
    stack: ServerStack[AtmosphereServer] = ServerStack(factory, **options)  # type: ignore[arg-type]
    stack.connection_made(0.0)
    return stack


def responses(data: bytes) -> list[tuple[int, bytes]]:
    """Parse what the server wrote into (status, body) pairs."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    found: list[tuple[int, bytes]] = []
    status = 0
    body = b""
    while True:
        if client.our_state is h11.IDLE:  # the parser needs a request to pair each answer with
            client.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
            client.send(h11.EndOfMessage())
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return found
        if isinstance(event, h11.Response):
            status, body = event.status_code, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            found.append((status, body))
            if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                return found
            client.start_next_cycle()
        else:
            return found


def get(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: tracker.test\r\n{extra}\r\n".encode()


def test_unknown_request_gets_404_and_an_event() -> None:
    stack = server()
    stack.receive(get("/nothing/here"), 1.0)
    assert responses(stack.data_to_send()) == [(404, b"Not Found\n")]
    assert stack.events() == [
        HttpRequestHandled("GET", "/nothing/here", [("host", "tracker.test")], b"", 404)
    ]
    assert stack.state is StackState.CONNECTING  # keep-alive: ready for the next request


def test_plain_request_goes_to_the_handler_with_its_body() -> None:
    seen: list[tuple[str, str, Headers, bytes]] = []

    def handler(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
        seen.append((method, target, headers, body))
        return auth_handler(method, target, headers, body)

    stack = server(http_handler=handler)
    body = b"login=demo&password=secret"
    stack.receive(
        b"POST /v2/user/auth HTTP/1.1\r\nHost: tracker.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
        1.0,
    )
    assert responses(stack.data_to_send()) == [(200, b'{"success": true, "hash": "h"}')]
    assert seen == [
        (
            "POST",
            "/v2/user/auth",
            [
                ("host", "tracker.test"),
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", "26"),
            ],
            body,
        )
    ]
    (event,) = stack.events()
    assert isinstance(event, HttpRequestHandled)
    assert event.status_code == 200


def test_keep_alive_serves_pipelined_requests_then_upgrades() -> None:
    stack = server(http_handler=auth_handler)
    stack.receive(get("/v2/user/auth?login=a") + get("/missing"), 1.0)
    assert [status for status, _ in responses(stack.data_to_send())] == [200, 404]
    stack.receive(b"GET /v2/event/subscription HTTP/1.1\r\n" + UPGRADE_HEADERS + b"\r\n", 2.0)
    assert stack.data_to_send().startswith(b"HTTP/1.1 101 ")
    assert stack.state is StackState.OPEN


def test_connection_close_ends_after_one_response() -> None:
    stack = server()
    stack.receive(get("/x", "Connection: close\r\n"), 1.0)
    assert responses(stack.data_to_send()) == [(404, b"Not Found\n")]
    assert stack.state is StackState.CLOSED


def test_head_gets_headers_only() -> None:
    stack = server(http_handler=lambda *request: (200, [], b"body"))
    stack.receive(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n", 1.0)
    out = stack.data_to_send()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 4\r\n" in out
    assert out.endswith(b"\r\n\r\n")


def test_expect_100_continue_is_honoured() -> None:
    stack = server(http_handler=lambda *request: (204, [], b""))
    stack.receive(
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", 1.0
    )
    assert stack.data_to_send().startswith(b"HTTP/1.1 100 ")
    stack.receive(b"ok", 1.0)
    assert stack.data_to_send().startswith(b"HTTP/1.1 204 ")


def test_chained_handlers_first_answer_wins() -> None:
    def other(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
        return (200, [], b"other") if target == "/other" else None

    stack = server(http_handler=chain_handlers(auth_handler, other))
    stack.receive(get("/other") + get("/v2/user/auth") + get("/none"), 1.0)
    assert [s for s, _ in responses(stack.data_to_send())] == [200, 200, 404]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_atmosphere_close_request_is_answered_and_reported(method: str) -> None:
    url = build_close_url("http://tracker.test/v2/event/subscription", "abc-123", 1700000000000)
    target = url.removeprefix("http://tracker.test")
    length = "Content-Length: 0\r\n" if method == "POST" else ""
    stack = server(http_handler=auth_handler)
    stack.receive(f"{method} {target} HTTP/1.1\r\nHost: t\r\n{length}\r\n".encode(), 1.0)
    assert responses(stack.data_to_send()) == [(200, b"")]
    assert stack.events() == [AtmosphereCloseRequested("abc-123", target)]


def test_atmosphere_close_hook_can_be_turned_off() -> None:
    stack = server(atmosphere_close=False)
    stack.receive(get("/s?X-Atmosphere-Transport=close&X-Atmosphere-tracking-id=u"), 1.0)
    assert responses(stack.data_to_send()) == [(404, b"Not Found\n")]


def test_garbage_request_gets_400_and_a_clear_error() -> None:
    stack = server()
    stack.receive(b"\x00\x01\x02 garbage\r\n\r\n", 1.0)
    assert [status for status, _ in responses(stack.data_to_send())] == [400]
    (event,) = stack.events()
    assert isinstance(event, HandshakeFailed)
    assert "bad HTTP request" in str(event.error)
    assert stack.state is StackState.CLOSED


def test_oversize_body_gets_413() -> None:
    stack = server(max_http_body=10)
    stack.receive(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n01234567890", 1.0)
    assert [status for status, _ in responses(stack.data_to_send())] == [413]
    (event,) = stack.events()
    assert isinstance(event, HandshakeFailed)
    assert stack.state is StackState.CLOSED


def test_oversize_head_gets_431() -> None:
    stack = server(max_http_headers=100)
    stack.receive(b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 200, 1.0)  # still coming
    assert [status for status, _ in responses(stack.data_to_send())] == [431]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + UPGRADE_HEADERS.replace(b"13", b"8"), 426),
        (b"POST / HTTP/1.1\r\n" + UPGRADE_HEADERS + b"Content-Length: 0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + UPGRADE_HEADERS.replace(b"Upgrade\r\n", b"close\r\n"), 400),
    ],
)
def test_bad_upgrade_requests_are_refused(request_bytes: bytes, status: int) -> None:
    stack = server()
    stack.receive(request_bytes + (b"" if request_bytes.endswith(b"\r\n\r\n") else b"\r\n"), 1.0)
    assert [s for s, _ in responses(stack.data_to_send())] == [status]
    (event,) = stack.events()
    assert isinstance(event, HandshakeFailed)
    assert stack.state is StackState.CLOSED


def test_idle_keep_alive_connection_times_out_quietly() -> None:
    stack = server(handshake_timeout=5.0)
    stack.receive(get("/x"), 1.0)
    stack.data_to_send()
    stack.events()
    assert stack.next_deadline() == 6.0  # re-armed by the response
    stack.handle_timer(6.0)
    assert stack.events() == []
    assert stack.state is StackState.CLOSED


def test_incomplete_request_times_out_with_an_error() -> None:
    stack = server(handshake_timeout=5.0)
    stack.receive(b"GET / HTTP/1.1\r\n", 1.0)
    stack.handle_timer(5.0)
    (event,) = stack.events()
    assert isinstance(event, HandshakeFailed)
    assert "within 5.0 s" in str(event.error)
    assert stack.state is StackState.CLOSED


def test_eof_between_requests_is_quiet() -> None:
    stack = server()
    stack.receive(get("/x"), 1.0)
    stack.events()
    stack.receive_eof(2.0)
    assert stack.events() == []
    assert stack.state is StackState.CLOSED


# -- split_ws_url ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected", "host_header"),
    [
        ("ws://h/", WsAddress("h", 80, "/", False), "h"),
        ("wss://h", WsAddress("h", 443, "/", True), "h"),
        (
            "https://api.example/v2/event?a=1&b=2#frag",
            WsAddress("api.example", 443, "/v2/event?a=1&b=2", True),
            "api.example",
        ),
        ("http://H:8080/p", WsAddress("h", 8080, "/p", False), "h:8080"),
        ("ws://[::1]:9000/x", WsAddress("::1", 9000, "/x", False), "[::1]:9000"),
        ("ws://h/ghost id/é?q=a b", WsAddress("h", 80, "/ghost%20id/%C3%A9?q=a%20b", False), "h"),
        ("wss://h:443/a%20b", WsAddress("h", 443, "/a%20b", True), "h"),
    ],
)
def test_split_ws_url(url: str, expected: WsAddress, host_header: str) -> None:
    address = split_ws_url(url)
    assert address == expected
    assert address.host_header == host_header


@pytest.mark.parametrize("url", ["ftp://h/", "ws:///path", "ws://user:pw@h/", "h/path"])
def test_split_ws_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|credentials"):
        split_ws_url(url)
