"""Running the catalogue against a subject: probes with per-case time limits, verdicts, report.

:func:`run_server_cases` judges a server (the kit is the client); :func:`run_client_cases`
judges a client (the kit serves; see :mod:`trackwire.conformance._probes_client` for how
client connections are matched to cases).  Each has an ``async`` twin for callers already
inside trio.  Every probe runs under its own deadline, so a subject that hangs costs that
probe's time and nothing more: its cases get ERROR and the run goes on.
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import trio

from . import _probes_atmosphere, _probes_fleetfreedom, _probes_itrack
from ._catalogue import PROTOCOLS, Case, Verdict, get, select, verdict_for
from ._harness import Operator
from ._probes import (
    SERVER_PROBES,
    Blocked,
    Ctx,
    Outcome,
    Probe,
    ProbeError,
    ProbeOptions,
    ProbeResult,
    SubjectBroke,
    Unsupported,
    WireLog,
)
from ._probes_client import CLIENT_SCENARIOS, ClientCtx, KitServer, Scenario, subject_url
from ._report import CaseResult, Report, mask

__all__ = [
    "DEFAULT_TIMEOUT",
    "probed_cases",
    "run_client_cases",
    "run_client_cases_async",
    "run_server_cases",
    "run_server_cases_async",
]

_LOADED = (_probes_atmosphere, _probes_fleetfreedom, _probes_itrack)
"""The probe modules register themselves on import."""

DEFAULT_TIMEOUT = 10.0
"""Seconds one probe may take (on top of its deliberate waits, e.g. for idle heartbeats)."""

_NO_PROBE = "the kit has no probe for this case yet"
_NO_SCENARIO = (
    "the kit has no scenario for this case (what a client delivers to its application, or a "
    "wait of minutes, cannot be judged from the wire)"
)


def probed_cases(role: str = "server") -> frozenset[str]:
    """Ids of the cases the kit has a probe for, as ``role`` subject."""
    if role == "server":
        return frozenset(case for probe in SERVER_PROBES for case in probe.cases)
    return frozenset(case for scenario in CLIENT_SCENARIOS for case in scenario.cases)


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (trio wraps them)."""
    while True:
        inner = getattr(exc, "exceptions", None)  # a BaseExceptionGroup (3.11+ or backport)
        if not isinstance(inner, tuple) or len(inner) != 1:
            return exc
        exc = inner[0]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ProbeError, Unsupported)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"network error: {exc}"
    return f"{type(exc).__name__}: {exc}"


async def run_probe(
    name: str,
    extra_time: float,
    cases: Iterable[Case],
    timeout: float,
    body: Callable[[trio.Nursery, WireLog], Awaitable[ProbeResult]],
    faults: dict[str, str] | None = None,
) -> list[CaseResult]:
    """Run one probe under its deadline and turn what it found into results for ``cases``.

    ``body(nursery, log)`` runs the probe; the nursery holds its connections and is
    cancelled when the body returns, so no connection outlives its case.  ``faults`` maps
    a :class:`SubjectBroke` fault already reported to the case it failed first (kept
    across the probes of one run).
    """
    faults = {} if faults is None else faults
    broke: str | None = None
    cases = list(cases)
    ids = {case.id for case in cases}
    started = trio.current_time()
    log = WireLog(started)
    limit = timeout + extra_time
    found: ProbeResult | None = None
    failure: tuple[Verdict, str] | None = None
    root: str | None = None
    with trio.move_on_after(limit) as scope:
        try:
            async with trio.open_nursery() as nursery:
                try:
                    found = await body(nursery, log)
                finally:
                    nursery.cancel_scope.cancel()
        except BaseException as raised:  # every failure becomes a verdict
            exc = _leaf(raised)
            if isinstance(exc, Blocked):
                root = exc.root
            elif isinstance(exc, SubjectBroke):
                broke = exc.fault
                root = faults.setdefault(broke, cases[0].id) if cases else None
            if isinstance(exc, Unsupported):
                failure = (Verdict.UNSUPPORTED, str(exc))
            elif isinstance(exc, Exception):
                failure = (Verdict.ERROR, _describe(exc))
            else:
                raise
    duration = (trio.current_time() - started) / max(1, len(cases))
    if scope.cancelled_caught and found is None and failure is None:
        failure = (Verdict.ERROR, f"timed out after {limit:g} s (the subject stopped answering)")
        log.note(failure[1])
    results = []
    for case in cases:
        blocked_by = None
        if failure is not None:
            verdict, details = failure
            if root == case.id or (broke is not None and faults[broke] in ids):
                verdict = verdict_for(case, False)
            elif root is not None:
                blocked_by = root
        else:
            assert found is not None
            outcome = found if isinstance(found, Outcome) else found.get(case.id)
            if outcome is None:
                verdict, details = Verdict.ERROR, f"probe {name} gave no finding"
            elif outcome.passed is None:
                verdict, details = Verdict.UNSUPPORTED, outcome.details
            else:
                verdict, details = verdict_for(case, outcome.passed), outcome.details
        result = CaseResult(case, verdict, mask(details), duration, list(log.records))
        result.blocked_by = blocked_by
        results.append(result)
    return results


