"""The blocking client driver against the ``websockets`` library's server carrying our server
cores (Atmosphere, iTrack, FleetFreedom) on 127.0.0.1; see ``_ws_peer``."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _ws_peer import (
    ALICE,
    DEADLINE,
    GHOST,
    UUID,
    ThreadedPeer,
    atmosphere_factory,
    auth_server,
    closed_port,
    fleetfreedom_factory,
    fleetfreedom_hub,
    itrack_directory,
    itrack_factory,
    open_fds,
    self_signed,
    server_context,
    silent_listener,
)

from trackwire import (
    AtmosphereClient,
    Event,
    FleetFreedomClient,
    ITrackClient,
    LocalProtocolError,
    ReconnectPolicy,
)
from trackwire.atmosphere import Closed, Heartbeat, InactivityTimeout, Message, Opened, Reopened
from trackwire.drivers.blocking import (
    Connection,
    GaveUp,
    LoginRefused,
    ReconnectFailed,
    Reconnecting,
    connect,
    itrack_login,
)
from trackwire.fleetfreedom import (
    CloseRequested,
    Command,
    ConnectionResponse,
    SessionEnded,
    SessionResponse,
)
from trackwire.fleetfreedom import SubscribeResponse as FFSubscribeResponse
from trackwire.itrack import (
    ActionReceived,
    LogoutEvent,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    subscription_url,
)
from trackwire.ws import Connected, ConnectionClosed, HandshakeFailed, Rejected, StackState

FAST = ReconnectPolicy(initial=0.01, factor=1.0, jitter=0.0)


def until(conn: Connection[Any], predicate: Callable[[Event], bool]) -> list[Event]:
    """Events up to and including the first one ``predicate`` accepts (bounded wait)."""
    seen: list[Event] = []
    stop = time.monotonic() + DEADLINE
    while time.monotonic() < stop:
        event = conn.next_event(0.05)
        if event is None:
            assert not conn.closed, f"the connection ended: {seen}"
            continue
        seen.append(event)
        if predicate(event):
            return seen
    raise AssertionError(f"nothing matched within {DEADLINE} s: {seen}")


def pump(conn: Connection[Any], condition: Callable[[], bool]) -> list[Event]:
    """Keep the client running until ``condition()`` holds (bounded wait)."""
    seen: list[Event] = []
    stop = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < stop, f"condition not met within {DEADLINE} s: {seen}"
        event = conn.next_event(0.02)
        if event is not None:
            seen.append(event)
    return seen


def is_a(kind: type) -> Callable[[Event], bool]:
    return lambda event: isinstance(event, kind)


# -- Atmosphere -------------------------------------------------------------------------------


def test_atmosphere_handshake_messages_and_heartbeats_both_ways() -> None:
    with ThreadedPeer(atmosphere_factory(heartbeat_ms=50, server_heartbeat=0.05)) as peer:
        core = AtmosphereClient(peer.url())
        with connect(core, reconnect=None, headers=[("X-Trackwire-Test", "yes")]) as conn:
            events = until(conn, is_a(Opened))
            assert isinstance(events[0], Connected)
            assert events[-1] == Opened(UUID, 50, "X")
            assert conn.state is StackState.OPEN
            assert conn.core is core
            assert conn.send("hello") is None
            server = peer.connections[0]
            seen = pump(
                conn,
                lambda: server.events.count(Heartbeat()) >= 2 and Message("hello") in server.events,
            )
            seen += until(conn, lambda e: seen.count(Heartbeat()) + (e == Heartbeat()) >= 2)
            assert seen.count(Heartbeat()) >= 2  # the server's heartbeats arrived
            assert server.path.startswith("/v2/event/subscription?X-Atmosphere-tracking-id=0&")
            assert server.headers["X-Trackwire-Test"] == "yes"


def test_atmosphere_reconnects_with_its_tracking_id_and_closes_with_the_close_request() -> None:
    with ThreadedPeer(atmosphere_factory()) as peer:
        core = AtmosphereClient(peer.url())
        with connect(core, reconnect=FAST) as conn:
            until(conn, is_a(Opened))
            peer.drop()
            events = until(conn, is_a(Reopened))
            assert events[:2] == [Closed(resumable=True), ConnectionClosed(1006, by_peer=True)]
            reconnecting = events[2]
            assert isinstance(reconnecting, Reconnecting)
            assert reconnecting.attempt == 1
            assert f"X-Atmosphere-tracking-id={UUID}" in reconnecting.url
            assert isinstance(events[3], Connected)
            assert events[4:] == [Reopened(UUID)]
            assert f"X-Atmosphere-tracking-id={UUID}" in peer.connections[1].path
            conn.close()
            conn.close()  # idempotent: no second close request
            assert conn.state is StackState.CLOSED
            with pytest.raises(LocalProtocolError):
                conn.send("late")
            assert list(conn) == [
                ConnectionClosed(1000, by_peer=False),
                GaveUp("closed by the application"),
            ]
            assert conn.closed
            assert conn.next_event(0) is None
        assert len(peer.close_requests) == 1
        assert "X-Atmosphere-Transport=close" in peer.close_requests[0]
        assert f"X-Atmosphere-tracking-id={UUID}" in peer.close_requests[0]
        assert not core.resumable


def test_atmosphere_inactivity_timeout_sends_the_close_request_and_gives_up() -> None:
    with ThreadedPeer(atmosphere_factory(server_heartbeat=0)) as peer:
        core = AtmosphereClient(peer.url(), inactivity_timeout=0.1)
        with connect(core, reconnect=FAST) as conn:
            events = until(conn, is_a(GaveUp))
        timeout = next(e for e in events if isinstance(e, InactivityTimeout))
        assert timeout.close_url is not None
        assert events[-1] == GaveUp("the session ended for good")
        assert not any(isinstance(e, Reconnecting) for e in events)
        assert any(isinstance(e, ConnectionClosed) and not e.by_peer for e in events)
        assert len(peer.close_requests) == 1
        assert f"X-Atmosphere-tracking-id={UUID}" in peer.close_requests[0]


def test_next_event_returns_none_when_the_time_runs_out() -> None:
    with (
        ThreadedPeer(atmosphere_factory(server_heartbeat=0)) as peer,
        connect(AtmosphereClient(peer.url()), reconnect=None) as conn,
    ):
        until(conn, is_a(Opened))
        assert conn.next_event(0.01) is None
        assert not conn.closed


def test_close_before_any_event_and_close_twice() -> None:
    with ThreadedPeer(atmosphere_factory()) as peer:
        conn = connect(AtmosphereClient(peer.url()), reconnect=None)
        with conn:
            pass
        conn.close()
        assert conn.state is StackState.CLOSED
        assert list(conn)[-1] == GaveUp("closed by the application")
        assert peer.close_requests == []  # no handshake yet: the real client sends none


def test_a_server_that_never_answers_the_upgrade_fails_the_attempt() -> None:
    with silent_listener() as port:
        core = AtmosphereClient(f"ws://127.0.0.1:{port}/x")
        with connect(core, reconnect=None, connect_timeout=0.05) as conn:
            events = list(conn)
    assert isinstance(events[0], HandshakeFailed)
    assert events[1] == ReconnectFailed(0, "no handshake response within 0.05 s (state CONNECTING)")
    assert events[2:] == [GaveUp("reconnecting is off")]


def test_close_before_the_first_event_or_before_opening() -> None:
    conn = connect(AtmosphereClient(f"ws://127.0.0.1:{closed_port()}/x"))
    conn.close()
    assert list(conn) == [GaveUp("closed by the application")]  # no attempt was made
    with silent_listener() as port:
        with connect(AtmosphereClient(f"ws://127.0.0.1:{port}/x"), reconnect=None) as conn:
            assert conn.state.name == "CONNECTING"  # the upgrade awaits its answer
        assert conn.state is StackState.CLOSED
        assert list(conn) == [GaveUp("closed by the application")]


def test_a_refused_upgrade_is_a_failed_attempt() -> None:
    with ThreadedPeer(atmosphere_factory()) as peer:
        with connect(AtmosphereClient(peer.url("/forbidden")), reconnect=None) as conn:
            events = list(conn)
        assert isinstance(events[0], Rejected)
        assert events[0].status_code == 403
        assert events[1] == ReconnectFailed(0, "the server refused the upgrade with HTTP 403")
        assert events[2:] == [GaveUp("reconnecting is off")]


def test_connect_failures_are_reported_then_the_policy_gives_up() -> None:
    port = closed_port()
    url = f"ws://127.0.0.1:{port}/v2/event/subscription"
    core = AtmosphereClient("ws://127.0.0.1:9/elsewhere")
    policy = ReconnectPolicy(initial=0.01, jitter=0.0, max_attempts=2)
    with connect(core, url, reconnect=policy) as conn:
        events = list(conn)
    assert [type(e) for e in events] == [
        ReconnectFailed,
        Reconnecting,
        ReconnectFailed,
        Reconnecting,
        ReconnectFailed,
        GaveUp,
    ]
    failures = [e for e in events if isinstance(e, ReconnectFailed)]
    assert [f.attempt for f in failures] == [0, 1, 2]
    assert all("ConnectionRefusedError" in f.error for f in failures)
    assert [e.url for e in events if isinstance(e, Reconnecting)] == [url, url]
    assert events[-1] == GaveUp("no connection after 2 attempts")


def test_without_a_policy_a_failed_connect_gives_up_at_once() -> None:
    core = AtmosphereClient(f"ws://127.0.0.1:{closed_port()}/x")
    with connect(core, reconnect=None) as conn:
        events = list(conn)
    assert [type(e) for e in events] == [ReconnectFailed, GaveUp]
    assert events[-1] == GaveUp("reconnecting is off")


# -- iTrack -----------------------------------------------------------------------------------


def test_itrack_subscribes_resubscribes_after_a_drop_and_stops_after_logout() -> None:
    directory = itrack_directory()
    with ThreadedPeer(itrack_factory(directory)) as peer:
        core = ITrackClient(subscription_url(peer.url("/v2/")), ALICE)
        with connect(core, reconnect=FAST) as conn:
            conn.send(Subscribe([StateRequest([1])]))  # held until the handshake
            events = until(conn, is_a(StateEvent))
            assert isinstance(events[0], Connected)
            assert isinstance(events[1], Opened)
            assert isinstance(events[2], SubscribeResponse)
            assert events[2].results["state"].trackers == {1: "normal"}
            peer.drop()
            events = until(conn, is_a(StateEvent))
            kinds = [type(e) for e in events]
            assert Reconnecting in kinds
            assert Reopened in kinds
            assert SubscribeResponse in kinds  # the core re-sent its subscription
            second = peer.connections[1]
            assert f"X-Atmosphere-tracking-id={UUID}" in second.path
            assert any(isinstance(e, ActionReceived) for e in second.events)
            assert peer.run(lambda: second.core.push_logout(time.monotonic()))
            until(conn, is_a(LogoutEvent))
            peer.close()
            events = until(conn, is_a(GaveUp))
        assert events[-1] == GaveUp("the session ended for good")
        assert not any(isinstance(e, Reconnecting) for e in events)
        assert len(peer.connections) == 2


def test_itrack_login_returns_the_hash_or_raises() -> None:
    with auth_server(itrack_directory()) as base:
        assert itrack_login(base, "alice", "pw") == ALICE
        with pytest.raises(LoginRefused) as refused:
            itrack_login(base, "alice", "wrong")
    assert refused.value.failure.code == 102


# -- FleetFreedom -----------------------------------------------------------------------------


def test_fleetfreedom_login_reconnect_resubscribe_and_session_end() -> None:
    hub = fleetfreedom_hub()
    with ThreadedPeer(fleetfreedom_factory(hub)) as peer:
        core = FleetFreedomClient(peer.url("/"))
        with connect(core, reconnect=FAST) as conn:
            response = until(conn, is_a(ConnectionResponse))[-1]
            assert isinstance(response, ConnectionResponse)
            assert response.error_code == 8
            req_id = conn.send(Command.login("alice", "pw", "trackwire-tests"))
            assert isinstance(req_id, int)
            login = until(conn, is_a(SessionResponse))[-1]
            assert isinstance(login, SessionResponse)
            assert (login.req_id, login.error_code) == (req_id, 0)
            conn.send(Command.subscribe(7, ["assetGeneral"]))
            until(conn, is_a(FFSubscribeResponse))
            peer.drop()
            events = until(conn, is_a(FFSubscribeResponse))
            reconnecting = next(e for e in events if isinstance(e, Reconnecting))
            assert reconnecting.url.endswith("/" + GHOST)
            resumed = next(e for e in events if isinstance(e, ConnectionResponse))
            assert resumed.error_code == 0
            assert peer.connections[1].path == "/" + GHOST
            assert peer.connections[1].core.subscriptions == {7: frozenset({"assetGeneral"})}
            peer.run(lambda: hub.end_session(GHOST))
            events = until(conn, is_a(GaveUp))
        assert isinstance(events[0], SessionEnded)
        assert CloseRequested(1000, "session ended") in events
        assert ConnectionClosed(1000, "session ended", by_peer=False) in events
        assert events[-1] == GaveUp("the session ended for good")
        assert len(peer.connections) == 2


def test_fleetfreedom_logout_closes_and_never_reconnects() -> None:
    with ThreadedPeer(fleetfreedom_factory(fleetfreedom_hub())) as peer:
        with connect(FleetFreedomClient(peer.url("/")), reconnect=FAST) as conn:
            conn.send(Command.login("alice", "pw", "trackwire-tests"))  # held
            until(conn, is_a(SessionResponse))
            conn.send(Command.logout())
            events = until(conn, is_a(GaveUp))
        assert any(isinstance(e, CloseRequested) for e in events)
        assert not any(isinstance(e, Reconnecting) for e in events)
        assert len(peer.connections) == 1


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_tls_verifies_certificates_by_default(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with ThreadedPeer(atmosphere_factory(), ssl_context=server_context(cert, key)) as peer:
        assert peer.url().startswith("wss://")
        with connect(AtmosphereClient(peer.url()), reconnect=None) as conn:
            events = list(conn)
        assert isinstance(events[0], ReconnectFailed)
        assert "CERTIFICATE_VERIFY_FAILED" in events[0].error
        assert events[1:] == [GaveUp("reconnecting is off")]

        trusting = ssl.create_default_context(cafile=str(cert))
        with connect(AtmosphereClient(peer.url()), ssl_context=trusting, reconnect=None) as conn:
            assert until(conn, is_a(Opened))[-1] == Opened(UUID, 0, "X")
        assert len(peer.close_requests) == 1  # over https, with the same context


# -- resources --------------------------------------------------------------------------------


@pytest.fixture
def no_leaks() -> Iterator[None]:
    fds, threads = open_fds(), threading.active_count()
    yield
    assert (open_fds(), threading.active_count()) == (fds, threads)


@pytest.mark.usefixtures("no_leaks")
def test_no_socket_or_thread_outlives_the_connection() -> None:
    with ThreadedPeer(atmosphere_factory()) as peer:
        with connect(AtmosphereClient(peer.url()), reconnect=FAST) as conn:
            until(conn, is_a(Opened))
            peer.drop()
            until(conn, is_a(Reopened))
        with connect(AtmosphereClient(f"ws://127.0.0.1:{closed_port()}/"), reconnect=None) as c:
            assert list(c)[-1] == GaveUp("reconnecting is off")
