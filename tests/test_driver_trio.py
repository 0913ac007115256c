"""The trio driver end to end on 127.0.0.1: our client against our server, for the Atmosphere,
iTrack and FleetFreedom cores (handshake, traffic both ways, heartbeats, a dropped socket and
the resumed session, logout / session end, the close request, aclose)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import pytest
import trio

from trackwire import Event, LocalProtocolError, ReconnectPolicy
from trackwire.atmosphere import (
    AtmosphereClient,
    AtmosphereServer,
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
    Reopened,
    parse_open_request,
)
from trackwire.drivers.trio import (
    Connection,
    GaveUp,
    LoginRefused,
    ReconnectFailed,
    Reconnecting,
    Server,
    ServerConnection,
    connect,
    itrack_login,
    serve,
)
from trackwire.fleetfreedom import (
    Account,
    CloseRequested,
    Command,
    ConnectionResponse,
    FleetFreedomClient,
    FleetFreedomHub,
    FleetFreedomServer,
    LoggedIn,
    Merged,
    Response,
    SessionEnded,
    SessionFinished,
    SessionResponse,
    ghost_id_from_request,
)
from trackwire.fleetfreedom import Closed as FFClosed
from trackwire.fleetfreedom import SubscribeResponse as FFSubscribeResponse
from trackwire.itrack import (
    ActionReceived,
    AuthResponder,
    Directory,
    ITrackClient,
    ITrackServer,
    LogoutEvent,
    SourceState,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
    is_auth_target,
    subscription_url,
)
from trackwire.ws import (
    AtmosphereCloseRequested,
    Connected,
    ConnectionClosed,
    Headers,
    HttpRequestHandled,
    HttpResponse,
    Refuse,
    Rejected,
    StackState,
    UpgradeRequest,
    split_ws_url,
)

E = TypeVar("E", bound=Event)
FAST = ReconnectPolicy(initial=0.01, factor=1.0, cap=0.01, jitter=0.0)
"""Reconnect at once (the tests are about what happens, not about the backoff)."""
UUID = "b623a15d-9623-4fd8-a9d3-697036635c29"
ALICE_HASH = "a" * 32
PATH = "/v2/event/subscription"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class ServerLog:
    """Every (connection, event) the server reported, with a way to wait for one."""

    def __init__(self) -> None:
        self.items: list[tuple[ServerConnection[Any], Event]] = []
        self._changed = trio.Event()

    def __call__(self, conn: ServerConnection[Any], event: Event) -> None:
        self.items.append((conn, event))
        self._changed.set()
        self._changed = trio.Event()

    def of(self, cls: type[E]) -> list[E]:
        return [e for _, e in self.items if isinstance(e, cls)]

    async def wait(self, cls: type[E], nth: int = 1) -> tuple[ServerConnection[Any], E]:
        while True:
            changed = self._changed
            found = [(c, e) for c, e in self.items if isinstance(e, cls)]
            if len(found) >= nth:
                conn, event = found[nth - 1]
                assert isinstance(event, cls)
                return conn, event
            await changed.wait()


class Seen:
    """The client's events as the application iterates them, kept for later checks."""

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn
        self.events: list[Event] = []

    async def until(self, cls: type[E], where: Callable[[E], bool] = lambda e: True) -> E:
        async for event in self.conn:
            self.events.append(event)
            if isinstance(event, cls) and where(event):
                return event
        raise AssertionError(f"no {cls.__name__} before the end: {self.events}")

    async def rest(self) -> list[Event]:
        tail = [event async for event in self.conn]
        self.events.extend(tail)
        return tail

    def of(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]


@asynccontextmanager
async def running(factory: Any, **options: Any) -> AsyncIterator[tuple[Server[Any], ServerLog]]:
    log = ServerLog()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve, factory, on_event=log, **options))
        yield server, log
        nursery.cancel_scope.cancel()


def without(events: list[Event], *kinds: type) -> list[type]:
    return [type(e) for e in events if not isinstance(e, kinds)]


