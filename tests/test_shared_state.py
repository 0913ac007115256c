"""Shared state of the reference servers: the pure replica, the in-memory backplane, the RESP
reader, and real ``redis-server`` + ``trackwire serve --redis`` processes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from _redis_helpers import balancer, redis_process, redis_server, serve_processes

from trackwire import ReconnectPolicy
from trackwire.conformance import (
    Change,
    Delete,
    Expire,
    FleetFreedomReference,
    InMemoryState,
    ITrackReference,
    MemoryBackplane,
    Put,
    RedisError,
    RedisState,
    Replica,
    RespParser,
    encode_command,
    run_shared,
    shared_demo_fleet,
)
from trackwire.drivers.trio import Reconnecting, connect, itrack_login
from trackwire.fleetfreedom import (
    Command,
    ConnectionResponse,
    FleetFreedomClient,
    FleetFreedomServer,
    Merged,
    SessionResponse,
    SubscribeResponse,
    decode,
)
from trackwire.itrack import (
    ITrackClient,
    StateEvent,
    StateRequest,
    Subscribe,
    subscription_url,
)
from trackwire.itrack import (
    SubscribeResponse as ITrackSubscribed,
)

LOGIN = Command.login("demo@example.com", "demo", "tests")


def ff_pair() -> tuple[FleetFreedomReference, Replica, FleetFreedomReference, Replica]:
    """Two FleetFreedom processes' applications (same wall clock, one fleet seed)."""
    ghosts = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 1000))
    a = FleetFreedomReference(shared_demo_fleet(4), wall_offset=0.0, ghost_ids=lambda: next(ghosts))
    b = FleetFreedomReference(shared_demo_fleet(4), wall_offset=0.0)
    return a, Replica(a, wall_offset=0.0), b, Replica(b, wall_offset=0.0)


def carry(source: Replica, target: Replica, now: float) -> list[Any]:
    """Move ``source``'s queued records to ``target`` as the backplane would."""
    touched: list[Any] = []
    for change in source.drain():
        if change.record is not None:
            touched += target.apply(change.record, now)
    return touched


def frames(core: FleetFreedomServer) -> list[tuple[str, dict[str, Any]]]:
    return [decode(frame) for frame in core.data_to_send()]


def logged_in(app: FleetFreedomReference, now: float) -> tuple[FleetFreedomServer, str]:
    core = app.hub.connect()
    core.connection_made(now)
    core.data_to_send()
    core.receive('login {"reqId":1,"username":"demo@example.com","password":"demo"}', now)
    (name, body), *_ = frames(core)
    assert (name, body["errorCode"]) == ("loginResponse", 0)
    return core, body["ghostId"]


# -- the pure replica ---------------------------------------------------------------------------


def test_a_session_opened_on_a_resumes_on_b_and_its_end_reaches_b() -> None:
    a, ra, b, rb = ff_pair()
    _, ghost = logged_in(a, 10.0)
    carry(ra, rb, 10.0)
    resumed = b.hub.connect(ghost)
    resumed.connection_made(11.0)
    (name, body), *_ = frames(resumed)
    assert (name, body["errorCode"], body["ghostId"]) == ("connectionResponse", 0, ghost)
    # Resuming on B is a use of the session: A hears of its new expiry.
    assert [c.record["k"] for c in rb.drain() if c.record] == ["touched"]
    a.hub.end_session(ghost, 12.0)
    ended = carry(ra, rb, 12.0)
    assert ended == [resumed]
    assert ghost not in b.hub.sessions
    assert frames(resumed) == [("sessionEnded", {})]


def test_an_expiry_seen_on_an_older_renewal_does_not_end_a_session_in_use() -> None:
    a, ra, b, rb = ff_pair()
    core, ghost = logged_in(a, 0.0)
    carry(ra, rb, 0.0)
    core.receive('noop {"reqId":2}', 0.5)  # renewed by half a second: not shared yet
    assert ra.drain() == []
    assert b.hub.prune(3600.2) == [ghost]  # B's copy expired...
    carry(rb, ra, 3600.2)
    assert ghost in a.hub.sessions  # ...but A, which renewed it, keeps it
    a.hub.prune(7200.0)
    carry(ra, rb, 7200.0)
    assert ghost not in a.hub.sessions


