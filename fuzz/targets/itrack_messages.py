"""iTrack server messages: :func:`parse_message`, and :class:`ITrackClient` over Atmosphere.

Contract: :func:`parse_message` never raises; every text becomes an iTrack event (unknown and
malformed ones as :class:`UnknownMessage` / :class:`InvalidMessage` carrying the text).  The
client core on an open transport turns every frame into events without raising; a ``logout``
ends the session; what the client sends is strict JSON in UTF-8; the fast decoder
(``trackwire[fast]``) gives the default path's events.  Byte 0 picks the path and the JSON
decoder.
"""

from __future__ import annotations

import json
from typing import Any

from _common import Flags, check_events, check_output, fuzz_main, split, text

from trackwire import (
    LocalProtocolError,
    SessionFinished,
    fast_available,
    get_decoder,
    set_decoder,
)
from trackwire.atmosphere import ClientState
from trackwire.itrack import (
    ITrackClient,
    ITrackEvent,
    StateRequest,
    Subscribe,
    parse_message,
)

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is optional
    orjson = None

HASH = "0123456789abcdef0123456789abcdef"
FAST = fast_available()


def _same_on_both_decoders(message: str) -> None:
    """The fast decoder's event equals the default path's (NaN only by its repr)."""
    before = get_decoder()
    try:
        set_decoder("fast")
        fast = parse_message(message)
        set_decoder("default")
        default = parse_message(message)
    finally:
        set_decoder(before)
    assert repr(fast) == repr(default), (fast, default)
    assert fast == default or "nan" in repr(default), (fast, default)


def _loads(flags: Flags) -> Any:
    if flags[1] and orjson is not None:
        return orjson.loads
    return json.loads


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    loads = _loads(flags)
    chunks = split(data[1:])
    if not flags[0]:
        for chunk in chunks:
            message = text(chunk, flags[2])
            event = parse_message(message, loads)
            assert isinstance(event, ITrackEvent), event
            repr(event)
            if flags[3] and FAST:
                _same_on_both_decoders(message)
        return
    client = ITrackClient("ws://fuzz.test/v2/event/subscription", HASH, loads=loads)
    client.send(Subscribe([StateRequest([1, 2])]))
    now = 0.0
    client.connection_made(now)
    client.receive("a3d2a2b4-0000-4000-8000-000000000000|30000|X|", now)
    finished = False  # a SessionFinished came (a logout, or a forgotten hash and no login)
    for chunk in chunks:
        if client.state is not ClientState.OPEN:
            assert client.logged_out or finished
            assert not client.resumable
            break
        now += 1.0
        client.receive(text(chunk, flags[2]), now)
        events = client.events()
        check_events(events)
        finished = finished or any(isinstance(e, SessionFinished) for e in events)
        check_output(client.data_to_send())
        try:
            client.send(Subscribe([StateRequest([3])]), now)
        except LocalProtocolError:
            assert client.logged_out or finished
    if client.state is ClientState.OPEN:
        client.receive_eof(now)
        check_events(client.events())


if __name__ == "__main__":
    fuzz_main(TestOneInput)
