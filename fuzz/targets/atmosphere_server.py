"""Atmosphere server core: the request target (handshake decision) and client frames.

Contract: any request target parses into an :class:`OpenRequest` and any text frame becomes an
event (``Message`` or ``Heartbeat``); nothing the client sends raises, and every frame the
server writes encodes as UTF-8.  The first frame (up to
the first ``0xff``) is the request target; an empty frame lets time pass and runs the timers.
"""

from __future__ import annotations

from _common import Flags, check_events, check_output, fuzz_main, split, text

from trackwire.atmosphere import (
    AtmosphereEvent,
    AtmosphereServer,
    ServerState,
    parse_open_request,
)


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    chunks = split(data[1:])
    request = parse_open_request(text(chunks[0]))
    assert request.get("X-Atmosphere-tracking-id") is not None or request.tracking_id == "0"
    assert request.heartbeat_server is None or 0 <= request.heartbeat_server < 10**9
    assert request.wants_handshake in (True, False)
    server = AtmosphereServer(
        request,
        heartbeat_interval_ms=0 if flags[0] else 5000,
        idle_timeout=None if flags[1] else 90.0,
        uuid_factory=lambda: "00000000-0000-4000-8000-000000000000",
    )
    assert server.server_heartbeat < float("inf")
    now = 0.0
    server.connection_made(now)
    for chunk in chunks[1:]:
        if server.state is not ServerState.OPEN:
            break
        if not chunk:
            now += 60.0
            server.handle_timer(now)
        else:
            now += 0.5
            frame = text(chunk, flags[2])
            server.receive(frame, now)
            server.send(frame[::-1], now)
        # The application echoes each frame reversed: only wide input holds lone surrogates.
        check_output(server.data_to_send(), utf8=not flags[2], json=False)
        check_events(server.events(), AtmosphereEvent)
    server.receive_eof(now)
    check_events(server.events(), AtmosphereEvent)
    assert server.state is ServerState.CLOSED


if __name__ == "__main__":
    fuzz_main(TestOneInput)
