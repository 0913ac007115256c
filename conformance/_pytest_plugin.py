"""The pytest plugin: the conformance catalogue as test items, and reference-server fixtures.

Registered through the ``pytest11`` entry point, so installing trackwire (with its
``conformance`` extra) is enough:

- ``pytest --trackwire-server URL --trackwire-protocol P [--trackwire-login L
  --trackwire-password PW ...]`` judges the server at ``URL``: every case of the catalogue
  becomes one test item (``trackwire::<case id>``).  A MUST case that fails or cannot run
  fails its item; a failed SHOULD case passes with a :class:`TrackwireShouldWarning`, or
  fails with ``--trackwire-strict``; an UNSUPPORTED case is skipped with its reason.  The
  whole catalogue runs once, when its first item runs.
- Fixtures for testing your own application: ``trackwire_itrack_server`` and
  ``trackwire_fleetfreedom_server`` serve a reference server on a free loopback port for one
  test (a :class:`~trackwire.conformance.ReferenceServer`: ``.url``, ``.accounts``,
  ``.push_position()``, ``.block()``, ``.end_sessions()``, ``.expire_sessions()``,
  ``.restart()``), and ``trackwire_reference_server`` makes more of them.

Nothing here imports trio or the kit until a hook needs it, so the plugin costs nothing in
test runs that do not use it (and loads where only the core is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._harness import ReferenceServer
    from ._report import CaseResult, Report

__all__ = ["TrackwireShouldWarning"]

_PROTOCOLS = ("atmosphere", "itrack", "fleetfreedom")
_REPORT = pytest.StashKey["Report"]()
_WIRE_LINES = 40


class TrackwireShouldWarning(UserWarning):
    """A SHOULD case of the conformance catalogue failed (the subject works, but differs
    from the reference behaviour)."""


class ConformanceFailure(Exception):
    """A case item failed: its result (for the report of the item)."""

    def __init__(self, result: CaseResult, strict: bool) -> None:
        super().__init__(result.details)
        self.result = result
        self.strict = strict


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trackwire", "trackwire conformance kit")
    add = group.addoption
    add("--trackwire-server", metavar="URL", help="judge the server at URL (the kit's catalogue)")
    add("--trackwire-protocol", choices=_PROTOCOLS, help="the protocol the server speaks")
    add("--trackwire-cases", metavar="GLOB", help="only the case ids matching GLOB")
    add("--trackwire-strict", action="store_true", help="a failed SHOULD case fails its item")
    add("--trackwire-login", metavar="L", help="iTrack user/auth login")
    add("--trackwire-username", metavar="U", help="FleetFreedom login username")
    add("--trackwire-password", metavar="P", help="the password of the login or username")
    add("--trackwire-second-login", metavar="L", help="iTrack login of another tenant")
    add("--trackwire-second-username", metavar="U", help="FleetFreedom user of another company")
    add("--trackwire-second-password", metavar="P", help="the second account's password")
    add(
        "--trackwire-operator",
        metavar="MODULE:NAME",
        help="a callable returning the server's Operator (for block/logout cases)",
    )
    add("--trackwire-slow", action="store_true", help="also run the cases that wait minutes")
    add("--trackwire-timeout", type=float, metavar="S", help="seconds one probe may take")
    add("--trackwire-reply-wait", type=float, metavar="S", help="seconds to wait for answers")
    add("--trackwire-push-wait", type=float, metavar="S", help="seconds to wait for pushes")
    add("--trackwire-settle", type=float, metavar="S", help="seconds to watch for silence")
    add("--trackwire-idle-wait", type=float, metavar="S", help="seconds for an idle heartbeat")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "trackwire_case(id): a case of the conformance catalogue")
    if config.getoption("trackwire_server") and not config.getoption("trackwire_protocol"):
        raise pytest.UsageError("--trackwire-server needs --trackwire-protocol")


class CaseItem(pytest.Item):
    """One case of the catalogue, judged against ``--trackwire-server``."""

    def __init__(self, *, case_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_id = case_id
        self.add_marker(pytest.mark.trackwire_case(case_id))

    def runtest(self) -> None:
        from ._catalogue import Level, Verdict

        report = _run_catalogue(self.config)
        result = report.result(self.case_id)
        strict = report.strict
        verdict = result.verdict
        if verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"UNSUPPORTED: {result.details}")
        if verdict is Verdict.OK:
            return
        if result.case.level is Level.SHOULD and not strict and verdict is not Verdict.ERROR:
            import warnings

            warnings.warn(TrackwireShouldWarning(f"{self.case_id}: {result.details}"), stacklevel=1)
            return
        if result.case.level is Level.SHOULD and not strict:
            pytest.skip(f"ERROR on a SHOULD case: {result.details}")
        raise ConformanceFailure(result, strict)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if not isinstance(excinfo.value, ConformanceFailure):
            return str(super().repr_failure(excinfo))
        result = excinfo.value.result
        case = result.case
        lines = [
            f"{result.verdict.value}: {case.id} ({case.level.value}, {case.section})",
            f"spec: {case.quote}",
            f"expected: {case.expectation}",
        ]
        if result.blocked_by is not None:
            lines.append(f"blocked by {result.blocked_by}: fix that case first")
        lines.append(f"found: {result.details}")
        if result.wire:
            lines.append("wire log (last lines):")
            arrows = {"sent": "->", "received": "<-", "info": "**"}
            for r in result.wire[-_WIRE_LINES:]:
                lines.append(f"  {r.time:9.4f} #{r.connection} {arrows[r.direction]} {r.kind}: "
                             f"{r.data[:200]}")  # fmt: skip
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"trackwire conformance case {self.case_id}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not config.getoption("trackwire_server"):
        return
    from ._catalogue import select

    protocol = config.getoption("trackwire_protocol")
    for case in select(protocol, "server", config.getoption("trackwire_cases")):
        items.append(CaseItem.from_parent(session, name=f"trackwire::{case.id}", case_id=case.id))


def _load_operator(spec: str | None) -> Any:
    from ._cli import load_operator

    try:
        return load_operator(spec)
    except SystemExit as exc:
        raise pytest.UsageError(str(exc)) from None


def _run_catalogue(config: pytest.Config) -> Report:
    """Run the selected cases once (on the first item) and keep the report."""
    cached = config.stash.get(_REPORT, None)
    if cached is not None:
        return cached
    from ._probes import ProbeOptions
    from ._runner import DEFAULT_TIMEOUT, run_server_cases

    option = config.getoption
    waits = {
        name: option(f"trackwire_{name}")
        for name in ("reply_wait", "push_wait", "settle", "idle_wait")
        if option(f"trackwire_{name}") is not None
    }
    report = run_server_cases(
        option("trackwire_server"),
        option("trackwire_protocol"),
        cases=option("trackwire_cases"),
        login=option("trackwire_login"),
        username=option("trackwire_username"),
        password=option("trackwire_password"),
        second_login=option("trackwire_second_login"),
        second_username=option("trackwire_second_username"),
        second_password=option("trackwire_second_password"),
        operator=_load_operator(option("trackwire_operator")),
        timeout=option("trackwire_timeout") or DEFAULT_TIMEOUT,
        options=ProbeOptions(slow=bool(option("trackwire_slow")), **waits),
        strict=bool(option("trackwire_strict")),
    )
    config.stash[_REPORT] = report
    return report


# -- fixtures for people testing their own applications -----------------------------------------


@pytest.fixture
def trackwire_reference_server() -> Iterator[Callable[..., ReferenceServer]]:
    """A factory: ``trackwire_reference_server("itrack", vehicles=2, moving=False)`` starts a
    :class:`~trackwire.conformance.ReferenceServer`; all are stopped after the test."""
    from ._harness import ReferenceServer

    started: list[ReferenceServer] = []

    def make(platform: str, **options: Any) -> ReferenceServer:
        server = ReferenceServer(platform, **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def trackwire_itrack_server(
    trackwire_reference_server: Callable[..., ReferenceServer],
) -> ReferenceServer:
    """The iTrack reference server (demo/demo and other/other) on a free loopback port."""
    return trackwire_reference_server("itrack")


@pytest.fixture
def trackwire_fleetfreedom_server(
    trackwire_reference_server: Callable[..., ReferenceServer],
) -> ReferenceServer:
    """The FleetFreedom reference server (demo@example.com/demo, company 1, and
    other@example.com/other, company 2) on a free loopback port."""
    return trackwire_reference_server("fleetfreedom")