# -- Atmosphere ------------------------------------------------------------------------------


def atmosphere_factory(**options: Any) -> Callable[[UpgradeRequest], AtmosphereServer]:
    return lambda request: AtmosphereServer(request.target, uuid_factory=lambda: UUID, **options)


async def test_atmosphere_session_heartbeats_reconnect_and_close_request() -> None:
    before = open_fds()
    factory = atmosphere_factory(heartbeat_interval_ms=20, server_heartbeat=0.02)
    with trio.fail_after(10):
        async with running(factory) as (server, log):
            core = AtmosphereClient(f"http://127.0.0.1:{server.port}{PATH}")
            async with connect(core, reconnect=FAST) as conn:
                seen = Seen(conn)
                opened = await seen.until(Opened)
                assert opened == Opened(UUID, 20, "X")
                assert conn.state is StackState.OPEN
                assert parse_open_request(seen.of(Connected)[0].target).tracking_id == "0"

                await conn.send("from the client")
                first, _ = await log.wait(Message)
                assert log.of(Message) == [Message("from the client")]
                first.send("from the server")
                assert await seen.until(Message) == Message("from the server")

                # Heartbeats both ways: the server's padding arrives as Heartbeat, ours too.
                await seen.until(Heartbeat)
                await seen.until(Heartbeat)
                await log.wait(Heartbeat, nth=2)

                # The server drops the socket: the client comes back with the same tracking
                # id, the server reopens it, and traffic flows again.
                first.abort()
                lost = await seen.until(ConnectionClosed)
                assert (lost.code, lost.by_peer) == (1006, True)
                retry = await seen.until(Reconnecting)
                assert retry.attempt == 1
                assert parse_open_request(split_ws_url(retry.url).target).tracking_id == UUID
                assert await seen.until(Reopened) == Reopened(UUID)
                second, connected = await log.wait(Connected, nth=2)
                assert parse_open_request(connected.target).tracking_id == UUID
                assert await log.wait(Reopened)
                second.send("again")
                assert await seen.until(Message) == Message("again")
                assert Closed(True) in seen.events

                await conn.aclose()
                _, close = await log.wait(AtmosphereCloseRequested)
                assert close.tracking_id == UUID
                tail = await seen.rest()
                assert without(tail, Heartbeat, Message) == [ConnectionClosed, GaveUp]
                assert tail[-1] == GaveUp("closed by the application")
                assert conn.closed
                assert conn.state is StackState.CLOSED
                await conn.aclose()  # idempotent
                _, ended = await log.wait(ConnectionClosed, nth=2)
                assert (ended.code, ended.by_peer) == (1000, True)
        assert len(log.of(Connected)) == 2
    assert open_fds() == before


async def test_inactivity_timeout_sends_the_close_request_and_never_reconnects() -> None:
    factory = atmosphere_factory(heartbeat_interval_ms=0, server_heartbeat=0)
    with trio.fail_after(10):
        async with running(factory) as (server, log):
            url = f"http://127.0.0.1:{server.port}{PATH}"
            core = AtmosphereClient(url, inactivity_timeout=0.05)
            async with connect(core, reconnect=FAST) as conn:
                seen = Seen(conn)
                timeout = await seen.until(InactivityTimeout)
                assert timeout.close_url is not None
                assert "X-Atmosphere-Transport=close" in timeout.close_url
                tail = await seen.rest()
                assert [type(e) for e in tail] == [ConnectionClosed, GaveUp]
                assert tail[-1] == GaveUp("the session ended for good")
            _, close = await log.wait(AtmosphereCloseRequested)
            assert close.tracking_id == UUID
            assert len(log.of(Connected)) == 1


