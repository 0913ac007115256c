"""The pytest plugin: the catalogue as test items against a server, and the reference-server
fixtures for people testing their own applications (run through pytest's ``pytester``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trackwire.conformance import ReferenceServer
from trackwire.fleetfreedom import FleetFreedomServer, ghost_id_from_request
from trackwire.ws import UpgradeRequest

pytest_plugins = ["pytester"]

WAITS = ["--trackwire-reply-wait", "0.8", "--trackwire-settle", "0.2",
         "--trackwire-push-wait", "0.6", "--trackwire-idle-wait", "1.0",
         "--trackwire-timeout", "6", "-p", "no:cacheprovider"]  # fmt: skip
FF = ["--trackwire-protocol", "fleetfreedom", "--trackwire-username", "demo@example.com",
      "--trackwire-password", "demo"]  # fmt: skip


@pytest.fixture
def fleetfreedom() -> Iterator[ReferenceServer]:
    with ReferenceServer("fleetfreedom", vehicles=2, rate=10) as server:
        yield server


class Sloppy(FleetFreedomServer):
    """Answers noop without its reqId (a MUST case fails) and writes loose JSON (a SHOULD
    case fails)."""

    def _reply(self, name: str, req_id: object, *args: object, **kwargs: object) -> None:
        super()._reply(name, None if name == "noopResponse" else req_id, *args, **kwargs)  # type: ignore[arg-type]
        self._out[-1] = self._out[-1].replace('":', '": ')


def _break(server: ReferenceServer) -> None:
    app = server.app

    def factory(request: UpgradeRequest) -> FleetFreedomServer:
        assert not isinstance(app, type)
        hub = app.hub  # type: ignore[union-attr]
        return Sloppy(hub, ghost_id_from_request(request.target, request.subprotocols))

    app.factory = factory  # type: ignore[method-assign,assignment]


def test_every_case_is_an_item_and_the_reference_passes(
    pytester: pytest.Pytester, fleetfreedom: ReferenceServer
) -> None:
    result = pytester.runpytest(
        "--trackwire-server", fleetfreedom.url, *FF, "--trackwire-cases", "fleetfreedom.commands.*",
        "-v", *WAITS,
    )  # fmt: skip
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*trackwire::fleetfreedom.commands.req-id-echo PASSED*"])


def test_a_failed_must_fails_its_item_and_a_should_warns(
    pytester: pytest.Pytester, fleetfreedom: ReferenceServer
) -> None:
    _break(fleetfreedom)
    args = ["--trackwire-server", fleetfreedom.url, *FF, "--trackwire-cases",
            "fleetfreedom.[cf][or][ma]*", *WAITS]  # fmt: skip
    result = pytester.runpytest(*args)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*FAILED: fleetfreedom.commands.req-id-echo (MUST, §3)*",
            "*spec: it repeats the reqId (present only if one was sent)*",
            "*TrackwireShouldWarning: fleetfreedom.framing.compact-json*",
        ]
    )
    strict = pytester.runpytest(*args, "--trackwire-strict")
    strict.stdout.fnmatch_lines(["*NON-STRICT: fleetfreedom.framing.compact-json (SHOULD, §1)*"])
    assert strict.parseoutcomes()["failed"] == outcomes["failed"] + 1


def test_unsupported_cases_are_skipped_with_their_reason(
    pytester: pytest.Pytester, fleetfreedom: ReferenceServer
) -> None:
    result = pytester.runpytest(
        "--trackwire-server", fleetfreedom.url, "--trackwire-protocol", "fleetfreedom",
        "--trackwire-cases", "fleetfreedom.commands.get-object", "-rs", *WAITS,
    )  # fmt: skip
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*UNSUPPORTED: needs --username*"])


def test_the_server_option_needs_a_protocol(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--trackwire-server", "ws://127.0.0.1:9/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trackwire-server needs --trackwire-protocol*"])


def test_without_the_options_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


FIXTURE_TESTS = """
import json
import urllib.request

from trackwire.drivers.blocking import connect, itrack_login
from trackwire.fleetfreedom import Command, FleetFreedomClient, Merged, SessionEnded
from trackwire.itrack import (
    ITrackClient, LifecycleEvent, LogoutEvent, StateEvent, StateRequest, Subscribe,
    subscription_url,
)


def _events(conn, accept, limit=10.0):
    import time
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        event = conn.next_event(timeout=0.2)
        if event is not None and accept(event):
            return event
    raise AssertionError("no such event")


def test_itrack_server_is_scriptable(trackwire_reference_server):
    server = trackwire_reference_server("itrack", vehicles=2, moving=False)
    tracker = server.trackers("demo")[0]
    assert server.accounts[0].login == "demo"
    client = ITrackClient(subscription_url(server.url), itrack_login(server.url, "demo", "demo"))
    client.send(Subscribe([StateRequest([tracker])]))
    with connect(client, reconnect=None) as conn:
        _events(conn, lambda e: isinstance(e, StateEvent))          # the current state
        server.push_position(tracker, 10.5, 20.25)
        moved = _events(conn, lambda e: isinstance(e, StateEvent))
        assert moved.state.gps.location.lat == 10.5
        server.block(tracker)
        assert _events(conn, lambda e: isinstance(e, LifecycleEvent)).lifecycle_event == "block"
        server.end_sessions("demo")
        _events(conn, lambda e: isinstance(e, LogoutEvent))


