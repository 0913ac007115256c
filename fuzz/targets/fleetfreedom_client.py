"""FleetFreedom client core: server messages in any order, commands, timers, reconnects.

Contract: :meth:`FleetFreedomClient.receive` produces FleetFreedom events for every frame
(bad ones as :class:`InvalidMessage`); the only exception is :class:`RemoteProtocolError` for a
line over ``max_line``, after which the state is ``ERROR`` and every pending command failed.
Every line the client sends is a name and a strict JSON object in UTF-8.  Byte 0 picks a small
line limit and the text decoding; an empty frame runs the timers.
"""

from __future__ import annotations

from _common import Flags, check_events, check_output, fuzz_main, split, text

from trackwire import LocalProtocolError, RemoteProtocolError
from trackwire.fleetfreedom import (
    ClientState,
    Command,
    FleetFreedomClient,
    FleetFreedomEvent,
)

_CONNECTED = frozenset(
    (
        ClientState.AWAITING_CONNECTION_RESPONSE,
        ClientState.ANONYMOUS,
        ClientState.LOGGED_IN,
        ClientState.PASSWORD_EXPIRED,
        ClientState.CLOSING,
    )
)
_COMMANDS = (
    Command.login("user@fuzz", "secret", "fuzz"),
    Command.subscribe(1, ["asset", "assetAdvanced"]),
    Command.get("asset", 7),
    Command.unsubscribe(1, ["asset"]),
    Command.noop(),
)


def _send(client: FleetFreedomClient, command: Command, now: float) -> None:
    """Send, allowing only the documented refusals: over the line limit, too many pending."""
    try:
        client.send(command, now)
    except LocalProtocolError as exc:
        message = str(exc)
        assert "bytes" in message or "pending" in message, message


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    client = FleetFreedomClient(
        "wss://fuzz.test/",
        ghost_id="ghost" if flags[0] else None,
        max_line=48 if flags[1] else 1 << 20,
        max_pending=4 if flags[3] else 100,
        command_timeout=30.0,
    )
    now = 0.0
    _send(client, _COMMANDS[0], now)
    client.connection_made(now)
    for index, chunk in enumerate(split(data[1:])):
        if client.state not in _CONNECTED:
            if not client.resumable:
                break
            client.reconnect()
            client.connection_made(now)
        if not chunk:
            now += 45.0
            client.handle_timer(now)
        else:
            now += 0.5
            try:
                client.receive(text(chunk, flags[2]), now)
            except RemoteProtocolError:
                assert client.state is ClientState.ERROR
                assert not client.pending
        if client.state in _CONNECTED and client.state is not ClientState.CLOSING:
            _send(client, _COMMANDS[index % len(_COMMANDS)], now)
        check_output(client.data_to_send(), lines=True)
        client.url_to_open.encode("ascii")  # the server's ghostId, percent-encoded
        check_events(client.events(), FleetFreedomEvent)
    if client.state in _CONNECTED:
        client.receive_eof(now)
        check_events(client.events(), FleetFreedomEvent)
        assert not client.pending


if __name__ == "__main__":
    fuzz_main(TestOneInput)
