"""The server WebSocket stack (h11 + wsproto + a text core) fed client bytes in any split,
serving the reference applications of both protocols and ``user/auth`` on one port.

Contract: nothing a client sends raises; plain HTTP is answered, a bad request ends in
:class:`HandshakeFailed` (with a 4xx when one can still be sent), and an upgraded connection
ends in exactly one :class:`ConnectionClosed`.  Bit 0 of byte 0 puts a valid upgrade request
in front of the input (bit 1: FleetFreedom, else iTrack), so the fuzzer works on frames.
"""

from __future__ import annotations

from typing import Any

from _common import Flags, drive_stack, fuzz_main, split

from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet
from trackwire.ws import (
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    Rejected,
    ServerStack,
    UpgradeRequest,
)

_FLEET = demo_fleet(3)


class _Apps:
    """Fresh reference applications for each input (so that inputs do not interact)."""

    def __init__(self) -> None:
        self.itrack = ITrackReference(_FLEET, wall_offset=0.0, hash_factory=lambda: "f" * 32)
        self.fleetfreedom = FleetFreedomReference(
            _FLEET, wall_offset=0.0, ghost_ids=lambda: "0f8fad5b-d9cb-469f-a165-70867728950e"
        )

    def factory(self, request: UpgradeRequest) -> Any:
        if request.target.startswith(("/v2/", "/event/")):
            return self.itrack.factory(request)
        return self.fleetfreedom.factory(request)


def upgrade_request(target: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: fuzz.test\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode("ascii")


ITRACK_TARGET = (
    "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=2.3.6-javascript"
    "&X-Atmosphere-Transport=websocket&X-atmo-protocol=true"
)


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    apps = _Apps()
    stack: ServerStack[Any] = ServerStack(
        apps.factory,
        http_handler=apps.itrack.http_handler,
        max_http_body=512 if flags[2] else 64 * 1024,
        max_http_headers=512 if flags[2] else 16 * 1024,
        max_message_size=1024 if flags[3] else 1 << 20,
    )
    now = 0.0
    stack.connection_made(now)
    chunks = split(data[1:])
    if flags[0]:
        chunks[0] = upgrade_request("/" if flags[1] else ITRACK_TARGET) + chunks[0]
    events = drive_stack(stack, chunks, now)
    connected = sum(isinstance(e, Connected) for e in events)
    closed = sum(isinstance(e, ConnectionClosed) for e in events)
    failed = sum(isinstance(e, (HandshakeFailed, Rejected)) for e in events)
    assert connected == closed, events
    assert connected + failed <= 1, events
    if closed:
        assert isinstance(events[-1], ConnectionClosed)


if __name__ == "__main__":
    fuzz_main(TestOneInput)
