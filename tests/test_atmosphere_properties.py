"""Laws of the Atmosphere cores, checked by hypothesis."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import RemoteProtocolError
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    ClientState,
    Heartbeat,
    Message,
    encode_message,
    js_trim,
)
from trackwire.atmosphere._framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    TrackMessageSizeDecoder,
    _length_of,
)

TARGET = (
    "/p?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=2.3.6-javascript"
    "&X-Atmosphere-Transport=websocket&X-atmo-protocol=true&X-Atmosphere-TrackMessageSize=true"
)

# Text rich in what breaks naive parsers: the delimiter, digits, astral characters, spaces.
tricky_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("|0123456789X \n"),
        st.characters(min_codepoint=0x10000, max_codepoint=0x1FFFF),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=40,
)
# Blank writes (empty, or a space and whitespace) leave the server unprefixed, as the Java
# server does; in one shared stream they cannot be told apart, so they go in frames of their own.
# "Blank" as Java's String.trim() sees it: every character up to U+0020 is trimmed.
_JAVA_BLANK = "".join(map(chr, range(0x21)))
framed_message = tricky_text.filter(
    lambda m: bool(m) and not (m[0] == " " and not m.strip(_JAVA_BLANK))
)


def _units(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def _text(units: list[int]) -> str:
    raw = b"".join(u.to_bytes(2, "little") for u in units)
    return raw.decode("utf-16-le", "surrogatepass")


def _open_pair() -> tuple[AtmosphereServer, AtmosphereClient]:
    server = AtmosphereServer(TARGET, heartbeat_interval_ms=30000)
    client = AtmosphereClient("http://h/p", track_message_length=True, inactivity_timeout=0)
    server.connection_made(0.0)
    client.connection_made(0.0)
    for frame in server.data_to_send():
        client.receive(frame, 0.0)
    client.events()
    return server, client


def _delivered(messages: list[str]) -> list[object]:
    out: list[object] = []
    for message in messages:
        trimmed = js_trim(message)
        if trimmed == "X":
            out.append(Heartbeat())
        elif trimmed:
            out.append(Message(trimmed))
    return out


@settings(max_examples=300)
@given(st.lists(framed_message, max_size=12), st.data())
def test_server_output_split_anywhere_is_delivered_whole_and_in_order(
    messages: list[str], data: st.DataObject
) -> None:
    server, client = _open_pair()
    for message in messages:
        server.send(message)
    stream = _units("".join(server.data_to_send()))
    # Split points anywhere in UTF-16 units (inside surrogate pairs too), except inside a
    # length prefix: the real client delivers a frame holding only part of a prefix as raw
    # text (see test_prefix_split_is_delivered_raw).
    forbidden: set[int] = set()
    pos = 0
    for message in messages:
        prefix = len(str(len(_units(message)))) + 1
        forbidden.update(range(pos + 1, pos + prefix))
        pos += prefix + len(_units(message))
    allowed = [i for i in range(1, len(stream)) if i not in forbidden]
    cuts = sorted(set(data.draw(st.lists(st.sampled_from(allowed), max_size=8)))) if allowed else []
    bounds = [0, *cuts, len(stream)]
    for start, end in itertools.pairwise(bounds):
        client.receive(_text(stream[start:end]), 1.0)
    assert client.events() == _delivered(messages)
    assert client.state is ClientState.OPEN


def test_prefix_split_is_delivered_raw() -> None:
    _, client = _open_pair()
    client.receive("1", 1.0)
    client.receive("2|abcdefghijkl", 1.0)
    # "1" alone has no delimiter: raw.  Then "2|…" is read as a two-unit message.
    assert client.events() == [Message("1"), Message("ab")]


def _js_track_message_size(
    partial: list[int], frame: list[int]
) -> tuple[list[list[int]], list[int]]:
    """atmosphere.js's carry-over step, on UTF-16 units as JavaScript strings hold them:
    the messages a frame completes and the new carry-over (corruption raises)."""
    bar = ord("|")
    text = partial + frame
    if bar not in text:
        return [text], partial  # delivered raw; the carry-over stays
    messages: list[list[int]] = []
    start = text.index(bar)
    while start != -1:
        length = _length_of(_text(text[:start]))
        if length > DEFAULT_MAX_MESSAGE_SIZE:  # the decoder's limit (atmosphere.js has none)
            raise RemoteProtocolError(f"message length {length} exceeds the limit")
        start += 1
        if start + length > len(text):
            break
        messages.append(text[start : start + length])
        text = text[start + length :]
        start = text.index(bar) if bar in text else -1
    return messages, text


stream_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("|0123456789|| x"),
        st.characters(min_codepoint=0x10000, max_codepoint=0x1FFFF),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=60,
)


# Mostly well-formed messages with their lengths, now and then stray text.
stream_chunk = st.one_of(
    tricky_text.map(encode_message), tricky_text.map(encode_message), stream_text
)


def _feed_as_atmosphere_js(
    stream: list[int], bounds: list[int], *, partial_every_frame: bool
) -> None:
    """Feed ``stream`` cut at ``bounds`` to the decoder and to atmosphere.js's algorithm:
    the same messages frame by frame, the same carry-over (after every frame, or at the
    end only, so that reading it does not join the decoder's pieces), or both refuse."""
    decoder = TrackMessageSizeDecoder()
    partial: list[int] = []
    for start, end in itertools.pairwise(bounds):
        frame = stream[start:end]
        try:
            expected, partial = _js_track_message_size(partial, frame)
        except RemoteProtocolError:
            with pytest.raises(RemoteProtocolError):
                decoder.feed(_text(frame))
            return
        got = decoder.feed(_text(frame))
        assert [_units(m) for m in got] == expected
        if partial_every_frame:
            assert _units(decoder.partial) == partial
        assert decoder.pending == bool(partial)
    assert _units(decoder.partial) == partial


@settings(max_examples=500)
@given(st.lists(stream_chunk, max_size=8), st.data())
def test_decoder_reads_any_frames_as_atmosphere_js_does(
    chunks: list[str], data: st.DataObject
) -> None:
    # Frames cut anywhere in UTF-16 units, lone surrogates included; the decoder keeps its
    # carry-over as pieces, the model re-joins it for every frame as the real client does.
    stream = _units("".join(chunks))
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=10))))
    bounds = [0, *(c for c in cuts if c < len(stream)), len(stream)]
    _feed_as_atmosphere_js(stream, bounds, partial_every_frame=True)


