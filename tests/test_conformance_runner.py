"""The conformance kit against servers: our reference servers pass, broken ones are caught.

Every subject is served on 127.0.0.1 by the trio driver; the probe options are shrunk so that
the whole file runs in seconds (the kit's waits are its own, not assertions on time).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trackwire import Event
from trackwire.atmosphere import AtmosphereServer, Message, ServerState
from trackwire.conformance import (
    CATALOGUE,
    FleetFreedomReference,
    ITrackReference,
    Level,
    Verdict,
    demo_fleet,
    get,
    operator_for,
)
from trackwire.conformance._cli import add_subcommands, run
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._report import (
    CaseResult,
    Report,
    render_json,
    render_junit,
    render_text,
)
from trackwire.conformance._runner import probed_cases, run_server_cases_async
from trackwire.drivers.trio import Server, serve
from trackwire.fleetfreedom import FleetFreedomServer, ghost_id_from_request
from trackwire.itrack import ITrackServer
from trackwire.ws import Accept, Refuse, UpgradeRequest

FAST = ProbeOptions(reply_wait=0.8, settle=0.2, push_wait=0.6, idle_wait=1.0)
TIMEOUT = 4.0
ITRACK_LOGIN = {"login": "demo", "password": "demo"}
FF_LOGIN = {"username": "demo@example.com", "password": "demo"}
ITRACK_SECOND = {"second_login": "other", "second_password": "other"}
FF_SECOND = {"second_username": "other@example.com", "second_password": "other"}


# -- subjects ----------------------------------------------------------------------------------


async def _tick(app: ITrackReference | FleetFreedomReference, server: Server[Any]) -> None:
    """Move the fleet and write its pushes (what ``trackwire serve`` does)."""
    while True:
        deadline = app.next_deadline()
        await trio.sleep_until(trio.current_time() + 0.05 if deadline is None else deadline)
        server.flush(app.tick(trio.current_time()))


@asynccontextmanager
async def serving(
    app: ITrackReference | FleetFreedomReference,
    factory: Callable[[UpgradeRequest], Any],
    *,
    http: bool = False,
    extra: Callable[[Server[Any]], Any] | None = None,
) -> AsyncIterator[int]:
    """Serve ``factory`` (and the app's HTTP, for iTrack) with a moving fleet; the port."""
    handler = app.http_handler if http and isinstance(app, ITrackReference) else None
    async with trio.open_nursery() as nursery:
        server: Server[Any] = await nursery.start(
            functools.partial(serve, factory, "127.0.0.1", 0, http_handler=handler)
        )
        nursery.start_soon(_tick, app, server)
        if extra is not None:
            nursery.start_soon(extra, server)
        yield server.port
        nursery.cancel_scope.cancel()


def itrack_factory(
    app: ITrackReference, transport: type[AtmosphereServer] = AtmosphereServer
) -> Callable[[UpgradeRequest], ITrackServer | Refuse]:
    """The reference iTrack factory, with a quick server heartbeat (0.5 s) and a chosen
    Atmosphere transport class (the mutants)."""

    def factory(request: UpgradeRequest) -> ITrackServer | Refuse:
        path = request.target.split("?", 1)[0].rstrip("/")
        if path != "/v2/event/subscription":
            return Refuse(404)
        link = transport(request.target, heartbeat_interval_ms=30000, server_heartbeat=0.5)
        core = ITrackServer(request.target, app.directory, transport=link)
        app.connections[core] = None
        return core

    return factory


@asynccontextmanager
async def echo_serving(
    transport: type[AtmosphereServer] = AtmosphereServer,
) -> AsyncIterator[str]:
    """A plain Atmosphere endpoint on the core's defaults (no client heartbeat, padding X;
    a quick server heartbeat) whose application sends every message back; its URL."""

    def factory(request: UpgradeRequest) -> AtmosphereServer:
        return transport(request.target, server_heartbeat=0.5)

    def echo(conn: Any, event: Event) -> None:
        if isinstance(event, Message):
            conn.core.send(event.data)
            conn.flush()

    async with trio.open_nursery() as nursery:
        server: Server[Any] = await nursery.start(
            functools.partial(serve, factory, "127.0.0.1", 0, on_event=echo)
        )
        yield f"http://127.0.0.1:{server.port}/echo"
        nursery.cancel_scope.cancel()


def fleetfreedom_factory(
    app: FleetFreedomReference, core: type[FleetFreedomServer] = FleetFreedomServer
) -> Callable[[UpgradeRequest], FleetFreedomServer | Accept[FleetFreedomServer]]:
    """The reference FleetFreedom factory with a chosen server core class (the mutants)."""

    def factory(request: UpgradeRequest) -> FleetFreedomServer | Accept[FleetFreedomServer]:
        ghost = ghost_id_from_request(request.target, request.subprotocols)
        made = core(app.hub, ghost)
        if ghost is not None and ghost in request.subprotocols:
            return Accept(made, subprotocol=ghost)
        return made

    return factory


def verdicts(report: Report) -> dict[str, Verdict]:
    return report.verdicts()


def assert_probed_musts_pass(report: Report, but: tuple[str, ...] = ()) -> None:
    """Every MUST case the kit has a probe for is OK (``but`` those, checked by the caller);
    nothing FAILED or erred."""
    probed = probed_cases("server") - set(but)
    bad = {r.id: (r.verdict, r.details) for r in report.results if r.verdict is not Verdict.OK
           and r.verdict is not Verdict.UNSUPPORTED}  # fmt: skip
    assert bad == {}
    musts = [r for r in report.results if r.case.level is Level.MUST and r.id in probed]
    assert musts
    assert [r.id for r in musts if r.verdict is not Verdict.OK] == []
    assert report.exit_code == 0


# -- the reference servers pass ----------------------------------------------------------------


async def test_reference_itrack_passes_every_probed_atmosphere_case() -> None:
    app = ITrackReference(demo_fleet(3, rate=10))
    async with serving(app, itrack_factory(app)) as port:
        url = f"http://127.0.0.1:{port}/v2/event/subscription"
        report = await run_server_cases_async(url, "atmosphere", timeout=TIMEOUT, options=FAST)
    assert_probed_musts_pass(report)
    assert {r.id for r in report.results} == {c.id for c in CATALOGUE if c.protocol ==
                                              "atmosphere" and c.role != "client"}  # fmt: skip


async def test_an_echo_on_the_core_defaults_passes_every_probed_atmosphere_case() -> None:
    async with echo_serving() as url:
        report = await run_server_cases_async(url, "atmosphere", timeout=TIMEOUT, options=FAST)
    not_ok = {r.id: r.verdict for r in report.results if r.verdict is not Verdict.OK}
    # No client heartbeat announced (the core's default): nothing to swallow.
    assert not_ok == {"atmosphere.heartbeat.server-swallows-padding": Verdict.UNSUPPORTED}
    # What only an echo shows: non-ASCII text, blank writes, a message with a leading space.
    assert report.result("atmosphere.tms.utf16-length").details.startswith("3 non-ASCII")
    assert "answer" not in report.result("atmosphere.tms.blank-unprefixed").details
    assert report.result("atmosphere.tms.blank-unprefixed").details.count("unprefixed") == 2


async def test_reference_itrack_passes_every_probed_itrack_case() -> None:
    app = ITrackReference(demo_fleet(3, rate=10))
    servers: list[Server[Any]] = []

    async def grab(server: Server[Any]) -> None:
        servers.append(server)

    async with serving(app, app.factory, http=True, extra=grab) as port:
        url = f"http://127.0.0.1:{port}/v2/"
        while not servers:
            await trio.sleep(0.01)
        report = await run_server_cases_async(
            url, "itrack", timeout=TIMEOUT, options=FAST, operator=operator_for(app, servers[0]),
            **ITRACK_LOGIN, **ITRACK_SECOND,
        )  # fmt: skip
    assert_probed_musts_pass(report)
    logged = [w.data for r in report.results for w in r.wire]
    assert any("user/auth login=demo&password=***" in data for data in logged)
    assert not any("password=demo" in data for data in logged)  # reports can be shared
    # Cases without a probe are reported UNSUPPORTED, never OK.
    unprobed = [r for r in report.results if r.id not in probed_cases("server")]
    assert {r.verdict for r in unprobed} <= {Verdict.UNSUPPORTED}
    operated = ("itrack.events.lifecycle", "itrack.events.blocked", "itrack.events.logout",
                "itrack.tenants.isolation")  # fmt: skip
    assert [report.result(case).verdict for case in operated] == [Verdict.OK] * 4


async def test_reference_fleetfreedom_passes_every_probed_case() -> None:
    app = FleetFreedomReference(demo_fleet(3, rate=10))
    servers: list[Server[Any]] = []

    async def grab(server: Server[Any]) -> None:
        servers.append(server)

    async with serving(app, app.factory, extra=grab) as port:
        while not servers:
            await trio.sleep(0.01)
        report = await run_server_cases_async(
            f"ws://127.0.0.1:{port}/", "fleetfreedom", timeout=TIMEOUT, options=FAST,
            operator=operator_for(app, servers[0]), **FF_LOGIN, **FF_SECOND,
        )  # fmt: skip
    assert_probed_musts_pass(report)
    for case in ("fleetfreedom.session.session-ended", "fleetfreedom.commands.merge"):
        assert report.result(case).verdict is Verdict.OK, report.result(case).details
    isolation = report.result("fleetfreedom.errors.foreign-tenant-refused")
    assert isolation.verdict is Verdict.OK, isolation.details
    ok = [r for r in report.results if r.verdict is Verdict.OK]
    assert all(r.wire for r in ok)  # every judged case carries its wire log
    logins = [w.data for r in ok for w in r.wire if w.data.startswith("login ")]
    assert logins
    assert all(re.search(r'"password": ?"\*\*\*"', data) for data in logins)


async def test_without_credentials_login_cases_are_unsupported() -> None:
    app = FleetFreedomReference(demo_fleet(2))
    async with serving(app, app.factory) as port:
        report = await run_server_cases_async(
            f"ws://127.0.0.1:{port}/",
            "fleetfreedom",
            cases="fleetfreedom.session.*",
            timeout=TIMEOUT,
            options=FAST,
        )
    found = verdicts(report)
    assert found["fleetfreedom.session.login"] is Verdict.UNSUPPORTED
    assert "--username" in report.result("fleetfreedom.session.login").details
    assert found["fleetfreedom.session.noop"] is Verdict.OK
    assert found["fleetfreedom.session.connection-response-first"] is Verdict.OK


# -- broken servers are caught -----------------------------------------------------------------


class HandshakeOnReconnect(AtmosphereServer):
    """Sends the handshake again when a client comes back with its tracking id."""

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        if self.request.is_reconnect:
            self._out = [self.handshake_frame]


class ByteLengths(AtmosphereServer):
    """Counts TrackMessageSize lengths in UTF-8 bytes instead of UTF-16 code units."""

    def _frame(self, message: str) -> str:
        if self.track_message_length and message.strip():
            return f"{len(message.encode('utf-8'))}|{message}"
        return message


class TextOnReconnect(AtmosphereServer):
    """Greets a returning client with a text of its own, unprefixed even with TrackMessageSize
    (where the Java server writes blank padding, which may go unprefixed)."""

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        if self.request.is_reconnect:
            self._out = ["welcome back\n"]


@pytest.mark.parametrize(
    ("mutant", "failing", "unharmed"),
    [
        (
            TextOnReconnect,
            "atmosphere.tms.every-write-prefixed",
            ["atmosphere.reconnect.first-frame", "atmosphere.reconnect.no-handshake"],
        ),
        (
            HandshakeOnReconnect,
            "atmosphere.reconnect.no-handshake",
            ["atmosphere.reconnect.first-frame", "atmosphere.tms.utf16-length"],
        ),
        (
            ByteLengths,
            "atmosphere.tms.utf16-length",
            ["atmosphere.tms.every-write-prefixed", "atmosphere.reconnect.no-handshake"],
        ),
    ],
)
async def test_broken_atmosphere_servers_fail_the_right_case(
    mutant: type[AtmosphereServer], failing: str, unharmed: list[str]
) -> None:
    app = ITrackReference(demo_fleet(2))
    async with serving(app, itrack_factory(app, mutant)) as port:
        url = f"http://127.0.0.1:{port}/v2/event/subscription"
        report = await run_server_cases_async(
            url, "atmosphere", cases="atmosphere.[rt]*", timeout=TIMEOUT, options=FAST
        )
    found = verdicts(report)
    assert found[failing] is Verdict.FAILED
    assert report.result(failing).details
    for case in unharmed:
        assert found[case] is Verdict.OK, report.result(case).details
    assert report.exit_code == 1


class CrashesOnOpen(AtmosphereServer):
    """Raises while it is built, so the driver answers every upgrade with HTTP 500."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a broken server core")


async def test_a_server_failing_every_upgrade_fails_once_and_blocks_the_rest() -> None:
    # A 5xx answer to a well-formed upgrade is the subject's fault: FAILED, not ERROR; the
    # first probe that meets it fails its cases, every later one is blocked by the first.
    app = ITrackReference(demo_fleet(2))
    async with serving(app, itrack_factory(app, CrashesOnOpen)) as port:
        url = f"http://127.0.0.1:{port}/v2/event/subscription"
        report = await run_server_cases_async(url, "atmosphere", timeout=TIMEOUT, options=FAST)
    first = report.results[0]
    assert first.verdict is Verdict.FAILED
    assert "HTTP 500" in first.details
    later = [r for r in report.results if r.blocked_by is not None]
    assert later
    assert {r.blocked_by for r in later} == {first.id}
    assert all(r.verdict is Verdict.FAILED or r.blocked_by for r in report.results)
    assert report.exit_code == 1


class LeadingSpaceUnprefixed(AtmosphereServer):
    """Takes any message starting with a space for blank, and leaves it unprefixed."""

    def _frame(self, message: str) -> str:
        if message.startswith(" "):
            return message
        return super()._frame(message)


class FailsOnEmptyWrites(AtmosphereServer):
    """Raises when its application writes an empty message."""

    def send(self, item: str, now: float | None = None) -> None:
        if not item:
            raise RuntimeError("a broken server core")
        super().send(item, now)


class PrefixesBlankWrites(AtmosphereServer):
    """Prefixes application writes even when they are blank."""

    def _frame(self, message: str) -> str:
        if self.track_message_length and message:
            return f"{len(message)}|{message}"
        return message


@pytest.mark.parametrize(
    ("mutant", "case", "verdict", "words"),
    [
        (LeadingSpaceUnprefixed, "every-write-prefixed", Verdict.FAILED, "' trackwire"),
        (FailsOnEmptyWrites, "every-write-prefixed", Verdict.FAILED, "1011 (internal error)"),
        (PrefixesBlankWrites, "blank-unprefixed", Verdict.NON_STRICT, "'4|  \\t '"),
    ],
)
async def test_broken_framing_of_echoed_messages_is_caught(
    mutant: type[AtmosphereServer], case: str, verdict: Verdict, words: str
) -> None:
    async with echo_serving(mutant) as url:
        report = await run_server_cases_async(
            url, "atmosphere", cases="atmosphere.tms.*", timeout=TIMEOUT, options=FAST
        )
    result = report.result(f"atmosphere.tms.{case}")
    assert result.verdict is verdict
    assert words in result.details


class CrashesWhenOpened(AtmosphereServer):
    """Raises when asked for its state, so the driver drops the connection before answering
    the upgrade."""

    @property
    def state(self) -> ServerState:
        raise RuntimeError("a broken server core")


async def test_a_server_dropping_every_upgrade_fails_rather_than_errs() -> None:
    app = ITrackReference(demo_fleet(2))
    async with serving(app, itrack_factory(app, CrashesWhenOpened)) as port:
        url = f"http://127.0.0.1:{port}/v2/event/subscription"
        report = await run_server_cases_async(
            url, "atmosphere", cases="atmosphere.handshake.*", timeout=TIMEOUT, options=FAST
        )
    first = report.results[0]
    assert first.verdict is Verdict.FAILED
    assert "closed before the handshake response" in first.details
    assert all(r.verdict is Verdict.FAILED or r.blocked_by for r in report.results)


def test_byte_lengths_are_named_in_the_details() -> None:
    # The UTF-16 case explains which count the server used (bytes here).
    from trackwire.conformance._probes_atmosphere import split_prefixed

    message = "é😀"
    _, problem = split_prefixed(f"{len(message.encode())}|{message}")
    assert problem is not None
    assert "3 UTF-16 code units (6 UTF-8 bytes, 2 code points)" in problem
    assert split_prefixed("3|é😀2|ab") == (["é😀", "ab"], None)


class ForgetsReqId(FleetFreedomServer):
    """Answers every command without its reqId."""

    def _reply(
        self,
        name: str,
        req_id: object,
        code: int,
        payload: Any = None,
        message: str | None = None,
    ) -> None:
        super()._reply(name, None, code, payload, message)


class LateHello(FleetFreedomServer):
    """Keeps connectionResponse back until the client's first command has been answered."""

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        self.held_hello = self.data_to_send()

    def receive(self, data: str, now: float) -> None:
        super().receive(data, now)
        if self.held_hello:
            self._out = self.data_to_send() + self.held_hello
            self.held_hello = []


@pytest.mark.parametrize(
    ("mutant", "cases", "failing", "unharmed"),
    [
        (
            ForgetsReqId,
            "fleetfreedom.commands.*",
            "fleetfreedom.commands.req-id-echo",
            ["fleetfreedom.commands.no-req-id-when-absent", "fleetfreedom.commands.response-shape"],
        ),
        (
            LateHello,
            "fleetfreedom.session.[cn]o*",
            "fleetfreedom.session.connection-response-first",
            ["fleetfreedom.session.noop"],
        ),
    ],
)
async def test_broken_fleetfreedom_servers_fail_the_right_case(
    mutant: type[FleetFreedomServer], cases: str, failing: str, unharmed: list[str]
) -> None:
    app = FleetFreedomReference(demo_fleet(2))
    async with serving(app, fleetfreedom_factory(app, mutant)) as port:
        report = await run_server_cases_async(
            f"ws://127.0.0.1:{port}/", "fleetfreedom", cases=cases, timeout=TIMEOUT, options=FAST
        )
    found = verdicts(report)
    assert found[failing] is Verdict.FAILED, report.result(failing).details
    for case in unharmed:
        assert found[case] is Verdict.OK, report.result(case).details


async def test_a_server_pushing_to_an_unsubscribed_company_fails() -> None:
    app = FleetFreedomReference(demo_fleet(2))
    foreign = [v.id for v in app.fleet.vehicles.values() if v.tenant == "other"]

    async def leak(server: Server[Any]) -> None:
        # Every connection also gets company 2's positions, subscribed or not.
        while True:
            await trio.sleep(0.1)
            for conn in list(app.hub.connections):
                if conn.state.name in ("ANONYMOUS", "LOGGED_IN"):
                    body = {"id": foreign[0], "company": 2, "v": [99], "odometer": 1.0}
                    conn.send(("assetAdvancedMerged", body))
            server.flush()

    async with serving(app, app.factory, extra=leak) as port:
        report = await run_server_cases_async(
            f"ws://127.0.0.1:{port}/",
            "fleetfreedom",
            cases="fleetfreedom.[cs]*",
            timeout=TIMEOUT,
            options=FAST,
            **FF_LOGIN,
        )
    found = verdicts(report)
    assert found["fleetfreedom.subscriptions.only-subscribed"] is Verdict.FAILED
    assert "company 2" in report.result("fleetfreedom.subscriptions.only-subscribed").details
    assert found["fleetfreedom.subscriptions.foreign-company-denied"] is Verdict.FAILED
    for case in ("fleetfreedom.subscriptions.subscribe", "fleetfreedom.commands.req-id-echo",
                 "fleetfreedom.session.resume"):  # fmt: skip
        assert found[case] is Verdict.OK, report.result(case).details


# -- subjects that do not answer ---------------------------------------------------------------


async def test_a_hanging_server_costs_its_timeout_and_the_run_finishes() -> None:
    held: list[trio.SocketStream] = []

    async def hang(stream: trio.SocketStream) -> None:
        held.append(stream)  # accept, never answer
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, hang, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(30):  # a guard against a hanging kit, not a timing assertion
            report = await run_server_cases_async(
                f"ws://127.0.0.1:{port}/a",
                "atmosphere",
                cases="atmosphere.*.f*",
                timeout=0.3,
                options=FAST,
            )
        nursery.cancel_scope.cancel()
    assert held
    assert {r.verdict for r in report.results} == {Verdict.ERROR}
    assert all("timed out" in r.details for r in report.results)
    assert all(any("timed out" in w.data for w in r.wire) for r in report.results)
    assert report.exit_code == 1


async def test_connection_refused_is_an_error_not_a_failure() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nobody listens there any more
    report = await run_server_cases_async(
        f"ws://127.0.0.1:{port}/",
        "fleetfreedom",
        cases="fleetfreedom.commands.[nru]*",  # none needs a login
        options=FAST,
    )
    assert len(report.results) == 4
    assert {r.verdict for r in report.results} == {Verdict.ERROR}
    assert "cannot connect" in report.results[0].details


# -- reports -----------------------------------------------------------------------------------


async def _mixed_report() -> Report:
    app = FleetFreedomReference(demo_fleet(2))
    async with serving(app, fleetfreedom_factory(app, ForgetsReqId)) as port:
        return await run_server_cases_async(
            f"ws://127.0.0.1:{port}/",
            "fleetfreedom",
            cases="fleetfreedom.commands.*",
            timeout=TIMEOUT,
            options=FAST,
        )


async def test_json_and_junit_reports_hold_every_case() -> None:
    report = await _mixed_report()
    counts = report.counts()
    assert counts[Verdict.FAILED] >= 1
    assert counts[Verdict.OK] >= 1

    document = json.loads(render_json(report))
    assert document["protocol"] == "fleetfreedom"
    assert document["role"] == "server"
    assert document["exit_code"] == 1
    assert len(document["cases"]) == len(report.results)
    for case in document["cases"]:
        assert set(case) >= {"id", "verdict", "duration", "details", "wire", "level"}
        assert case["verdict"] in {v.value for v in Verdict}
        for record in case["wire"]:
            assert set(record) == {"time", "connection", "direction", "kind", "data"}
            assert record["direction"] in ("sent", "received", "info")
    echo = next(c for c in document["cases"] if c["id"] == "fleetfreedom.commands.req-id-echo")
    assert echo["verdict"] == "FAILED"
    sent = [w["data"] for w in echo["wire"] if w["direction"] == "sent" and w["kind"] == "text"]
    assert 'noop {"reqId":7}' in sent

    suite = ET.fromstring(render_junit(report))
    assert suite.tag == "testsuite"
    assert int(suite.get("tests", "")) == len(report.results)
    failures = suite.findall("testcase/failure")
    assert int(suite.get("failures", "")) == len(failures) == counts[Verdict.FAILED]
    assert int(suite.get("skipped", "")) == len(suite.findall("testcase/skipped"))
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == [r.id for r in report.results]

    text = render_text(report)
    assert "FAILED      fleetfreedom.commands.req-id-echo" in text
    assert text.rstrip().endswith("result: FAIL")


def _result(case_id: str, verdict: Verdict, details: str = "") -> CaseResult:
    return CaseResult(get(case_id), verdict, details)


def test_strict_counts_should_failures_and_junit_follows() -> None:
    should = "fleetfreedom.commands.lists"
    assert get(should).level is Level.SHOULD
    results = [
        _result("fleetfreedom.session.noop", Verdict.OK),
        _result(should, Verdict.NON_STRICT, "no company in the answer \x00"),
        _result("fleetfreedom.subscriptions.deleted", Verdict.UNSUPPORTED, "no probe"),
    ]
    relaxed = Report("fleetfreedom", "server", "ws://x/", results)
    strict = Report("fleetfreedom", "server", "ws://x/", results, strict=True)
    assert relaxed.exit_code == 0
    assert strict.exit_code == 1
    assert ET.fromstring(render_junit(relaxed)).get("failures") == "0"
    suite = ET.fromstring(render_junit(strict))  # the NUL is escaped, the XML still parses
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    assert "\\u0000" in (suite.find("testcase/failure").get("message") or "")  # type: ignore[union-attr]


def test_an_error_on_a_must_case_fails_the_run() -> None:
    report = Report("itrack", "server", "u", [_result("itrack.auth.success", Verdict.ERROR, "x")])
    assert report.exit_code == 1
    assert ET.fromstring(render_junit(report)).get("errors") == "1"
    with pytest.raises(KeyError):
        report.result("itrack.auth.failure")


# -- the command line --------------------------------------------------------------------------


def _parse(argv: list[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser(prog="trackwire")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_lists_the_cases_of_a_protocol() -> None:
    import io

    out = io.StringIO()
    assert run(_parse(["conformance", "list", "--protocol", "itrack"]), out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == len([c for c in CATALOGUE if c.protocol == "itrack"])
    auth = next(line for line in lines if line.startswith("itrack.auth.success "))
    assert "probe:server" in auth
    keeps = next(line for line in lines if line.startswith("itrack.events.client-keeps-unknown "))
    assert "probe:-" in keeps


def _serve_in_thread(started: threading.Event, port: list[int], stop: threading.Event) -> None:
    async def main() -> None:
        app = FleetFreedomReference(demo_fleet(2))
        async with serving(app, app.factory) as bound:
            port.append(bound)
            started.set()
            while not stop.is_set():
                await trio.sleep(0.05)

    trio.run(main)


def test_cli_judges_a_server_and_writes_reports(tmp_path: Path) -> None:
    import io

    started, stop, port = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=_serve_in_thread, args=(started, port, stop), daemon=True)
    thread.start()
    try:
        assert started.wait(10)
        argv = [
            "conformance", "server", f"ws://127.0.0.1:{port[0]}/", "--protocol", "fleetfreedom",
            "--username", "demo@example.com", "--password", "demo", "--cases",
            "fleetfreedom.session.*", "--json", str(tmp_path / "r.json"), "--junit",
            str(tmp_path / "r.xml"), "--timeout", "4", "--reply-wait", "1", "--settle", "0.2",
        ]  # fmt: skip
        out = io.StringIO()
        code = run(_parse(argv), out)
    finally:
        stop.set()
        thread.join(10)
    assert code == 0, out.getvalue()
    assert "result: PASS" in out.getvalue()
    document = json.loads((tmp_path / "r.json").read_text())
    assert all(c["id"].startswith("fleetfreedom.session.") for c in document["cases"])
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("failures") == "0"