async def test_send_before_the_transport_opens_is_the_cores_decision() -> None:
    # A bare Atmosphere client refuses to send before its handshake; the error surfaces.
    with trio.fail_after(10):
        async with running(atmosphere_factory()) as (server, _):
            core = AtmosphereClient(f"http://127.0.0.1:{server.port}{PATH}")
            async with connect(core, reconnect=None) as conn:
                with pytest.raises(LocalProtocolError):
                    await conn.send("too early")
                await Seen(conn).until(Opened)
                await conn.aclose()
                with pytest.raises(LocalProtocolError, match="closed"):
                    await conn.send("too late")


# -- iTrack ----------------------------------------------------------------------------------


def auth_handler(directory: Directory) -> Callable[[str, str, Headers, bytes], HttpResponse | None]:
    responder = AuthResponder(directory)

    def handle(method: str, target: str, headers: Headers, body: bytes) -> HttpResponse | None:
        if not is_auth_target(target):
            return None
        answer = responder(method, target, headers, body)
        return answer.status, answer.headers, answer.body

    return handle


def itrack_directory() -> Directory:
    directory = Directory(hash_factory=lambda: ALICE_HASH)
    directory.add_user("alice", "pw")
    directory.add_tracker("alice", 1, source_id=101, state=SourceState.create(101, speed=1))
    return directory


def itrack_factory(directory: Directory, interval_ms: int = 30000) -> Callable[..., ITrackServer]:
    def factory(request: UpgradeRequest) -> ITrackServer:
        transport = AtmosphereServer(
            request.target,
            heartbeat_interval_ms=interval_ms,
            server_heartbeat=interval_ms / 1000,
            uuid_factory=lambda: UUID,
        )
        return ITrackServer(request.target, directory, transport=transport)

    return factory


async def test_itrack_login_subscribe_reconnect_resubscribe_and_close() -> None:
    directory = itrack_directory()
    with trio.fail_after(10):
        async with running(itrack_factory(directory), http_handler=auth_handler(directory)) as (
            server,
            log,
        ):
            base = f"http://127.0.0.1:{server.port}/v2/"
            with pytest.raises(LoginRefused) as refused:
                await itrack_login(base, "alice", "wrong")
            assert refused.value.code == 102
            session_hash = await itrack_login(base, "alice", "pw")
            assert session_hash == ALICE_HASH

            core = ITrackClient(subscription_url(base), session_hash)
            async with connect(core, reconnect=FAST) as conn:
                seen = Seen(conn)
                await conn.send(Subscribe([StateRequest([1])]))  # held until the handshake
                response = await seen.until(SubscribeResponse)
                assert response.results["state"].trackers == {1: "normal"}
                assert (await seen.until(StateEvent)).state.source_id == 101

                sconn, _ = await log.wait(ActionReceived)
                sconn.core.push_state(1, SourceState.create(101, speed=42), trio.current_time())
                sconn.flush()
                moved = await seen.until(StateEvent)
                assert moved.state.raw["speed"] == 42

                sconn.abort()
                await seen.until(Reconnecting)
                await seen.until(Reopened)
                # The client resubscribes on its own; the server answers and states flow.
                resent, _ = await log.wait(ActionReceived, nth=2)
                assert resent is not sconn
                assert (await seen.until(SubscribeResponse)).events == ["state"]
                await seen.until(StateEvent)

                await conn.aclose()
                _, close = await log.wait(AtmosphereCloseRequested)
                assert close.tracking_id == UUID
                assert (await seen.rest())[-1] == GaveUp("closed by the application")
            assert len(log.of(HttpRequestHandled)) == 2