@settings(max_examples=200)
@given(st.lists(stream_chunk, min_size=1, max_size=6), st.data())
def test_decoder_reads_frames_of_a_few_units_as_atmosphere_js_does(
    chunks: list[str], data: st.DataObject
) -> None:
    # Frames of 1 to 3 units: far more frames than pieces the decoder keeps before it
    # compacts its carry-over (trackwire._pieces), split inside surrogate pairs too.
    long = data.draw(tricky_text.filter(bool).map(lambda t: t * 8))
    stream = _units("".join(chunks) + encode_message(long) + "".join(chunks))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=len(stream), max_size=len(stream)))
    bounds = list(itertools.accumulate(sizes, initial=0))
    bounds = [b for b in bounds if b < len(stream)] + [len(stream)]
    _feed_as_atmosphere_js(stream, bounds, partial_every_frame=False)


def test_a_message_in_one_character_frames_is_joined_once_whole() -> None:
    body = "x" * 5000
    decoder = TrackMessageSizeDecoder()
    out = decoder.feed("5000|")  # (a split inside the prefix would be delivered raw)
    for ch in body[:-1]:
        out += decoder.feed(ch)
    assert out == []
    assert decoder.partial == f"5000|{body[:-1]}"
    out += decoder.feed("x7|trailer4|end")
    assert out == [body, "trailer"]
    assert decoder.partial == "4|end"
    assert decoder.feed("!") == ["end!"]
    assert not decoder.pending


def test_the_frame_that_completes_a_message_reads_on_as_the_same_text() -> None:
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("5|ab") == []
    # The rest of this frame has no delimiter: it is carry-over, not a raw message.
    assert decoder.feed("cdeXYZ") == ["abcde"]
    assert decoder.partial == "XYZ"
    assert decoder.feed("Q") == ["XYZQ"]  # now no delimiter anywhere: raw, carry-over kept
    assert decoder.partial == "XYZ"
    with pytest.raises(RemoteProtocolError, match="not a number"):
        decoder.feed("|")  # "XYZ|": the carry-over's length is not a number


def test_pieces_count_towards_the_size_limit() -> None:
    decoder = TrackMessageSizeDecoder(max_size=10)
    assert decoder.feed("10|abc") == []
    assert decoder.feed("def") == []
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        decoder.feed("gh")  # 11 characters pending, over the limit of 10
    assert not decoder.pending


@settings(max_examples=300)
@given(
    st.booleans(),
    st.booleans(),
    st.lists(st.one_of(tricky_text, st.sampled_from(["45|u|1|X|", "u|1|X|", "3|abc", "X"]))),
)
def test_any_frames_give_events_or_remote_protocol_error(
    track: bool, reconnect: bool, frames: list[str]
) -> None:
    client = AtmosphereClient("http://h/p", track_message_length=track, max_message_size=64)
    client.connection_made(0.0)
    if reconnect:
        client.receive("45|u|1000|X|" if track else "u|1000|X|", 0.0)
        client.receive_eof(0.0)
        client.reconnect()
        client.connection_made(0.0)
    now = 0.0
    for frame in frames:
        now += 0.5
        try:
            client.receive(frame, now)
        except RemoteProtocolError:
            assert client.state is ClientState.ERROR
            return
        client.handle_timer(now)
        client.events()
        client.data_to_send()


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=480), st.data())
def test_client_sends_floor_elapsed_over_interval_heartbeats(
    eighths: int, data: st.DataObject
) -> None:
    # Intervals of k/8 s and steps of n/64 s keep every clock value exact in binary floats.
    interval = eighths / 8
    steps = data.draw(st.lists(st.integers(0, 8 * eighths), min_size=1, max_size=200))
    client = AtmosphereClient("http://h/p", inactivity_timeout=0)
    client.connection_made(100.0)
    client.receive(f"u|{eighths * 125}|X|", 100.0)
    now = 100.0
    sent = 0
    for step in steps:
        now += step / 64  # the caller may wake at any time, at least once per interval
        client.handle_timer(now)
        sent += client.data_to_send().count("X")
    assert sent == int((now - 100.0) // interval)
