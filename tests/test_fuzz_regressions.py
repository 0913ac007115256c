"""What the fuzzers found, as regression tests, and every fuzz target run over its seed corpus
(``fuzz/corpus/<target>/``, findings included) so that CI exercises the targets without
atheris."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import pytest

from trackwire import RemoteProtocolError
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    ClientState,
    TrackMessageSizeDecoder,
    parse_open_request,
)
from trackwire.fleetfreedom import ghost_id_from_request
from trackwire.itrack import AuthResponder, AuthServerConnection, Directory, ITrackClient
from trackwire.ws import Connected, ServerStack, UpgradeRequest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = sorted(p.stem for p in (FUZZ / "targets").glob("*.py") if not p.stem.startswith("_"))


def _load(name: str) -> ModuleType:
    folder = str(FUZZ / "targets")
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the targets import their shared ``_common``
    spec = importlib.util.spec_from_file_location(
        f"fuzz_target_{name}", FUZZ / "targets" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus() -> list[tuple[str, Path]]:
    return [(name, seed) for name in TARGETS for seed in sorted((FUZZ / "corpus" / name).iterdir())]


def test_every_target_has_seeds() -> None:
    assert len(TARGETS) >= 11
    for name in TARGETS:
        assert any((FUZZ / "corpus" / name).iterdir()), name


@pytest.mark.parametrize(("target", "seed"), _corpus(), ids=lambda v: getattr(v, "name", v))
def test_target_accepts_its_seed(target: str, seed: Path) -> None:
    test_one_input: Callable[[bytes], None] = _load(target).TestOneInput
    test_one_input(seed.read_bytes())


# -- findings -------------------------------------------------------------------------------


def test_tms_length_that_is_not_a_number_drops_the_buffer() -> None:
    """Found by ``trackmessagesize``: a bad length left the stale partial in the decoder."""
    decoder = TrackMessageSizeDecoder()
    assert decoder.feed("10|abc") == []
    assert decoder.partial == "10|abc"
    with pytest.raises(RemoteProtocolError, match="not a number"):
        decoder.feed("defghij1x|y")  # "10|abcdefghij" then the length "1x"
    assert decoder.partial == ""
    assert decoder.feed("2|ok") == ["ok"]


@pytest.mark.parametrize("target", ["//[x?X-Atmosphere-tracking-id=5", "//a]b/", "http://[x/"])
def test_open_request_with_a_bracket_host_parses(target: str) -> None:
    """Found by ``atmosphere_server``: ``urlsplit`` raised ``ValueError`` (Invalid IPv6 URL)."""
    request = parse_open_request(target)
    assert request.path.startswith(target.split("?")[0][:3])
    if "?" in target:
        assert request.tracking_id == "5"


def test_ghost_id_with_a_bracket_host_is_read() -> None:
    assert ghost_id_from_request("//[x?ghostId=g-1") == "g-1"
    assert ghost_id_from_request("//[abc") == "[abc"


def test_server_stack_survives_a_bracket_target() -> None:
    """The same target through the bytes-level stack, with the documented factory."""

    def factory(request: UpgradeRequest) -> AtmosphereServer:
        return AtmosphereServer(request.target)

    stack: ServerStack[Any] = ServerStack(factory)
    stack.connection_made(0.0)
    stack.receive(
        b"GET //[x?X-Atmosphere-tracking-id=0 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
        0.0,
    )
    assert any(isinstance(e, Connected) for e in stack.events())
    assert stack.data_to_send().startswith(b"HTTP/1.1 101 ")


def _auth_connection() -> AuthServerConnection:
    directory = Directory(hash_factory=lambda: "0" * 32)
    directory.add_user("demo", "secret")
    return AuthServerConnection(AuthResponder(directory))


def _responses(data: bytes) -> list[h11.Response]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="HEAD", target="/v2/user/auth", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    responses = []
    while (event := client.next_event()) is not h11.NEED_DATA:
        if isinstance(event, h11.Response):
            responses.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    return responses


def test_auth_server_answers_head_without_a_body() -> None:
    """Found by ``itrack_auth``: a HEAD request made h11 refuse the body (LocalProtocolError)."""
    conn = _auth_connection()
    conn.receive_data(b"HEAD /v2/user/auth HTTP/1.1\r\nHost: a\r\n\r\n")
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 405 ")
    assert out.endswith(b"\r\n\r\n")  # headers (with the would-be length), no body
    assert [r.status_code for r in _responses(out)] == [405]
    # The connection goes on: the next request is answered in full.
    conn.receive_data(b"GET /v2/user/auth?login=demo&password=secret HTTP/1.1\r\nHost: a\r\n\r\n")
    assert conn.data_to_send().endswith(b'"hash":"' + b"0" * 32 + b'"}')


def test_auth_server_head_with_a_body_over_the_limit() -> None:
    conn = AuthServerConnection(AuthResponder(Directory()), max_body=4)
    conn.receive_data(
        b"HEAD /v2/user/auth HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n123456789"
    )
    assert conn.data_to_send().startswith(b"HTTP/1.1 413 ")
    assert conn.closed


def test_client_stops_after_a_logout_closed_the_transport() -> None:
    """Seen by ``itrack_messages``: after ``logout`` the transport is closed, so the harness
    (like a driver) must stop feeding; the client says so through its state."""
    client = ITrackClient("ws://a/v2/event/subscription", "0" * 32)
    client.connection_made(0.0)
    client.receive("a3d2a2b4-0000-4000-8000-000000000000|30000|X|", 0.0)
    client.receive('{"type":"event","event":"logout","data":"session closed"}', 1.0)
    assert client.state is ClientState.CLOSED
    assert not client.resumable


def test_atmosphere_client_corruption_leaves_nothing_buffered() -> None:
    client = AtmosphereClient("ws://a/p", track_message_length=True)
    client.connection_made(0.0)
    client.receive("45|b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|", 0.0)
    client.receive("10|abc", 1.0)
    with pytest.raises(RemoteProtocolError):
        client.receive("defghijzz|x", 2.0)
    assert client.state is ClientState.ERROR
    client.reconnect()
    client.connection_made(3.0)
    client.receive("5|hello", 3.0)  # the reopen frame; nothing stale glued in front
    assert [getattr(e, "data", None) for e in client.events()][-1] == "hello"
