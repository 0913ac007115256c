"""TrackMessageSize decoder (``<length>|<message>``), with a round-trip law.

Contract: :meth:`TrackMessageSizeDecoder.feed` returns messages or raises
:class:`RemoteProtocolError`; the partial buffer never holds more than ``max_size`` and is
empty after an error.  With bit 0 of byte 0 set, the rest of the input is read as messages
that are encoded, cut anywhere and fed back: the decoder must return them unchanged.
"""

from __future__ import annotations

from _common import Flags, fuzz_main, split, text

from trackwire import RemoteProtocolError
from trackwire.atmosphere import TrackMessageSizeDecoder, encode_message, utf16_len

_LIMIT = 256


def _normal(message: str) -> str:
    """Adjacent surrogates as the one character they spell (as UTF-16 text sees them)."""
    return message.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _round_trip(messages: list[str], cuts: bytes) -> None:
    decoder = TrackMessageSizeDecoder()
    stream = "".join(encode_message(m) for m in messages)
    got: list[str] = []
    start = 0
    for cut in cuts:
        end = min(len(stream), start + cut)
        if end == start:
            continue
        piece = stream[start:end]
        if "|" not in decoder.partial + piece:
            # A frame without any delimiter is delivered raw (as atmosphere.js does): the
            # law holds for cuts that keep a delimiter in every frame, so join this one on.
            continue
        got.extend(decoder.feed(piece))
        start = end
    if start < len(stream):
        got.extend(decoder.feed(stream[start:]))
    # Empty messages make the prefix alone ("0|"), which the decoder also returns.
    assert got == messages, (got, messages)
    assert decoder.partial == ""


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    chunks = split(data[1:])
    if flags[0]:
        messages = [_normal(text(c, flags[1]).replace("|", "")) for c in chunks[:-1]]
        if messages:
            _round_trip(messages, chunks[-1])
        return
    decoder = TrackMessageSizeDecoder("|" if not flags[2] else "::", _LIMIT)
    for chunk in chunks:
        try:
            messages = decoder.feed(text(chunk, flags[1]))
        except RemoteProtocolError:
            assert decoder.partial == ""
            continue
        assert utf16_len(decoder.partial) <= 2 * _LIMIT
        assert len(decoder.partial) <= _LIMIT
        for message in messages:
            assert isinstance(message, str)


if __name__ == "__main__":
    fuzz_main(TestOneInput)
