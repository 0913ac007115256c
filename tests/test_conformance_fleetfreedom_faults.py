"""FleetFreedom push faults the kit catches: unsubscribed types pushed, subscriptions alive
after logout, a merge without v accepted, pushes under another name."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from trackwire.conformance import ReferenceServer, Verdict
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._runner import run_server_cases_async
from trackwire.fleetfreedom import FleetFreedomServer, ghost_id_from_request
from trackwire.ws import UpgradeRequest

FAST = ProbeOptions(reply_wait=0.8, settle=0.3, push_wait=0.6, idle_wait=1.0)
LOGIN = {"username": "demo@example.com", "password": "demo"}


@pytest.fixture
def fleetfreedom() -> Iterator[ReferenceServer]:
    with ReferenceServer("fleetfreedom", vehicles=3, rate=10) as server:
        yield server


def _serve(server: ReferenceServer, core: type[FleetFreedomServer]) -> None:
    app: Any = server.app

    def factory(request: UpgradeRequest) -> FleetFreedomServer:
        return core(app.hub, ghost_id_from_request(request.target, ()))

    app.factory = factory


async def _judge(server: ReferenceServer, cases: str) -> Any:
    return await run_server_cases_async(server.url, "fleetfreedom", cases=cases, options=FAST,
                                        **LOGIN)  # fmt: skip


async def test_the_reference_passes_the_push_cases(fleetfreedom: ReferenceServer) -> None:
    report = await _judge(fleetfreedom, "fleetfreedom.[sv]*")
    bad = {r.id: r.details for r in report.results if r.verdict not in (Verdict.OK,
           Verdict.UNSUPPORTED)}  # fmt: skip
    assert bad == {}


async def test_pushing_types_never_subscribed_fails(
    fleetfreedom: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub: Any = fleetfreedom.app.hub
    original: Callable[..., Any] = hub.publish

    def publish(name: str, company: int, body: Any) -> Any:
        # Whoever subscribed anything of the company gets every piece.
        for (_, of), conns in list(hub._subscribers.items()):
            if of == company:
                for conn in conns:
                    hub._subscribers.setdefault((name[:-6], company), {})[conn] = None
        return original(name, company, body)

    monkeypatch.setattr(hub, "publish", publish)
    report = await _judge(fleetfreedom, "fleetfreedom.subscriptions.only-subscribed")
    result = report.result("fleetfreedom.subscriptions.only-subscribed")
    assert result.verdict is Verdict.FAILED
    assert "with only assetGeneral subscribed" in result.details


class KeepsSubscriptions(FleetFreedomServer):
    """Logs out but keeps pushing what the connection subscribed."""

    def _drop_session(self, reason: str) -> None:
        held = {company: set(types) for company, types in self._subscriptions.items()}
        super()._drop_session(reason)
        for company, types in held.items():
            self.hub._subscribe(self, company, types)


async def test_subscriptions_alive_after_logout_fail(fleetfreedom: ReferenceServer) -> None:
    _serve(fleetfreedom, KeepsSubscriptions)
    report = await _judge(fleetfreedom, "fleetfreedom.session.logout")
    result = report.result("fleetfreedom.session.logout")
    assert result.verdict is Verdict.FAILED
    assert "after logout" in result.details


class MergesWithoutVersion(FleetFreedomServer):
    """Takes a merge without v as a merge at the stored version."""

    def _object_merge(self, name: str, body: dict[str, Any], req_id: object, kind: str) -> None:
        fields = body.get(kind)
        if isinstance(fields, dict) and "v" not in fields:
            stored = self.hub.store.objects.get((kind, fields.get("id")))
            if stored is not None:
                fields["v"] = list(stored["v"])
        super()._object_merge(name, body, req_id, kind)


async def test_a_merge_without_v_accepted_fails(fleetfreedom: ReferenceServer) -> None:
    _serve(fleetfreedom, MergesWithoutVersion)
    report = await _judge(fleetfreedom, "fleetfreedom.versions.stale-merge-refused")
    result = report.result("fleetfreedom.versions.stale-merge-refused")
    assert result.verdict is Verdict.FAILED
    assert "without v" in result.details


async def test_renamed_pushes_fail_instead_of_being_unsupported(
    fleetfreedom: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub: Any = fleetfreedom.app.hub

    def publish(name: str, company: int, body: Any) -> Any:
        targets = list(hub._subscribers.get((name[:-6], company), {}))
        for conn in targets:
            conn._push(f"{name[:-6]}Updated " + json.dumps(body))
        return targets

    monkeypatch.setattr(hub, "publish", publish)
    report = await _judge(fleetfreedom, "fleetfreedom.subscriptions.piece-messages")
    result = report.result("fleetfreedom.subscriptions.piece-messages")
    assert result.verdict is Verdict.FAILED
    assert "assetAdvancedUpdated" in result.details


class MergesSilently(FleetFreedomServer):
    """Answers merges and creations but pushes nothing of them."""

    def _publish_pieces(self, object_type: str, obj: Any, slots: Any) -> None:
        return None


class PushesWholeObjects(FleetFreedomServer):
    """Pushes every field of a changed object in each piece, not the piece's own fields."""

    def _publish_pieces(self, object_type: str, obj: Any, slots: Any) -> None:
        names = ("GeneralMerged", "AdvancedMerged", "DispatchMerged")
        for slot in slots:
            body = {**obj, "v": [obj["v"][slot]]}
            self.hub.publish(object_type + names[slot], obj["company"], body)


