"""Receive paths whose cost is bounded by what arrives, however the peer cuts it.

TrackMessageSize reads each frame once whatever its text; lengths are read with a bounded
number of ASCII digits; WebSocket fragments are held in few pieces; the plain HTTP side
refuses a request framed twice.  Costs are checked by counting work and structures, never
by timing.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.handshake import H11Handshake

from trackwire import RemoteProtocolError
from trackwire._pieces import WIDTH, compact
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    ClientState,
    Heartbeat,
    Message,
    TrackMessageSizeDecoder,
    _framing,
    encode_message,
    utf16_len,
)
from trackwire.ws import (
    ClientStack,
    HandshakeFailed,
    HttpRequestHandled,
    ServerStack,
    StackState,
    UpgradeRequest,
)


def _bound(pieces: int) -> int:
    """Pieces a collector may hold after ``pieces`` appends (see trackwire._pieces)."""
    return WIDTH + int(math.log2(max(pieces, 1))) + 2


# -- the piece collector ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [str, bytes])
def test_compact_holds_a_logarithmic_number_of_pieces(kind: type) -> None:
    one = "€" if kind is str else b"\xe2"
    pieces: list[Any] = []
    at = WIDTH
    most = 0
    for count in range(1, 50_001):
        pieces.append(one)
        if len(pieces) >= at:
            at = compact(pieces, at - WIDTH) + WIDTH
        most = max(most, len(pieces))
        assert len(pieces) <= _bound(count)
    assert most <= _bound(50_000)
    assert one[:0].join(pieces) == one * 50_000


def test_compact_leaves_a_few_large_pieces_alone() -> None:
    pieces = ["a" * 1000, "b" * 1000, "c" * 1000]
    assert len(pieces) < WIDTH  # a collector never calls compact for these: joined once
    assert compact(pieces, 0) == 1
    assert pieces == ["a" * 1000 + "b" * 1000 + "c" * 1000]


@given(st.lists(st.text(max_size=5), min_size=1, max_size=300), st.integers(2, 40))
def test_compact_keeps_the_text_in_order(texts: list[str], width: int) -> None:
    pieces: list[str] = []
    settled = 0
    for text in texts:
        if text:
            pieces.append(text)
        if len(pieces) - settled >= width:
            settled = compact(pieces, settled)
            sizes = [len(p) for p in pieces]
            assert all(a > 2 * b for a, b in itertools.pairwise(sizes))
    assert "".join(pieces) == "".join(texts)


# -- TrackMessageSize: one read per frame, whatever the text ----------------------------------


class CountingDecoder(TrackMessageSizeDecoder):
    """Counts the frames read from their start (the only step that costs more than the
    frame itself: it re-reads a carry-over joined to the frame)."""

    __slots__ = ("scans",)

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def _scan(self, data: str, start: int, pos: int, messages: list[str]) -> None:
        self.scans += 1
        super()._scan(data, start, pos, messages)


@pytest.mark.parametrize(
    ("first", "rest"),
    [("é", "a"), ("é", "é"), ("\U0001f600", "x"), ("x", "\U0001f600"), ("€", "\U0001f600")],
)
def test_a_message_in_one_character_frames_costs_each_frame_its_own_length(
    first: str, rest: str
) -> None:
    """Issue 13: once the partial message held non-ASCII text, every frame re-joined and
    re-read the whole carry-over (36.7 s for 128 k one-character frames)."""
    frames = 20_000
    message = first + rest * (frames - 1)
    decoder = CountingDecoder()
    assert decoder.feed(f"{utf16_len(message)}|{first}") == []
    most = 0
    for _ in range(frames - 2):
        assert decoder.feed(rest) == []
        most = max(most, len(decoder._pieces))
    assert decoder.feed(rest + "3|end") == [message, "end"]
    assert decoder.scans <= 2  # at most the first frame, and the rest of the last one
    assert most <= _bound(frames)
    assert not decoder.pending


def test_a_surrogate_pair_cut_between_frames_is_one_character_again() -> None:
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("4|\ud83d") == []  # the high half ends the frame
    assert decoder.feed("\ude00") == []
    assert decoder.partial == "4|\U0001f600"
    assert decoder.feed("ab") == ["\U0001f600ab"]


def test_a_length_ending_inside_an_astral_character_cuts_it_as_javascript_does() -> None:
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("3|ab") == []
    # One unit is missing: the high half completes the message, the low half starts the rest.
    assert decoder.feed("\U0001f600") == ["ab\ud83d"]
    assert decoder.partial == "\ude00"


def test_a_non_ascii_message_is_not_scanned_for_astral_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: one ``é`` sent the whole message through a regex search and a walk; the
    string's storage width now tells that it has no astral character."""
    if _framing._SIZEOF_BASE is None:  # pragma: no cover - not CPython's string layout
        pytest.skip("this interpreter does not lay strings out as CPython does")

    def scanned(*args: object) -> int:
        raise AssertionError("the text was scanned")

    monkeypatch.setattr(_framing, "_advance", scanned)
    monkeypatch.setattr(_framing, "_units", scanned)
    body = '{"name":"Ténéré","state":"ok"}' * 10
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed(encode_message(body) * 3) == [body] * 3
    frame = encode_message(body)
    assert decoder.feed(frame[:50]) == []
    assert decoder.feed(frame[50:200]) == []
    assert decoder.feed(frame[200:]) == [body]
    assert utf16_len(body) == len(body)


