"""The asyncio client driver against the ``websockets`` library's server carrying our server
cores (Atmosphere, iTrack, FleetFreedom) on 127.0.0.1, in the test's own event loop.

pytest runs in trio mode, so every test is synchronous and runs its own ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _ws_peer import (
    ALICE,
    DEADLINE,
    GHOST,
    UUID,
    Peer,
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
from trackwire.drivers.asyncio import (
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


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` in a fresh event loop, bounded in time."""

    async def bounded() -> None:
        await asyncio.wait_for(main(), 3 * DEADLINE)

    asyncio.run(bounded())


async def serving(peer: Peer) -> Peer:
    await peer.start()
    return peer


async def until(conn: Connection[Any], predicate: Callable[[Event], bool]) -> list[Event]:
    """Events up to and including the first one ``predicate`` accepts (bounded wait)."""
    seen: list[Event] = []
    loop = asyncio.get_running_loop()
    stop = loop.time() + DEADLINE
    while loop.time() < stop:
        event = await conn.next_event(0.05)
        if event is None:
            assert not conn.closed, f"the connection ended: {seen}"
            continue
        seen.append(event)
        if predicate(event):
            return seen
    raise AssertionError(f"nothing matched within {DEADLINE} s: {seen}")


async def wait_for(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < stop, f"condition not met within {DEADLINE} s"
        await asyncio.sleep(0.01)


def is_a(kind: type) -> Callable[[Event], bool]:
    return lambda event: isinstance(event, kind)


async def collect(conn: Connection[Any]) -> list[Event]:
    return [event async for event in conn]


# -- Atmosphere -------------------------------------------------------------------------------


def test_atmosphere_handshake_messages_and_heartbeats_both_ways() -> None:
    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory(heartbeat_ms=50, server_heartbeat=0.05)))
        core = AtmosphereClient(peer.url())
        async with connect(core, reconnect=None) as conn:
            events = await until(conn, is_a(Opened))
            assert isinstance(events[0], Connected)
            assert events[-1] == Opened(UUID, 50, "X")
            assert conn.state is StackState.OPEN
            assert conn.core is core
            assert await conn.send("hello") is None
            server = peer.connections[0]
            await wait_for(
                lambda: server.events.count(Heartbeat()) >= 2 and Message("hello") in server.events
            )
            await until(conn, is_a(Heartbeat))
            await until(conn, is_a(Heartbeat))  # the server's heartbeats arrive too
        await peer.stop()

    run(main)


def test_atmosphere_reconnects_with_its_tracking_id_and_closes_with_the_close_request() -> None:
    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory()))
        core = AtmosphereClient(peer.url())
        async with connect(core, reconnect=FAST) as conn:
            await until(conn, is_a(Opened))
            await peer.drop()
            events = await until(conn, is_a(Reopened))
            assert events[:2] == [Closed(resumable=True), ConnectionClosed(1006, by_peer=True)]
            reconnecting = events[2]
            assert isinstance(reconnecting, Reconnecting)
            assert reconnecting.attempt == 1
            assert f"X-Atmosphere-tracking-id={UUID}" in reconnecting.url
            assert isinstance(events[3], Connected)
            assert events[4:] == [Reopened(UUID)]
            assert f"X-Atmosphere-tracking-id={UUID}" in peer.connections[1].path
            await conn.aclose()
            await conn.aclose()  # idempotent: no second close request
            assert conn.state is StackState.CLOSED
            with pytest.raises(LocalProtocolError):
                await conn.send("late")
            assert await collect(conn) == [
                ConnectionClosed(1000, by_peer=False),
                GaveUp("closed by the application"),
            ]
            assert conn.closed
            assert await conn.next_event(0) is None
        assert len(peer.close_requests) == 1
        assert f"X-Atmosphere-tracking-id={UUID}" in peer.close_requests[0]
        assert not core.resumable
        await peer.stop()

    run(main)


