"""Passwords, iTrack hashes and FleetFreedom ghostIds never show in reprs, ``str()`` of
events, or error messages; the objects themselves keep them for the code that needs them."""

from __future__ import annotations

import itertools
import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackwire import RemoteProtocolError
from trackwire._errors import excerpt
from trackwire._redact import redact, redact_target, redact_value
from trackwire.atmosphere import AtmosphereClient, InactivityTimeout
from trackwire.conformance import DEMO_FLEETFREEDOM, DEMO_ITRACK
from trackwire.fleetfreedom import (
    Account,
    Command,
    CommandFailed,
    CommandReceived,
    ConnectionResponse,
    FailureReason,
    FleetFreedomClient,
    FleetFreedomHub,
    InvalidMessage,
    LoggedIn,
    LoggedOut,
    MessageError,
    SessionResponse,
    decode,
)
from trackwire.itrack import (
    ActionReceived,
    ActionRejected,
    AuthDecodeError,
    AuthExchange,
    AuthHTTPError,
    AuthResponder,
    AuthSuccess,
    Directory,
    ITrackClient,
    ITrackServer,
    StateRequest,
    Subscribe,
    User,
    api_key_session,
    build_auth_request,
    check_hash,
    parse_message,
)
from trackwire.ws import (
    ClientStack,
    Connected,
    HttpRequestHandled,
    ServerStack,
    UpgradeRequest,
    split_ws_url,
)

PASSWORD = "Hunter2-Pa55word"
HASH = "5ec4e7a1b2c3d4e5f60718293a4b5c6d"
GHOST = "0f8fad5b-d9cb-469f-a165-70867728950e"
SECRETS = (PASSWORD, HASH, GHOST)


def shown(*objects: object) -> str:
    """Everything a log line or a traceback could print of these objects."""
    return "\n".join(f"{obj!r} {obj!s}" for obj in objects)


def assert_hidden(*objects: object) -> None:
    text = shown(*objects)
    for secret in SECRETS:
        assert secret not in text, text


# -- the redaction rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"password":"pw","a":1}', '{"password":"***","a":1}'),
        ('{"newPassword": "a\\"b", "x": 2}', '{"newPassword": "***", "x": 2}'),
        ('{"hash":"abc"}', '{"hash":"***"}'),
        ('{"ghostId":"g"}', '{"ghostId":"***"}'),
        (
            'updateOwnPassword {"current":"old","password":"new"}',
            'updateOwnPassword {"current":"***","password":"***"}',
        ),
        ('{"password":"cut sh', '{"password":"***'),
        ("login=demo&password=pw&dealer_id=1", "login=demo&password=***&dealer_id=1"),
        ("/?ghostId=g-1&x=2", "/?ghostId=***&x=2"),
        ("PASSWORD=x", "PASSWORD=***"),
        ('{"hash":null,"passwordPolicy":{"expireMode":"never"}}', None),
        ("X-Atmosphere-tracking-id=5&_=1", None),
    ],
)
def test_redact_rules(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_redact_keeps_the_atmosphere_tracking_id() -> None:
    url = "ws://h/p?X-Atmosphere-tracking-id=b623a15d-9623-4fd8-a9d3-697036635c29&hash=x"
    assert redact(url) == url.replace("hash=x", "hash=***")


def test_redact_bytes_and_values() -> None:
    assert redact(b"login=a&password=pw") == b"login=a&password=***"
    nested = {"user": [{"password": "pw", "hash": None, "n": 1}], "ghostId": "g", "x": "y"}
    assert redact_value(nested) == {
        "user": [{"password": "***", "hash": None, "n": 1}],
        "ghostId": "***",
        "x": "y",
    }
    assert nested["ghostId"] == "g"  # a copy: the original keeps its values


@given(st.text(min_size=1), st.sampled_from(["password", "hash", "ghostId", "newPassword"]))
def test_no_json_secret_survives_redaction(value: str, key: str) -> None:
    secret = "Zq\u00e9" + value
    frame = "login " + json.dumps({"username": "u", key: secret, "reqId": 1})
    encoded = json.dumps(secret)[1:-1]  # as it appears inside the JSON text
    assert encoded not in redact(frame)
    assert encoded not in excerpt(frame)
    assert encoded not in str(RemoteProtocolError("bad", frame=frame))


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1))
def test_no_form_secret_survives_redaction(value: str) -> None:
    secret = "Zq" + value
    body = f"login=demo&password={secret}&dealer_id=3"
    assert secret not in redact(body)
    assert secret.encode() not in redact(body.encode())