def test_session_changes_carry_their_storage_ops() -> None:
    a, ra, _, _ = ff_pair()
    core, ghost = logged_in(a, 0.0)
    (opened,) = ra.drain()
    assert opened.op == Put(f"session:{ghost}", opened.record or {}, ttl=3600.0)
    core.receive('noop {"reqId":2}', 0.5)  # within a second of the last shared expiry: kept
    assert ra.drain() == []
    core.receive('noop {"reqId":3}', 5.0)
    (touched,) = ra.drain()
    assert touched.op == Expire(f"session:{ghost}", 3600.0)
    core.receive('logout {"reqId":4}', 6.0)
    *_, ended = ra.drain()  # the command touched the session first
    assert ended.op == Delete((f"session:{ghost}",))
    assert ended.record == {"k": "ended", "id": ghost, "reason": "logout"}


def test_the_leader_moves_the_fleet_and_the_follower_pushes_and_stores_its_versions() -> None:
    a, ra, b, rb = ff_pair()
    a.fleet.leading = True
    _, ghost = logged_in(a, 0.0)
    carry(ra, rb, 0.0)
    watcher = b.hub.connect(ghost)
    watcher.connection_made(0.0)
    watcher.receive(
        'subscribe {"reqId":1,"company":{"id":1},"subscriptionTypes":["assetAdvanced"]}', 0.0
    )
    watcher.data_to_send()
    assert b.tick(1.0) == []  # a follower's fleet does not move
    a.tick(1.0)
    changes = ra.drain()
    kinds = [c.record["k"] for c in changes if c.record]
    assert kinds == ["publish"] * 6  # the pieces carry the seq too
    for change in changes:
        if change.record is not None:
            rb.apply(change.record, 1.0)
    pushed = frames(watcher)
    assert {body["id"] for _, body in pushed} == {1001, 1002, 1003, 1004}  # company 1 only
    # The leader's version of each piece (it moves on from the wall clock's milliseconds,
    # so a restarted server never goes back), pushed and stored alike by the follower.
    moved = a.hub.get("asset", 1001)["v"][1]
    assert moved > 1
    assert all(body["v"] == [a.hub.get("asset", body["id"])["v"][1]] for _, body in pushed)
    assert b.hub.get("asset", 1001)["v"][1] == moved
    assert b.fleet.vehicles[1001].seq == a.fleet.vehicles[1001].seq == 1
    # A stale copy (an older version) is not stored again, nor pushed.
    publish = next(c.record for c in changes if c.record and c.record["k"] == "publish")
    old = dict(publish, body=dict(publish["body"], v=[1]))
    assert rb.apply(old, 1.5) == []
    assert b.hub.get("asset", 1001)["v"][1] == moved
    # B takes over: its versions and seqs continue from A's.
    a.fleet.leading, b.fleet.leading = False, True
    b.tick(2.0)
    assert b.hub.get("asset", 1001)["v"][1] > moved
    assert b.fleet.vehicles[1001].seq == 2


def test_a_merge_through_b_reaches_a_subscriber_of_a() -> None:
    a, ra, b, rb = ff_pair()
    core_a, ghost = logged_in(a, 0.0)
    carry(ra, rb, 0.0)
    core_a.receive(
        'subscribe {"reqId":1,"company":{"id":1},"subscriptionTypes":["assetGeneral"]}', 0.0
    )
    core_a.data_to_send()
    core_b = b.hub.connect(ghost)
    core_b.connection_made(0.0)
    core_b.send(("noop", {}))
    core_b.data_to_send()
    core_b.receive('mergeAsset {"reqId":2,"asset":{"id":1001,"name":"Renamed","v":[1,1,1]}}', 1.0)
    assert frames(core_b)[0][1]["errorCode"] == 0
    assert carry(rb, ra, 1.0) == [core_a]
    ((name, body),) = frames(core_a)
    assert (name, body["name"], body["v"]) == ("assetGeneralMerged", "Renamed", [2])
    assert a.hub.get("asset", 1001)["name"] == "Renamed"


def test_itrack_hashes_and_states_follow() -> None:
    a = ITrackReference(shared_demo_fleet(2), wall_offset=0.0, hash_factory=lambda: "ab" * 16)
    b = ITrackReference(shared_demo_fleet(2), wall_offset=0.0)
    ra, rb = Replica(a, wall_offset=0.0), Replica(b, wall_offset=0.0)
    session = a.directory.authenticate("demo", "demo")
    (opened,) = ra.drain()
    assert opened.op is not None
    assert opened.op.key == "session:" + "ab" * 16
    rb.apply(opened.record or {}, 0.0)
    assert b.directory.user_of(getattr(session, "hash", "")) == "demo"
    a.fleet.leading = True
    a.tick(1.0)
    carry(ra, rb, 1.0)
    state = b.directory.trackers[1001].state
    assert state is not None
    assert state == a.directory.trackers[1001].state
    a.directory.logout_user("demo")
    carry(ra, rb, 2.0)
    assert b.directory.user_of("ab" * 16) is None