def test_atmosphere_inactivity_timeout_sends_the_close_request_and_gives_up() -> None:
    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory(server_heartbeat=0)))
        core = AtmosphereClient(peer.url(), inactivity_timeout=0.1)
        async with connect(core, reconnect=FAST) as conn:
            events = await until(conn, is_a(GaveUp))
        timeout = next(e for e in events if isinstance(e, InactivityTimeout))
        assert timeout.close_url is not None
        assert events[-1] == GaveUp("the session ended for good")
        assert not any(isinstance(e, Reconnecting) for e in events)
        assert len(peer.close_requests) == 1
        await peer.stop()

    run(main)


def test_next_event_returns_none_when_the_time_runs_out() -> None:
    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory(server_heartbeat=0)))
        async with connect(AtmosphereClient(peer.url()), reconnect=None) as conn:
            await until(conn, is_a(Opened))
            assert await conn.next_event(0.01) is None
            assert not conn.closed
        await peer.stop()

    run(main)


def test_a_send_that_brings_a_deadline_forward_wakes_the_reader() -> None:
    async def main() -> None:
        hub = fleetfreedom_hub()
        hub.extra_commands = frozenset({"neverAnswered"})
        peer = await serving(Peer(fleetfreedom_factory(hub)))
        core = FleetFreedomClient(peer.url("/"), keepalive=0)
        async with connect(core, reconnect=None) as conn:
            await until(conn, is_a(ConnectionResponse))
            await conn.send(Command.login("alice", "pw", "trackwire-tests"))
            await until(conn, is_a(SessionResponse))
            # The reader waits with no deadline; this command's timeout must still fire.
            req_id = await conn.send(Command("neverAnswered", {}, timeout=0.05))
            failed = (await until(conn, lambda e: type(e).__name__ == "CommandFailed"))[-1]
            assert failed.req_id == req_id  # type: ignore[attr-defined]
        await peer.stop()

    run(main)


def test_a_small_event_queue_holds_the_reader_back_and_loses_nothing() -> None:
    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory(server_heartbeat=0)))
        core = AtmosphereClient(peer.url())
        async with connect(core, reconnect=None, queue_size=2) as conn:
            await until(conn, is_a(Opened))
            server = peer.connections[0].core
            await peer.run(lambda: [server.send(f"m{i}") for i in range(50)])
            messages: list[Event] = []
            while len(messages) < 50:
                messages += await until(conn, is_a(Message))
        assert messages == [Message(f"m{i}") for i in range(50)]
        await peer.stop()

    run(main)


def test_a_server_that_never_answers_the_upgrade_fails_the_attempt() -> None:
    async def main(port: int) -> None:
        core = AtmosphereClient(f"ws://127.0.0.1:{port}/x")
        async with connect(core, reconnect=None, connect_timeout=0.05) as conn:
            events = await collect(conn)
        assert isinstance(events[0], HandshakeFailed)
        assert events[1] == ReconnectFailed(
            0, "no handshake response within 0.05 s (state CONNECTING)"
        )
        assert events[2:] == [GaveUp("reconnecting is off")]

    with silent_listener() as port:
        run(lambda: main(port))


def test_close_before_opening_or_during_the_handshake() -> None:
    async def main(port: int) -> None:
        conn = connect(AtmosphereClient(f"ws://127.0.0.1:{closed_port()}/x"))
        await conn.aclose()
        assert await collect(conn) == [GaveUp("closed by the application")]  # no attempt
        async with connect(AtmosphereClient(f"ws://127.0.0.1:{port}/x"), reconnect=None) as conn:
            await wait_for(lambda: conn.state is StackState.CONNECTING)
            # Closing abandons the handshake at once, not after the close timeout.
            await asyncio.wait_for(conn.aclose(), DEADLINE / 2)
        assert conn.state is StackState.CLOSED
        assert await collect(conn) == [GaveUp("closed by the application")]

    with silent_listener() as port:
        run(lambda: main(port))