async def test_itrack_logout_gives_up_without_reconnecting() -> None:
    directory = itrack_directory()
    directory.authenticate("alice", "pw")
    with trio.fail_after(10):
        async with running(itrack_factory(directory, interval_ms=20)) as (server, log):
            url = subscription_url(f"http://127.0.0.1:{server.port}/v2/")
            async with connect(ITrackClient(url, ALICE_HASH), reconnect=FAST) as conn:
                seen = Seen(conn)
                await conn.send(Subscribe([StateRequest([1])]))
                await seen.until(StateEvent)
                # client heartbeats reach the server as it asked (20 ms here)
                await log.wait(Heartbeat, nth=2)
                sconn, _ = await log.wait(ActionReceived)
                assert sconn.core.push_logout(trio.current_time())
                sconn.flush()
                await seen.until(LogoutEvent)
                # The client closes the WebSocket itself (1000) and never reconnects.
                tail = await seen.rest()
                closes = [e for e in tail if isinstance(e, ConnectionClosed)]
                assert [(c.code, c.by_peer) for c in closes] == [(1000, False)]
                assert tail[-1] == GaveUp("the session ended for good")
                assert not [e for e in tail if isinstance(e, Reconnecting)]
            assert len(log.of(Connected)) == 1


# -- FleetFreedom ----------------------------------------------------------------------------

ACCOUNTS = {("a@x", "pw"): Account("a@x", 42)}


def fleet_hub() -> FleetFreedomHub:
    ghosts = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 100))
    return FleetFreedomHub(lambda u, p: ACCOUNTS.get((u, p)), ghost_ids=lambda: next(ghosts))


def fleet_factory(hub: FleetFreedomHub) -> Callable[[UpgradeRequest], FleetFreedomServer]:
    return lambda request: hub.connect(ghost_id_from_request(request.target, request.subprotocols))


async def fleet_login(seen: Seen) -> str:
    """Log in (the command is held until connectionResponse); the session's ghostId."""
    req_id = await seen.conn.send(Command.login("a@x", "pw", "tests"))
    assert req_id == 1
    assert (await seen.until(ConnectionResponse)).error_code == 8
    login = await seen.until(SessionResponse)
    assert login.error_code == 0
    assert login.request == Command.login("a@x", "pw", "tests")
    ghost = seen.conn.core.session.ghost_id
    assert ghost is not None
    return str(ghost)


async def test_fleetfreedom_session_publish_keepalive_reconnect_and_logout() -> None:
    hub = fleet_hub()
    with trio.fail_after(10):
        async with running(fleet_factory(hub)) as (server, log):
            core = FleetFreedomClient(f"ws://127.0.0.1:{server.port}/", keepalive=0.02)
            async with connect(core, reconnect=FAST) as conn:
                seen = Seen(conn)
                ghost = await fleet_login(seen)
                req_id = await conn.send(Command.subscribe(42, ["assetGeneral"]))
                answer = await seen.until(FFSubscribeResponse)
                assert answer.req_id == req_id
                targets = hub.publish("assetGeneralMerged", 42, {"id": 7, "v": [1]})
                server.flush(targets)
                assert (await seen.until(Merged)).body == {"id": 7, "v": [1]}
                # the keep-alive noop goes out on the client's cadence and is answered
                await seen.until(Response, lambda r: r.name == "noopResponse")

                sconn, _ = await log.wait(LoggedIn)
                sconn.abort()
                retry = await seen.until(Reconnecting)
                assert retry.url == f"ws://127.0.0.1:{server.port}/{ghost}"
                resumed = await seen.until(ConnectionResponse)
                assert resumed.error_code == 0
                # the subscription is replayed on the resumed session
                await seen.until(FFSubscribeResponse)
                server.flush(hub.publish("assetGeneralMerged", 42, {"id": 7, "v": [2]}))
                assert (await seen.until(Merged)).body["v"] == [2]

                await conn.send(Command.logout())
                assert (await seen.until(CloseRequested)).code == 1000
                tail = await seen.rest()
                closed = [e for e in tail if isinstance(e, ConnectionClosed)]
                assert [(c.code, c.by_peer) for c in closed] == [(1000, False)]
                assert tail[-1] == GaveUp("the session ended for good")
            _, connected = await log.wait(Connected, nth=2)
            assert connected.target == f"/{ghost}"
            assert len(log.of(Connected)) == 2


