"""iTrack server core: client actions (``subscribe``/``unsubscribe``, both formats) over an
Atmosphere connection, interleaved with pushes and batch timers.

Contract: nothing a client sends raises; every frame is answered (an action is applied and
reported as :class:`ActionReceived`, or answered with an error and :class:`ActionRejected`),
and the server keeps serving.  Every frame it writes is strict JSON in UTF-8, whatever the
client put in the values it echoes (``NaN``, ``1e999999``, lone surrogates).  Byte 0 picks the
request target options; with bit 3 the first frame is a request target of the client's.
"""

from __future__ import annotations

from _common import Flags, check_events, check_output, fuzz_main, split, text

from trackwire.itrack import (
    ActionReceived,
    ActionRejected,
    Directory,
    GpsState,
    ITrackServer,
    Location,
    SourceState,
)

HASH = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def _directory() -> Directory:
    directory = Directory(hash_factory=lambda: HASH)
    directory.add_user("demo", "demo")
    directory.add_user("other", "other")
    directory.add_api_key("demo", HASH)
    directory.add_api_key("other", OTHER)
    for tracker in range(1, 6):
        directory.add_tracker("demo", tracker)
    directory.add_tracker("other", 9)
    directory.set_status(3, "blocked")
    directory.set_state(1, _state(1))
    return directory


def _state(tracker: int) -> SourceState:
    gps = GpsState.create(location=Location.create(1.0, 2.0), speed=3.0)
    return SourceState.create(tracker + 1_000_000, gps=gps, connection_status="active")


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    target = "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-atmo-protocol=true"
    target += "&X-Atmosphere-Framework=2.3.6-javascript&X-Atmosphere-Transport=websocket"
    if flags[0]:
        target += "&X-Atmosphere-TrackMessageSize=true"
    chunks = split(data[1:])
    if flags[3]:
        target = text(chunks.pop(0))
    server = ITrackServer(target, _directory(), heartbeat_interval_ms=0 if flags[1] else 30000)
    now = 0.0
    server.connection_made(now)
    check_output(server.data_to_send())
    for chunk in chunks:
        now += 0.7
        frame = text(chunk, flags[2])
        server.receive(frame, now)
        events = server.events()
        check_events(events)
        answered = [e for e in events if isinstance(e, (ActionReceived, ActionRejected))]
        if frame != "X" or flags[1]:
            # Every frame but a heartbeat is one action, answered either way.
            assert len(answered) == 1, (frame, events)
        out = server.data_to_send()
        if answered:
            assert out, "an action got no answer"
        check_output(out)
        server.push_state(1 + len(frame) % 9, _state(1), now)
        server.push_readings(2, [{"value": len(frame)}], now)
        server.push_lifecycle(3, "unblock" if len(frame) % 2 else "block", now)
        deadline = server.next_deadline()
        if deadline is not None:
            server.handle_timer(max(now, deadline))
            now = max(now, deadline)
        check_events(server.events())
        check_output(server.data_to_send())
    server.push_logout(now, HASH)
    server.receive_eof(now)
    check_events(server.events())


if __name__ == "__main__":
    fuzz_main(TestOneInput)