def test_a_replica_needs_a_shared_fleet() -> None:
    from trackwire.conformance import demo_fleet

    with pytest.raises(TypeError, match="SharedFleet"):
        Replica(FleetFreedomReference(demo_fleet(2)), wall_offset=0.0)


# -- the in-memory backplane --------------------------------------------------------------------


async def test_in_memory_state_never_rolls_back_and_hands_over_the_lead() -> None:
    plane = MemoryBackplane()
    first, second = InMemoryState(plane, "a"), InMemoryState(plane, "b")
    await first.write([Change({"n": 5}, Put("piece:x:1", {"n": 5}, 5))])
    await first.write([Change({"n": 3}, Put("piece:x:1", {"n": 3}, 3))])
    assert await second.load() == [{"n": 5}]
    assert await second.receive() == [{"n": 5}]
    assert await second.receive() == [{"n": 3}]  # fanned out; only the store refuses it
    assert await first.lead(0.05)
    assert not await second.lead(0.05)
    await trio.sleep(0.1)  # the holder stops renewing: the lock lapses
    assert await second.lead(0.05)
    assert not await first.lead(0.05)


# -- RESP ---------------------------------------------------------------------------------------


def test_resp_parser_reads_split_and_nested_replies() -> None:
    parser = RespParser()
    wire = b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n*1\r\n:1\r\n$0\r\n\r\n-ERR no\r\n"
    got = []
    for byte in range(len(wire)):
        parser.feed(wire[byte : byte + 1])
        while True:
            whole, reply = parser.next()
            if not whole:
                break
            got.append(reply)
    assert got[:5] == ["OK", 42, b"hello", None, [[1], b""]]
    assert isinstance(got[5], RedisError)
    assert str(got[5]) == "ERR no"
    assert encode_command("SET", "k", 1) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"
    parser.feed(b"?what\r\n")
    with pytest.raises(RedisError, match="not a RESP reply"):
        parser.next()


# -- a real Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


async def test_redis_state_versions_ttls_fan_out_and_lock(redis_url: str) -> None:
    with trio.fail_after(20):
        first = await RedisState.open(redis_url, "unit-test", "a")
        second = await RedisState.open(redis_url, "unit-test", "b")
        try:
            await first.write(
                [
                    Change({"k": "publish", "v": 7}, Put("piece:p:1", {"k": "publish", "v": 7}, 7)),
                    Change({"k": "session"}, Put("session:s", {"k": "session"}, ttl=0.2)),
                ]
            )
            await first.write([Change({"v": 4}, Put("piece:p:1", {"k": "publish", "v": 4}, 4))])
            assert await second.receive() == [{"k": "publish", "v": 7}, {"k": "session"}]
            assert await second.receive() == [{"v": 4}]
            loaded = await second.load()
            assert {"k": "publish", "v": 7} in loaded
            assert {"k": "session"} in loaded
            await trio.sleep(0.4)  # the session's TTL passes
            assert await second.load() == [{"k": "publish", "v": 7}]
            await first.write([Change(None, Delete(("piece:p:1",)))])
            assert await second.load() == []
            assert await first.lead(0.3)
            assert not await second.lead(0.3)
            await trio.sleep(0.5)
            assert await second.lead(0.3)
        finally:
            await first.aclose()
            await second.aclose()


async def test_redis_state_says_clearly_when_redis_is_not_there() -> None:
    from _redis_helpers import free_port

    with pytest.raises(RedisError, match="cannot connect to Redis"):
        await RedisState.open(f"redis://127.0.0.1:{free_port()}/0", "x")


