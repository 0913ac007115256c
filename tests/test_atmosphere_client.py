"""The Atmosphere client core against every frame sequence quoted in the spec."""

from __future__ import annotations

import pytest

from trackwire import ClientCore, ITrackClient, LocalProtocolError, RemoteProtocolError
from trackwire.atmosphere import (
    AtmosphereClient,
    ClientState,
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
    Reopened,
)

UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"


def opened(
    track: bool = False, handshake: str = f"{UUID}|30000|X|", **kw: object
) -> AtmosphereClient:
    client = AtmosphereClient("http://h/p", track_message_length=track, **kw)  # type: ignore[arg-type]
    client.connection_made(0.0)
    client.receive(f"{len(handshake)}|{handshake}" if track else handshake, 0.0)
    client.events()
    return client


def feed(client: AtmosphereClient, *frames: str, now: float = 1.0) -> list[object]:
    for frame in frames:
        client.receive(frame, now)
    return list(client.events())


def messages(client: AtmosphereClient, *frames: str) -> list[str]:
    return [e.data for e in feed(client, *frames) if isinstance(e, Message)]


# -- handshake (spec §2) -----------------------------------------------------------------


def test_handshake_opens_with_uuid_interval_and_padding() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    assert client.state is ClientState.AWAITING_HANDSHAKE
    assert feed(client, f"{UUID}|30000|X|") == [Opened(UUID, 30000, "X")]
    assert client.state is ClientState.OPEN
    assert client.tracking_id == UUID
    assert client.heartbeat_interval == 30.0
    assert "X-Atmosphere-tracking-id=" + UUID in client.url_to_open


def test_handshake_with_length_prefix() -> None:
    client = AtmosphereClient("http://h/p", track_message_length=True)
    client.connection_made(0.0)
    assert feed(client, f"45|{UUID}|30000|X|") == [Opened(UUID, 30000, "X")]


def test_handshake_without_heartbeat_support() -> None:
    client = opened(handshake=f"{UUID}|0||")
    assert client.padding == ""
    assert client.heartbeat_interval == 0
    assert client.next_deadline() == 300.0  # only the inactivity timeout


def test_padding_is_not_trimmed_but_uuid_is() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    assert feed(client, f" {UUID} | 1000 | X |") == [Opened(UUID, 1000, " X ")]
    client.handle_timer(2.0)
    assert client.data_to_send() == [" X "]


def test_single_trailing_message_after_handshake_is_dropped() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    assert feed(client, f'{UUID}|0|X|{{"a":1}}') == [Opened(UUID, 0, "X")]


def test_two_trailing_pieces_are_delivered_joined() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    assert feed(client, f"{UUID}|0|X|a|b") == [Opened(UUID, 0, "X"), Message("a|b")]


def test_trailing_message_with_track_message_size() -> None:
    client = AtmosphereClient("http://h/p", track_message_length=True)
    client.connection_made(0.0)
    assert feed(client, f"45|{UUID}|0|X|5|hello") == [Opened(UUID, 0, "X"), Message("hello")]


def test_interval_read_by_parse_int_radix_10() -> None:
    for field, interval in [("6e4", 6), ("0x10", 0), ("60000abc", 60000), ("abc", 0), ("-5", -5)]:
        client = AtmosphereClient("http://h/p")
        client.connection_made(0.0)
        assert feed(client, f"u|{field}|X|") == [Opened("u", interval, "X")]
        assert client.heartbeat_interval == (interval / 1000 if interval > 0 else 0)


def test_interval_leading_zeros_do_not_count_toward_the_digit_bound() -> None:
    # parseInt("0000000000000150") is 150: 16 characters, 3 significant digits.
    cases = [
        ("0000000000000150", 150),
        (" +000000000000000000150x", 150),
        ("-00000000000000000007", -7),
        ("0" * 5000, 0),
        ("0" * 5000 + "9" * 16, 0),  # 16 significant digits: NaN, no heartbeat
        ("9" * 15, 10**15 - 1),
    ]
    for field, interval in cases:
        client = AtmosphereClient("http://h/p")
        client.connection_made(0.0)
        assert feed(client, f"u|{field}|X|") == [Opened("u", interval, "X")]
        assert client.heartbeat_interval == (interval / 1000 if interval > 0 else 0)


