"""The conformance kit in client mode judging the real npm ``atmosphere.js`` clients.

The subject is ``interop/node/harness.js`` run the way an application runs the library: one
Node process per client, started afresh whenever the previous one was refused (the kit
answers HTTP 410 once a scenario is over) or gave up; the harness closes the subscription
when a message carries the kit's close signal (``--close-on``) and pushes a message after
onOpen and again after onReopen (``--push-on-open``: for iTrack, the subscribe an application
sends after logging in).

Every case the kit has a scenario for must come out OK, except where :data:`DEVIATIONS` names
what a release does against the specification: those must come out with exactly that
verdict, so that a kit or client change that moves them is seen.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from _atmosphere_peer import VERSIONS, NodeHarness, node_setup_problem

from trackwire.conformance import Verdict
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._probes_client import CLOSE_SIGNAL
from trackwire.conformance._report import Report
from trackwire.conformance._runner import probed_cases, run_client_cases_async
from trackwire.drivers.trio import itrack_login
from trackwire.itrack import StateRequest, Subscribe, dumps, encode_action, subscription_url

OPTIONS = ProbeOptions(
    reply_wait=1.0,
    settle=0.3,
    heartbeat_ms=300,
    client_wait=3.0,
    reconnect_wait=2.0,
    inactivity_timeout=2.5,
)
"""Short waits (the defaults suit clients started by hand); the Atmosphere harness is given
the same inactivity timeout (``--timeout-ms``)."""

IDLE = 0.8
"""A client with no socket open or opening for this long has given up: start another."""

DEVIATIONS: dict[tuple[str, str], dict[str, tuple[Verdict, str]]] = {
    ("atmosphere", "5.0.45"): {
        # close() only closes the socket: no HTTP close request (§6), and the socket's close
        # handler schedules a reconnect all the same.
        "atmosphere.close.http-request": (
            Verdict.FAILED,
            "the socket closed without a close request",
        ),
        # onReopen fires when the socket opens, so the application's message goes out before
        # the server's first frame (§5, a SHOULD).
        "atmosphere.reconnect.client-reopens-on-first-frame": (
            Verdict.NON_STRICT,
            "sent before the server's first frame",
        ),
        # The inactivity timer only calls the application's clientTimeout handler: no close
        # request, the socket stays open (§4, a SHOULD).
        "atmosphere.heartbeat.client-inactivity-timeout": (
            Verdict.NON_STRICT,
            "still open after",
        ),
    },
}
"""(protocol, version) -> {case id: (verdict, a text its details contain)}: where that release
departs from the specification (docs/conformance.md lists them)."""


@dataclasses.dataclass
class Lifecycle:
    """What the driver saw of one harness process (for the failure messages)."""

    started: int = 0
    refused: int = 0
    idle: int = 0
    exited: int = 0


def _ended(lines: list[dict[str, Any]], idle_since: float | None, now: float) -> str | None:
    """Why the client in ``lines`` is over (``None`` while it runs): a socket that failed
    before it opened (refused: the kit's 410, or its 503 between scenarios), the process
    ended, or no socket open or opening for :data:`IDLE` seconds (the library gave up, or the
    application closed it)."""
    opening = opened = False
    for line in lines:
        event = line.get("event")
        if event == "ws-connect":
            opening, opened = True, False
        elif event == "ws-open":
            opening, opened = False, True
        elif event in ("ws-close", "ws-error"):
            if opening:
                return "refused"
            opened = False
        elif event == "exit":
            return "exited"
    if not (opening or opened) and idle_since is not None and now - idle_since > IDLE:
        return "idle"
    return None


Subject = Callable[[str], Awaitable[list[str]]]
"""The kit's URL -> the harness's ``--url`` and options for one fresh client."""


async def run_subject(version: str, url: str, subject: Subject, seen: Lifecycle) -> None:
    """Fresh harness processes, one after the other, until cancelled."""
    while True:
        target, *args = await subject(url)
        harness = NodeHarness(version, target, *args, max_seconds=30)
        seen.started += 1
        try:
            harness.start()
            idle_since: float | None = None
            while True:
                await trio.sleep(0.02)
                lines = harness.lines()
                sockets = [x for x in lines if x["event"] in ("ws-connect", "ws-close")]
                if not lines or (sockets and sockets[-1]["event"] == "ws-connect"):
                    idle_since = None
                elif idle_since is None:
                    idle_since = trio.current_time()
                why = _ended(lines, idle_since, trio.current_time())
                if why is not None:
                    setattr(seen, why, getattr(seen, why) + 1)
                    break
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(harness.stop)


async def judge(protocol: str, version: str, subject: Subject) -> tuple[Report, Lifecycle]:
    url: list[str] = []
    ready = trio.Event()
    seen = Lifecycle()

    def announce(where: str) -> None:
        url.append(where)
        ready.set()

    async def run() -> None:
        await ready.wait()
        await run_subject(version, url[0], subject, seen)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(90):  # a guard against a hanging kit, not a timing assertion
            report = await run_client_cases_async(
                protocol, timeout=6.0, options=OPTIONS, ready=announce, time_limit=60
            )
        nursery.cancel_scope.cancel()
    return report, seen


COMMON = ("--reconnect-interval-ms", "100", "--close-on", CLOSE_SIGNAL)
"""Quick reconnects (5.x doubles the interval on each attempt), the application's close."""


def _check(report: Report, protocol: str, version: str, seen: Lifecycle) -> None:
    probed = probed_cases("client")
    found = {r.id: (r.verdict.name, r.details) for r in report.results}
    expected = DEVIATIONS.get((protocol, version), {})
    wrong = {
        r.id: (r.verdict.name, r.details)
        for r in report.results
        if r.id in probed and r.verdict is not Verdict.OK and r.id not in expected
    }
    assert wrong == {}, f"{seen}\n{json.dumps(found, indent=1)}"
    for case, (verdict, text) in expected.items():
        result = report.result(case)
        assert (result.verdict, text in result.details) == (verdict, True), (case, result.details)
    assert {r.verdict for r in report.results if r.id not in probed} == {Verdict.UNSUPPORTED}


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    problem = node_setup_problem(request.param)
    if problem is not None:
        pytest.fail(f"atmosphere.js {request.param} cannot run: {problem}", pytrace=False)
    return str(request.param)


async def test_atmosphere_cases(version: str) -> None:
    async def subject(url: str) -> list[str]:
        timeout = str(int(OPTIONS.inactivity_timeout * 1000))
        return [
            url,
            "--track-message-length",
            "--timeout-ms",
            timeout,
            "--push-on-open",
            '{"hello":"kit"}',
            *COMMON,
        ]

    report, seen = await judge("atmosphere", version, subject)
    _check(report, "atmosphere", version, seen)


async def test_itrack_cases(version: str) -> None:
    # An iTrack application: log in, then subscribe on onOpen and again on onReopen.
    async def subject(base: str) -> list[str]:
        subscribe = encode_action(
            Subscribe([StateRequest([1, 2])]), await itrack_login(base, "someone", "x")
        )
        return [subscription_url(base), "--push-on-open", dumps(subscribe), *COMMON]

    report, seen = await judge("itrack", version, subject)
    _check(report, "itrack", version, seen)
