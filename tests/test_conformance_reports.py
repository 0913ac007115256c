"""Reports people can act on: the spec sentence of every case, one root cause read as one
fault, no secret in any line, durations that add up, wire logs in order."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import trio
from test_conformance_runner import FAST, FF_LOGIN, TIMEOUT, fleetfreedom_factory, serving

from trackwire.conformance import FleetFreedomReference, Verdict, demo_fleet, get
from trackwire.conformance._report import (
    CaseResult,
    Report,
    mask,
    render_json,
    render_junit,
    render_text,
)
from trackwire.conformance._runner import run_server_cases_async
from trackwire.fleetfreedom import FleetFreedomServer

ROOT = "fleetfreedom.framing.error-code-number"


class StringCodes(FleetFreedomServer):
    """Answers a login with ``"errorCode":"0"`` (a string): one fault that stops every
    logged-in probe."""

    def _reply(
        self,
        name: str,
        req_id: object,
        code: int,
        payload: Any = None,
        message: str | None = None,
    ) -> None:
        super()._reply(name, req_id, code, payload, message)
        if name == "loginResponse":
            self._out[-1] = self._out[-1].replace('"errorCode":0', '"errorCode":"0"', 1)


async def _string_codes_report() -> tuple[Report, float]:
    app = FleetFreedomReference(demo_fleet(2))
    async with serving(app, fleetfreedom_factory(app, StringCodes)) as port:
        started = trio.current_time()
        report = await run_server_cases_async(
            f"ws://127.0.0.1:{port}/", "fleetfreedom", timeout=TIMEOUT, options=FAST, **FF_LOGIN
        )
        return report, trio.current_time() - started


async def test_one_root_cause_is_one_failure_and_the_rest_are_blocked_by_it() -> None:
    report, elapsed = await _string_codes_report()
    root = report.result(ROOT)
    assert root.verdict is Verdict.FAILED, root.details
    assert "'0'" in root.details or '"0"' in root.details
    blocked = [r for r in report.results if r.blocked_by is not None]
    assert len(blocked) >= 5
    assert {r.blocked_by for r in blocked} == {ROOT}
    assert all(r.verdict is Verdict.ERROR for r in blocked)
    errors = [r.id for r in report.results if r.verdict is Verdict.ERROR and r.blocked_by is None]
    assert errors == []

    text = render_text(report)
    assert text.count("not a JSON integer, so no login can be judged") == 1
    assert f"{len(blocked)} case(s) could not run because of one fault: fix {ROOT} first" in text
    document = json.loads(render_json(report))
    assert {c["blocked_by"] for c in document["cases"] if c["blocked_by"]} == {ROOT}
    suite = ET.fromstring(render_junit(report))
    messages = [e.get("message", "") for e in suite.findall("testcase/error")]
    assert all(m.startswith(f"blocked by {ROOT}") for m in messages)

    # The durations are shares of the probes' times: they add up to the run, not beyond.
    total = sum(r.duration for r in report.results)
    assert total <= elapsed
    assert (
        float(suite.get("time", "")) == round(total, 6)
        or abs(float(suite.get("time", "")) - total) < 1e-5
    )
    assert sum(float(c.get("time", "")) for c in suite.findall("testcase")) <= elapsed

    # No secret in any report line: the details name neither ghostIds nor the user object.
    for result in report.results:
        assert "demo@example.com" not in result.details
        assert "ghostId': '" not in result.details.replace("'***'", "")
    for record in (w for r in report.results for w in r.wire):
        assert '"password":"demo"' not in record.data


async def test_the_101_line_comes_before_the_first_frame() -> None:
    app = FleetFreedomReference(demo_fleet(2))
    async with serving(app, app.factory) as port:
        report = await run_server_cases_async(
            f"ws://127.0.0.1:{port}/",
            "fleetfreedom",
            cases="fleetfreedom.session.noop",
            options=FAST,
        )
    wire = report.result("fleetfreedom.session.noop").wire
    kinds = [(w.direction, w.kind, w.data.split(" ", 1)[0]) for w in wire if w.connection == 1]
    upgrade = kinds.index(("received", "http", "101"))
    first_frame = next(i for i, k in enumerate(kinds) if k[:2] == ("received", "text"))
    assert upgrade < first_frame
    times = [w.time for w in wire]
    assert times == sorted(times)


def test_every_renderer_shows_the_spec_sentence() -> None:
    case = get("fleetfreedom.session.noop")
    results = [
        CaseResult(case, Verdict.OK, "fine"),
        CaseResult(get("fleetfreedom.commands.req-id-echo"), Verdict.FAILED, "no reqId"),
    ]
    report = Report("fleetfreedom", "server", "ws://x/", results)
    for result in results:
        quote = result.case.quote
        assert quote in render_text(report)
        cases = json.loads(render_json(report))["cases"]
        assert quote in [c["quote"] for c in cases]
        suite = ET.fromstring(render_junit(report))
        specs = [p.get("value", "") for p in suite.findall("testcase/properties/property")]
        assert any(quote in spec for spec in specs)
    failure = ET.fromstring(render_junit(report)).find("testcase/failure")
    assert failure is not None
    assert results[1].case.quote in (failure.text or "")


def test_mask_hides_ghost_ids_passwords_and_user_objects() -> None:
    details = (
        "login drew {'errorCode': '0', 'ghostId': '0f8e-secret', 'user': {'login': "
        "'demo@example.com', 'company': {'id': 1}}, 'expiry': 'x'}; "
        'raw {"password":"hunter2","user":{"name":"Ann"}}'
    )
    masked = mask(details)
    for secret in ("0f8e-secret", "demo@example.com", "hunter2", "Ann"):
        assert secret not in masked
    assert "'expiry': 'x'" in masked
    assert "'errorCode': '0'" in masked


async def test_a_refused_login_blocks_the_cases_that_need_it() -> None:
    from trackwire.conformance import ReferenceServer

    with ReferenceServer("itrack", vehicles=2) as server:
        report = await run_server_cases_async(
            server.url, "itrack", cases="itrack.[ae]*", options=FAST, timeout=TIMEOUT,
            login="demo", password="not-the-password",
        )  # fmt: skip
    assert report.result("itrack.auth.success").verdict is Verdict.FAILED
    blocked = [r for r in report.results if r.blocked_by == "itrack.auth.success"]
    assert len(blocked) >= 5
    assert all("check the credentials" in r.details for r in blocked)
    assert "not-the-password" not in render_text(report, verbose=True)