class Watch:
    """A FleetFreedom client's events, kept."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.events: list[Any] = []

    async def until(self, cls: type, where: Any = lambda e: True) -> Any:
        async for event in self.conn:
            self.events.append(event)
            if isinstance(event, cls) and where(event):
                return event
        raise AssertionError(f"no {cls.__name__}: {self.events[-5:]}")


FAST = functools.partial(ReconnectPolicy, initial=0.05, cap=0.5)


async def test_fleetfreedom_two_processes_share_sessions_and_pushes(redis_url: str) -> None:
    # B starts first and leads (moves the fleet); A only relays what comes through Redis.
    with serve_processes("fleetfreedom", redis_url, 2, "--rate", "4", stagger=0.3) as (b, a):
        with trio.fail_after(30):
            url_a, url_b = f"ws://127.0.0.1:{a.port}/", f"ws://127.0.0.1:{b.port}/"
            async with connect(FleetFreedomClient(url_a)) as conn_a:
                on_a = Watch(conn_a)
                await conn_a.send(LOGIN)
                ghost = (await on_a.until(SessionResponse)).body["ghostId"]
                await conn_a.send(Command.subscribe(1, ["assetAdvanced", "assetGeneral"]))
                await on_a.until(SubscribeResponse)
                # The fleet moves in B: its pushes reach A's client.
                await on_a.until(Merged, lambda m: m.name == "assetAdvancedMerged")
                # The session opened on A resumes on B.
                client_b = FleetFreedomClient(url_b, ghost_id=ghost)
                async with connect(client_b) as conn_b:
                    on_b = Watch(conn_b)
                    resumed = await on_b.until(ConnectionResponse)
                    assert resumed.error_code == 0
                    assert resumed.body["ghostId"] == ghost
                    # A change made through B is pushed to A's client.
                    rename = {"id": 1001, "name": "Via B", "v": [1]}
                    await conn_b.send(Command.merge("asset", rename))
                    renamed = await on_a.until(Merged, lambda m: m.body.get("name") == "Via B")
                    assert renamed.name == "assetGeneralMerged"


async def test_fleetfreedom_clients_of_a_killed_process_resume_on_another(redis_url: str) -> None:
    # A starts first and leads; clients reach it through a balancer that prefers A.
    with serve_processes("fleetfreedom", redis_url, 2, "--rate", "4", stagger=0.3) as (a, b):
        with trio.fail_after(40):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(balancer, [a.port, b.port])
                client = FleetFreedomClient(f"ws://127.0.0.1:{port}/")
                async with connect(client, reconnect=FAST()) as conn:
                    seen = Watch(conn)
                    await conn.send(LOGIN)
                    ghost = (await seen.until(SessionResponse)).body["ghostId"]
                    await conn.send(Command.subscribe(1, ["assetAdvanced"]))
                    await seen.until(SubscribeResponse)
                    before: dict[int, int] = {}
                    while len(before) < 10 or min(before.values()) < 3:
                        push = await seen.until(Merged)
                        before[push.body["id"]] = push.body["v"][0]
                    a.kill()
                    resumed = await seen.until(ConnectionResponse)
                    assert (resumed.error_code, resumed.body["ghostId"]) == (0, ghost)
                    await seen.until(SubscribeResponse)  # the client replays it; B keeps it
                    after: dict[int, list[int]] = {}
                    while len(after) < 10 or any(max(v) <= before[k] for k, v in after.items()):
                        push = await seen.until(Merged)
                        after.setdefault(push.body["id"], []).append(push.body["v"][0])
                    # B moved on from A's versions: never below what the client had (a copy
                    # of A's last push may come again through B: at least once, same v).
                    for asset, versions in after.items():
                        assert min(versions) >= before[asset], (asset, before, after)
                        assert versions == sorted(versions), (asset, versions)
                    assert client.session.ghost_id == ghost
                nursery.cancel_scope.cancel()


async def test_itrack_hash_from_a_works_on_b_and_states_cross(redis_url: str) -> None:
    with serve_processes("itrack", redis_url, 2, "--rate", "4", stagger=0.3) as (b, a):
        with trio.fail_after(30):
            session_hash = await itrack_login(f"http://127.0.0.1:{a.port}/v2/", "demo", "demo")
            # B leads: the states A's client gets came through Redis.  Then B, which never
            # saw user/auth for this hash, accepts it.  (A hash reaches the other processes
            # one Redis round trip after user/auth answered: a client hopping sooner than
            # that would be refused once.)
            for port in (a.port, b.port):
                client = ITrackClient(
                    subscription_url(f"http://127.0.0.1:{port}/v2/"), session_hash
                )
                async with connect(client) as conn:
                    await conn.send(Subscribe([StateRequest([1001, 1002])]))
                    statuses: dict[int, str] = {}
                    async for event in conn:
                        if isinstance(event, ITrackSubscribed):
                            for result in event.results.values():
                                statuses.update(result.trackers)
                        if isinstance(event, StateEvent) and event.state.source_id == 10010:
                            break
                    assert statuses == {1001: "normal", 1002: "normal"}


async def test_itrack_clients_of_a_killed_process_resume_on_another(redis_url: str) -> None:
    # A leads; the client reaches it through a balancer that prefers A, then A dies.
    with serve_processes("itrack", redis_url, 2, "--rate", "4", stagger=0.3) as (a, b):
        with trio.fail_after(40):
            session_hash = await itrack_login(f"http://127.0.0.1:{a.port}/v2/", "demo", "demo")
            async with trio.open_nursery() as nursery:
                port = await nursery.start(balancer, [a.port, b.port])
                client = ITrackClient(
                    subscription_url(f"http://127.0.0.1:{port}/v2/"), session_hash
                )
                async with connect(client, reconnect=FAST()) as conn:
                    await conn.send(Subscribe([StateRequest([1001, 1002])]))
                    before: dict[int, int] = {}
                    after: dict[int, list[int]] = {}
                    reopened = False
                    async for event in conn:
                        if isinstance(event, Reconnecting):
                            reopened = True
                        if not isinstance(event, StateEvent):
                            continue
                        seq = event.state.raw["seq"]
                        if not reopened:
                            before[event.state.source_id] = seq
                            if (
                                len(before) == 2
                                and min(before.values()) >= 3
                                and a.proc.poll() is None
                            ):
                                a.kill()
                        else:
                            after.setdefault(event.state.source_id, []).append(seq)
                            if len(after) == 2 and min(map(len, after.values())) >= 3:
                                break
                    # The hash lived on in B, the client resubscribed there and B's fleet
                    # continued each tracker's seq.  The first state after a subscribe is B's
                    # latest: it may repeat the last one A sent, or, when A died between
                    # pushing a state and sharing it, be the one before (sharing is
                    # asynchronous, docs/scaling.md); from there the seqs only grow.
                    for source, seqs in after.items():
                        assert seqs[0] >= before[source] - 1, (before, after)
                        assert seqs == sorted(seqs), (before, after)
                        assert seqs[-1] > before[source], (before, after)
                nursery.cancel_scope.cancel()


def test_serve_without_its_redis_fails_in_one_line_and_a_bad_url_is_usage() -> None:
    from _cli_helpers import run
    from _redis_helpers import free_port

    gone = run("serve", "fleetfreedom", "--redis", f"redis://127.0.0.1:{free_port()}/0")
    assert gone.returncode == 1
    assert gone.stderr.startswith("trackwire: cannot connect to Redis at 127.0.0.1:")
    assert len(gone.stderr.splitlines()) == 1
    bad = run("serve", "itrack", "--redis", "http://127.0.0.1:6379/")
    assert bad.returncode == 2
    assert "redis://127.0.0.1:6379/0" in bad.stderr


def test_a_process_that_loses_redis_stops() -> None:
    with redis_process() as (url, proc), serve_processes("fleetfreedom", url, 1) as (server,):
        proc.kill()
        proc.wait()
        assert server.proc.wait(20) == 1
        assert server.proc.stderr is not None
        assert server.proc.stderr.read().startswith("trackwire: lost Redis: ")


class Heard:
    """An observer of a hub or a directory that writes down what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def session_opened(self, *args: Any) -> None:
        self.calls.append(("opened", args[0]))

    def session_touched(self, ghost_id: str, expires_at: float) -> None:
        self.calls.append(("touched", ghost_id, expires_at))

    def session_ended(self, session_id: str, reason: str = "") -> None:
        self.calls.append(("ended", session_id, reason))

    def published(self, name: str, company: int, body: Any) -> None:
        self.calls.append(("published", name, company))


