"""The open URL, the close URL and the server's reading of a request target (spec §1, §6)."""

from __future__ import annotations

from trackwire.atmosphere import (
    AtmosphereClient,
    build_close_url,
    build_open_url,
    framework_number,
    parse_open_request,
)

ITRACK_EXAMPLE = (
    "ws://domain.com/event/subscription?X-Atmosphere-tracking-id=0"
    "&X-Atmosphere-Framework=2.3.6-javascript&X-Atmosphere-Transport=websocket"
    "&Content-Type=application/json&X-atmo-protocol=true"
)


def test_itrack_documented_url_exactly() -> None:
    client = AtmosphereClient(
        "http://domain.com/event/subscription", content_type="application/json"
    )
    assert client.url_to_open == ITRACK_EXAMPLE


def test_https_becomes_wss() -> None:
    url = build_open_url("https://api.example/v2/event/subscription")
    assert url.startswith("wss://api.example/v2/event/subscription?X-Atmosphere-tracking-id=0&")


def test_every_option_in_the_client_order() -> None:
    url = build_open_url(
        "ws://h/p",
        tracking_id="abc",
        framework="4.0.1",
        track_message_length=True,
        heartbeat_server=90,
        content_type="application/json; charset=utf-8",
        headers={"X-Token": "a b&c/é", "na me": "v"},
    )
    assert url == (
        "ws://h/p?X-Atmosphere-tracking-id=abc&X-Atmosphere-Framework=4.0.1"
        "&X-Atmosphere-Transport=websocket&X-Atmosphere-TrackMessageSize=true"
        "&X-Heartbeat-Server=90&Content-Type=application/json;%20charset=utf-8"
        "&X-atmo-protocol=true&X-Token=a%20b%26c%2F%C3%A9&na%20me=v"
    )


def test_protocol_off_and_no_content_type() -> None:
    url = build_open_url("ws://h/p", enable_protocol=False)
    assert url == (
        "ws://h/p?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=2.3.6-javascript"
        "&X-Atmosphere-Transport=websocket"
    )


def test_existing_query_is_extended() -> None:
    assert build_open_url("ws://h/p?a=1").startswith("ws://h/p?a=1&X-Atmosphere-tracking-id=0&")


def test_header_marks_as_the_url_parser_leaves_them() -> None:
    # encodeURIComponent keeps !*'() but the URL parser then encodes ' in a ws: query.
    url = build_open_url("ws://h/p", headers=[("k", "!*'()-_.~")])
    assert url.endswith("&k=!*%27()-_.~")


def test_close_url() -> None:
    assert build_close_url("wss://h/p", "u-1", 1700000000123) == (
        "https://h/p?X-Atmosphere-Transport=close&X-Atmosphere-tracking-id=u-1&_=1700000000123"
    )


def test_close_url_carries_extra_headers_before_the_timestamp() -> None:
    assert build_close_url("ws://h/p?a=1", "u", 5, {"X-T": "a b"}) == (
        "http://h/p?a=1&X-Atmosphere-Transport=close&X-Atmosphere-tracking-id=u&X-T=a%20b&_=5"
    )


def test_framework_number() -> None:
    assert framework_number("2.3.6-javascript") == 236
    assert framework_number("2.3.3-javascript") == 233
    assert framework_number("4.0.1") == 401
    assert framework_number("2.2.1-javascript") == 221
    assert framework_number("2.3.6.9") == 236
    assert framework_number("2.3") == 0
    assert framework_number("2.3.x") == 0
    assert framework_number("junk") == 0


def test_server_reads_any_order_and_keeps_unknown_parameters() -> None:
    request = parse_open_request(
        "/v2/event/subscription?X-atmo-protocol=true&foo=b%20ar&X-Atmosphere-Transport=websocket"
        "&X-Atmosphere-Framework=2.3.6-javascript&X-Atmosphere-tracking-id=0"
        "&X-Atmosphere-TrackMessageSize=true&X-Heartbeat-Server=120"
    )
    assert request.path == "/v2/event/subscription"
    assert request.get("foo") == "b ar"
    assert ("foo", "b ar") in request.params
    assert request.track_message_length
    assert request.heartbeat_server == 120
    assert request.wants_handshake
    assert not request.is_close
    assert not request.is_reconnect


def test_handshake_conditions() -> None:
    base = "/p?X-Atmosphere-Transport=websocket&X-Atmosphere-Framework="
    assert not parse_open_request(base + "2.2.0-javascript&X-atmo-protocol=true").wants_handshake
    assert parse_open_request(base + "2.2.1-javascript&X-atmo-protocol=true").wants_handshake
    assert not parse_open_request(base + "2.3.6-javascript").wants_handshake
    reconnect = parse_open_request(
        base + "2.3.6-javascript&X-atmo-protocol=true&X-Atmosphere-tracking-id=u-1"
    )
    assert reconnect.is_reconnect
    assert not reconnect.wants_handshake


def test_close_request_recognised() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    client.receive("u-1|0|X|", 0.0)
    close_url = client.close(1.5)
    assert close_url is not None
    request = parse_open_request(close_url)
    assert request.is_close
    assert parse_open_request("/p?x-atmosphere-transport=CLOSE").is_close
    assert request.tracking_id == "u-1"
    assert request.get("_") == "1500"
