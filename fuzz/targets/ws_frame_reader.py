"""The client stack's own frame reader against wsproto reading every frame, on any bytes.

Contract: fed the same server bytes in the same reads, a stack with the reader and one
without it (wsproto reads every frame) raise the same errors, produce the same events and
write the same frames (compared unmasked: each side's masks are random).  Bits of byte 0:
0 sets a small message limit, 1 accepts binary messages, 2 turns ``close_with_core`` off
(a core refusing input then raises out of the read), 3 ends the response head's lines with
bare LF.  An empty chunk is the application calling ``close()`` between two reads.
"""

from __future__ import annotations

from typing import Any

from _common import Flags, fuzz_main, split
from ws_client_stack import accept_response
from wsproto.connection import Connection, ConnectionType

from trackwire.atmosphere import AtmosphereClient
from trackwire.ws import ClientStack, StackState


class _WsprotoOnly(ClientStack[Any]):
    _own_reader = False


def _stack(kind: type[ClientStack[Any]], flags: Flags) -> tuple[ClientStack[Any], Connection]:
    core = AtmosphereClient("ws://fuzz.test/p", track_message_length=True)
    stack = kind.from_url(
        core,
        core.url_to_open,
        max_message_size=64 if flags[0] else 1 << 20,
        accept_binary=flags[1],
        close_with_core=not flags[2],
    )
    stack.connection_made(0.0)
    head = accept_response(stack.data_to_send())
    stack.receive(head.replace(b"\r\n", b"\n") if flags[3] else head, 0.0)
    return stack, Connection(ConnectionType.SERVER)


def _step(stack: ClientStack[Any], peer: Connection, chunk: bytes | None) -> tuple[Any, ...]:
    try:
        if chunk is None:
            stack.receive_eof(1.0)
        elif not chunk:
            stack.close(1000)
        else:
            stack.receive(chunk, 1.0)
        error = None
    except Exception as exc:  # compared, not judged: both sides must agree
        error = (type(exc), str(exc))
    peer.receive_data(stack.data_to_send())
    written = repr(list(peer.events()))
    return error, repr(stack.events()), written, stack.state


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    ours, ours_peer = _stack(ClientStack, flags)
    theirs, theirs_peer = _stack(_WsprotoOnly, flags)
    assert repr(ours.events()) == repr(theirs.events())
    for chunk in [*split(data[1:]), None]:
        if ours.state is StackState.CLOSED:
            break
        assert _step(ours, ours_peer, chunk) == _step(theirs, theirs_peer, chunk)


if __name__ == "__main__":
    fuzz_main(TestOneInput)