def test_excerpt_hides_a_secret_the_cut_would_split() -> None:
    frame = "x" * 70 + json.dumps({"password": PASSWORD}) + "y" * 200
    assert "Hunter" not in excerpt(frame)
    assert excerpt(frame).endswith("…")
    assert excerpt(b'{"hash":"' + HASH.encode() + b'"}') == repr(b'{"hash":"***"}')


# -- FleetFreedom -----------------------------------------------------------------------------


def test_commands_hide_passwords() -> None:
    login = Command.login("user@x", PASSWORD, "app")
    change = Command("updateOwnPassword", {"current": PASSWORD, "password": PASSWORD + "!"})
    assert_hidden(login, change, CommandFailed(1, login, FailureReason.TIMEOUT))
    assert login.body["password"] == PASSWORD  # the command still carries it
    assert "user@x" in repr(login)


def test_message_events_hide_ghost_ids() -> None:
    body = {"errorCode": 0, "ghostId": GHOST, "user": {"login": "a"}}
    login = Command.login("a", PASSWORD, "app")
    events = [
        ConnectionResponse("connectionResponse", body, 0),
        SessionResponse("loginResponse", body, 1, 0, login),
        LoggedIn("a", 1, GHOST),
        LoggedOut(GHOST, "logout"),
    ]
    assert_hidden(*events)
    assert isinstance(events[0], ConnectionResponse)
    assert events[0].ghost_id == GHOST
    assert "loginResponse" in repr(events[1])


def _hub() -> FleetFreedomHub:
    accounts = {("a", PASSWORD): Account("a", 1)}
    return FleetFreedomHub(lambda user, pw: accounts.get((user, pw)), ghost_ids=lambda: GHOST)


def test_server_events_hide_the_login_password_and_the_session() -> None:
    server = _hub().connect()
    server.connection_made(0.0)
    server.receive(f'login {{"username":"a","password":"{PASSWORD}","reqId":1}}', 1.0)
    server.receive(f'login {{"username":"a","password":"{PASSWORD}",', 2.0)  # bad JSON
    events = server.events()
    assert any(isinstance(e, CommandReceived) for e in events)
    assert any(isinstance(e, LoggedIn) for e in events)
    assert any(isinstance(e, InvalidMessage) for e in events)
    assert_hidden(*events)


def test_client_events_and_session_hide_the_ghost_id_and_password() -> None:
    client = FleetFreedomClient("wss://h/")
    client.send(Command.login("a", PASSWORD, "app"))
    client.connection_made(0.0)
    client.receive(f'connectionResponse {{"errorCode":8,"ghostId":"{GHOST}"}}', 0.0)
    client.receive(f'loginResponse {{"reqId":1,"errorCode":0,"ghostId":"{GHOST}"}}', 1.0)
    client.send(Command.noop())
    client.receive_eof(2.0)  # the noop fails: CommandFailed
    assert_hidden(*client.events(), client.session, *client.pending.values())
    assert client.session.ghost_id == GHOST


def test_fleetfreedom_errors_hide_secrets() -> None:
    with pytest.raises(MessageError) as bad_json:
        decode(f'login {{"password":"{PASSWORD}",')
    client = FleetFreedomClient("wss://h/", max_line=40)
    client.connection_made(0.0)
    with pytest.raises(RemoteProtocolError) as too_long:
        client.receive(f'loginResponse {{"ghostId":"{GHOST}","pad":"{"x" * 40}"}}', 0.0)
    assert_hidden(bad_json.value, too_long.value)
    assert bad_json.value.frame.count(PASSWORD) == 1  # the error keeps the frame itself


# -- iTrack -----------------------------------------------------------------------------------


def test_auth_request_hides_the_password() -> None:
    request = build_auth_request("https://user:pw@api.example/v2/", "demo", PASSWORD)
    assert_hidden(request, request.url)
    assert PASSWORD.encode() in request.body
    assert request.url == "https://api.example/v2/user/auth"
    assert b"user:pw" not in AuthExchange(request).bytes_to_send()


def test_auth_results_and_users_hide_secrets() -> None:
    directory = Directory(hash_factory=lambda: HASH)
    user = directory.add_user("demo", PASSWORD)
    success = directory.authenticate("demo", PASSWORD)
    assert isinstance(success, AuthSuccess)
    assert success.hash == HASH
    assert_hidden(user, success, api_key_session(HASH), User("x", PASSWORD))
    demo = [*DEMO_ITRACK, *DEMO_FLEETFREEDOM]
    assert not any("password" in repr(account) for account in demo)
    assert "demo" in repr(DEMO_ITRACK[0])


