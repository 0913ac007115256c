"""One state update pushed to many connections is encoded once per form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trackwire.conformance import ITrackReference, demo_fleet
from trackwire.itrack import (
    Directory,
    ITrackClient,
    ITrackServer,
    SourceState,
    StatePush,
    StateRequest,
    Subscribe,
)
from trackwire.itrack import _server as server_module
from trackwire.ws import UpgradeRequest

HASH = "a" * 32
TARGET = (
    "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=2.3.6"
    "&X-Atmosphere-Transport=websocket&Content-Type=application/json"
)


def _directory() -> Directory:
    d = Directory(hash_factory=lambda: HASH)
    d.add_user("alice", "pw")
    d.authenticate("alice", "pw")
    d.add_tracker("alice", 1, source_id=101, state=SourceState.create(101))
    return d


def _subscribed(d: Directory, count: int, dumps: Any) -> list[ITrackServer]:
    cores = []
    for index in range(count):
        core = ITrackServer(TARGET, d, dumps=dumps)
        core.connection_made(0.0)
        request: dict[str, Any] = {"type": "state", "trackers": [1]}
        if index % 2:
            request["format"] = "compact"
        core.receive(json.dumps({"action": "subscribe", "hash": HASH, "requests": [request]}), 0.0)
        core.data_to_send()
        cores.append(core)
    return cores


@pytest.fixture
def counting() -> tuple[list[object], Any]:
    encoded: list[object] = []

    def dumps(value: Any) -> str:
        encoded.append(value)
        return json.dumps(value, separators=(",", ":"))

    return encoded, dumps


def test_a_push_is_encoded_once_per_form(counting: tuple[list[object], Any]) -> None:
    encoded, dumps = counting
    cores = _subscribed(_directory(), 50, dumps)
    encoded.clear()
    state = SourceState.create(101, connection_status="active", x_extra=1)
    push = StatePush(state, user_time="2024-01-01 00:00:00")
    for core in cores:
        core.push_state(1, push, 1.0)
    assert len(encoded) == 2  # full for half the subscribers, compact for the other half
    sent = [core.data_to_send() for core in cores]
    full, compact = sent[0][0], sent[1][0]
    assert all(frames == [full if i % 2 == 0 else compact] for i, frames in enumerate(sent))
    assert json.loads(full) == {
        "type": "event",
        "event": "state",
        "user_time": "2024-01-01 00:00:00",
        "data": {"source_id": 101, "connection_status": "active", "x_extra": 1},
    }
    assert json.loads(compact)["data"] == {"source_id": 101, "connection_status": "active"}


def test_a_bare_state_is_encoded_per_connection(counting: tuple[list[object], Any]) -> None:
    encoded, dumps = counting
    cores = _subscribed(_directory(), 10, dumps)
    encoded.clear()
    state = SourceState.create(101)
    for core in cores:
        core.push_state(1, state, 1.0)
    assert len(encoded) == 10
    # ... and gives the same frames a StatePush gives.
    bare = [core.data_to_send() for core in cores]
    push = StatePush(state)
    for core in cores:
        core.push_state(1, push, 2.0)
    assert [core.data_to_send() for core in cores] == bare


def test_a_push_goes_only_to_subscribers_of_the_tracker(counting: tuple[list[object], Any]) -> None:
    encoded, dumps = counting
    cores = _subscribed(_directory(), 3, dumps)
    encoded.clear()
    for core in cores:
        core.push_state(2, StatePush(SourceState.create(102)), 1.0)  # nobody's tracker 2
    assert encoded == []
    assert all(core.data_to_send() == [] for core in cores)


def test_the_reference_server_encodes_each_update_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = server_module.encode_event

    def counting_encode(event: str, data: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(event)
        return original(event, data, **kwargs)

    monkeypatch.setattr(server_module, "encode_event", counting_encode)
    app = ITrackReference(demo_fleet(1, seed=3), wall_offset=0.0)
    (vehicle,) = app.fleet.of_tenant("demo")
    status, _, body = app.http_handler("POST", "/v2/user/auth", [], b"login=demo&password=demo")
    assert status == 200
    session_hash = body.decode().split('"hash":"')[1][:32]
    clients = []
    for _ in range(20):
        client = ITrackClient("http://127.0.0.1/v2/event/subscription", session_hash)
        client.send(Subscribe([StateRequest([vehicle.id])]))
        server = app.factory(UpgradeRequest(client.url_to_open.split("127.0.0.1", 1)[1], "h"))
        assert isinstance(server, ITrackServer)
        server.connection_made(0.0)
        client.connection_made(0.0)
        for _ in range(3):
            for frame in server.data_to_send():
                client.receive(frame, 0.0)
            for frame in client.data_to_send():
                server.receive(frame, 0.0)
        clients.append((client, server))
    calls.clear()
    app.tick(1.0)
    assert calls == ["state"]  # one update, 20 subscribers, one encode
    texts = {tuple(server.data_to_send()) for _, server in clients}
    assert len(texts) == 1
