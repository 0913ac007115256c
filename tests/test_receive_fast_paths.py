"""The receive path's shortcuts: taken when they apply, and never changing what is read."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import trackwire
from trackwire import RemoteProtocolError, _decoder
from trackwire._json import stdlib_loads
from trackwire.atmosphere import (
    AtmosphereClient,
    Heartbeat,
    Message,
    encode_message,
    js_trim,
)
from trackwire.atmosphere._framing import TrackMessageSizeDecoder
from trackwire.fleetfreedom import (
    FleetFreedomClient,
    InvalidMessage,
    Merged,
    ObjectCache,
)

MESSAGE = '{"type":"event","event":"state","data":{"source_id":1}}'


class _CountingDecoder(TrackMessageSizeDecoder):
    __slots__ = ("calls",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def feed(self, frame: str) -> list[str]:
        self.calls += 1
        return super().feed(frame)


def _client(max_size: int = 1 << 20, decoder: TrackMessageSizeDecoder | None = None) -> Any:
    client = AtmosphereClient(
        "http://h/p", track_message_length=True, inactivity_timeout=0, max_message_size=max_size
    )
    if decoder is not None:
        client._decoder = decoder
    client.connection_made(0.0)
    client.receive(encode_message("u|30000|X|"), 0.0)
    client.events()
    return client


# -- Atmosphere: TrackMessageSize -------------------------------------------------------------


def test_a_whole_message_teaches_the_decoder_its_prefix() -> None:
    decoder = _CountingDecoder()
    client = _client(decoder=decoder)
    client.receive(encode_message(MESSAGE), 1.0)
    assert decoder._prefixes == {f"{len(MESSAGE)}|": len(MESSAGE)}
    client.receive(encode_message(MESSAGE), 1.0)  # now read from the memory
    assert client.events() == [Message(MESSAGE)] * 2
    assert decoder.calls == 0


def test_a_message_over_three_frames_calls_no_decoder_once_its_prefix_is_known() -> None:
    decoder = _CountingDecoder()
    client = _client(decoder=decoder)
    framed = encode_message(MESSAGE)
    client.receive(framed, 1.0)
    third = len(framed) // 3
    for _ in range(3):
        client.receive(framed[:third], 1.0)
        assert decoder.pending
        client.receive(framed[third : 2 * third], 1.0)
        client.receive(framed[2 * third :], 1.0)
        assert not decoder.pending
    assert client.events() == [Message(MESSAGE)] * 4
    assert decoder.calls == 0


def test_frames_the_shortcuts_do_not_take_go_to_the_decoder() -> None:
    decoder = _CountingDecoder()
    client = _client(max_size=len(MESSAGE) + 10, decoder=decoder)
    framed = encode_message(MESSAGE)
    client.receive(framed, 1.0)  # learnt
    client.receive(framed * 2, 1.0)  # two messages
    client.receive(framed[:10], 1.0)
    client.receive(framed[10:] + framed[:5], 1.0)  # completes one, starts the next
    client.receive(framed[5:-1], 1.0)
    client.receive(framed[-1] + "é", 1.0)  # more than the message: the decoder reads on
    assert decoder.calls == 3
    assert client.events() == [Message(MESSAGE)] * 5
    assert decoder.partial == "é"


def test_the_pieces_kept_by_the_shortcut_count_towards_the_limit() -> None:
    client = _client(max_size=10)
    client.receive("10|abcdefghij", 1.0)  # whole: its prefix learnt
    client.receive("10|abc", 1.0)  # the start of the next, from the memory
    client.receive("def", 1.0)
    assert client._decoder.partial == "10|abcdef"
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        client.receive("gh", 1.0)  # 11 characters held: over 10
    assert client.events() == [Message("abcdefghij")]


def test_the_client_delimiter_is_the_decoders() -> None:
    client = _client()
    client.delimiter = "#"
    assert client._decoder.delimiter == "#"
    client.receive("3#abc", 1.0)
    assert client.events() == [Message("abc")]
    with pytest.raises(ValueError, match="empty"):
        client.delimiter = ""


def _expected(frames: list[str], max_size: int) -> tuple[list[object], bool]:
    """What atmosphere.js delivers, read by a decoder alone (no shortcut): the events, and
    whether the stream was refused as corrupt."""
    decoder = TrackMessageSizeDecoder(max_size=max_size)
    out: list[object] = []
    for frame in frames:
        try:
            messages = decoder.feed(frame)
        except RemoteProtocolError:
            return out, True
        for message in messages:
            # atmosphere.js trims each message, then compares it with the padding.
            trimmed = js_trim(message)
            if trimmed == "X":
                out.append(Heartbeat())
            elif trimmed:
                out.append(Message(trimmed))
    return out, False


_piece = st.text(alphabet=st.sampled_from("0123456789|ab X\n\u00e9\u20ac\U0001f600"), max_size=12)
_framed = st.text(alphabet=st.sampled_from("ab|X \u00e9\U0001f600"), max_size=30).map(
    encode_message
)


@settings(max_examples=400)
@example(["2|X "], [], 16)  # a padding with blanks around it is still a heartbeat
@given(
    st.lists(st.one_of(_framed, _framed, _piece), max_size=10),
    st.lists(st.integers(1, 400), max_size=12),
    st.sampled_from([16, 40, 1 << 20]),
)
def test_the_client_reads_any_frames_as_a_decoder_alone(
    chunks: list[str], cuts: list[int], max_size: int
) -> None:
    # The same prefixes again and again (learnt by the client, read from the memory), cut
    # anywhere between characters, under limits that some messages pass.
    stream = "".join(chunks) * 2
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    frames = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    expected, refused = _expected(frames, max_size)
    client = _client(max_size=max_size)
    got: list[object] = []
    try:
        for frame in frames:
            client.receive(frame, 1.0)
            got += client.events()
    except RemoteProtocolError:
        assert refused
        assert got == expected
        return
    assert not refused
    assert got == expected


# -- FleetFreedom: the body decoder and the cache ---------------------------------------------


def test_the_fast_body_decoder_is_msgspec_itself_and_a_hook_takes_precedence() -> None:
    from trackwire.fleetfreedom._fast import decode

    trackwire.set_decoder("fast")
    try:
        assert _decoder.body_loads is decode  # no wrapper per message
        assert _decoder.body_retry is stdlib_loads
        trackwire.set_json_loads(json.loads)
        assert _decoder.body_loads is json.loads
        assert _decoder.body_retry is None
        trackwire.set_json_loads(None)
        assert _decoder.body_loads is decode
    finally:
        trackwire.set_json_loads(None)
        trackwire.set_decoder("default")
    assert _decoder.body_loads is stdlib_loads
    assert _decoder.body_retry is None


def _fleet_client() -> FleetFreedomClient:
    client = FleetFreedomClient("ws://127.0.0.1/", keepalive=0, command_timeout=0)
    client.connection_made(0.0)
    client.receive('connectionResponse {"errorCode":0,"ghostId":"g"}', 0.0)
    client.events()
    return client


def test_a_body_msgspec_refuses_is_read_again_and_a_hook_refusal_stands() -> None:
    trackwire.set_decoder("fast")
    try:
        client = _fleet_client()
        client.receive('assetAdvancedMerged {"id":1,"x":NaN,"v":[1]}', 1.0)
        (event,) = client.events()
        assert type(event) is Merged
        assert event.body["x"] != event.body["x"]  # NaN, as json.loads reads it

        def refuse(text: str) -> Any:
            raise ValueError("refused")

        trackwire.set_json_loads(refuse)
        client.receive('assetAdvancedMerged {"id":1,"v":[1]}', 1.0)
        (bad,) = client.events()
        assert type(bad) is InvalidMessage
        client.receive("assetAdvancedMerged null", 1.0)
    finally:
        trackwire.set_json_loads(None)
        trackwire.set_decoder("default")


def test_a_merged_name_not_ending_in_merged_reads_as_before() -> None:
    # apply() reads <piece>Merged from a table; any other name is cut as it always was.
    cache = ObjectCache()
    assert cache.apply(Merged("assetAdvancedXXXXXX", {"id": 1, "v": [3], "odometer": 1}))
    assert cache.apply(Merged("assetAdvancedMerged", {"id": 1, "v": [4], "odometer": 2}))
    assert not cache.apply(Merged("assetAdvancedMerged", {"id": 1, "v": [4], "odometer": 3}))
    assert cache.get("asset", 1) == {"id": 1, "odometer": 2, "v": [0, 4, 0]}
    assert [c.seq for c in cache.changes_since(0)] == [1, 2]
    assert cache._entries["asset", 1].pieces[1] == {"id": 1, "v": [4], "odometer": 2}
