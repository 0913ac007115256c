"""TrackMessageSize: the length prefixes a decoder remembers never change what it reads."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire import RemoteProtocolError
from trackwire.atmosphere._framing import PREFIXES_KEPT, TrackMessageSizeDecoder, encode_message


def test_a_known_prefix_is_read_without_looking_for_its_delimiter() -> None:
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("5|abcde" * 3) == ["abcde"] * 3
    assert decoder._prefixes == {"5|": 5}
    assert decoder.feed("5|fghij") == ["fghij"]


def test_a_shorter_prefix_at_the_end_of_a_frame_is_not_taken_for_a_known_one() -> None:
    # "5|" was learnt, then "18|": the frame's last two characters "5|" start a message of
    # 5 whose body comes next, not one whose body starts a character later.
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("5|abcde") == ["abcde"]
    assert decoder.feed("18|" + "0" * 18 + "5|") == ["0" * 18]
    assert decoder.feed("fghij") == ["fghij"]


def test_a_new_delimiter_forgets_the_prefixes() -> None:
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("5|abcde") == ["abcde"]
    decoder.delimiter = ";"
    assert decoder.feed("5|abcde") == ["5|abcde"]  # no delimiter: delivered raw
    assert decoder.feed("5;abcde") == ["abcde"]


def test_a_lower_limit_forgets_the_prefixes() -> None:
    decoder = TrackMessageSizeDecoder(max_size=1000)
    message = encode_message("x" * 500)
    assert decoder.feed(message * 2) == ["x" * 500] * 2
    decoder.max_size = 99
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        decoder.feed(message)


def test_the_prefixes_kept_are_bounded() -> None:
    decoder = TrackMessageSizeDecoder()
    frame = "".join(encode_message("y" * n) for n in range(100, 400))
    assert len(decoder.feed(frame)) == 300
    assert 0 < len(decoder._prefixes) <= PREFIXES_KEPT


@settings(max_examples=300)
@given(
    st.lists(st.text(alphabet="ab|9\u00e9\U0001f600", max_size=14), min_size=1, max_size=20),
    st.lists(st.integers(0, 300), max_size=8),
)
def test_prefixes_change_nothing_read(texts: list[str], cuts: list[int]) -> None:
    """A decoder that remembers prefixes reads every frame as one that forgets them."""
    wire = "".join(encode_message(t) for t in texts) * 2
    bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    remembering = TrackMessageSizeDecoder()
    forgetting = TrackMessageSizeDecoder()
    for a, b in itertools.pairwise(bounds):
        forgetting._prefixes.clear()
        assert _outcome(remembering, wire[a:b]) == _outcome(forgetting, wire[a:b])
        assert remembering.partial == forgetting.partial


def _outcome(decoder: TrackMessageSizeDecoder, frame: str) -> list[str] | str:
    """The messages ``frame`` completes, or the error it raises (a frame cut inside a
    prefix is delivered raw, and may make the next one's length corrupt)."""
    try:
        return decoder.feed(frame)
    except RemoteProtocolError as exc:
        return str(exc)


def test_a_long_run_of_digits_before_junk_is_refused_in_linear_time() -> None:
    """A length of 200,000 digits and then a character no number has: the number pattern
    fails at once (it used to back off quadratically, a hang found by the fuzz target)."""
    decoder = TrackMessageSizeDecoder()
    with pytest.raises(RemoteProtocolError, match="not a number"):
        decoder.feed("0" + "9" * 200_000 + "x|message")
