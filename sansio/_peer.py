"""The address of the peer whose input is being handled, for per-address policies.

A server driver runs each accepted connection in its own task and marks it with
:func:`peer_context`; whatever that connection's stack calls -- the core factory, the HTTP
handler, the core and the callbacks the core makes (a FleetFreedom hub's authenticator, an
iTrack directory's ``authenticate``) -- can ask :func:`current_peer` who is on the other
end, without the address being threaded through every protocol signature.  Outside a
driver (a sans-IO test, a custom loop that does not set it) the answer is ``""``: unknown.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

__all__ = ["current_peer", "peer_context"]

_PEER: ContextVar[str] = ContextVar("trackwire_peer", default="")


def current_peer() -> str:
    """The peer's address (an IP address, no port) of the connection being handled, or
    ``""`` when unknown."""
    return _PEER.get()


class _PeerContext:
    """What :func:`peer_context` returns: a context manager of two slots (a server holds one
    per connection for as long as it is open, so it is kept small)."""

    __slots__ = ("_address", "_token")

    def __init__(self, address: str) -> None:
        self._address = address
        self._token: Token[str] | None = None

    def __enter__(self) -> None:
        self._token = _PEER.set(self._address)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self._token
        if token is not None:
            self._token = None
            _PEER.reset(token)


def peer_context(address: str) -> _PeerContext:
    """Within the block (and the tasks it starts), :func:`current_peer` is ``address``."""
    return _PeerContext(address)