def test_auth_errors_hide_the_hash() -> None:
    body = f'{{"success":true,"hash":"{HASH}"'.encode()  # cut short: not JSON
    failures: list[Exception] = []
    for status, payload in ((200, body), (500, body + b"}")):
        exchange = AuthExchange(build_auth_request("http://h/", "demo", PASSWORD))
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        with pytest.raises((AuthDecodeError, AuthHTTPError)) as caught:
            exchange.receive_data(head + payload)
        failures.append(caught.value)
    assert_hidden(*failures)


def test_check_hash_does_not_quote_the_value() -> None:
    with pytest.raises(ValueError, match="16 characters") as caught:
        check_hash(PASSWORD)
    assert_hidden(caught.value)


def _itrack_server() -> ITrackServer:
    directory = Directory()
    directory.add_user("demo", PASSWORD)
    directory.add_api_key("demo", HASH)
    directory.add_tracker("demo", 1)
    target = "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-atmo-protocol=true"
    return ITrackServer(target + "&X-Atmosphere-Framework=2.3.6-javascript", directory)


def test_itrack_server_events_hide_the_hash() -> None:
    server = _itrack_server()
    server.connection_made(0.0)
    action = {"action": "subscribe", "hash": HASH}
    server.receive(json.dumps({**action, "requests": [{"type": "state", "trackers": [1]}]}), 1.0)
    server.receive(json.dumps({**action, "requests": [{"type": "nope"}]}), 2.0)
    events = server.events()
    received = [e for e in events if isinstance(e, ActionReceived)]
    rejected = [e for e in events if isinstance(e, ActionRejected)]
    assert received[0].hash == HASH
    assert HASH in rejected[0].text
    assert_hidden(*events)


def test_itrack_client_frames_carry_the_hash_but_events_do_not() -> None:
    client = ITrackClient("ws://h/v2/event/subscription", HASH)
    client.send(Subscribe([StateRequest([1])]))
    client.connection_made(0.0)
    client.receive("b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|", 0.0)
    assert HASH in client.data_to_send()[0]
    echo = json.dumps({"type": "weird", "hash": HASH})
    client.receive(echo, 1.0)
    client.receive(echo[:-1], 2.0)  # not JSON: InvalidMessage
    assert_hidden(*client.events(), parse_message(echo))


# -- the WebSocket stack ----------------------------------------------------------------------


def test_http_request_handled_hides_the_form_password() -> None:
    directory = Directory(hash_factory=lambda: HASH)
    directory.add_user("demo", PASSWORD)
    stack: ServerStack[Any] = ServerStack(lambda r: None, http_handler=AuthResponder(directory))
    stack.connection_made(0.0)
    form = f"login=demo&password={PASSWORD}".encode()
    stack.receive(
        b"POST /v2/user/auth?password=" + PASSWORD.encode() + b" HTTP/1.1\r\nHost: a\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nAuthorization: Basic "
        + PASSWORD.encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(form)
        + form,
        0.0,
    )
    (handled,) = [e for e in stack.events() if isinstance(e, HttpRequestHandled)]
    assert handled.status_code == 200
    assert PASSWORD.encode() in handled.body
    assert_hidden(handled)


def test_connected_and_upgrade_request_hide_the_ghost_id() -> None:
    hub = _hub()
    requests: list[UpgradeRequest] = []

    def factory(request: UpgradeRequest) -> Any:
        requests.append(request)
        return hub.connect(GHOST)

    server: ServerStack[Any] = ServerStack(factory)
    client_core = FleetFreedomClient("ws://h/", ghost_id=GHOST)
    client: ClientStack[Any] = ClientStack.from_url(
        client_core, client_core.url_to_open + "?ghostId=" + GHOST, subprotocols=[GHOST]
    )
    client.connection_made(0.0)
    server.connection_made(0.0)
    for _ in range(3):
        server.receive(client.data_to_send(), 0.0)
        client.receive(server.data_to_send(), 0.0)
    connected = [
        e for e in itertools.chain(client.events(), server.events()) if isinstance(e, Connected)
    ]
    assert len(connected) == 2
    assert GHOST in connected[1].target
    assert_hidden(*connected, *requests)