def test_the_core_hooks_tell_every_session_change_and_publish() -> None:
    from trackwire.conformance import demo_fleet

    app = FleetFreedomReference(demo_fleet(2), wall_offset=0.0)
    heard = app.hub.observer = Heard()
    core, ghost = logged_in(app, 0.0)
    core.receive('noop {"reqId":2}', 5.0)
    app.hub.publish("assetGeneralMerged", 1, {"id": 1001, "v": [2]})
    core.receive('logout {"reqId":3}', 6.0)
    assert heard.calls == [
        ("opened", ghost),
        ("touched", ghost, 3605.0),
        ("published", "assetGeneralMerged", 1),
        ("touched", ghost, 3606.0),
        ("ended", ghost, "logout"),
    ]
    _, other = logged_in(app, 10.0)
    app.hub.prune(10_000.0)
    assert heard.calls[-1] == ("ended", other, "expired")

    directory = ITrackReference(demo_fleet(2), hash_factory=lambda: "cd" * 16).directory
    heard = directory.observer = Heard()
    directory.authenticate("demo", "demo")
    directory.logout("cd" * 16)
    directory.logout("cd" * 16)  # already gone: nothing more to tell
    assert heard.calls == [("opened", "cd" * 16), ("ended", "cd" * 16, "")]


