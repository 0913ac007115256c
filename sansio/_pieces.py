"""Collecting a message from pieces, with memory bounded by its size whatever the pieces.

A peer may send a message in as many pieces as it likes (WebSocket continuation frames,
TrackMessageSize frames); a list of one object per piece costs some 60 bytes per piece
beyond the text itself, so a million one-character pieces would cost far more than their
characters.  The collectors here keep a plain list, and every :data:`WIDTH` pieces they call
:func:`compact`, which joins the new pieces into one and merges it into the ones before while
they are of comparable size.  The settled pieces then shrink geometrically (each more than
twice as long as the next), so a message of ``n`` characters is held in fewer than
``log2(n) + 1 + WIDTH`` pieces, and each character is copied O(log n) times at worst.  A
message in a few large pieces is never compacted: it is joined once, at its end.
"""

from __future__ import annotations

from typing import AnyStr

__all__ = ["WIDTH", "compact"]

WIDTH = 32
"""New pieces a collector appends before it calls :func:`compact`."""


def compact(pieces: list[AnyStr], settled: int) -> int:
    """Join ``pieces[settled:]`` (the pieces appended since the last call) into one, then
    merge the last two pieces while the one before is at most twice as long as the last.

    Returns the number of settled pieces: the length of ``pieces`` now.  A collector calls
    it again once :data:`WIDTH` more pieces were appended.
    """
    empty = pieces[0][:0]
    if len(pieces) - settled > 1:
        pieces[settled:] = [empty.join(pieces[settled:])]
    while len(pieces) > 1 and len(pieces[-2]) <= 2 * len(pieces[-1]):
        last = pieces.pop()
        pieces[-1] = empty.join((pieces[-1], last))
    return len(pieces)
