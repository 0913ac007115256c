"""The client WebSocket stack (wsproto + a text core) fed server bytes in any split.

Contract: nothing the server sends raises; the connection ends in :class:`Rejected`,
:class:`HandshakeFailed` or :class:`ConnectionClosed` (exactly once after
:class:`Connected`).  Bit 0 of byte 0 puts a valid ``101`` response in front of the input,
so the fuzzer works on frames; bit 1 picks the FleetFreedom core instead of Atmosphere.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from _common import Flags, drive_stack, fuzz_main, split

from trackwire.atmosphere import AtmosphereClient
from trackwire.fleetfreedom import FleetFreedomClient
from trackwire.ws import (
    ClientStack,
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    Rejected,
)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_response(request: bytes) -> bytes:
    """The ``101`` answer to the upgrade request the stack wrote."""
    key = b""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    core: Any
    if flags[1]:
        core = FleetFreedomClient("ws://fuzz.test/", max_line=4096)
    else:
        core = AtmosphereClient(
            "ws://fuzz.test/v2/event/subscription", track_message_length=flags[2]
        )
    stack: ClientStack[Any] = ClientStack.from_url(
        core, core.url_to_open, max_message_size=1024 if flags[3] else 1 << 20
    )
    now = 0.0
    stack.connection_made(now)
    request = stack.data_to_send()
    chunks = split(data[1:])
    if flags[0]:
        chunks[0] = accept_response(request) + chunks[0]
    events = drive_stack(stack, chunks, now)
    connected = sum(isinstance(e, Connected) for e in events)
    closed = sum(isinstance(e, ConnectionClosed) for e in events)
    failed = sum(isinstance(e, (HandshakeFailed, Rejected)) for e in events)
    assert (connected, closed, failed) in ((1, 1, 0), (0, 0, 1)), events
    if closed:
        assert isinstance(events[-1], ConnectionClosed)


if __name__ == "__main__":
    fuzz_main(TestOneInput)
