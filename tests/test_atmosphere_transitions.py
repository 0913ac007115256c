"""Every (state, input) pair of both Atmosphere cores: a legal move or LocalProtocolError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trackwire import LocalProtocolError, RemoteProtocolError
from trackwire.atmosphere import AtmosphereClient, AtmosphereServer, ClientState, ServerState
from trackwire.atmosphere._client import TRANSITIONS as CLIENT_TABLE
from trackwire.atmosphere._server import TRANSITIONS as SERVER_TABLE

C = ClientState
ERR = "LocalProtocolError"


def client_in(state: ClientState) -> AtmosphereClient:
    client = AtmosphereClient("http://h/p", track_message_length=True, inactivity_timeout=10)
    if state is C.CONNECTING:
        return client
    client.connection_made(0.0)
    if state is C.AWAITING_HANDSHAKE:
        return client
    client.receive("45|b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|", 0.0)
    if state is C.OPEN:
        return client
    if state is C.ERROR:
        with pytest.raises(RemoteProtocolError):
            client.receive("zz|", 0.0)
        return client
    client.receive_eof(0.0)
    if state is C.CLOSED:
        return client
    client.reconnect()
    client.connection_made(0.0)
    assert state is C.AWAITING_REOPEN
    return client


CLIENT_OPS: dict[str, Callable[[AtmosphereClient], object]] = {
    "connection_made": lambda c: c.connection_made(1.0),
    "receive": lambda c: c.receive("5|hello", 1.0),
    "send": lambda c: c.send("m"),
    "receive_eof": lambda c: c.receive_eof(1.0),
    "timeout": lambda c: c.handle_timer(1000.0),
    "close": lambda c: c.close(1.0),
    "reconnect": lambda c: c.reconnect(),
    "corrupt": lambda c: c.receive("zz|", 1.0),
}

# state → operation → resulting state, or ERR for the documented LocalProtocolError.
CLIENT_MATRIX: dict[ClientState, dict[str, ClientState | str]] = {
    C.CONNECTING: {
        "connection_made": C.AWAITING_HANDSHAKE, "receive": ERR, "send": ERR,
        "receive_eof": C.CLOSED, "timeout": C.CONNECTING, "close": C.CLOSED,
        "reconnect": C.CONNECTING, "corrupt": ERR,
    },
    C.AWAITING_HANDSHAKE: {
        "connection_made": ERR, "receive": C.AWAITING_HANDSHAKE, "send": ERR,
        "receive_eof": C.CLOSED, "timeout": C.CLOSED, "close": C.CLOSED,
        "reconnect": ERR, "corrupt": C.ERROR,
    },
    C.AWAITING_REOPEN: {
        "connection_made": ERR, "receive": C.OPEN, "send": ERR,
        "receive_eof": C.CLOSED, "timeout": C.CLOSED, "close": C.CLOSED,
        "reconnect": ERR, "corrupt": C.ERROR,
    },
    C.OPEN: {
        "connection_made": ERR, "receive": C.OPEN, "send": C.OPEN,
        "receive_eof": C.CLOSED, "timeout": C.CLOSED, "close": C.CLOSED,
        "reconnect": ERR, "corrupt": C.ERROR,
    },
    C.CLOSED: {
        "connection_made": ERR, "receive": ERR, "send": ERR,
        "receive_eof": C.CLOSED, "timeout": C.CLOSED, "close": C.CLOSED,
        "reconnect": C.CONNECTING, "corrupt": ERR,
    },
    C.ERROR: {
        "connection_made": ERR, "receive": ERR, "send": ERR,
        "receive_eof": C.ERROR, "timeout": C.ERROR, "close": C.ERROR,
        "reconnect": C.CONNECTING, "corrupt": ERR,
    },
}  # fmt: skip


@pytest.mark.parametrize("state", list(ClientState))
@pytest.mark.parametrize("op", list(CLIENT_OPS))
def test_client_state_input_matrix(state: ClientState, op: str) -> None:
    client = client_in(state)
    assert client.state is state
    expected = CLIENT_MATRIX[state][op]
    if expected == ERR:
        with pytest.raises(LocalProtocolError) as info:
            CLIENT_OPS[op](client)
        assert state.name in str(info.value)
        assert client.state is state
    elif op == "corrupt":
        with pytest.raises(RemoteProtocolError):
            CLIENT_OPS[op](client)
        assert client.state is expected
    else:
        CLIENT_OPS[op](client)
        assert client.state is expected


def test_client_table_only_has_reachable_states() -> None:
    assert {s for s, _ in CLIENT_TABLE} | set(CLIENT_TABLE.values()) == set(ClientState)


S = ServerState
SERVER_OPS: dict[str, Callable[[AtmosphereServer], object]] = {
    "connection_made": lambda s: s.connection_made(1.0),
    "receive": lambda s: s.receive("m", 1.0),
    "send": lambda s: s.send("m"),
    "receive_eof": lambda s: s.receive_eof(1.0),
    "timer": lambda s: s.handle_timer(1000.0),
    "close": lambda s: s.close(),
}
SERVER_MATRIX: dict[ServerState, dict[str, ServerState | str]] = {
    S.CONNECTING: {
        "connection_made": S.OPEN, "receive": ERR, "send": ERR, "receive_eof": S.CLOSED,
        "timer": S.CONNECTING, "close": S.CLOSED,
    },
    S.OPEN: {
        "connection_made": ERR, "receive": S.OPEN, "send": S.OPEN, "receive_eof": S.CLOSED,
        "timer": S.OPEN, "close": S.CLOSED,
    },
    S.CLOSED: {
        "connection_made": ERR, "receive": ERR, "send": ERR, "receive_eof": S.CLOSED,
        "timer": S.CLOSED, "close": S.CLOSED,
    },
}  # fmt: skip


def server_in(state: ServerState) -> AtmosphereServer:
    server = AtmosphereServer("/p?X-Atmosphere-tracking-id=0")
    if state is not S.CONNECTING:
        server.connection_made(0.0)
    if state is S.CLOSED:
        server.close()
    return server


@pytest.mark.parametrize("state", list(ServerState))
@pytest.mark.parametrize("op", list(SERVER_OPS))
def test_server_state_input_matrix(state: ServerState, op: str) -> None:
    server = server_in(state)
    expected = SERVER_MATRIX[state][op]
    if expected == ERR:
        with pytest.raises(LocalProtocolError):
            SERVER_OPS[op](server)
        assert server.state is state
    else:
        SERVER_OPS[op](server)
        assert server.state is expected


def test_server_table_covers_every_state() -> None:
    assert {s for s, _ in SERVER_TABLE} == set(ServerState)