def test_the_client_takes_a_whole_non_ascii_message_without_its_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17: a whole message with an ``é`` costs what an ASCII one costs: the client
    delivers it itself, as it does ASCII text; astral text still goes to the decoder."""
    if _framing._SIZEOF_BASE is None:  # pragma: no cover - not CPython's string layout
        pytest.skip("this interpreter does not lay strings out as CPython does")
    client = AtmosphereClient("http://127.0.0.1/x", track_message_length=True)
    client.connection_made(0.0)
    client.receive(encode_message("abc|1000|X|"), 0.0)
    client.events()
    fed: list[str] = []
    real = TrackMessageSizeDecoder.feed

    def feed(self: TrackMessageSizeDecoder, data: str) -> list[str]:
        fed.append(data)
        return real(self, data)

    monkeypatch.setattr(TrackMessageSizeDecoder, "feed", feed)
    body = '{"name":"Ténéré €"}'
    client.receive(encode_message(body), 1.0)
    assert [event.data for event in client.events()] == [body]  # type: ignore[attr-defined]
    assert fed == []
    astral = '{"sat":"🛰"}'
    client.receive(encode_message(astral), 2.0)
    assert [event.data for event in client.events()] == [astral]  # type: ignore[attr-defined]
    assert fed == [encode_message(astral)]


def test_astral_text_is_counted_in_units() -> None:
    body = "a\U0001f600b" * 3
    assert utf16_len(body) == 12
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed(encode_message(body) + "5|a") == [body]
    assert decoder.feed("\U0001f600") == []  # two units: two still missing
    assert decoder._need == 2
    assert decoder.feed("bc") == ["a\U0001f600bc"]


# -- TrackMessageSize lengths ------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        "1" * 4301,
        "9" * 20,
        "0x" + "f" * 5000,
        "1" * 5000 + ".5",
        "0b" + "1" * 200,
    ],
)
def test_a_length_of_many_digits_is_over_the_limit(head: str) -> None:
    """Issue 13: a 4,301-digit length raised int()'s ValueError, not a protocol error."""
    decoder = TrackMessageSizeDecoder()
    with pytest.raises(RemoteProtocolError, match=r"exceeds the limit|out of range"):
        decoder.feed(head + "|x")
    assert not decoder.pending


def test_leading_zeros_count_for_nothing_however_many() -> None:
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("0" * 5000 + "3|abc") == ["abc"]
    assert decoder.feed("00000000000000000000|") == [""]


@pytest.mark.parametrize("head", ["\u0663", "\u00b2", "1\u0663", "\uff11", "\u0663.5", "0x\u0663"])
def test_only_ascii_digits_make_a_length(head: str) -> None:
    """JavaScript reads no other digits: Arabic-Indic, superscript, full-width are NaN."""
    with pytest.raises(RemoteProtocolError, match="not a number"):
        TrackMessageSizeDecoder().feed(head + "|abc")


def test_lengths_up_to_the_limit_are_read_with_the_limit_checked() -> None:
    decoder = TrackMessageSizeDecoder(max_size=12_345)
    assert decoder.feed("12345|") == []  # five digits: read, then checked, as fewer are
    decoder.reset()
    with pytest.raises(RemoteProtocolError, match="length 12346 exceeds the limit of 12345"):
        decoder.feed("12346|")
    decoder.max_size = 99
    assert decoder.feed("99|" + "z" * 99) == ["z" * 99]
    with pytest.raises(RemoteProtocolError, match="length 100 exceeds the limit of 99"):
        decoder.feed("100|" + "z" * 100)


def test_a_negative_limit_admits_no_length_and_the_delimiter_is_not_empty() -> None:
    decoder = TrackMessageSizeDecoder(max_size=-1)
    with pytest.raises(RemoteProtocolError, match="length 1 exceeds the limit of -1"):
        decoder.feed("1|a")
    with pytest.raises(ValueError, match="delimiter"):
        TrackMessageSizeDecoder("")


def test_a_client_given_a_huge_length_fails_with_a_protocol_error() -> None:
    client = AtmosphereClient("ws://h/p", track_message_length=True)
    client.connection_made(0.0)
    client.receive("45|b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|", 0.0)
    client.events()
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        client.receive("1" * 4301 + "|{}", 1.0)
    assert client.state is ClientState.ERROR


# -- WebSocket fragments -----------------------------------------------------------------------