def test_a_refused_upgrade_is_a_failed_attempt() -> None:
    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory()))
        async with connect(AtmosphereClient(peer.url("/forbidden")), reconnect=None) as conn:
            events = await collect(conn)
        assert isinstance(events[0], Rejected)
        assert events[0].status_code == 403
        assert events[1] == ReconnectFailed(0, "the server refused the upgrade with HTTP 403")
        assert events[2:] == [GaveUp("reconnecting is off")]
        await peer.stop()

    run(main)


def test_connect_failures_are_reported_then_the_policy_gives_up() -> None:
    async def main() -> None:
        url = f"ws://127.0.0.1:{closed_port()}/v2/event/subscription"
        core = AtmosphereClient("ws://127.0.0.1:9/elsewhere")
        policy = ReconnectPolicy(initial=0.01, jitter=0.0, max_attempts=2)
        async with connect(core, url, reconnect=policy) as conn:
            events = await collect(conn)
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

    run(main)


def test_aclose_while_waiting_to_reconnect_ends_at_once() -> None:
    async def main() -> None:
        core = AtmosphereClient(f"ws://127.0.0.1:{closed_port()}/x")
        policy = ReconnectPolicy(initial=60.0, jitter=0.0)
        async with connect(core, reconnect=policy) as conn:
            events = await until(conn, is_a(Reconnecting))
            assert conn.state is StackState.CLOSED
        assert [type(e) for e in events] == [ReconnectFailed, Reconnecting]
        assert await collect(conn) == [GaveUp("closed by the application")]

    run(main)


# -- iTrack -----------------------------------------------------------------------------------


def test_itrack_subscribes_resubscribes_after_a_drop_and_stops_after_logout() -> None:
    async def main() -> None:
        peer = await serving(Peer(itrack_factory(itrack_directory())))
        core = ITrackClient(subscription_url(peer.url("/v2/")), ALICE)
        async with connect(core, reconnect=FAST) as conn:
            await conn.send(Subscribe([StateRequest([1])]))  # held until the handshake
            events = await until(conn, is_a(StateEvent))
            assert [type(e) for e in events[:3]] == [Connected, Opened, SubscribeResponse]
            await peer.drop()
            events = await until(conn, is_a(StateEvent))
            kinds = [type(e) for e in events]
            assert Reconnecting in kinds
            assert Reopened in kinds
            assert SubscribeResponse in kinds  # the core re-sent its subscription
            second = peer.connections[1]
            assert f"X-Atmosphere-tracking-id={UUID}" in second.path
            assert any(isinstance(e, ActionReceived) for e in second.events)
            assert await peer.run(lambda: second.core.push_logout(time.monotonic()))
            await until(conn, is_a(LogoutEvent))
            await peer.close()
            events = await until(conn, is_a(GaveUp))
        assert events[-1] == GaveUp("the session ended for good")
        assert not any(isinstance(e, Reconnecting) for e in events)
        assert len(peer.connections) == 2
        await peer.stop()

    run(main)


def test_itrack_login_returns_the_hash_or_raises() -> None:
    async def main(base: str) -> None:
        assert await itrack_login(base, "alice", "pw") == ALICE
        with pytest.raises(LoginRefused) as refused:
            await itrack_login(base, "alice", "wrong")
        assert refused.value.failure.code == 102

    with auth_server(itrack_directory()) as base:
        run(lambda: main(base))


# -- FleetFreedom -----------------------------------------------------------------------------


