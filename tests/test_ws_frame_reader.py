"""The client stack's own frame reader against wsproto reading every frame itself.

Both stacks get the same server bytes, cut at the same places; after every read they must
have produced the same events, written the same bytes and raised the same errors.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import AcceptConnection, CloseConnection, Request
from wsproto.handshake import H11Handshake

from trackwire import CoreBase, Event, LocalProtocolError, RemoteProtocolError
from trackwire.atmosphere import ClientState
from trackwire.ws import ClientStack, StackState

NONCE = b"dGhlIHNhbXBsZSBub25jZQ=="
"""A fixed Sec-WebSocket-Key, so that one server response fits both stacks."""


@dataclass
class Got(Event):
    text: str


class Recorder(CoreBase[Event]):
    """Records every text message; ``boom`` is a protocol error, ``bye`` ends the core."""

    def __init__(self) -> None:
        super().__init__()
        self.state = ClientState.OPEN

    def connection_made(self, now: float) -> None:
        pass

    def receive(self, data: str, now: float) -> None:
        if self.state is not ClientState.OPEN:
            raise LocalProtocolError("finished")
        if data == "boom":
            raise RemoteProtocolError("boom", frame=data)
        if data == "bye":
            self.state = ClientState.CLOSED
        self._events.append(Got(data))

    def receive_eof(self, now: float) -> None:
        self._events.append(Got("<eof>"))

    def send(self, item: str, now: float | None = None) -> None:
        self._out.append(item)

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


class WsprotoOnly(ClientStack[Any]):
    """The same stack with wsproto reading every frame (the reader switched off)."""

    _own_reader = False


def frame(first: int, payload: bytes, *, form: str = "short", mask: bool = False) -> bytes:
    """One frame as a server could write it (or get wrong): first byte, length form."""
    n = len(payload)
    bit = 0x80 if mask else 0
    if form == "short" and n < 126:
        head = bytes([first, bit | n])
    elif form in ("short", "16") and n < 65536:
        head = bytes([first, bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", n)
    if mask:
        head += b"\x01\x02\x03\x04"
        payload = bytes(b ^ (1, 2, 3, 4)[i % 4] for i, b in enumerate(payload))
    return head + payload


texts = st.text(max_size=40) | st.sampled_from(["boom", "bye", "é" * 70, "x" * 200])


@st.composite
def server_frames(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            [
                "text",
                "text",
                "text",
                "text16",
                "text64",
                "big",
                "badutf8",
                "fragments",
                "manyfragments",
                "binary",
                "ping",
                "pong",
                "close",
                "masked",
                "rsv",
                "opcode",
                "longping",
                "garbage",
            ]
        )
    )
    text = draw(texts).encode()
    if kind == "text":
        return frame(0x81, text)
    if kind == "text16":
        return frame(0x81, text, form="16")  # not the shortest form when under 126
    if kind == "text64":
        return frame(0x81, text, form="64")
    if kind == "big":
        return frame(0x81, b"y" * 70_000)  # a 64-bit length in its shortest form
    if kind == "badutf8":
        return frame(0x81, text + b"\xc3\x28" + text)
    if kind == "fragments":
        cut = draw(st.integers(0, len(text)))
        return frame(0x01, text[:cut]) + frame(0x80, text[cut:])
    if kind == "manyfragments":
        # Cut anywhere, inside characters too; binary ones when the draw says so.
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
        pieces = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
        opcode = draw(st.sampled_from([0x01, 0x02]))
        firsts = [opcode] + [0x00] * (len(pieces) - 1)
        firsts[-1] |= 0x80
        return b"".join(frame(f, p) for f, p in zip(firsts, pieces, strict=True))
    if kind == "binary":
        return frame(0x82, text)
    if kind == "ping":
        return frame(0x89, text[:125])
    if kind == "pong":
        return frame(0x8A, text[:125])
    if kind == "close":
        return frame(0x88, struct.pack("!H", draw(st.sampled_from([1000, 1001, 4000]))) + text[:20])
    if kind == "masked":
        return frame(0x81, text, mask=True)
    if kind == "rsv":
        return frame(0xC1, text)
    if kind == "opcode":
        return frame(0x83, text)
    if kind == "longping":
        return frame(0x89, b"p" * 126)
    return draw(st.binary(min_size=1, max_size=12))


def _open(stack_type: type[ClientStack[Any]], **options: Any) -> ClientStack[Any]:
    stack = stack_type(Recorder(), "h.test", "/p", **options)
    stack.connection_made(0.0)
    return stack


def _response(request: bytes) -> bytes:
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(request)
    (event,) = list(server.events())
    assert isinstance(event, Request)
    return server.send(AcceptConnection())


def _close(stack: ClientStack[Any]) -> None:
    """The application closes (with the same mask on every stack)."""
    with mock.patch("wsproto.frame_protocol.os.urandom", return_value=b"mask"):
        stack.close(1000)


def _step(stack: ClientStack[Any], data: bytes | None) -> tuple[Any, ...]:
    """Feed a read (``None``: the end of the stream); what came of it.  Masks are made
    the same for both stacks, so that what they write can be compared byte for byte."""
    with mock.patch("wsproto.frame_protocol.os.urandom", return_value=b"mask"):
        try:
            if data is None:
                stack.receive_eof(1.0)
            else:
                stack.receive(data, 1.0)
            error = None
        except Exception as exc:  # compared, not judged
            error = (type(exc), str(exc))
        # Events hold exceptions (which compare by identity): compare their reprs.
        return (error, repr(stack.events()), stack.data_to_send(), stack.state)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(server_frames(), max_size=8),
    st.data(),
    st.sampled_from([100, 1 << 20]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_own_reader_matches_wsproto_read_for_read(
    stream: list[bytes],
    data: st.DataObject,
    limit: int,
    binary: bool,
    close_with_core: bool,
    lf_head: bool,
) -> None:
    # Also: the core refusing input mid-read (``bye`` ends it; without close_with_core the
    # stack lets its LocalProtocolError out), the application closing between reads, and a
    # response head with bare LF line ends (h11 accepts them).
    options = {
        "max_message_size": limit,
        "accept_binary": binary,
        "close_with_core": close_with_core,
    }
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        ours = _open(ClientStack, **options)
        theirs = _open(WsprotoOnly, **options)
    request = ours.data_to_send()
    assert request == theirs.data_to_send()
    head = _response(request)
    if lf_head:
        head = head.replace(b"\r\n", b"\n")
    wire = head + b"".join(stream)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(wire) - 1)), max_size=6))))
    bounds = [0, *(c for c in cuts if c < len(wire)), len(wire)]
    close_before = data.draw(st.integers(0, len(bounds)))
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        if index == close_before and ours.state is StackState.OPEN:
            _close(ours)
            _close(theirs)
        piece = wire[start:end]
        assert _step(ours, piece) == _step(theirs, piece)
        if ours.state is StackState.CLOSED:
            break
    assert _step(ours, None) == _step(theirs, None)


def test_frames_after_the_handshake_in_the_same_read_reach_the_reader() -> None:
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        stack = _open(ClientStack)
    wire = _response(stack.data_to_send()) + frame(0x81, b"one") + frame(0x81, b"tw")[:-1]
    stack.receive(wire, 1.0)
    assert [e for e in stack.events() if isinstance(e, Got)] == [Got("one")]
    assert stack._held == frame(0x81, b"tw")[:-1]  # waits here, not inside wsproto
    stack.receive(b"w", 1.0)
    assert stack.events() == [Got("tw")]
    assert stack._quick


def _wsproto_calls(stack: ClientStack[Any]) -> list[bytes]:
    """Record what the stack gives wsproto from now on (wsproto still reads it)."""
    conn = stack._conn
    assert conn is not None
    calls: list[bytes] = []
    receive = conn.receive_data

    def spy(data: bytes | None) -> None:
        calls.append(b"" if data is None else bytes(data))
        receive(data)

    conn.receive_data = spy  # type: ignore[method-assign]
    return calls


def test_a_binary_frame_read_in_pieces_leaves_the_hot_path_on() -> None:
    """Issue 17: a data frame split across reads sent the stack to wsproto for good."""
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        stack = _open(ClientStack, accept_binary=True)
    stack.receive(_response(stack.data_to_send()), 1.0)
    stack.events()
    calls = _wsproto_calls(stack)
    binary = frame(0x82, b"12345")
    stack.receive(binary[:3], 1.0)
    assert stack._quick
    assert stack._held == b""  # wsproto reads a data frame's payload as it comes
    assert calls == [binary[:3]]
    stack.receive(binary[3:] + frame(0x81, b"after"), 1.0)
    assert [type(e).__name__ for e in stack.events()] == ["BinaryMessage", "Got"]
    assert calls == [binary[:3], binary[3:]]  # "after" took the hot path
    stack.receive(frame(0x81, b"next"), 1.0)
    assert stack.events() == [Got("next")]
    assert len(calls) == 2
    assert stack.state is StackState.OPEN


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 9])
def test_a_fragmented_message_split_across_reads_gives_the_hot_path_back(cut: int) -> None:
    """Once wsproto stands at a frame boundary with no message assembling, whole text
    frames go straight to the core again; a cut inside a head waits in the reader."""
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        stack = _open(ClientStack)
    stack.receive(_response(stack.data_to_send()), 1.0)
    stack.events()
    calls = _wsproto_calls(stack)
    fragments = frame(0x01, b"frag") + frame(0x00, b"men") + frame(0x80, b"ted")
    stack.receive(fragments[:cut], 1.0)
    stack.receive(fragments[cut:], 1.0)
    assert stack.events() == [Got("fragmented")]
    assert stack._quick
    assert stack._fast
    assert b"".join(calls) == fragments
    before = len(calls)
    stack.receive(frame(0x81, b"one") + frame(0x81, b"two"), 1.0)
    assert stack.events() == [Got("one"), Got("two")]
    assert len(calls) == before  # the reader's hot path, wsproto untouched


def _pair(**options: Any) -> tuple[ClientStack[Any], ClientStack[Any]]:
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        ours = _open(ClientStack, **options)
        theirs = _open(WsprotoOnly, **options)
    response = _response(ours.data_to_send())
    theirs.data_to_send()
    assert _step(ours, response) == _step(theirs, response)
    return ours, theirs


def test_bad_utf8_in_a_frame_read_in_pieces_is_worded_as_wsproto_words_it() -> None:
    """Found by ``ws_frame_reader``: the error's position counted from the frame's start,
    where wsproto, decoding read by read, counts from what the last read added."""
    ours, theirs = _pair()
    for piece in (b"\x81\x075", b"\xe9", b"\x043|ok"):
        assert _step(ours, piece) == _step(theirs, piece)
    assert ours.state is StackState.CLOSED


def test_a_close_frame_takes_what_follows_it_in_the_same_read() -> None:
    """Found by ``ws_frame_reader``: after a close frame, the start of a text frame in the
    same read was given to wsproto in a second call, which it refuses once closed."""
    ours, theirs = _pair()
    piece = b"\x88\x00\x815"
    assert _step(ours, piece) == _step(theirs, piece)
    assert ours.state is StackState.CLOSED


def test_a_frame_over_the_message_limit_is_not_held() -> None:
    ours, _ = _pair(max_message_size=100)
    big = frame(0x81, b"z" * 1000)
    ours.receive(big[:54], 1.0)
    assert ours._held == b""  # nothing buffered here: wsproto reads it as it comes
    assert not ours._quick
    ours.receive(big[54:120], 1.0)  # 116 bytes of it: over the limit, the close starts
    assert ours.state is StackState.CLOSING
    peer = Connection(ConnectionType.SERVER)
    peer.receive_data(ours.data_to_send())
    (close,) = peer.events()
    assert isinstance(close, CloseConnection)
    assert close.code == 1009


def test_frames_after_a_core_refusal_are_read_once() -> None:
    """Seen in review: when the core raised mid-read, frames wsproto had already taken were
    held and given to it again on the next read (a second pong, the refusal again)."""
    ours, theirs = _pair(close_with_core=False)
    for piece in (b"\x89\x01p\x81\x03bye\x81\x01x", b"\x8a\x01q"):
        assert _step(ours, piece) == _step(theirs, piece)
    assert not ours._held


def test_a_head_with_bare_lf_line_ends_still_gives_the_frames_to_the_reader() -> None:
    """Seen in review: the head's end was looked for as CRLF CRLF only, while h11 also ends
    it at LF LF; the frames after it went into wsproto and came out late."""
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        ours = _open(ClientStack)
        theirs = _open(WsprotoOnly)
    head = _response(ours.data_to_send()).replace(b"\r\n", b"\n")
    theirs.data_to_send()
    for piece in (head + b"\x81\x03one", b"\x81\x03two", b"\x89\x01p"):
        assert _step(ours, piece) == _step(theirs, piece)
    assert ours._quick


def test_a_held_text_frame_completed_while_closing_is_worded_as_wsproto_words_it() -> None:
    """Seen in review: a text frame held with checked bytes, then completed after close(),
    was given to wsproto in one piece (an error's position counted differently)."""
    ours, theirs = _pair()
    assert _step(ours, b"\x81\x0aabcd") == _step(theirs, b"\x81\x0aabcd")
    _close(ours)
    _close(theirs)
    assert _step(ours, b"\xffxxxxx") == _step(theirs, b"\xffxxxxx")