async def test_two_servers_in_one_process_share_through_memory() -> None:
    from trackwire.drivers.trio import serve

    plane = MemoryBackplane()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ports = []
            for name in ("b", "a"):  # b starts first and moves the fleet
                offset = 0.0
                app = FleetFreedomReference(shared_demo_fleet(3, rate=5), wall_offset=offset)
                replica = Replica(app, wall_offset=offset)
                server = await nursery.start(functools.partial(serve, app.factory, "127.0.0.1", 0))
                await nursery.start(run_shared, replica, InMemoryState(plane, name), server)
                ports.append(server.port)
            port_b, port_a = ports
            async with connect(FleetFreedomClient(f"ws://127.0.0.1:{port_a}/")) as conn:
                on_a = Watch(conn)
                await conn.send(LOGIN)
                ghost = (await on_a.until(SessionResponse)).body["ghostId"]
                await conn.send(Command.subscribe(1, ["assetAdvanced"]))
                await on_a.until(SubscribeResponse)
                await on_a.until(Merged)  # moved by b, pushed by a
            assert plane.leader is not None
            assert plane.leader[0] == "b"
            client = FleetFreedomClient(f"ws://127.0.0.1:{port_b}/", ghost_id=ghost)
            async with connect(client) as conn:
                assert (await Watch(conn).until(ConnectionResponse)).error_code == 0
            nursery.cancel_scope.cancel()


def test_the_scale_script_prints_its_table_and_json(tmp_path: Any) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "scale.py"
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(script), "--processes", "2", "--clients", "6", "--seconds", "0.5",
         "--vehicles", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [(row["processes"], row["redis"]) for row in rows] == [(1, False), (2, True)]
    assert all(row["connected"] == 6 and row["pushes_per_s"] > 0 for row in rows)
    assert "| 2 on Redis | 6 (6) |" in done.stdout


async def test_an_itrack_logout_on_one_process_reaches_subscribers_of_another() -> None:
    from trackwire.drivers.trio import serve
    from trackwire.itrack import LogoutEvent

    plane = MemoryBackplane()
    apps = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ports = []
            for name in ("a", "b"):
                app = ITrackReference(shared_demo_fleet(2, rate=5), wall_offset=0.0)
                replica = Replica(app, wall_offset=0.0)
                serving = functools.partial(serve, app.factory, http_handler=app.http_handler)
                server = await nursery.start(serving)
                await nursery.start(run_shared, replica, InMemoryState(plane, name), server)
                apps.append(app)
                ports.append(server.port)
            session_hash = await itrack_login(f"http://127.0.0.1:{ports[0]}/v2/", "demo", "demo")
            while session_hash not in apps[1].directory.sessions:
                await trio.sleep(0.01)  # the hash crosses the backplane
            url = subscription_url(f"http://127.0.0.1:{ports[1]}/v2/")
            client = ITrackClient(url, session_hash)
            async with connect(client, reconnect=None) as conn:
                await conn.send(Subscribe([StateRequest([1001])]))
                async for event in conn:
                    if isinstance(event, StateEvent):
                        break
                apps[0].logout("demo", trio.current_time())  # the operator, on A
                async for event in conn:
                    if isinstance(event, LogoutEvent):
                        break
            assert session_hash not in apps[1].directory.sessions
            nursery.cancel_scope.cancel()


def test_a_session_ttl_expiry_is_told_to_the_observer() -> None:
    """``--session-ttl`` ends sessions through the hub, so a shared state hears of it."""
    from trackwire.conformance import demo_fleet

    app = FleetFreedomReference(demo_fleet(2), wall_offset=0.0, session_ttl=5.0)
    heard = app.hub.observer = Heard()
    _, ghost = logged_in(app, 0.0)
    app.tick(1.0)
    app.tick(10.0)
    assert ("ended", ghost, "expired") in heard.calls
    assert ghost not in app.hub.sessions