def test_fleetfreedom_login_reconnect_resubscribe_and_session_end() -> None:
    async def main() -> None:
        hub = fleetfreedom_hub()
        peer = await serving(Peer(fleetfreedom_factory(hub)))
        async with connect(FleetFreedomClient(peer.url("/")), reconnect=FAST) as conn:
            response = (await until(conn, is_a(ConnectionResponse)))[-1]
            assert isinstance(response, ConnectionResponse)
            assert response.error_code == 8
            req_id = await conn.send(Command.login("alice", "pw", "trackwire-tests"))
            assert isinstance(req_id, int)
            login = (await until(conn, is_a(SessionResponse)))[-1]
            assert isinstance(login, SessionResponse)
            assert (login.req_id, login.error_code) == (req_id, 0)
            await conn.send(Command.subscribe(7, ["assetGeneral"]))
            await until(conn, is_a(FFSubscribeResponse))
            await peer.drop()
            events = await until(conn, is_a(FFSubscribeResponse))
            reconnecting = next(e for e in events if isinstance(e, Reconnecting))
            assert reconnecting.url.endswith("/" + GHOST)
            assert peer.connections[1].path == "/" + GHOST
            assert peer.connections[1].core.subscriptions == {7: frozenset({"assetGeneral"})}
            await peer.run(lambda: hub.end_session(GHOST))
            events = await until(conn, is_a(GaveUp))
        assert isinstance(events[0], SessionEnded)
        assert CloseRequested(1000, "session ended") in events
        assert ConnectionClosed(1000, "session ended", by_peer=False) in events
        assert events[-1] == GaveUp("the session ended for good")
        await peer.stop()

    run(main)


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_tls_verifies_certificates_by_default(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate

    async def main() -> None:
        peer = await serving(Peer(atmosphere_factory(), ssl_context=server_context(cert, key)))
        assert peer.url().startswith("wss://")
        async with connect(AtmosphereClient(peer.url()), reconnect=None) as conn:
            events = await collect(conn)
        assert isinstance(events[0], ReconnectFailed)
        assert "CERTIFICATE_VERIFY_FAILED" in events[0].error
        assert events[1:] == [GaveUp("reconnecting is off")]

        trusting = ssl.create_default_context(cafile=str(cert))
        client = AtmosphereClient(peer.url())
        async with connect(client, ssl_context=trusting, reconnect=None) as conn:
            assert (await until(conn, is_a(Opened)))[-1] == Opened(UUID, 0, "X")
        assert len(peer.close_requests) == 1  # over https, with the same context
        await peer.stop()

    run(main)


# -- resources and cancellation ---------------------------------------------------------------


def test_cancelled_aclose_still_closes_the_socket_and_leaks_nothing() -> None:
    fds = open_fds()

    async def main() -> None:
        tasks = asyncio.all_tasks()
        peer = await serving(Peer(atmosphere_factory()))
        conn = connect(AtmosphereClient(peer.url()), reconnect=FAST)
        async with conn:
            await until(conn, is_a(Opened))
            await peer.drop()
            await until(conn, is_a(Reopened))
            closing = asyncio.get_running_loop().create_task(conn.aclose())
            await asyncio.sleep(0)  # aclose is under way (its close request)
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
        await conn.aclose()  # idempotent after a cancelled close
        events = await collect(conn)
        assert conn.closed
        assert not any(isinstance(e, Reconnecting) for e in events)
        await peer.stop()
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == tasks

    run(main)
    assert open_fds() == fds


def test_no_task_or_socket_outlives_the_connection() -> None:
    fds = open_fds()

    async def main() -> None:
        tasks = asyncio.all_tasks()
        peer = await serving(Peer(atmosphere_factory()))
        async with connect(AtmosphereClient(peer.url()), reconnect=FAST) as conn:
            await until(conn, is_a(Opened))
            await peer.drop()
            await until(conn, is_a(Reopened))
        core = AtmosphereClient(f"ws://127.0.0.1:{closed_port()}/")
        async with connect(core, reconnect=None) as failing:
            assert (await collect(failing))[-1] == GaveUp("reconnecting is off")
        await peer.stop()
        assert asyncio.all_tasks() == tasks

    run(main)
    assert open_fds() == fds
