"""The operator hook: cases that need the server's operator (block, unblock, end a session)
are judged with one, and say honestly why they cannot be without one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trackwire.conformance import ReferenceServer, Verdict
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._runner import run_server_cases_async

FAST = ProbeOptions(reply_wait=1.0, settle=0.2, push_wait=0.8, idle_wait=1.0)
OPERATOR_CASES = "itrack.events.[lb]*"  # lifecycle, logout, blocked
LOGIN = {"login": "demo", "password": "demo"}


@pytest.fixture
def itrack() -> Iterator[ReferenceServer]:
    with ReferenceServer("itrack", vehicles=3, rate=10) as server:
        yield server


async def test_operator_cases_pass_on_the_reference_server(itrack: ReferenceServer) -> None:
    report = await run_server_cases_async(
        itrack.url, "itrack", cases=OPERATOR_CASES, options=FAST, operator=itrack.operator(),
        **LOGIN,
    )  # fmt: skip
    found = {r.id: (r.verdict, r.details) for r in report.results}
    assert found == {
        case: (Verdict.OK, found[case][1])
        for case in ("itrack.events.lifecycle", "itrack.events.blocked", "itrack.events.logout")
    }


async def test_without_an_operator_the_reason_says_what_is_missing(
    itrack: ReferenceServer,
) -> None:
    report = await run_server_cases_async(
        itrack.url, "itrack", cases=OPERATOR_CASES, options=FAST, **LOGIN
    )
    for result in report.results:
        assert result.verdict is Verdict.UNSUPPORTED
        assert "needs the server's operator" in result.details
        assert "cannot be observed" not in result.details


async def test_a_server_that_pushes_blocked_trackers_fails(itrack: ReferenceServer) -> None:
    app: Any = itrack.app

    def block_without_blocking(tracker_id: int, now: float) -> Any:
        return app._lifecycle(tracker_id, "block", now)  # announced, never applied

    app.block = block_without_blocking
    report = await run_server_cases_async(
        itrack.url, "itrack", cases=OPERATOR_CASES, options=FAST, operator=itrack.operator(),
        **LOGIN,
    )  # fmt: skip
    assert report.result("itrack.events.blocked").verdict is Verdict.FAILED
    assert "while blocked" in report.result("itrack.events.blocked").details
    assert report.result("itrack.events.lifecycle").verdict is Verdict.OK


async def test_a_server_whose_subscriptions_outlive_the_session_fails(
    itrack: ReferenceServer,
) -> None:
    app: Any = itrack.app

    def logout_silently(login: str, now: float) -> Any:
        app.directory.logout_user(login)  # the hash dies, nobody is told
        return []

    app.logout = logout_silently
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.events.logout", options=FAST,
        operator=itrack.operator(), **LOGIN,
    )  # fmt: skip
    result = report.result("itrack.events.logout")
    assert result.verdict is Verdict.FAILED
    assert "no logout event" in result.details
    assert "after the logout event" in result.details


FF_ACCOUNTS = {
    "username": "demo@example.com",
    "password": "demo",
    "second_username": "other@example.com",
    "second_password": "other",
}


@pytest.fixture
def fleetfreedom() -> Iterator[ReferenceServer]:
    with ReferenceServer("fleetfreedom", vehicles=3, rate=10) as server:
        yield server


async def test_session_ended_passes_on_the_fleetfreedom_reference(
    fleetfreedom: ReferenceServer,
) -> None:
    report = await run_server_cases_async(
        fleetfreedom.url, "fleetfreedom", cases="fleetfreedom.session.session-ended",
        options=FAST, operator=fleetfreedom.operator(), **FF_ACCOUNTS,
    )  # fmt: skip
    result = report.result("fleetfreedom.session.session-ended")
    assert result.verdict is Verdict.OK, result.details
    without = await run_server_cases_async(
        fleetfreedom.url, "fleetfreedom", cases="fleetfreedom.session.session-ended",
        options=FAST, **FF_ACCOUNTS,
    )  # fmt: skip
    assert without.results[0].verdict is Verdict.UNSUPPORTED
    assert "needs the server's operator" in without.results[0].details


async def test_sessions_ended_without_a_word_fail(fleetfreedom: ReferenceServer) -> None:
    app: Any = fleetfreedom.app

    def end_silently(username: str) -> Any:
        for ghost, session in list(app.hub.sessions.items()):
            if session.account.login == username:
                app.hub.forget_session(ghost, "killed")  # forgotten, nobody is told
        return []

    app.end_sessions = end_silently
    report = await run_server_cases_async(
        fleetfreedom.url, "fleetfreedom", cases="fleetfreedom.session.session-ended",
        options=FAST, operator=fleetfreedom.operator(), **FF_ACCOUNTS,
    )  # fmt: skip
    result = report.result("fleetfreedom.session.session-ended")
    assert result.verdict is Verdict.FAILED
    assert "got no sessionEnded" in result.details
