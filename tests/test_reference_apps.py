"""The reference servers' applications, driven through the sans-IO cores (no sockets)."""

from __future__ import annotations

from trackwire.conformance._reference import (
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)
from trackwire.fleetfreedom import Command, FleetFreedomClient, Merged, Response
from trackwire.itrack import (
    ITrackClient,
    StateEvent,
    StateRequest,
    Subscribe,
    SubscribeResponse,
)
from trackwire.ws import Accept, Refuse, UpgradeRequest


def _pump(client: object, server: object, now: float) -> None:
    for _ in range(4):
        for frame in server.data_to_send():  # type: ignore[attr-defined]
            client.receive(frame, now)  # type: ignore[attr-defined]
        for frame in client.data_to_send():  # type: ignore[attr-defined]
            server.receive(frame, now)  # type: ignore[attr-defined]


def _itrack_session(app: ITrackReference, login: str, password: str) -> ITrackClient:
    status, _, body = app.http_handler(
        "POST", "/v2/user/auth", [], f"login={login}&password={password}".encode()
    ) or (0, [], b"")
    assert status == 200, body
    session_hash = body.decode().split('"hash":"')[1][:32]
    return ITrackClient("http://127.0.0.1/v2/event/subscription", session_hash)


def test_itrack_demo_user_sees_its_fleet_move_and_never_the_other_tenant() -> None:
    app = ITrackReference(demo_fleet(4, seed=5), wall_offset=0.0)
    demo_ids = [v.id for v in app.fleet.of_tenant("demo")]
    other_ids = [v.id for v in app.fleet.of_tenant("other")]
    client = _itrack_session(app, "demo", "demo")
    client.send(Subscribe([StateRequest(demo_ids + other_ids)]))
    target = client.url_to_open.split("127.0.0.1", 1)[1]
    server = app.factory(UpgradeRequest(target, "127.0.0.1"))
    assert isinstance(server, type(next(iter(app.connections))))
    server.connection_made(0.0)
    client.connection_made(0.0)
    _pump(client, server, 0.0)
    events = client.events()
    (response,) = [e for e in events if isinstance(e, SubscribeResponse)]
    statuses = response.results["state"].trackers
    assert {statuses[i] for i in demo_ids} == {"normal"}
    assert {statuses[i] for i in other_ids} == {"unknown"}
    first = {e.state.source_id: e.state for e in events if isinstance(e, StateEvent)}
    assert set(first) == {i * 10 for i in demo_ids}  # current states right after subscribing
    for second in range(1, 4):
        app.tick(float(second))
        _pump(client, server, float(second))
    moved = [e.state for e in client.events() if isinstance(e, StateEvent)]
    assert {s.source_id for s in moved} == {i * 10 for i in demo_ids}
    assert len(moved) == 3 * 4  # t = 1, 2, 3 for each of the 4 vehicles
    assert all(s.gps is not None and s.gps.location is not None for s in moved)


def test_itrack_wrong_password_and_unknown_paths() -> None:
    app = ITrackReference(demo_fleet(1))
    status, _, body = app.http_handler("POST", "/v2/user/auth", [], b"login=demo&password=x") or (
        0,
        [],
        b"",
    )
    assert status == 403
    assert b'"code":102' in body
    assert app.http_handler("GET", "/v2/tracker/read", [], b"") is None
    listed = app.http_handler("GET", "/v2/tracker/list", [], b"")  # served: needs a hash
    assert listed is not None
    assert listed[0] == 400
    assert isinstance(app.factory(UpgradeRequest("/elsewhere", "h")), Refuse)
    assert not isinstance(app.factory(UpgradeRequest("/event/subscription/?x=1", "h")), Refuse)


def _ff_login(app: FleetFreedomReference, login: str, password: str, company: int, now: float):  # type: ignore[no-untyped-def]
    client = FleetFreedomClient("ws://127.0.0.1/")
    server = app.factory(UpgradeRequest("/", "127.0.0.1"))
    assert not isinstance(server, Accept)
    server.connection_made(now)
    client.connection_made(now)
    client.send(Command.login(login, password, "trackwire-tests"))
    client.send(Command.subscribe(company, ["assetGeneral", "assetAdvanced"]))
    _pump(client, server, now)
    return client, server


