"""What the fuzzers found, as regression tests, and every fuzz target run over its seed corpus
(``fuzz/corpus/<target>/``, findings included) so that CI exercises the targets without
atheris."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import pytest

from trackwire import RemoteProtocolError
from trackwire._json import json_safe, safe_dumps
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    ClientState,
    TrackMessageSizeDecoder,
    encode_message,
    framework_number,
    parse_open_request,
)
from trackwire.fleetfreedom import (
    Account,
    FleetFreedomClient,
    FleetFreedomHub,
    FleetFreedomServer,
    ghost_id_from_request,
)
from trackwire.itrack import (
    AuthResponder,
    AuthServerConnection,
    Directory,
    HttpResponse,
    ITrackClient,
    ITrackServer,
    StateRequest,
    Subscribe,
    SubscribeResponse,
)
from trackwire.ws import Connected, ServerStack, UpgradeRequest, split_ws_url

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


# -- hostile values: each once ended a whole server or a client session ------------------------


def _strict(text: str) -> Any:
    """What a strict peer (``JSON.parse``) reads: UTF-8 text without NaN/Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    text.encode("utf-8")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "value", ["%C2%B2", "9" * 400, "1" * 4400, "%D9%A3", "-5", "+5", "5_0", "", " "]
)
def test_heartbeat_server_that_is_no_ascii_number_is_ignored(value: str) -> None:
    """``²`` passed ``str.isdigit`` and failed ``int``; 400 nines overflowed ``float``."""
    request = parse_open_request("/p?X-Heartbeat-Server=" + value)
    assert request.heartbeat_server is None
    assert AtmosphereServer(request).server_heartbeat == 60.0


def test_heartbeat_server_keeps_reading_plain_numbers() -> None:
    assert parse_open_request("/p?X-Heartbeat-Server=%2090%20").heartbeat_server == 90
    assert AtmosphereServer("/p?X-Heartbeat-Server=90").server_heartbeat == 90.0


@pytest.mark.parametrize("framework", ["1" * 4400 + ".2.3", "2.3." + "6" * 4400, "2.².6"])
def test_framework_with_huge_or_odd_numbers_reads_as_zero(framework: str) -> None:
    """A 4,400-digit framework went to ``int`` (over Python's 4,300-digit limit)."""
    assert framework_number(framework) == 0
    request = parse_open_request(f"/p?X-atmo-protocol=true&X-Atmosphere-Framework={framework}")
    assert not request.wants_handshake
    assert framework_number("2.3.6-javascript") == 236


@pytest.mark.parametrize("interval", ["9" * 310, "9" * 5000, "1" + "0" * 15])
def test_handshake_interval_past_the_bound_means_no_heartbeat(interval: str) -> None:
    """310 digits overflowed ``float`` in the client (``interval / 1000.0``)."""
    client = AtmosphereClient("ws://a/p", inactivity_timeout=0)
    client.connection_made(0.0)
    client.receive(f"b623a15d-9623-4fd8-a9d3-697036635c29|{interval}|X|", 0.0)
    assert client.state is ClientState.OPEN
    assert client.heartbeat_interval == 0.0
    assert client.next_deadline() is None


def test_handshake_interval_within_the_bound_is_read() -> None:
    client = AtmosphereClient("ws://a/p")
    client.connection_made(0.0)
    client.receive("u|" + "9" * 15 + "|X|", 0.0)
    assert client.heartbeat_interval == 999999999999.999


@pytest.mark.parametrize("key", ["1" * 4301, "1" * 20, "²", "-1"])
def test_tracker_id_key_that_is_no_id_keeps_the_raw_value(key: str) -> None:
    """A 4,301-digit key went to ``int`` and ended the client's session with a ValueError."""
    client = ITrackClient("ws://a/p", "0" * 32)
    client.connection_made(0.0)
    client.receive("a3d2a2b4-0000-4000-8000-000000000000|30000|X|", 0.0)
    client.receive(
        '{"type":"response","action":"subscription/subscribe","events":["state"],'
        f'"data":{{"state":{{"value":{{"{key}":"normal"}},"success":true}}}}}}',
        1.0,
    )
    (response,) = [e for e in client.events() if isinstance(e, SubscribeResponse)]
    result = response.results["state"]
    assert result.trackers == {}
    assert result.value == {key: "normal"}