class RemovesSilently(FleetFreedomServer):
    """Removes objects without pushing <objectType>Deleted."""

    def _object_remove(self, name: str, body: dict[str, Any], req_id: object, kind: str) -> None:
        hub: Any = self.hub
        hub.publish = lambda *args: []
        try:
            super()._object_remove(name, body, req_id, kind)
        finally:
            del hub.publish


@pytest.mark.parametrize(
    ("core", "failed", "found"),
    [
        (MergesSilently, "fleetfreedom.commands.merge", "no assetGeneralMerged"),
        (PushesWholeObjects, "fleetfreedom.commands.merge", "assetGeneralMerged carries tags"),
        (RemovesSilently, "fleetfreedom.subscriptions.deleted", "not assetDeleted"),
    ],
)
async def test_merge_faults_fail(
    fleetfreedom: ReferenceServer, core: type[FleetFreedomServer], failed: str, found: str
) -> None:
    _serve(fleetfreedom, core)
    objects = dict(fleetfreedom.app.hub.store.objects)
    report = await _judge(fleetfreedom, "fleetfreedom.[cs][ou][mb]*")
    result = report.result(failed)
    # deleted is a SHOULD case: its failure is NON-STRICT.
    assert result.verdict in (Verdict.FAILED, Verdict.NON_STRICT)
    assert result.verdict is Verdict.FAILED or failed.endswith(".deleted")
    assert found in result.details
    # The kit's own asset is gone again, whatever the fault.
    assert fleetfreedom.app.hub.store.objects.keys() == objects.keys()


async def test_the_reference_passes_the_merge_cases(fleetfreedom: ReferenceServer) -> None:
    objects = dict(fleetfreedom.app.hub.store.objects)
    report = await _judge(fleetfreedom, "fleetfreedom.[cs][ou][mb]*")
    found = {r.id: (r.verdict, r.details) for r in report.results}
    for case in ("fleetfreedom.commands.merge", "fleetfreedom.subscriptions.deleted"):
        assert found[case][0] is Verdict.OK, found[case]
    assert fleetfreedom.app.hub.store.objects.keys() == objects.keys()


class ShortSessions(FleetFreedomServer):
    """Tells clients their session expires a minute after the last command."""

    def _session_fields(self, session: Any) -> dict[str, Any]:
        fields = super()._session_fields(session)
        fields["expiry"] = self.hub.datetime(self._now + 60.0)
        return fields


async def test_a_session_dying_before_the_keepalive_fails(fleetfreedom: ReferenceServer) -> None:
    _serve(fleetfreedom, ShortSessions)
    report = await _judge(fleetfreedom, "fleetfreedom.session.[lgr]*")
    for case in ("login", "get-session-details", "resume"):
        result = report.result(f"fleetfreedom.session.{case}")
        assert result.verdict is Verdict.FAILED, (case, result.details)
        assert "before the client's 5-minute keep-alive" in result.details
