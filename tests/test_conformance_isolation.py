"""Tenant isolation: with a second account the kit proves that neither tenant sees,
subscribes to, reads or is pushed the other's trackers, companies and objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trackwire.conformance import ReferenceServer, Verdict
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._runner import run_server_cases_async
from trackwire.fleetfreedom import FleetFreedomServer, ghost_id_from_request
from trackwire.ws import UpgradeRequest

FAST = ProbeOptions(reply_wait=0.8, settle=0.3, push_wait=0.6, idle_wait=1.0)
ITRACK = {"login": "demo", "password": "demo", "second_login": "other", "second_password": "other"}
FF = {"username": "demo@example.com", "password": "demo",
      "second_username": "other@example.com", "second_password": "other"}  # fmt: skip


@pytest.fixture
def itrack() -> Iterator[ReferenceServer]:
    with ReferenceServer("itrack", vehicles=3, rate=10) as server:
        yield server


@pytest.fixture
def fleetfreedom() -> Iterator[ReferenceServer]:
    with ReferenceServer("fleetfreedom", vehicles=3, rate=10) as server:
        yield server


async def test_without_a_second_account_isolation_is_unsupported(itrack: ReferenceServer) -> None:
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.tenants.*", options=FAST,
        login="demo", password="demo",
    )  # fmt: skip
    result = report.result("itrack.tenants.isolation")
    assert result.verdict is Verdict.UNSUPPORTED
    assert "--second-login" in result.details


async def test_an_itrack_server_leaking_another_tenants_trackers_fails(
    itrack: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every tracker is everybody's (the class is patched: the directory has slots).
    monkeypatch.setattr(type(itrack.app.directory), "status", lambda self, login, t: "normal")
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.tenants.*", options=FAST, **ITRACK
    )
    result = report.result("itrack.tenants.isolation")
    assert result.verdict is Verdict.FAILED
    assert "answered normal" in result.details
    assert "push(es) about the other tenant" in result.details


class ReadsEverything(FleetFreedomServer):
    """Shows every object to every user (get<Type> and lists skip the company check)."""

    def _visible(self, object_type: str, obj: Any) -> bool:
        return True


async def test_a_fleetfreedom_server_showing_other_companies_objects_fails(
    fleetfreedom: ReferenceServer,
) -> None:
    app: Any = fleetfreedom.app

    def factory(request: UpgradeRequest) -> FleetFreedomServer:
        return ReadsEverything(app.hub, ghost_id_from_request(request.target, ()))

    app.factory = factory
    report = await run_server_cases_async(
        fleetfreedom.url, "fleetfreedom", cases="fleetfreedom.errors.*", options=FAST, **FF
    )
    result = report.result("fleetfreedom.errors.foreign-tenant-refused")
    assert result.verdict is Verdict.FAILED
    assert "getAsset of the other company's asset" in result.details
    assert report.result("fleetfreedom.errors.anonymous-refused").verdict is Verdict.OK


async def test_commands_before_login_are_refused_on_every_route(
    fleetfreedom: ReferenceServer,
) -> None:
    report = await run_server_cases_async(
        fleetfreedom.url, "fleetfreedom", cases="fleetfreedom.errors.[an]*", options=FAST, **FF
    )
    result = report.result("fleetfreedom.errors.anonymous-refused")
    assert result.verdict is Verdict.OK, result.details
    assert "6 commands refused before login" in result.details
    wire = " ".join(w.data for w in result.wire)
    for command in ("getAsset ", "getAssetsList ", "mergeAsset ", "subscribe "):
        assert command in wire
