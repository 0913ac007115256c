"""What the drivers add to the session lifecycle (shown on the blocking driver; the logic is
the shared sans-IO ``ClientSession``): backing off while logins fail, stall reports."""

from __future__ import annotations

import time
from typing import Any

from _ws_peer import DEADLINE, GHOST, ThreadedPeer, fleetfreedom_factory

from trackwire import FinishReason, ITrackClient, ReconnectPolicy, SessionRestored
from trackwire.conformance import ITrackReference, demo_fleet
from trackwire.drivers._session import ClientSession
from trackwire.drivers.blocking import Connection, GaveUp, Reconnecting, Stalled, connect
from trackwire.fleetfreedom import (
    Account,
    Command,
    ErrorCode,
    FleetFreedomClient,
    FleetFreedomHub,
    SessionFinished,
    SubscribeResponse,
)
from trackwire.itrack import (
    LoginRequested,
    StateRequest,
    Subscribe,
    build_auth_request,
    subscription_url,
)
from trackwire.ws import ServerStack

POLICY = ReconnectPolicy(initial=0.01, factor=2.0, jitter=0.0)


def events_until(conn: Connection[Any], kind: type, count: int = 1) -> list[Any]:
    seen: list[Any] = []
    stop = time.monotonic() + DEADLINE
    while time.monotonic() < stop:
        event = conn.next_event(0.05)
        if event is None:
            continue
        seen.append(event)
        if sum(isinstance(e, kind) for e in seen) >= count:
            return seen
    raise AssertionError(f"no {kind.__name__} within {DEADLINE} s: {seen}")


def test_logins_failing_after_a_lost_session_back_off_then_end() -> None:
    logins = []

    def authenticator(username: str, password: str) -> Account | ErrorCode | None:
        logins.append(username)
        return Account(username, 7) if len(logins) == 1 else ErrorCode.SERVICE

    hub = FleetFreedomHub(authenticator, ghost_ids=lambda: GHOST)
    with ThreadedPeer(fleetfreedom_factory(hub)) as peer:
        core = FleetFreedomClient(
            peer.url("/"), login=Command.login("alice", "pw", "tests"), max_login_failures=3
        )
        core.send(Command.subscribe(7, ["assetGeneral"]))
        with connect(core, reconnect=POLICY) as conn:
            events_until(conn, SubscribeResponse)
            peer.run(hub.sessions.clear)  # the server forgets every session…
            peer.drop()  # …and the connection
            events = events_until(conn, GaveUp)
    attempts = [e.attempt for e in events if isinstance(e, Reconnecting)]
    # The drop starts the backoff afresh; a connection whose login then fails does not.
    assert attempts == [1, 1, 2]
    (finished,) = [e for e in events if isinstance(e, SessionFinished)]
    assert finished.reason is FinishReason.LOGIN_FAILED
    assert len(logins) == 4


def test_a_stall_is_reported_once_per_silence() -> None:
    hub = FleetFreedomHub(lambda u, p: Account(u, 7), ghost_ids=lambda: GHOST)
    with ThreadedPeer(fleetfreedom_factory(hub)) as peer:
        core = FleetFreedomClient(peer.url("/"), login=Command.login("alice", "pw", "tests"))
        core.send(Command.subscribe(7, ["assetAdvanced"]))
        with connect(core, reconnect=POLICY, stall_timeout=0.2) as conn:
            events = events_until(conn, Stalled)
            assert isinstance(events[-1], Stalled)
            assert events[-1].idle >= 0.2
            peer.run(lambda: hub.publish("assetAdvancedMerged", 7, {"id": 1, "v": [2]}))
            events = events_until(conn, Stalled)
            assert any(type(e).__name__ == "Merged" for e in events)  # data, then silence


# -- the sans-IO session alone: logins the core asks for ------------------------------------


def _pair() -> tuple[ClientSession[ITrackClient], ServerStack[Any], ITrackReference]:
    """A ClientSession joined in memory to the iTrack reference app's server stack."""
    app = ITrackReference(demo_fleet(2), clock=lambda: 0.0)
    base = "http://127.0.0.1:1/v2/"
    session_hash = app.directory.authenticate("demo", "demo").hash  # type: ignore[union-attr]
    core = ITrackClient(
        subscription_url(base), session_hash, login=build_auth_request(base, "demo", "demo")
    )
    session = ClientSession(core, reconnect=POLICY)
    session.begin_attempt()
    session.transport_ready(0.0)
    server: ServerStack[Any] = ServerStack(app.factory)
    server.connection_made(0.0)
    return session, server, app


def _pump(session: ClientSession[Any], server: ServerStack[Any], now: float) -> None:
    for _ in range(5):
        server.receive(session.data_to_send(), now)
        session.receive(server.data_to_send(), now)


def test_a_requested_login_is_due_at_once_and_forgotten_on_close() -> None:
    session, server, app = _pair()
    _pump(session, server, 0.0)
    app.forget_sessions()
    session.send(Subscribe([StateRequest([1001])]), 1.0)
    _pump(session, server, 1.0)
    assert any(isinstance(e, LoginRequested) for e in session.events)
    deadline = session.next_deadline()
    assert deadline is not None
    assert deadline <= 1.0  # the first login goes at once
    session.close(2.0)
    assert session.take_login(3.0) is None
    deadline = session.next_deadline()
    assert deadline is None or deadline > 2.0  # no login left in the past to spin on


def test_login_answers_reach_the_core() -> None:
    session, server, app = _pair()
    _pump(session, server, 0.0)
    app.forget_sessions()
    session.send(Subscribe([StateRequest([1001])]), 1.0)
    _pump(session, server, 1.0)
    request = session.take_login(1.0)
    assert request is not None
    fresh = app.directory.authenticate("demo", "demo")
    session.login_answered(fresh, "", 1.5)  # type: ignore[arg-type]
    _pump(session, server, 1.5)
    assert any(isinstance(e, SessionRestored) for e in session.events)
    session.login_answered(None, "late", 1.6)  # nothing asked any more: ignored
    assert not any(isinstance(e, SessionFinished) for e in session.events)
