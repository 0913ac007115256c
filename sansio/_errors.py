"""The error model shared by every core, the stack and the drivers.

``LocalProtocolError`` means the caller used the API wrongly (sending before the handshake,
feeding data after the end of input).  ``RemoteProtocolError`` means the peer broke the
protocol badly enough that the stream cannot go on (a desynchronised length prefix, a partial
message over the size limit); the core's state is then ``ERROR``.  A single bad message is
never an exception: it becomes an event that carries the raw text.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "excerpt"]

from ._redact import redact

_EXCERPT = 80
_WINDOW = 512
"""How much of a frame is searched for secrets before it is cut to the excerpt."""


def excerpt(text: str | bytes, limit: int = _EXCERPT) -> str:
    """A short, printable rendering of an offending frame for error messages.

    Secret values (passwords, hashes, ghostIds) read ``***``; they are removed before the
    cut so that a value the cut would split is not half shown.
    """
    shown = repr(redact(text[: limit + _WINDOW])[:limit])
    return shown + ("…" if len(text) > limit else "")


class ProtocolError(Exception):
    """Base of every protocol error raised by trackwire.

    ``state`` is the state the core was in (its enum member's name) and ``frame`` the
    offending input, when there was one.  ``close_code`` is the WebSocket close code the
    stack should use for it (``None``: the stack's default, 1002).
    """

    def __init__(
        self,
        message: str,
        *,
        state: object = None,
        frame: str | bytes | None = None,
        close_code: int | None = None,
    ):
        detail = message
        if state is not None:
            detail += f" (state {getattr(state, 'name', state)})"
        if frame is not None:
            detail += f"; frame {excerpt(frame)}"
        super().__init__(redact(detail))
        self.state = state
        self.frame = frame
        self.close_code = close_code


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow in this state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the stream; the connection cannot go on."""