def _auth(target: str) -> HttpResponse:
    directory = Directory(hash_factory=lambda: "0" * 32)
    directory.add_user("demo", "secret")
    return AuthResponder(directory)("GET", target, [], b"")


def test_auth_target_with_a_bracket_host_is_answered() -> None:
    """``GET //[/user/auth``: ``urlsplit`` raised outside the responder's error handling."""
    assert _auth("//[/user/auth").status == 400
    answer = _auth("//[/user/auth?login=demo&password=secret")
    assert answer.status == 200
    assert _strict(answer.body.decode())["hash"] == "0" * 32


@pytest.mark.parametrize("dealer", ["1" * 5000, "1" * 20, "%C2%B2", "%D9%A3", "-1", ""])
def test_dealer_id_that_is_no_id_is_invalid(dealer: str) -> None:
    """5,000 digits went to ``int``; ``isdecimal`` also let Arabic-Indic digits through."""
    answer = _auth(f"/v2/user/auth?login=demo&password=secret&dealer_id={dealer}")
    assert answer.status == 400
    assert _strict(answer.body.decode())["status"]["code"] == 7


def test_auth_server_connection_survives_the_bracket_target() -> None:
    conn = _auth_connection()
    conn.receive_data(b"GET //[/user/auth HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [r.status_code for r in _responses(conn.data_to_send())] == [400]
    assert not conn.closed


def _itrack_server() -> ITrackServer:
    server = ITrackServer("/p?X-Atmosphere-tracking-id=0", Directory())
    server.connection_made(0.0)
    server.data_to_send()
    server.events()
    return server


@pytest.mark.parametrize(
    ("echoed", "shown"),
    [
        ('"\\ud800"', "\ufffd"),
        ('"a\\udc00b"', "a\ufffdb"),
        ("NaN", None),
        ("Infinity", None),
        ("1e999999", None),
        ("-1e999999", None),
        ("[" * 900 + "]" * 900, None),
    ],
)
def test_itrack_error_reply_echo_is_strict_json(echoed: str, shown: object) -> None:
    """The reply echoed the value as sent: a lone surrogate cannot be encoded as UTF-8 and
    ``NaN`` is no JSON (``JSON.parse`` refuses it); deep nesting exhausted the encoder."""
    server = _itrack_server()
    server.receive('{"action":"subscribe","hash":"short","x":' + echoed + "}", 1.0)
    (reply,) = server.data_to_send()
    decoded = _strict(reply)
    assert decoded["status"]["code"] == 3
    if shown is not None or echoed[0] != "[":
        assert decoded["data"]["x"] == shown
    assert [type(e).__name__ for e in server.events()] == ["ActionRejected"]


@pytest.mark.parametrize("rate", ["\u0663s", "1" * 400 + "s", "1." + "0" * 400 + "1s", "²s"])
def test_rate_limit_that_is_no_ascii_timespan_is_invalid(rate: str) -> None:
    directory = Directory()
    directory.add_user("demo", "demo")
    directory.add_api_key("demo", "0" * 32)
    server = ITrackServer("/p?X-Atmosphere-tracking-id=0", directory)
    server.connection_made(0.0)
    server.data_to_send()
    action = {
        "action": "subscribe",
        "hash": "0" * 32,
        "requests": [{"type": "state_batch", "target": {"type": "all"}, "rate_limit": rate}],
    }
    server.receive(json.dumps(action), 1.0)
    (reply,) = server.data_to_send()
    assert _strict(reply)["status"]["code"] == 7


def _ff_pair() -> tuple[FleetFreedomServer, FleetFreedomServer]:
    hub = FleetFreedomHub(lambda user, pw: Account("a", 1) if pw == "pw" else None)
    hub.put("asset", {"id": 7, "company": 1, "kind": "car", "name": "seven"})
    conns = (hub.connect(), hub.connect())
    for conn in conns:
        conn.connection_made(0.0)
        conn.receive('login {"username":"a","password":"pw","reqId":0}', 0.0)
        conn.receive('subscribe {"company":{"id":1},"subscriptionTypes":["asset"]}', 0.0)
        conn.data_to_send()
        conn.events()
    return conns


@pytest.mark.parametrize(
    ("req_id", "echoed"),
    [("NaN", None), ("1e999999", None), ("-Infinity", None), ('"\\ud800"', "\ufffd")],
)
def test_fleetfreedom_reply_echoes_req_id_as_strict_json(req_id: str, echoed: object) -> None:
    """Before login, ``noop {"reqId":NaN}`` made the strict encoder raise (the server died);
    a lone surrogate made the reply unencodable."""
    hub = FleetFreedomHub(lambda user, pw: None)
    server = hub.connect()
    server.connection_made(0.0)
    server.data_to_send()
    server.receive('noop {"reqId":' + req_id + "}", 1.0)
    (reply,) = server.data_to_send()
    name, _, body = reply.partition(" ")
    assert name == "noopResponse"
    assert _strict(body) == {"reqId": echoed, "errorCode": 0, "message": "OK"}


def test_fleetfreedom_subscribe_echoes_invalid_types_as_strict_json() -> None:
    server, _ = _ff_pair()
    server.receive(
        'subscribe {"company":{"id":1},"subscriptionTypes":[NaN,"\\udfff","asset"],"reqId":2}',
        1.0,
    )
    (reply,) = server.data_to_send()
    assert _strict(reply.partition(" ")[2])["invalid"][:2] == [None, "\ufffd"]


@pytest.mark.parametrize("value", ["NaN", "1e999999", '"\\ud800"', "[" * 100 + "]" * 100])
def test_fleetfreedom_merge_of_unwritable_values_is_refused(value: str) -> None:
    """Merged values are stored and pushed to every subscriber: one that no strict peer can
    read back is refused (3 invalidData), and nothing is stored or pushed."""
    server, watcher = _ff_pair()
    server.receive('mergeAsset {"asset":{"id":7,"v":[1,1],"name":' + value + '},"reqId":3}', 1.0)
    (reply,) = server.data_to_send()
    assert _strict(reply.partition(" ")[2])["errorCode"] == 3
    assert watcher.data_to_send() == []
    assert server.hub.get("asset", 7)["name"] == "seven"


def test_safe_dumps_writes_strict_utf8_json_for_any_decoded_value() -> None:
    value = json.loads('{"a":[NaN,Infinity,-Infinity],"\\ud800":"x\\udc00","n":1}')
    assert safe_dumps(value) == '{"a":[null,null,null],"\ufffd":"x\ufffd","n":1}'
    clean = {"a": [1, "é", 2.5]}
    assert json_safe(clean) is clean
    assert safe_dumps(clean) == '{"a":[1,"é",2.5]}'
    deep = json.loads("[" * 900 + "]" * 900)
    _strict(safe_dumps({"deep": deep}))
    assert json_safe(deep, max_depth=3) == [[[None]]]
    assert json_safe(10**4300 * 10) is None  # more digits than Python writes


@pytest.mark.parametrize(
    ("ghost_id", "path"), [("\\ud800", "%3F"), ("a/../b?c#d", "a%2F..%2Fb%3Fc%23d")]
)
def test_fleetfreedom_ghost_id_cannot_break_the_next_url(ghost_id: str, path: str) -> None:
    """The server's ghostId goes into the next URL: a lone surrogate made it unencodable."""
    client = FleetFreedomClient("wss://h/")
    client.connection_made(0.0)
    client.receive('connectionResponse {"errorCode":8,"ghostId":"' + ghost_id + '"}', 0.0)
    assert client.url_to_open == "wss://h/" + path
    split_ws_url(client.url_to_open)


def test_itrack_client_keeps_its_actions_when_the_opening_frame_corrupts_the_stream() -> None:
    """Found by ``test_hostile_inputs``: the handshake and a bad length in one frame opened
    the transport and broke it; writing the held actions then raised LocalProtocolError (SEND
    in ERROR) in place of the stream's RemoteProtocolError, and the actions were lost."""
    transport = AtmosphereClient("ws://a/p", track_message_length=True)
    client = ITrackClient("ws://a/p", "0" * 32, transport=transport)
    client.send(Subscribe([StateRequest([1])]))
    client.connection_made(0.0)
    with pytest.raises(RemoteProtocolError, match="not a number"):
        client.receive(encode_message("b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|") + "x|y", 0)
    assert client.state is ClientState.ERROR
    assert client.data_to_send() == []
    client.reconnect()
    client.connection_made(1.0)
    client.receive("1|X", 1.0)  # the reopen frame
    (action,) = client.data_to_send()
    assert json.loads(action)["requests"] == [{"type": "state", "trackers": [1]}]
