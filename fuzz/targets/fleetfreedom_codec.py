"""FleetFreedom ``name {JSON}`` codec: decode, re-encode, the UTF-8 line limit.

Contract: :func:`decode` returns a name and a JSON object or raises :class:`MessageError`;
what it returns encodes and decodes back to the same value (bodies with NaN or infinities
are refused by :func:`encode` with ``ValueError``, as documented); :func:`line_too_long`
agrees with the UTF-8 size.
"""

from __future__ import annotations

import math
from typing import Any

from _common import Flags, fuzz_main, split, text

from trackwire.fleetfreedom import MessageError, decode, encode, line_too_long
from trackwire.fleetfreedom._codec import BAD_JSON, BAD_NAME, NOT_OBJECT


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _round_trip(name: str, body: dict[str, Any]) -> None:
    assert type(body) is dict
    try:
        again = encode(name, body)
    except ValueError:
        assert not _finite(body)
        return
    assert decode(again) == (name, body)


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    for chunk in split(data[1:]):
        frame = text(chunk, flags[0])
        limit = len(chunk) // 2 + flags.bits
        size = len(frame.encode("utf-8", "surrogatepass"))
        assert line_too_long(frame, limit) == (size > limit), (frame, limit)
        try:
            name, body = decode(frame)
        except MessageError as exc:
            error = exc
        else:
            _round_trip(name, body)
            continue
        assert error.frame == frame
        assert error.reason in (BAD_NAME, BAD_JSON, NOT_OBJECT)


if __name__ == "__main__":
    fuzz_main(TestOneInput)
