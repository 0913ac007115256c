"""Laws of the Atmosphere cores, checked by hypothesis."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import RemoteProtocolError
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    ClientState,
    Heartbeat,
    Message,
    js_trim,
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
framed_message = tricky_text.filter(lambda m: bool(m) and not (m[0] == " " and not m.strip()))


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