def _server_stack(**options: Any) -> tuple[ServerStack[AtmosphereServer], Connection]:
    def factory(request: UpgradeRequest) -> AtmosphereServer:
        return AtmosphereServer(request.target)

    stack: ServerStack[AtmosphereServer] = ServerStack(factory, **options)
    stack.connection_made(0.0)
    client = H11Handshake(ConnectionType.CLIENT)
    stack.receive(client.send(Request(host="t", target="/p")), 0.0)
    client.receive_data(stack.data_to_send())
    assert isinstance(next(iter(client.events())), AcceptConnection)
    assert stack.state is StackState.OPEN
    stack.events()
    return stack, Connection(ConnectionType.CLIENT)


def test_a_message_in_a_million_fragments_is_held_in_few_pieces() -> None:
    """Issue 13: one-character continuation frames cost ~88 bytes each on the server (one
    string per piece): 88 MiB per connection for a 1 MiB message."""
    stack, peer = _server_stack()
    count = 20_000
    stack.receive(peer.send(TextMessage("€", message_finished=False)), 1.0)
    for _ in range(count - 2):
        stack.receive(peer.send(TextMessage("€", message_finished=False)), 1.0)
    assert len(stack._parts) <= _bound(count)
    assert stack._parts_len == count - 1
    stack.receive(peer.send(TextMessage("€")), 1.0)
    assert stack._parts == []
    assert stack.events() == [Message("€" * count)]


def _client_stack(core: Any) -> ClientStack[Any]:
    stack: ClientStack[Any] = ClientStack(core, "t", "/p")
    stack.connection_made(0.0)
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(stack.data_to_send())
    assert isinstance(next(iter(server.events())), Request)
    stack.receive(server.send(AcceptConnection()), 0.0)
    assert stack.state is StackState.OPEN
    return stack


def _frame(first: int, payload: bytes) -> bytes:
    """An unmasked server frame (120 characters may take up to 480 bytes)."""
    if len(payload) < 126:
        return bytes([first, len(payload)]) + payload
    return bytes([first, 126]) + len(payload).to_bytes(2, "big") + payload


def test_fragments_cut_inside_characters_keep_no_empty_pieces() -> None:
    core = AtmosphereClient("ws://t/p", enable_protocol=False, inactivity_timeout=0)
    stack = _client_stack(core)
    stack.events()
    euro = "€".encode()
    count = 3 * 5_000
    stack.receive(_frame(0x01, euro[:1]), 1.0)
    for index in range(1, count):
        stack.receive(_frame(0x00, euro[index % 3 : index % 3 + 1]), 1.0)
        assert "" not in stack._parts
    assert len(stack._parts) <= _bound(count)
    stack.receive(_frame(0x80, b"!"), 1.0)
    assert stack.events() == [Message("€" * 5_000 + "!")]
    assert stack._quick  # the reader stayed in front of wsproto throughout


@settings(max_examples=150)
@given(st.text(min_size=1, max_size=120), st.data())
def test_a_message_cut_into_any_fragments_arrives_whole(text: str, data: st.DataObject) -> None:
    payload = text.encode()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(payload)), max_size=80))))
    bounds = [0, *cuts, len(payload)]
    pieces = [payload[a:b] for a, b in itertools.pairwise(bounds)]
    wire = b"".join(
        _frame((0x80 if last else 0) | (0x01 if first else 0x00), piece)
        for first, last, piece in ((i == 0, i == len(pieces) - 1, p) for i, p in enumerate(pieces))
    )
    core = AtmosphereClient("ws://t/p", enable_protocol=False, inactivity_timeout=0)
    stack = _client_stack(core)
    stack.events()
    reads = sorted(set(data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=10))))
    for a, b in zip([0, *reads], [*reads, len(wire)], strict=False):
        stack.receive(wire[a:b], 1.0)
        assert len(stack._parts) <= _bound(len(pieces))
    expected = text.strip(_framing.JS_WHITESPACE)
    if expected == core.padding:  # a message equal to the padding is the server's heartbeat
        assert stack.events() == [Heartbeat()]
    else:
        assert stack.events() == ([Message(expected)] if expected else [])
    assert stack._quick


# -- plain HTTP: a request framed twice --------------------------------------------------------


def test_a_request_with_both_lengths_is_refused_and_the_connection_closed() -> None:
    """Issue 13: Content-Length with Transfer-Encoding was read as chunked on a connection
    kept open, and a second (smuggled) request on it was answered."""
    plain: ServerStack[Any] = ServerStack(lambda request: AtmosphereServer(request.target))
    plain.connection_made(0.0)
    plain.receive(
        b"POST /v2/user/auth HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        1.0,
    )
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("Host", "t")]))
    client.receive_data(plain.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 400
    assert (b"connection", b"close") in list(response.headers)
    assert plain.state is StackState.CLOSED
    events = plain.events()
    assert [type(e) for e in events] == [HandshakeFailed]
    assert not any(isinstance(e, HttpRequestHandled) for e in events)
    assert "Content-Length and Transfer-Encoding" in str(events[0])