async def test_fleetfreedom_session_ended_by_the_server_gives_up() -> None:
    hub = fleet_hub()
    with trio.fail_after(10):
        async with running(fleet_factory(hub)) as (server, log):
            core = FleetFreedomClient(f"ws://127.0.0.1:{server.port}/")
            async with connect(core, reconnect=FAST) as conn:
                seen = Seen(conn)
                ghost = await fleet_login(seen)
                server.flush(hub.end_session(ghost))
                await seen.until(SessionEnded)
                tail = await seen.rest()
                assert without(tail, Response) == [
                    SessionFinished,
                    CloseRequested,
                    FFClosed,
                    ConnectionClosed,
                    GaveUp,
                ]
                assert tail[-1] == GaveUp("the session ended for good")
            assert len(log.of(Connected)) == 1


# -- attempts, refusals, closing --------------------------------------------------------------


async def test_failed_attempts_are_reported_then_the_policy_gives_up() -> None:
    with trio.socket.socket() as sock:  # a port with nobody listening
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        policy = ReconnectPolicy(initial=0.01, jitter=0.0, max_attempts=2)
        core = FleetFreedomClient(f"ws://127.0.0.1:{port}/")
        with trio.fail_after(10):
            async with connect(core, reconnect=policy) as conn:
                events = await Seen(conn).rest()
    assert [type(e) for e in events] == [ReconnectFailed, Reconnecting] * 2 + [
        ReconnectFailed,
        GaveUp,
    ]
    assert [e.attempt for e in events if isinstance(e, ReconnectFailed)] == [0, 1, 2]
    assert events[-1] == GaveUp("no connection after 2 attempts")


async def test_a_refused_upgrade_is_a_failed_attempt() -> None:
    def refuse(request: UpgradeRequest) -> Refuse:
        return Refuse(403, body=b"go away")

    with trio.fail_after(10):
        async with running(refuse) as (server, log):
            core = FleetFreedomClient(f"ws://127.0.0.1:{server.port}/")
            async with connect(core, reconnect=None) as conn:
                events = await Seen(conn).rest()
            assert [type(e) for e in events] == [Rejected, ReconnectFailed, GaveUp]
            assert events[0] == Rejected(403, events[0].headers, b"go away")
            assert "403" in events[1].error
            assert log.of(Rejected)


async def test_aclose_during_the_backoff_ends_at_once() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        policy = ReconnectPolicy(initial=60.0, jitter=0.0)
        with trio.fail_after(10):
            async with connect(
                FleetFreedomClient(f"ws://127.0.0.1:{port}/"), reconnect=policy
            ) as c:
                seen = Seen(c)
                assert (await seen.until(Reconnecting)).delay == 60.0
                await c.aclose()
                assert await seen.rest() == [GaveUp("closed by the application")]


async def test_aclose_is_idempotent_concurrent_and_cancellation_safe() -> None:
    before = open_fds()
    with trio.fail_after(10):
        async with running(atmosphere_factory()) as (server, log):
            url = f"http://127.0.0.1:{server.port}{PATH}"
            # Two concurrent closes: both return once the session is over.
            async with connect(AtmosphereClient(url), reconnect=FAST) as conn:
                await Seen(conn).until(Opened)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(conn.aclose)
                    nursery.start_soon(conn.aclose)
                assert conn.closed
            # A cancelled close still closes the socket (abruptly) and ends the task.
            async with connect(AtmosphereClient(url), reconnect=FAST) as conn:
                await Seen(conn).until(Opened)
                with trio.CancelScope() as scope:
                    scope.cancel()
                    await conn.aclose()
                assert scope.cancelled_caught
            assert conn.closed
            await log.wait(ConnectionClosed, nth=2)
            # Cancelling the whole block is fine as well.
            with trio.move_on_after(0.2):
                async with connect(AtmosphereClient(url), reconnect=FAST) as conn:
                    await trio.sleep_forever()
            assert conn.closed
            await log.wait(ConnectionClosed, nth=3)
    assert open_fds() == before