def test_fleetfreedom_pushes_versions_to_the_right_company_only() -> None:
    app = FleetFreedomReference(demo_fleet(3, seed=9), wall_offset=0.0)
    demo, demo_conn = _ff_login(app, "demo@example.com", "demo", 1, 0.0)
    other, other_conn = _ff_login(app, "other@example.com", "other", 2, 0.0)
    spy, spy_conn = _ff_login(app, "other@example.com", "other", 1, 0.0)  # not its company
    for who in (demo, other, spy):
        responses = [e for e in who.events() if isinstance(e, Response)]
        assert responses
        assert responses[0].ok
    app.tick(0.0)
    app.tick(1.0)
    for client, conn in ((demo, demo_conn), (other, other_conn), (spy, spy_conn)):
        _pump(client, conn, 1.0)
    demo_pushes = [e for e in demo.events() if isinstance(e, Merged)]
    other_pushes = [e for e in other.events() if isinstance(e, Merged)]
    assert {e.body["company"] for e in demo_pushes} == {1}
    assert {e.body["id"] for e in demo_pushes} == {v.id for v in app.fleet.of_tenant("demo")}
    assert {e.body["company"] for e in other_pushes} == {2}
    assert [e for e in spy.events() if isinstance(e, Merged)] == []
    versions = [e.body["v"][0] for e in demo_pushes if e.body["id"] == demo_pushes[0].body["id"]]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


def test_fleetfreedom_ghost_id_by_subprotocol_is_accepted() -> None:
    app = FleetFreedomReference(demo_fleet(1))
    ghost = "3f2b8c1e-8d44-4a5e-9a51-0c7a5d2e4b11"
    accepted = app.factory(UpgradeRequest("/", "h", subprotocols=[ghost]))
    assert isinstance(accepted, Accept)
    assert accepted.subprotocol == ghost


def test_fleetfreedom_forgets_expired_sessions_as_it_ticks() -> None:
    app = FleetFreedomReference(demo_fleet(1), wall_offset=0.0)
    for _ in range(20):
        _, conn = _ff_login(app, "demo@example.com", "demo", 1, 0.0)
        conn.receive_eof(0.0)
    assert len(app.hub.sessions) == 20
    app.tick(10 * 24 * 3600.0)  # past any expiry
    assert app.hub.sessions == {}


def _itrack_link(app: ITrackReference, login: str = "demo") -> tuple[ITrackClient, object]:
    client = _itrack_session(app, login, login)
    target = client.url_to_open.split("127.0.0.1", 1)[1]
    server = app.factory(UpgradeRequest(target, "127.0.0.1"))
    server.connection_made(0.0)  # type: ignore[union-attr]
    client.connection_made(0.0)
    return client, server


def test_itrack_operator_actions_send_lifecycle_and_logout() -> None:
    from trackwire.itrack import LifecycleEvent, LogoutEvent

    app = ITrackReference(demo_fleet(2, seed=4), wall_offset=0.0)
    client, server = _itrack_link(app)
    watcher, watcher_server = _itrack_link(app, "other")
    client.send(Subscribe([StateRequest([1001, 1002])]))
    watcher.send(Subscribe([StateRequest([1001])]))  # not its tracker: unknown to it
    _pump(client, server, 0.0)
    _pump(watcher, watcher_server, 0.0)
    client.events()
    watcher.events()
    app.block(1001, 1.0)
    _pump(client, server, 1.0)
    assert [e for e in client.events() if isinstance(e, LifecycleEvent)] == [
        LifecycleEvent(10010, "block")
    ]
    app.tick(2.0)
    _pump(client, server, 2.0)
    assert {e.state.source_id for e in client.events() if isinstance(e, StateEvent)} == {10020}
    app.unblock(1001, 3.0)
    _pump(client, server, 3.0)
    kinds = [type(e).__name__ for e in client.events()]
    assert kinds[:2] == ["LifecycleEvent", "StateEvent"]
    app.logout("demo", 4.0)
    _pump(client, server, 4.0)
    assert any(isinstance(e, LogoutEvent) for e in client.events())
    assert not client.resumable
    _pump(watcher, watcher_server, 4.0)
    assert not [e for e in watcher.events() if isinstance(e, (LifecycleEvent, LogoutEvent))]


def test_itrack_connections_that_never_authenticate_are_closed() -> None:
    app = ITrackReference(demo_fleet(1), wall_offset=0.0, anonymous_timeout=60.0)
    lurker = app.factory(UpgradeRequest("/v2/event/subscription?X-Atmosphere-tracking-id=0", "h"))
    lurker.connection_made(0.0)  # type: ignore[union-attr]
    client, server = _itrack_link(app)
    client.send(Subscribe([StateRequest([1001])]))
    _pump(client, server, 0.0)
    app.tick(0.0)
    app.tick(59.0)
    assert lurker.state.name == "OPEN"  # type: ignore[union-attr]
    assert app.next_deadline() == 60.0  # checked at least every second while anonymous
    flushed = app.tick(60.0)
    assert lurker.state.name == "CLOSED"  # type: ignore[union-attr]
    assert lurker in flushed  # its close is written now, not at its next heartbeat
    assert server.state.name == "OPEN"  # type: ignore[attr-defined]
    assert lurker not in app.tick(61.0)
