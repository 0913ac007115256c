"""What an idle served connection holds: shared header and parameter pairs, small contexts."""

from __future__ import annotations

from typing import Any

import pytest

from trackwire import current_peer, peer_context
from trackwire.atmosphere import AtmosphereClient, _url, parse_open_request
from trackwire.ws import ServerStack, UpgradeRequest
from trackwire.ws import _server as ws_server


def _upgrade(key: str, target: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer secret\r\n\r\n"
    ).encode()


def _accepted(key: str, target: str = "/") -> UpgradeRequest:
    seen: list[UpgradeRequest] = []

    def factory(request: UpgradeRequest) -> AtmosphereClient:
        seen.append(request)
        return AtmosphereClient("http://h/p")

    stack: ServerStack[Any] = ServerStack(factory)  # type: ignore[type-var]
    stack.connection_made(0.0)
    stack.receive(_upgrade(key, target), 0.0)
    (request,) = seen
    return request


def test_idle_connections_share_the_headers_every_client_repeats() -> None:
    one = _accepted("dGhlIHNhbXBsZSBub25jZQ==")
    two = _accepted("AQIDBAUGBwgJCgsMDQ4PEC==")
    assert one.headers != two.headers  # their keys differ
    for a, b in zip(one.headers, two.headers, strict=True):
        if a[0].lower() in ("host", "upgrade", "connection", "sec-websocket-version"):
            assert a is b
        else:
            assert a is not b  # the key, the secret: each connection's own
    assert not any(b"authorization" in name for name, _ in ws_server._headers)
    assert not any(b"sec-websocket-key" in name for name, _ in ws_server._headers)


def test_the_shared_headers_and_parameters_are_bounded() -> None:
    for n in range(3 * ws_server._HEADERS_KEPT):
        ws_server._header(b"host", f"h{n}".encode())
        assert len(ws_server._headers) <= ws_server._HEADERS_KEPT
    for n in range(3 * _url._PARAMS_KEPT):
        parse_open_request(f"/p?X-Atmosphere-Framework={n}")
        assert len(_url._params) <= _url._PARAMS_KEPT
    ws_server._header(b"host", b"x" * (ws_server._HEADER_VALUE_KEPT + 1))
    assert (b"host", b"x" * (ws_server._HEADER_VALUE_KEPT + 1)) not in ws_server._headers


def test_open_requests_share_the_parameters_every_client_repeats() -> None:
    target = (
        "/p?X-Atmosphere-tracking-id={}&X-Atmosphere-Framework=2.3.6-javascript"
        "&X-Atmosphere-Transport=websocket&hash=s3cr3t"
    )
    first = parse_open_request(target.format("0"))
    second = parse_open_request(target.format("0"))
    assert first == second
    assert [a is b for a, b in zip(first.params, second.params, strict=True)] == [
        True,
        True,
        True,
        False,  # not a parameter every client repeats
    ]
    again = parse_open_request(target.format("8a1c"))
    resumed = parse_open_request(target.format("8a1c"))
    assert again.params[0] == resumed.params[0] == ("X-Atmosphere-tracking-id", "8a1c")
    assert again.params[0] is not resumed.params[0]
    assert "hash=s3cr3t" not in _url._params


def test_peer_context_is_small_and_nests() -> None:
    # A server holds one per open connection: two slots, no generator frame.
    outer = peer_context("10.0.0.1")
    assert not hasattr(outer, "__dict__")
    assert current_peer() == ""
    with outer:
        assert current_peer() == "10.0.0.1"
        with peer_context("10.0.0.2"):
            assert current_peer() == "10.0.0.2"
        assert current_peer() == "10.0.0.1"
        with pytest.raises(KeyError), peer_context("10.0.0.3"):
            raise KeyError("the error leaves the block; the address is restored")
        assert current_peer() == "10.0.0.1"
    assert current_peer() == ""