def _order(selected: Iterable[Case], results: Mapping[str, CaseResult]) -> list[CaseResult]:
    return [results[case.id] for case in selected]


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


async def run_server_cases_async(
    url: str,
    protocol: str,
    *,
    cases: str | None = None,
    login: str | None = None,
    password: str | None = None,
    username: str | None = None,
    second_login: str | None = None,
    second_username: str | None = None,
    second_password: str | None = None,
    operator: Operator | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    options: ProbeOptions | None = None,
    strict: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> Report:
    """Judge the server at ``url`` on the ``protocol`` cases matching the glob ``cases``.

    ``url`` is the Atmosphere endpoint (``atmosphere``), the API base URL (``itrack``,
    e.g. ``https://api.example/v2/``) or the WebSocket endpoint (``fleetfreedom``).
    Credentials: ``login``/``password`` (iTrack ``user/auth``), ``username``/``password``
    (FleetFreedom ``login``); cases that need them are UNSUPPORTED without them.  A second
    account of another tenant (``second_login`` or ``second_username``, with
    ``second_password``) lets the kit prove that neither tenant can see, subscribe to, read
    or be pushed the other's trackers, companies and objects.  ``operator`` (see
    :class:`~trackwire.conformance.Operator`) lets it block trackers and end sessions for the
    cases that need the server's operator; without one those cases are UNSUPPORTED.
    """
    _check_protocol(protocol)
    options = options or ProbeOptions()
    selected = select(protocol, "server", cases)
    wanted = {case.id for case in selected}
    credentials = {
        "login": login,
        "password": password,
        "username": username,
        "second-login": second_login,
        "second-username": second_username,
        "second-password": second_password,
    }
    shared: dict[str, Any] = {}
    faults: dict[str, str] = {}
    results: dict[str, CaseResult] = {}
    for probe in SERVER_PROBES:
        mine = [get(case_id) for case_id in probe.cases if case_id in wanted]
        if not mine:
            continue

        async def body(nursery: trio.Nursery, log: WireLog, probe: Probe = probe) -> ProbeResult:
            ctx = Ctx(
                url=url,
                protocol=protocol,
                options=options,
                nursery=nursery,
                log=log,
                credentials=credentials,
                shared=shared,
                ssl_context=ssl_context,
                operator=operator,
            )
            return await probe.run(ctx)

        extra = probe.extra_time(options)
        for result in await run_probe(probe.name, extra, mine, timeout, body, faults):
            results[result.case.id] = result
    for case in selected:
        results.setdefault(case.id, CaseResult(case, Verdict.UNSUPPORTED, _NO_PROBE))
    return Report(protocol, "server", url, _order(selected, results), strict)


def run_server_cases(url: str, protocol: str, **kwargs: Any) -> Report:
    """:func:`run_server_cases_async` in its own trio run (for callers outside trio)."""
    return trio.run(functools.partial(run_server_cases_async, url, protocol, **kwargs))


async def run_client_cases_async(
    protocol: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cases: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    options: ProbeOptions | None = None,
    strict: bool = False,
    time_limit: float | None = None,
    ready: Callable[[str], object] | None = None,
) -> Report:
    """Serve the ``protocol`` client scenarios on ``host:port`` (0: a free port) and judge the
    clients that connect (see :mod:`trackwire.conformance._probes_client` for the rules).

    ``ready(url)`` is called once the kit listens, with the URL to point clients at.
    ``time_limit`` bounds the whole run: scenarios not finished by then get ERROR.
    """
    _check_protocol(protocol)
    options = options or ProbeOptions()
    selected = select(protocol, "client", cases)
    wanted = {case.id for case in selected}
    results: dict[str, CaseResult] = {}
    server = KitServer(protocol, options)
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    url = subject_url(protocol, host, bound)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle, listeners)
        if ready is not None:
            ready(url)
        deadline = math.inf if time_limit is None else trio.current_time() + time_limit
        with trio.move_on_at(deadline):
            for scenario in CLIENT_SCENARIOS:
                mine = [get(c) for c in scenario.cases if c in wanted]
                if scenario.protocol != protocol or not mine:
                    continue

                async def body(
                    nursery: trio.Nursery, log: WireLog, scenario: Scenario = scenario
                ) -> ProbeResult:
                    ctx = ClientCtx(server, log, options)
                    server.active = ctx
                    try:
                        return await scenario.run(ctx)
                    finally:
                        server.active = None
                        await ctx.finish()

                extra = scenario.extra_time(options)
                found = await run_probe(scenario.name, extra, mine, timeout, body)
                for result in found:
                    results[result.case.id] = result
        nursery.cancel_scope.cancel()
    limit = f"not run: the time limit of {time_limit} s was reached"
    for case in selected:
        if case.id not in results:
            if case.id in probed_cases("client"):
                results[case.id] = CaseResult(case, Verdict.ERROR, limit)
            else:
                results[case.id] = CaseResult(case, Verdict.UNSUPPORTED, _NO_SCENARIO)
    return Report(protocol, "client", url, _order(selected, results), strict)


def run_client_cases(protocol: str, **kwargs: Any) -> Report:
    """:func:`run_client_cases_async` in its own trio run (for callers outside trio)."""
    return trio.run(functools.partial(run_client_cases_async, protocol, **kwargs))
