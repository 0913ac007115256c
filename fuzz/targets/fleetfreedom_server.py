"""FleetFreedom server core and hub: client commands from two connections, pushes, expiry.

Contract: nothing a client sends raises except a line over the hub's ``max_line``
(:class:`RemoteProtocolError`, state ``ERROR``); every command is answered (a response, or
``unknownCommandResponse``) and the server keeps serving both connections.  Every line either
connection gets is a name and a strict JSON object in UTF-8, whatever the client put in the
values a reply echoes (``reqId`` of ``NaN``, ``1e999999``, a lone surrogate escape).  Bit 0
of byte 0 picks a small line limit; frames alternate between the two connections unless bit 1
is set.
"""

from __future__ import annotations

import itertools

from _common import Flags, check_events, check_output, fuzz_main, split, text

from trackwire import RemoteProtocolError
from trackwire.fleetfreedom import (
    Account,
    CommandReceived,
    FleetFreedomEvent,
    FleetFreedomHub,
    FleetFreedomServer,
    InvalidMessage,
    ServerState,
)

_ACCOUNTS = {
    ("a", "pw"): Account("a", 1, session_policy={"expireTimeout": 1}),
    ("b", "pw"): Account("b", 2, companies=frozenset({1})),
}
_SERVING = (ServerState.ANONYMOUS, ServerState.LOGGED_IN)


def _hub(max_line: int) -> FleetFreedomHub:
    counter = itertools.count(1)
    hub = FleetFreedomHub(
        lambda user, password: _ACCOUNTS.get((user, password)),
        ghost_ids=lambda: f"ghost-{next(counter)}",
        extra_commands=("custom",),
        max_line=max_line,
    )
    hub.put("asset", {"id": 7, "company": 1, "kind": "vehicle", "name": "seven"})
    hub.put("company", {"id": 1, "parent": 0, "name": "one"})
    hub.put("user", {"login": "a", "company": 1})
    return hub


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    hub = _hub(64 if flags[0] else 1 << 20)
    servers: list[FleetFreedomServer] = [hub.connect(), hub.connect("ghost-1")]
    now = 0.0
    for server in servers:
        server.connection_made(now)
        check_output(server.data_to_send(), lines=True)
    for index, chunk in enumerate(split(data[1:])):
        server = servers[0 if flags[1] else index % 2]
        if server.state not in _SERVING:
            continue
        now += 7.0
        frame = text(chunk, flags[2])
        try:
            server.receive(frame, now)
        except RemoteProtocolError:
            assert server.state is ServerState.ERROR
            continue
        events = server.events()
        check_events(events, FleetFreedomEvent)
        out = server.data_to_send()
        check_output(out, lines=True)
        for other in servers:
            check_output(other.data_to_send(), lines=True)
        received = [e for e in events if isinstance(e, (CommandReceived, InvalidMessage))]
        assert len(received) == 1, events
        first = received[0]
        if not (isinstance(first, CommandReceived) and not first.answered):
            assert out, "a command got no answer"
        if index % 5 == 4:
            hub.publish("assetMerged", 1, {"id": 7, "company": 1, "v": [index]})
            hub.broadcast({"kind": "maintenance", "message": "soon"})
        if index % 11 == 10:
            hub.prune(now)
            hub.end_session("ghost-1")
    for server in servers:
        server.receive_eof(now)
        check_events(server.events(), FleetFreedomEvent)
    assert not hub.connections


if __name__ == "__main__":
    fuzz_main(TestOneInput)
