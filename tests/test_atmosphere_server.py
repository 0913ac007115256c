"""The Atmosphere server core: handshake, framing, heartbeats, reconnect (spec §1–§5)."""

from __future__ import annotations

import pytest

from trackwire import LocalProtocolError
from trackwire.atmosphere import (
    RECONNECT_PADDING,
    AtmosphereServer,
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
    Reopened,
    ServerState,
)

FRESH = (
    "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=2.3.6-javascript"
    "&X-Atmosphere-Transport=websocket&Content-Type=application/json&X-atmo-protocol=true"
)
UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"


def server(target: str = FRESH, **kw: object) -> AtmosphereServer:
    core = AtmosphereServer(target, uuid_factory=lambda: UUID, **kw)  # type: ignore[arg-type]
    core.connection_made(0.0)
    return core


def test_handshake_frame_and_opened_event() -> None:
    core = server(heartbeat_interval_ms=30000)
    assert core.data_to_send() == [f"{UUID}|30000|X|"]
    assert core.events() == [Opened(UUID, 30000, "X")]
    assert core.state is ServerState.OPEN


def test_default_handshake_has_no_client_heartbeat() -> None:
    assert server().data_to_send() == [f"{UUID}|0|X|"]


def test_no_heartbeat_support_frame() -> None:
    assert server(padding="").data_to_send() == [f"{UUID}|0||"]


def test_handshake_length_prefixed_with_track_message_size() -> None:
    core = server(FRESH + "&X-Atmosphere-TrackMessageSize=true", heartbeat_interval_ms=30000)
    assert core.data_to_send() == [f"45|{UUID}|30000|X|"]


def test_old_framework_or_no_protocol_gets_no_handshake() -> None:
    old = FRESH.replace("2.3.6-javascript", "2.2.0-javascript")
    assert server(old).data_to_send() == []
    assert server(FRESH.replace("&X-atmo-protocol=true", "")).data_to_send() == []


def test_reconnect_gets_padding_and_no_handshake() -> None:
    core = server(FRESH.replace("tracking-id=0", "tracking-id=" + UUID + "-old"))
    assert core.data_to_send() == [RECONNECT_PADDING]
    assert len(RECONNECT_PADDING) == 2049
    assert core.events() == [Reopened(UUID + "-old")]
    assert core.uuid == UUID + "-old"


def test_reconnect_padding_never_prefixed() -> None:
    target = FRESH.replace("tracking-id=0", "tracking-id=u") + "&X-Atmosphere-TrackMessageSize=true"
    assert server(target).data_to_send() == [RECONNECT_PADDING]


def test_messages_prefixed_in_utf16_units() -> None:
    core = server(FRESH + "&X-Atmosphere-TrackMessageSize=true")
    core.data_to_send()
    for message in ["abc", "é", "😀", "a|b", "", "   ", "\n"]:
        core.send(message)
    assert core.data_to_send() == ["3|abc", "1|é", "2|😀", "3|a|b", "", "   ", "1|\n"]


def test_messages_unprefixed_without_track_message_size() -> None:
    core = server()
    core.data_to_send()
    core.send('{"type":"event"}')
    assert core.data_to_send() == ['{"type":"event"}']


def test_padding_swallowed_only_when_client_heartbeats_are_on() -> None:
    core = server(heartbeat_interval_ms=1000)
    core.events()
    for frame in ["X", "X\n", "x", " X"]:
        core.receive(frame, 1.0)
    assert core.events() == [Heartbeat(), Message("X\n"), Message("x"), Message(" X")]
    quiet = server()
    quiet.events()
    quiet.receive("X", 1.0)
    assert quiet.events() == [Message("X")]


def test_server_heartbeat_after_write_inactivity() -> None:
    core = server()
    core.data_to_send()
    assert core.next_deadline() == 60.0
    core.send("a", now=30.0)
    assert core.next_deadline() == 90.0
    core.receive("client traffic does not count", 80.0)
    core.handle_timer(89.0)
    assert core.data_to_send() == ["a"]
    core.handle_timer(90.0)
    assert core.data_to_send() == ["X"]
    assert core.next_deadline() == 150.0


def test_server_heartbeat_prefixed() -> None:
    core = server(FRESH + "&X-Atmosphere-TrackMessageSize=true")
    core.data_to_send()
    core.handle_timer(60.0)
    assert core.data_to_send() == ["1|X"]


def test_send_without_now_uses_latest_known_time() -> None:
    core = server()
    core.receive("hello", 50.0)
    core.send("reply")
    assert core.next_deadline() == 110.0


@pytest.mark.parametrize(
    ("asked", "expected"),
    [(None, 60.0), ("120", 120.0), ("30", 60.0), ("0", 0.0), ("undefined", 60.0)],
)
def test_heartbeat_server_may_lengthen_or_disable_never_shorten(
    asked: str | None, expected: float
) -> None:
    target = FRESH if asked is None else FRESH + "&X-Heartbeat-Server=" + asked
    core = server(target)
    assert core.server_heartbeat == expected
    assert core.next_deadline() == (expected or None)


def test_idle_timeout_off_by_default_and_on_when_asked() -> None:
    assert server(server_heartbeat=0).next_deadline() is None
    core = server(server_heartbeat=0, idle_timeout=10.0)
    core.events()
    core.receive("x", 5.0)
    assert core.next_deadline() == 15.0
    core.handle_timer(15.0)
    assert core.events() == [Message("x"), InactivityTimeout(None)]
    assert core.state is ServerState.CLOSED


def test_eof_and_close() -> None:
    core = server()
    core.events()
    core.receive_eof(1.0)
    assert core.events() == [Closed(resumable=True)]
    assert core.state is ServerState.CLOSED
    assert core.next_deadline() is None
    core.close()
    with pytest.raises(LocalProtocolError):
        core.send("late")
    with pytest.raises(LocalProtocolError):
        core.receive("late", 2.0)


def test_send_before_connection_made_is_refused() -> None:
    core = AtmosphereServer(FRESH)
    with pytest.raises(LocalProtocolError):
        core.send("early")


def test_default_uuid_is_random_uuid4() -> None:
    core = AtmosphereServer(FRESH)
    other = AtmosphereServer(FRESH)
    assert len(core.uuid) == 36
    assert core.uuid != other.uuid


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        AtmosphereServer(FRESH, heartbeat_interval_ms=-1)