def test_itrack_restart_loses_every_session(trackwire_itrack_server):
    server = trackwire_itrack_server
    old = itrack_login(server.url, "demo", "demo")
    server.restart()
    assert server.restarts == 1
    client = ITrackClient(subscription_url(server.url), old)
    client.send(Subscribe([StateRequest(server.trackers("demo"))]))
    with connect(client, reconnect=None) as conn:
        error = _events(conn, lambda e: type(e).__name__ == "ErrorMessage")
        assert error.code in (3, 4)


def test_itrack_expired_sessions_and_unblocked_trackers(trackwire_reference_server):
    server = trackwire_reference_server("itrack", vehicles=2, moving=False)
    tracker = server.trackers("demo")[0]
    client = ITrackClient(subscription_url(server.url), itrack_login(server.url, "demo", "demo"))
    client.send(Subscribe([StateRequest([tracker])]))
    with connect(client, reconnect=None) as conn:
        _events(conn, lambda e: isinstance(e, StateEvent))
        server.block(tracker)
        server.unblock(tracker)
        assert _events(conn, lambda e: isinstance(e, LifecycleEvent)
                       and e.lifecycle_event == "unblock")
        _events(conn, lambda e: isinstance(e, StateEvent))          # current state again
    old = itrack_login(server.url, "demo", "demo")
    server.expire_sessions()
    late = ITrackClient(subscription_url(server.url), old)
    late.send(Subscribe([StateRequest([tracker])]))
    with connect(late, reconnect=None) as conn:
        error = _events(conn, lambda e: type(e).__name__ == "ErrorMessage")
        assert error.code in (3, 4)


def test_fleetfreedom_restart_and_expiry_lose_sessions(trackwire_fleetfreedom_server):
    server = trackwire_fleetfreedom_server
    client = FleetFreedomClient(server.url)
    client.send(Command.login("demo@example.com", "demo", "pytester"))
    with connect(client, reconnect=None) as conn:
        logged = _events(conn, lambda e: getattr(e, "name", "") == "loginResponse")
    ghost = logged.body["ghostId"]
    server.expire_sessions()
    again = FleetFreedomClient(server.url, ghost_id=ghost)
    with connect(again, reconnect=None) as conn:
        hello = _events(conn, lambda e: getattr(e, "name", "") == "connectionResponse")
        assert hello.body["errorCode"] != 0
    server.restart()
    assert server.restarts == 1
    fresh = FleetFreedomClient(server.url)
    fresh.send(Command.login("other@example.com", "other", "pytester"))
    with connect(fresh, reconnect=None) as conn:
        answer = _events(conn, lambda e: getattr(e, "name", "") == "loginResponse")
        assert answer.body["errorCode"] == 0
        assert answer.body["user"]["company"] == 2


def test_fleetfreedom_server_pushes_and_ends_sessions(trackwire_reference_server):
    server = trackwire_reference_server("fleetfreedom", vehicles=2, moving=False)
    asset = server.trackers("demo")[0]
    client = FleetFreedomClient(server.url)
    client.send(Command.login("demo@example.com", "demo", "pytester"))
    client.send(Command.subscribe(1, ["assetAdvanced"]))
    with connect(client, reconnect=None) as conn:
        _events(conn, lambda e: getattr(e, "name", "") == "subscribeResponse")
        server.push_position(asset, 1.25, 2.5)
        merged = _events(conn, lambda e: isinstance(e, Merged))
        assert merged.body["position"]["lat"] == 1.25
        server.end_sessions("demo@example.com")
        _events(conn, lambda e: isinstance(e, SessionEnded))
"""


def test_the_fixtures_serve_scriptable_reference_servers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FIXTURE_TESTS)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=5)


@pytest.mark.parametrize(
    ("platform", "args"),
    [
        ("itrack", ["--trackwire-protocol", "itrack", "--trackwire-login", "demo",
                    "--trackwire-password", "demo", "--trackwire-second-login", "other",
                    "--trackwire-second-password", "other"]),
        ("fleetfreedom", [*FF, "--trackwire-second-username", "other@example.com",
                          "--trackwire-second-password", "other"]),
    ],
)  # fmt: skip
def test_the_whole_catalogue_passes_against_both_reference_servers_in_a_subprocess(
    pytester: pytest.Pytester, platform: str, args: list[str]
) -> None:
    with ReferenceServer(platform, vehicles=3, rate=10) as server:  # type: ignore[arg-type]
        result = pytester.runpytest_subprocess("--trackwire-server", server.url, *args, *WAITS)
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    assert outcomes["passed"] >= 19
    assert "failed" not in outcomes