def test_driver_events_and_url_errors_hide_the_ghost_id() -> None:
    from trackwire.drivers._events import ReconnectFailed, Reconnecting
    from trackwire.ws import split_ws_url

    ghost = "3f2b8c1e-8d44-4a5e-9a51-0c7a5d2e4b11"
    assert ghost not in repr(Reconnecting(1, 0.5, f"wss://socket.example/{ghost}"))
    assert ghost not in repr(ReconnectFailed(1, f"could not open wss://h/?ghostId={ghost}"))
    with pytest.raises(ValueError, match="not a ws") as info:
        split_ws_url(f"ftp://h/{ghost}")
    assert ghost not in str(info.value)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('login {"username":"u","pass\\u0077ord":"hunter2"}x', "hunter2"),
        ("{'hash':'f4bf1b754034213653dad99c78c4b237'}", "f4bf1b754034213653dad99c78c4b237"),
        ('noop {"ghost\\u0049d": "3f2b8c1e-8d44-4a5e-9a51-0c7a5d2e4b11"', "3f2b8c1e"),
    ],
)
def test_oddly_spelled_keys_are_masked_too(text: str, secret: str) -> None:
    from trackwire._redact import redact
    from trackwire.fleetfreedom import InvalidMessage

    assert secret not in redact(text)
    assert secret not in repr(InvalidMessage(text, "invalid JSON"))


# -- URLs: user-info and secret query parameters, percent-encoded keys -------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pw@h/p", "http://***@h/p"),
        ("wss://user@h:443/", "wss://***@h:443/"),
        ("https://u:p@ss@h/x?password=pw", "https://***@h/x?password=***"),
        ("see http://a:b@c and ftp://x:y@z/q", "see http://***@c and ftp://***@z/q"),
        ("ws://host/path@not-user-info", None),
        ("mailto:someone@example.com", None),
        ("login=demo&pass%77ord=pw&x=1", "login=demo&pass%77ord=***&x=1"),
        ("%70assword=pw", "%70assword=***"),
        ("?PASS%57ORD=pw", "?PASS%57ORD=***"),
        ("new%50assword=pw;x", "new%50assword=***;x"),
        ("pass%2577ord=pw", "pass%2577ord=***"),  # encoded twice
        ("%67hostId=g&h%61sh=x", "%67hostId=***&h%61sh=***"),
        ("name%3D=pw&my%20password=x", None),  # "name=" and "my password": not secret keys
    ],
)
def test_redact_url_and_encoded_key_rules(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)
    assert redact(text.encode()) == (text if expected is None else expected).encode()


_URL_SECRET = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:%@", min_size=1
)


@given(_URL_SECRET, st.sampled_from(["http", "https", "ws", "wss", "ftp"]))
def test_no_user_info_survives_redaction(value: str, scheme: str) -> None:
    secret = "Zq" + value
    url = f"{scheme}://user:{secret}@host.example/p?a=1"
    for shown in (
        redact(url),
        redact_target(url),
        excerpt(url),
        str(RemoteProtocolError("x", frame=url)),
    ):
        assert secret not in shown
        assert "host.example" in shown


@given(
    st.sampled_from(["password", "newPassword", "hash", "ghostId", "current"]),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1),
)
def test_no_form_secret_survives_a_percent_encoded_key(
    key: str, encode: list[bool], value: str
) -> None:
    spelled = "".join(
        f"%{ord(ch):02X}" if flag else ch for ch, flag in zip(key, encode, strict=False)
    )
    secret = "Zq" + value
    body = f"login=demo&{spelled}={secret}&dealer_id=3"
    assert secret not in redact(body)
    assert secret.encode() not in redact(body.encode())
    assert secret not in redact_target("/v2/user/auth?" + body)


def test_url_errors_and_events_hide_credentials() -> None:
    url = f"ftp://demo:{PASSWORD}@h/v2/?password={PASSWORD}&hash={HASH}"
    with pytest.raises(ValueError, match="not an http") as refused:
        build_auth_request(url, "demo", PASSWORD)
    with pytest.raises(ValueError, match="no host") as hostless:
        build_auth_request(f"http://demo:{PASSWORD}@/?pass%77ord={PASSWORD}", "demo", PASSWORD)
    with pytest.raises(ValueError, match="not a ws") as ws_refused:
        split_ws_url(url)
    client = AtmosphereClient(f"http://demo:{PASSWORD}@h/p?hash={HASH}", inactivity_timeout=1.0)
    client.connection_made(0.0)
    client.receive("b623a15d-9623-4fd8-a9d3-697036635c29|0|X|", 0.0)
    client.receive(f'{{"note":"http://u:{PASSWORD}@x/"}}', 0.0)
    client.handle_timer(5.0)
    events = client.events()
    assert isinstance(events[-1], InactivityTimeout)
    assert PASSWORD in str(events[-1].close_url)  # the event keeps what the driver must send
    assert_hidden(refused.value, hostless.value, ws_refused.value, *events)