def test_close_request_stamp_is_now_plus_the_wall_offset() -> None:
    # ``now`` is the driver's clock (trio's starts anywhere); ``_`` is a date, as
    # atmosphere.js's jQuery.now() gives it: the core reads no clock, the offset says how.
    url = opened(wall_offset=1_700_000_000.0).close(62431.578)
    assert url is not None
    assert url.endswith("&_=1700062431578")
    client = opened(inactivity_timeout=5.0, wall_offset=1_700_000_000.0)
    client.handle_timer(7.0)
    (timeout,) = [e for e in client.events() if isinstance(e, InactivityTimeout)]
    assert timeout.close_url is not None
    assert timeout.close_url.endswith("&_=1700000007000")
    url = opened().close(62431.578)  # no offset: ``now`` itself
    assert url is not None
    assert url.endswith("&_=62431578")


def test_the_drivers_session_gives_the_core_its_clock_s_wall_offset() -> None:
    # Every driver builds a ClientSession with ``time.time() - <its clock>()``; the trio one
    # is judged end to end by the kit (tests/test_conformance_runner_client.py).
    from trackwire.drivers._session import ClientSession

    for core in (AtmosphereClient("http://h/p"), ITrackClient("http://h/p", "a" * 32)):
        ClientSession(core, wall_offset=1_700_000_000.0)
        transport = getattr(core, "transport", core)
        assert transport.wall_offset == 1_700_000_000.0
    mine = AtmosphereClient("http://h/p", wall_offset=5.0)
    ClientSession(mine, wall_offset=1_700_000_000.0)
    assert mine.wall_offset == 5.0  # an offset given to the core is kept


def test_missing_padding_field_sends_undefined() -> None:
    client = AtmosphereClient("http://h/p", inactivity_timeout=0)
    client.connection_made(0.0)
    assert feed(client, "u|1000") == [Opened("u", 1000, None)]
    client.handle_timer(2.0)
    assert client.data_to_send() == ["undefined"]
    assert messages(client, "undefined") == ["undefined"]


def test_unprefixed_handshake_with_track_message_size_on() -> None:
    # The real client reads field 1 as the uuid: "0", with a NaN interval and empty padding.
    client = AtmosphereClient("http://h/p", track_message_length=True)
    client.connection_made(0.0)
    assert feed(client, f"{UUID}|0|X|") == [Opened("0", 0, "")]
    assert client.handshake_received
    client.receive_eof(1.0)
    client.reconnect()
    client.connection_made(2.0)
    assert client.state is ClientState.AWAITING_REOPEN
    assert "X-Atmosphere-tracking-id=0&" in client.url_to_open


def test_too_few_fields_is_an_ordinary_message() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    assert feed(client, "hello") == [Message("hello")]
    assert client.state is ClientState.AWAITING_HANDSHAKE
    assert feed(client, f"{UUID}|0|X|")[0] == Opened(UUID, 0, "X")


def test_second_handshake_is_ordinary_data() -> None:
    client = opened()
    assert messages(client, "other-uuid|30000|X|") == ["other-uuid|30000|X|"]
    assert client.tracking_id == UUID


def test_protocol_off_opens_on_socket_open_and_keeps_tracking_id_zero() -> None:
    client = AtmosphereClient("http://h/p", enable_protocol=False)
    client.connection_made(0.0)
    assert client.events() == [Opened("0", 0, "X")]
    assert client.state is ClientState.OPEN
    assert messages(client, f"{UUID}|30000|X|") == [f"{UUID}|30000|X|"]
    assert client.tracking_id == "0"
    assert client.close(1.0) is None


# -- TrackMessageSize (spec §3) ----------------------------------------------------------


def test_many_messages_in_one_frame() -> None:
    assert messages(opened(True), "3|abc5|hello") == ["abc", "hello"]


def test_message_split_across_frames() -> None:
    client = opened(True)
    assert messages(client, "10|01234") == []
    assert messages(client, "56789") == ["0123456789"]


def test_partial_then_rest_in_next_frame() -> None:
    assert messages(opened(True), "3|abc4|de", "fg") == ["abc", "defg"]


def test_frame_without_delimiter_is_raw() -> None:
    client = opened(True)
    assert feed(client, "X") == [Heartbeat()]
    assert messages(client, "1") == ["1"]


def test_pending_partial_glued_to_a_frame_without_delimiter() -> None:
    client = opened(True)
    assert messages(client, "5|hello1") == ["hello"]
    assert messages(client, "2") == ["12"]  # delivered, and "1" stays pending
    assert messages(client, "|abcdefghijkl") == ["a"]


