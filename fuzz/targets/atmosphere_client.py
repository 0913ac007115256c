"""Atmosphere client core: handshake, TrackMessageSize frames, heartbeats, timers, reconnects.

Contract: :meth:`AtmosphereClient.receive` either produces Atmosphere events or raises
:class:`RemoteProtocolError` (stream corruption), after which the state is ``ERROR`` and a
reconnect works; every frame it sends encodes as UTF-8 (unless the server's own frames held
lone surrogates, possible only in the UTF-16 mode).  Byte 0 chooses the options; frames are
separated by ``0xff``; an empty frame lets a minute pass and runs the timers.
"""

from __future__ import annotations

from _common import Flags, check_events, check_output, fuzz_main, split, text

from trackwire import RemoteProtocolError
from trackwire.atmosphere import AtmosphereClient, AtmosphereEvent, ClientState

_CONNECTED = (ClientState.AWAITING_HANDSHAKE, ClientState.AWAITING_REOPEN, ClientState.OPEN)


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    client = AtmosphereClient(
        "ws://fuzz.test/v2/event/subscription",
        track_message_length=flags[0],
        enable_protocol=not flags[1],
        delimiter="|" if not flags[2] else "#|",
        max_message_size=64 if flags[3] else 1 << 20,
        inactivity_timeout=0.0 if flags[5] else 120.0,
    )
    now = 0.0
    client.connection_made(now)
    for chunk in split(data[1:]):
        state = client.state
        if state not in _CONNECTED:
            if not client.resumable:
                break
            client.reconnect()
            client.connection_made(now)
        if not chunk:
            now += 60.0
            client.handle_timer(now)
        else:
            now += 0.5
            try:
                client.receive(text(chunk, flags[4]), now)
            except RemoteProtocolError:
                assert client.state is ClientState.ERROR, client.state
            deadline = client.next_deadline()
            if deadline is not None and deadline <= now:
                client.handle_timer(now)
        assert client.heartbeat_interval < float("inf")
        check_output(client.data_to_send(), utf8=not flags[4], json=False)
        check_events(client.events(), AtmosphereEvent)
    if client.state in _CONNECTED:
        client.receive_eof(now)
        check_events(client.events(), AtmosphereEvent)
        assert client.state is ClientState.CLOSED


if __name__ == "__main__":
    fuzz_main(TestOneInput)
