"""The address of the peer whose input is being handled, for per-address policies.

A server driver runs each accepted connection in its own task and marks it with
:func:`peer_context`; whatever that connection's stack calls -- the core factory, the HTTP
handler, the core and the callbacks the core makes (a FleetFreedom hub's authenticator, an
iTrack directory's ``authenticate``) -- can ask :func:`current_peer` who is on the other
end, without the address being threaded through every protocol signature.  Outside a
driver (a sans-IO test, a custom loop that does not set it) the answer is ``""``: unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["current_peer", "peer_context"]

_PEER: ContextVar[str] = ContextVar("trackwire_peer", default="")


def current_peer() -> str:
    """The peer's address (an IP address, no port) of the connection being handled, or
    ``""`` when unknown."""
    return _PEER.get()


@contextmanager
def peer_context(address: str) -> Iterator[None]:
    """Within the block (and the tasks it starts), :func:`current_peer` is ``address``."""
    token = _PEER.set(address)
    try:
        yield
    finally:
        _PEER.reset(token)