def test_prefixed_heartbeat() -> None:
    assert feed(opened(True), "1|X") == [Heartbeat()]


def test_lengths_count_utf16_units() -> None:
    assert messages(opened(True), "1|é2|😀3|a😀") == ["é", "😀", "a😀"]


def test_length_not_a_number_is_corruption() -> None:
    client = opened(True)
    with pytest.raises(RemoteProtocolError, match="not a number"):
        client.receive("abc|def", 1.0)
    assert client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        client.receive("3|abc", 1.0)


def test_wrong_numeric_length_fails_on_the_next_frame() -> None:
    client = opened(True)
    assert messages(client, "2|abc") == ["ab"]
    with pytest.raises(RemoteProtocolError):
        client.receive("3|xyz", 1.0)


def test_partial_over_the_limit_is_corruption() -> None:
    client = opened(True, max_message_size=10)
    with pytest.raises(RemoteProtocolError, match="limit"):
        client.receive("11|0123", 1.0)
    assert client.state is ClientState.ERROR


def test_javascript_number_spellings_of_a_length() -> None:
    client = opened(True)
    assert messages(client, " 3 |abc") == ["abc"]
    assert messages(client, "0x3|abc") == ["abc"]
    assert messages(client, "3.9|abc") == ["abc"]
    with pytest.raises(RemoteProtocolError, match="negative"):
        client.receive("-1|abc", 1.0)


def test_empty_length_reads_as_zero() -> None:
    client = opened(True)
    assert messages(client, "|3|abc") == ["abc"]


def test_whitespace_and_empty_messages_are_not_delivered() -> None:
    client = opened()
    assert feed(client, "   ", "", "\n") == []


def test_messages_are_trimmed() -> None:
    assert messages(opened(), '  {"a": 1}\n') == ['{"a": 1}']


def test_heartbeat_observable_as_its_own_event() -> None:
    assert feed(opened(), "X", " X ") == [Heartbeat(), Heartbeat()]


def test_lowercase_x_is_data() -> None:
    assert messages(opened(), "x") == ["x"]


def test_padding_compared_untrimmed() -> None:
    # Messages are trimmed before the comparison, so a padding with spaces never matches.
    client = opened(handshake="u|0| X |")
    assert messages(client, "X", " X ") == ["X", "X"]


# -- heartbeats and inactivity (spec §4) ----------------------------------------------


def test_heartbeat_on_fixed_cadence_not_reset_by_traffic() -> None:
    client = AtmosphereClient("http://h/p", inactivity_timeout=0)
    client.connection_made(0.0)
    client.receive(f"{UUID}|1000|X|", 10.0)
    assert client.next_deadline() == 11.0
    client.receive("data", 10.5)
    client.send("hello")
    assert client.next_deadline() == 11.0
    client.handle_timer(11.0)
    assert client.data_to_send() == ["hello", "X"]
    assert client.next_deadline() == 12.0


def test_no_heartbeat_before_deadline() -> None:
    client = opened(inactivity_timeout=0)
    client.handle_timer(29.9)
    assert client.data_to_send() == []


def test_inactivity_timeout_rearmed_by_every_frame() -> None:
    client = opened(handshake=f"{UUID}|0|X|", inactivity_timeout=5.0)
    assert client.next_deadline() == 5.0
    client.receive("X", 4.0)
    assert client.next_deadline() == 9.0
    client.handle_timer(8.9)
    assert client.events() == [Heartbeat()]
    client.handle_timer(9.0)
    (event,) = client.events()
    assert isinstance(event, InactivityTimeout)
    assert event.close_url is not None
    assert "X-Atmosphere-Transport=close&X-Atmosphere-tracking-id=" + UUID in event.close_url
    assert client.state is ClientState.CLOSED
    assert client.close(9.5) is None  # the timeout already sent the close request
    with pytest.raises(LocalProtocolError):
        client.reconnect()


def test_inactivity_timeout_zero_is_off() -> None:
    client = opened(handshake=f"{UUID}|0|X|", inactivity_timeout=0)
    assert client.next_deadline() is None


def test_timeout_before_handshake_has_no_close_request() -> None:
    client = AtmosphereClient("http://h/p", inactivity_timeout=2.0)
    client.connection_made(0.0)
    client.handle_timer(2.0)
    assert client.events() == [InactivityTimeout(None)]


# -- reconnect (spec §5) ------------------------------------------------------------------


def test_reconnect_same_tracking_id_and_reopen_on_first_frame() -> None:
    client = opened()
    client.receive_eof(5.0)
    assert client.events() == [Closed(resumable=True)]
    assert client.state is ClientState.CLOSED
    client.reconnect()
    assert client.state is ClientState.CONNECTING
    assert "X-Atmosphere-tracking-id=" + UUID in client.url_to_open
    client.connection_made(6.0)
    assert client.state is ClientState.AWAITING_REOPEN
    assert client.events() == []
    client.receive(" " * 2048 + "\n", 6.1)
    assert client.events() == [Reopened(UUID)]
    assert client.state is ClientState.OPEN
    assert client.next_deadline() == 36.1


def test_reopen_frame_with_data_is_delivered() -> None:
    client = opened()
    client.receive_eof(1.0)
    client.reconnect()
    client.connection_made(2.0)
    client.events()
    assert feed(client, '{"type":"event"}') == [Reopened(UUID), Message('{"type":"event"}')]


def test_handshake_looking_frame_after_reconnect_is_data() -> None:
    client = opened()
    client.receive_eof(1.0)
    client.reconnect()
    client.connection_made(2.0)
    client.events()
    assert feed(client, "new|30000|X|") == [Reopened(UUID), Message("new|30000|X|")]
    assert client.tracking_id == UUID


def test_reconnect_before_any_handshake_expects_one() -> None:
    client = AtmosphereClient("http://h/p")
    client.connection_made(0.0)
    client.receive_eof(0.5)
    assert client.events() == [Closed(resumable=True)]
    client.reconnect()
    client.connection_made(1.0)
    assert client.state is ClientState.AWAITING_HANDSHAKE


def test_partial_buffer_dropped_on_reconnect() -> None:
    client = opened(True)
    assert messages(client, "10|01234") == []
    client.receive_eof(1.0)
    client.reconnect()
    client.connection_made(2.0)
    assert messages(client, "3|abc") == ["abc"]


def test_reconnect_after_corruption() -> None:
    client = opened(True)
    with pytest.raises(RemoteProtocolError):
        client.receive("zz|", 1.0)
    client.reconnect()
    client.connection_made(2.0)
    assert feed(client, "1|X") == [Reopened(UUID), Heartbeat()]


# -- API misuse and close (spec §6) -------------------------------------------------------


def test_send_before_open_is_refused() -> None:
    client = AtmosphereClient("http://h/p")
    with pytest.raises(LocalProtocolError, match="SEND"):
        client.send("x")
    client.connection_made(0.0)
    with pytest.raises(LocalProtocolError, match="AWAITING_HANDSHAKE"):
        client.send("x")


def test_receive_before_connection_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        AtmosphereClient("http://h/p").receive("x", 0.0)


def test_close_returns_close_request_and_is_final() -> None:
    client = opened()
    url = client.close(2.0, timestamp_ms=1234)
    assert url == f"http://h/p?X-Atmosphere-Transport=close&X-Atmosphere-tracking-id={UUID}&_=1234"
    assert client.state is ClientState.CLOSED
    assert client.next_deadline() is None
    assert client.close(3.0) is None  # idempotent, and the request goes only once
    with pytest.raises(LocalProtocolError):
        client.reconnect()


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="delimiter"):
        AtmosphereClient("ws://h/", delimiter="")
    with pytest.raises(ValueError, match="inactivity"):
        AtmosphereClient("ws://h/", inactivity_timeout=-1)


def test_client_cores_satisfy_the_client_core_protocol() -> None:
    client = AtmosphereClient("http://h/p")
    assert isinstance(client, ClientCore)
    assert isinstance(ITrackClient("http://h/p", "0" * 32), ClientCore)
    assert client.resumable
    client.connection_made(0.0)
    client.receive("u|0|X|", 0.0)
    assert client.resumable
    client.close(1.0)
    assert not client.resumable


def test_after_corruption_no_stale_deadline_and_one_close_request() -> None:
    client = opened(True)  # heartbeat due at 30
    with pytest.raises(RemoteProtocolError):
        client.receive("zz|", 1.0)
    assert client.next_deadline() is None
    assert client.close(2.0) is not None
    assert client.close(3.0) is None
