"""The conformance kit against clients: our trio clients pass, broken clients are caught.

The subject runs as a real user would run it: a fresh client (over the trio driver, with
quick reconnects) whenever the previous one stopped or was refused, ending its session when
the kit sends the close signal.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import pytest
import trio

from trackwire import Event, ReconnectPolicy
from trackwire.atmosphere import AtmosphereClient, AtmosphereEvent, ClientState, Message
from trackwire.atmosphere._url import build_close_url
from trackwire.conformance import Level, Verdict
from trackwire.conformance._cli import _options, add_subcommands
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._probes_client import CLOSE_SIGNAL, RAW_SIGNAL, SIGNAL_NAME
from trackwire.conformance._report import Report
from trackwire.conformance._runner import probed_cases, run_client_cases_async
from trackwire.drivers.trio import GaveUp, ReconnectFailed, connect, itrack_login
from trackwire.fleetfreedom import (
    Broadcast,
    CloseRequested,
    Command,
    FleetFreedomClient,
    FleetFreedomEvent,
    InvalidMessage,
    Response,
    UnknownMessage,
)
from trackwire.itrack import (
    ErrorMessage,
    ITrackClient,
    StateRequest,
    Subscribe,
    build_auth_request,
    subscription_url,
)

FAST = ProbeOptions(
    reply_wait=1.0,
    settle=0.2,
    heartbeat_ms=150,
    client_wait=3.0,
    reconnect_wait=2.0,
)
QUICK = ReconnectPolicy(initial=0.05, factor=1.0, cap=0.05, jitter=0.0, max_attempts=2)


async def _atmosphere(url: str) -> AtmosphereClient:
    return AtmosphereClient(url)


async def _itrack(url: str) -> ITrackClient:
    client = ITrackClient(subscription_url(url), await itrack_login(url, "someone", "secret"))
    client.send(Subscribe([StateRequest([1, 2])]))
    return client


async def _fleetfreedom(url: str) -> FleetFreedomClient:
    client = FleetFreedomClient(url)
    client.send(Command.login("someone@example.com", "secret", "conformance-test"))
    client.send(Command.subscribe(1, ["assetGeneral", "assetAdvanced"]))
    return client


def _signalled(event: Event) -> bool:
    if isinstance(event, FleetFreedomEvent):
        return _ff_exactly(event)
    if isinstance(event, AtmosphereEvent):  # an Atmosphere application compares a message
        return _exactly(event)
    return CLOSE_SIGNAL in repr(event)


def _ff_exactly(event: Event) -> bool:
    """What a FleetFreedom application compares (the kit's contract): the message of a
    broadcast or of the unknown message trackwireConformance, the raw text of a bad line."""
    if isinstance(event, Broadcast):
        return event.body.get("message") == CLOSE_SIGNAL
    if isinstance(event, UnknownMessage):
        return event.name == SIGNAL_NAME and event.body.get("message") == CLOSE_SIGNAL
    return isinstance(event, InvalidMessage) and event.raw == RAW_SIGNAL


def _exactly(event: Event) -> bool:
    """What an Atmosphere application compares: the whole message."""
    return isinstance(event, Message) and event.data == CLOSE_SIGNAL


async def run_subject(
    url: str,
    make: Callable[[str], Any],
    ends_on: Callable[[Event], bool] | None = None,
    signalled: Callable[[Event], bool] = _signalled,
) -> None:
    """Fresh clients, one after the other, until cancelled (each ends its session in order
    on an event ``ends_on`` accepts, as an application may)."""
    while True:
        core = await make(url)
        async with connect(core, reconnect=QUICK) as conn:
            async for event in conn:
                if isinstance(event, (ReconnectFailed, GaveUp)):
                    break  # refused (the scenario is over) or given up: start afresh
                if ends_on is not None and ends_on(event):
                    break
                if signalled(event):
                    if isinstance(core, FleetFreedomClient):
                        await conn.send(Command.logout())
                        continue
                    break  # leaving the block closes the session (close request included)
                request = event.request if isinstance(event, Response) else None
                if request is not None and request.name == "logout":
                    break
        await trio.sleep(0.02)


async def judge(
    protocol: str,
    make: Callable[[str], Any],
    cases: str | None = None,
    ends_on: Callable[[Event], bool] | None = None,
    options: ProbeOptions = FAST,
    signalled: Callable[[Event], bool] = _signalled,
) -> Report:
    url: list[str] = []
    ready = trio.Event()

    def announce(where: str) -> None:
        url.append(where)
        ready.set()

    async def subject() -> None:
        await ready.wait()
        await run_subject(url[0], make, ends_on, signalled)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subject)
        with trio.fail_after(60):  # a guard against a hanging kit, not a timing assertion
            report = await run_client_cases_async(
                protocol, cases=cases, timeout=4.0, options=options, ready=announce, time_limit=40
            )
        nursery.cancel_scope.cancel()
    return report


TMS_ONLY = ("atmosphere.tms.client-carry-over", "atmosphere.tms.client-bad-length")
"""Cases that do not apply to a client without TrackMessageSize (UNSUPPORTED then)."""


def assert_probed_musts_pass(report: Report, not_applicable: tuple[str, ...] = ()) -> None:
    probed = probed_cases("client") - set(not_applicable)
    bad = {r.id: (r.verdict, r.details) for r in report.results
           if r.verdict not in (Verdict.OK, Verdict.UNSUPPORTED)}  # fmt: skip
    assert bad == {}
    musts = [r for r in report.results if r.case.level is Level.MUST and r.id in probed]
    assert musts
    assert [(r.id, r.details) for r in musts if r.verdict is not Verdict.OK] == []
    assert report.exit_code == 0
    unprobed = [r for r in report.results if r.id not in probed]
    assert {r.verdict for r in unprobed} <= {Verdict.UNSUPPORTED}


# -- our clients pass --------------------------------------------------------------------------


async def test_our_atmosphere_client_passes() -> None:
    report = await judge("atmosphere", _atmosphere)
    assert_probed_musts_pass(report, TMS_ONLY)
    assert {report.result(case).verdict for case in TMS_ONLY} == {Verdict.UNSUPPORTED}
    assert report.subject.startswith("http://127.0.0.1:")
    cadence = report.result("atmosphere.heartbeat.client-cadence")
    beats = [w for w in cadence.wire if w.direction == "received" and w.data == " hb "]
    assert len(beats) >= 2  # the heartbeats are in the wire log, with their times
    assert beats == sorted(beats, key=lambda w: w.time)
    close = report.result("atmosphere.close.http-request")
    assert close.verdict is Verdict.OK
    assert any("X-Atmosphere-Transport=close" in w.data for w in close.wire)


async def test_our_itrack_client_passes() -> None:
    assert_probed_musts_pass(await judge("itrack", _itrack))


async def test_a_client_ending_on_a_server_error_is_judged_on_that_error_only() -> None:
    # What `trackwire watch itrack` does: the first server error ends the program (close
    # 1000).  The kit sends each odd frame on its own, the error last.
    report = await judge("itrack", _itrack, ends_on=lambda event: isinstance(event, ErrorMessage))
    assert_probed_musts_pass(report)
    assert "in order" in report.result("itrack.errors.client-null-action").details


async def test_our_fleetfreedom_client_passes() -> None:
    report = await judge("fleetfreedom", _fleetfreedom)
    assert_probed_musts_pass(report)
    assert report.result("fleetfreedom.client.close-code").verdict is Verdict.OK


# -- broken clients are caught -----------------------------------------------------------------


class Eager(FleetFreedomClient):
    """Sends its commands as soon as the socket opens, before connectionResponse."""

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        self._out.extend(self._held)
        self._held = []


async def test_a_client_sending_before_connection_response_fails() -> None:
    async def make(url: str) -> FleetFreedomClient:
        client = Eager(url)
        client.send(Command.login("someone@example.com", "secret", "conformance-test"))
        return client

    report = await judge("fleetfreedom", make, cases="fleetfreedom.[sc]*")
    found = report.verdicts()
    failing = "fleetfreedom.session.no-command-before-connection-response"
    assert found[failing] is Verdict.FAILED
    assert "login" in report.result(failing).details
    assert found["fleetfreedom.client.reconnect-same-ghost-id"] is Verdict.OK
    assert found["fleetfreedom.session.client-session-ended"] is Verdict.OK
    assert report.exit_code == 1


class Silent(AtmosphereClient):
    """Never sends a heartbeat."""

    def _start_heartbeat(self, now: float) -> None:
        pass


class Forgetful(AtmosphereClient):
    """Reconnects with tracking id 0 instead of its UUID."""

    def reconnect(self) -> None:
        super().reconnect()
        self.tracking_id = "0"


class Abrupt(AtmosphereClient):
    """Closes its socket without the HTTP close request."""

    def _close_url(self, now: float, timestamp_ms: int | None = None) -> str | None:
        return None


async def test_a_client_closing_without_the_close_request_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return Abrupt(url)

    report = await judge("atmosphere", make, cases="atmosphere.close.*")
    close = report.result("atmosphere.close.http-request")
    assert close.verdict is Verdict.FAILED
    assert "without a close request" in close.details


async def test_a_client_without_heartbeats_fails_the_cadence_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return Silent(url)

    report = await judge("atmosphere", make, cases="atmosphere.[hr]*")
    found = report.verdicts()
    assert found["atmosphere.heartbeat.client-cadence"] is Verdict.FAILED
    assert found["atmosphere.heartbeat.client-padding-exact"] is Verdict.UNSUPPORTED
    assert found["atmosphere.heartbeat.client-none-when-zero"] is Verdict.OK
    assert found["atmosphere.reconnect.tracking-id-reuse"] is Verdict.OK


async def test_a_client_forgetting_its_tracking_id_fails_the_reuse_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return Forgetful(url)

    report = await judge("atmosphere", make, cases="atmosphere.reconnect.*")
    found = report.verdicts()
    assert found["atmosphere.reconnect.tracking-id-reuse"] is Verdict.FAILED
    assert "tracking id 0" in report.result("atmosphere.reconnect.tracking-id-reuse").details
    assert found["atmosphere.reconnect.client-reconnects"] is Verdict.OK


async def test_no_client_means_error_and_the_run_finishes() -> None:
    with trio.fail_after(30):
        report = await run_client_cases_async(
            "fleetfreedom",
            cases="fleetfreedom.session.client-refused-closes",
            timeout=0.5,
            options=ProbeOptions(client_wait=0.3, reply_wait=0.3),
        )
    assert report.verdicts() == {"fleetfreedom.session.client-refused-closes": Verdict.ERROR}
    assert "no client connected" in report.results[0].details


class Restarting(AtmosphereClient):
    """Restarts its heartbeat timer on every frame it reads: no fixed cadence."""

    def receive(self, data: str, now: float) -> None:
        super().receive(data, now)
        self._start_heartbeat(now)


async def test_a_heartbeat_restarting_on_every_frame_fails_the_cadence_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return Restarting(url)

    report = await judge("atmosphere", make, cases="atmosphere.heartbeat.client-cadence")
    result = report.result("atmosphere.heartbeat.client-cadence")
    assert result.verdict is Verdict.FAILED
    assert "heartbeat(s) in" in result.details


def _keeping_alive(every: float) -> Callable[[str], Any]:
    async def make(url: str) -> FleetFreedomClient:
        client = FleetFreedomClient(url, keepalive=every)
        client.send(Command.login("someone@example.com", "secret", "conformance-test"))
        return client

    return make


KEEPALIVE = "fleetfreedom.session.client-keepalive"


async def test_the_keepalive_case_waits_only_when_asked() -> None:
    report = await judge("fleetfreedom", _fleetfreedom, cases=KEEPALIVE)
    result = report.result(KEEPALIVE)
    assert result.verdict is Verdict.UNSUPPORTED
    assert "--slow" in result.details


async def test_a_client_keeping_its_session_alive_with_noop_passes() -> None:
    quick = dataclasses.replace(FAST, keepalive=0.6)
    report = await judge("fleetfreedom", _keeping_alive(0.6), cases=KEEPALIVE, options=quick)
    result = report.result(KEEPALIVE)
    assert result.verdict is Verdict.OK, result.details


async def test_a_client_that_never_sends_noop_fails_the_keepalive_case() -> None:
    quick = dataclasses.replace(FAST, keepalive=0.6)
    report = await judge("fleetfreedom", _keeping_alive(0.0), cases=KEEPALIVE, options=quick)
    result = report.result(KEEPALIVE)
    assert result.verdict is Verdict.NON_STRICT
    assert "no noop" in result.details


class EagerReopen(ITrackClient):
    """Re-sends its subscriptions as soon as a reconnect's socket opens, before the
    server's first frame (the reopen reported at socket open)."""

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        if self._sent_any:
            for action in self.subscriptions.actions():
                self.transport._out.append(self._encode(action))


async def test_a_client_resubscribing_before_the_first_frame_passes_the_must_with_a_note() -> None:
    # It does send its subscriptions again (the MUST); the early reopen is Atmosphere §5's
    # SHOULD (atmosphere.reconnect.client-reopens-on-first-frame), named in the details.
    async def make(url: str) -> ITrackClient:
        client = EagerReopen(subscription_url(url), await itrack_login(url, "someone", "x"))
        client.send(Subscribe([StateRequest([1, 2])]))
        return client

    report = await judge("itrack", make, cases="itrack.session.*")
    result = report.result("itrack.session.resubscribe-after-reconnect")
    assert result.verdict is Verdict.OK, result.details
    assert "before the server's first frame" in result.details
    assert "client-reopens-on-first-frame" in result.details


class Unsubscribed(ITrackClient):
    """Sends nothing again after a reconnect."""

    def _flush(self) -> None:
        if not self._sent_any:
            super()._flush()


async def test_a_client_not_resubscribing_after_a_reconnect_fails() -> None:
    async def make(url: str) -> ITrackClient:
        client = Unsubscribed(subscription_url(url), await itrack_login(url, "someone", "x"))
        client.send(Subscribe([StateRequest([1, 2])]))
        return client

    report = await judge("itrack", make, cases="itrack.session.*")
    result = report.result("itrack.session.resubscribe-after-reconnect")
    assert result.verdict is Verdict.FAILED, result.details
    assert "not subscribed again" in result.details


async def test_a_client_opening_another_path_fails_the_path_case() -> None:
    async def make(url: str) -> ITrackClient:
        client = ITrackClient(url + "event/subscribe", await itrack_login(url, "someone", "x"))
        client.send(Subscribe([StateRequest([1, 2])]))
        return client

    report = await judge("itrack", make, cases="itrack.open.*")
    result = report.result("itrack.open.client-path")
    assert result.verdict is Verdict.FAILED, result.details
    assert "opened '/v2/event/subscribe', not <base>event/subscription" in result.details


async def _relogging(url: str, kind: type[ITrackClient] = ITrackClient) -> ITrackClient:
    """A client with credentials: it logs in again when the server forgets its hash."""
    client = kind(
        subscription_url(url),
        await itrack_login(url, "someone", "x"),
        login=build_auth_request(url, "someone", "x"),
    )
    client.send(Subscribe([StateRequest([1, 2])]))
    return client


async def test_a_client_logging_in_again_passes_the_forgotten_hash_case() -> None:
    report = await judge("itrack", _relogging, cases="itrack.session.client-forgotten-hash")
    result = report.result("itrack.session.client-forgotten-hash")
    assert result.verdict is Verdict.OK, result.details
    assert "after error 4 the client logged in again and subscribed again" in result.details


class StaleHash(ITrackClient):
    """Logs in again, then keeps sending the hash the server forgot."""

    def login_succeeded(self, session_hash: str, now: float | None = None) -> None:
        dead = self.hash
        super().login_succeeded(dead, now)


class NoResubscribe(ITrackClient):
    """Logs in again, but subscribes to nothing with the fresh hash."""

    def login_succeeded(self, session_hash: str, now: float | None = None) -> None:
        kept = self.subscriptions
        self.subscriptions = type(kept)()
        try:
            super().login_succeeded(session_hash, now)
        finally:
            self.subscriptions = kept


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (StaleHash, "sent its dead hash again"),
        (NoResubscribe, "did not subscribe again with the fresh hash"),
    ],
)
async def test_a_client_reusing_a_forgotten_hash_fails(
    kind: type[ITrackClient], problem: str
) -> None:
    report = await judge(
        "itrack",
        functools.partial(_relogging, kind=kind),
        cases="itrack.session.client-forgotten-hash",
    )
    result = report.result("itrack.session.client-forgotten-hash")
    assert result.verdict is Verdict.FAILED, result.details
    assert problem in result.details


class DeadHashAfterLogout(ITrackClient):
    """Subscribes once more with the dead hash when the logout comes."""

    def _logout(self) -> None:
        for action in self.subscriptions.actions():
            self._write(self._encode(action))
        super()._logout()


async def test_a_client_sending_its_hash_after_logout_fails() -> None:
    async def make(url: str) -> ITrackClient:
        client = DeadHashAfterLogout(subscription_url(url), await itrack_login(url, "a", "x"))
        client.send(Subscribe([StateRequest([1, 2])]))
        return client

    report = await judge("itrack", make, cases="itrack.events.client-logout")
    result = report.result("itrack.events.client-logout")
    assert result.verdict is Verdict.FAILED, result.details
    assert "after logout the client sent its dead hash again" in result.details
    passing = await judge("itrack", _itrack, cases="itrack.events.client-logout")
    assert passing.result("itrack.events.client-logout").verdict is Verdict.OK


# -- what an Atmosphere client delivers, seen through the close signal ---------------------------


async def _tms(url: str) -> AtmosphereClient:
    return AtmosphereClient(url, track_message_length=True)


DELIVERY = "atmosphere.[tch]*"


async def test_our_atmosphere_client_with_track_message_size_passes() -> None:
    report = await judge("atmosphere", _tms, signalled=_exactly)
    assert_probed_musts_pass(report)
    found = report.verdicts()
    for case in ("carry-over", "bad-length", "trims"):
        assert found[f"atmosphere.tms.client-{case}"] is Verdict.OK, case
    assert "corrupt" in report.result("atmosphere.tms.client-bad-length").details


class Untrimmed(AtmosphereClient):
    """Delivers messages with the blanks around them."""

    def _deliver(self, message: str) -> None:
        if message.strip():
            self._events.append(Message(message))


async def test_a_client_not_trimming_fails_the_trims_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return Untrimmed(url)

    report = await judge("atmosphere", make, cases="atmosphere.tms.*", signalled=_exactly)
    result = report.result("atmosphere.tms.client-trims")
    assert result.verdict is Verdict.FAILED
    assert "only on the plain signal" in result.details


class OneFrameOneMessage(AtmosphereClient):
    """With TrackMessageSize, forgets a message cut across frames."""

    def receive(self, data: str, now: float) -> None:
        self._decoder.reset()
        super().receive(data, now)


async def test_a_client_without_a_carry_over_buffer_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return OneFrameOneMessage(url, track_message_length=True)

    report = await judge("atmosphere", make, cases="atmosphere.tms.*", signalled=_exactly)
    assert report.result("atmosphere.tms.client-carry-over").verdict is Verdict.FAILED
    assert report.result("atmosphere.tms.client-trims").verdict is Verdict.OK


class Lenient(AtmosphereClient):
    """With TrackMessageSize, delivers what follows a length that is not a number."""

    def receive(self, data: str, now: float) -> None:
        head, found, rest = data.partition("|")
        if self.state is ClientState.OPEN and found and head and not head.isdigit():
            self._events.append(Message(rest))
            return
        super().receive(data, now)


async def test_a_client_delivering_after_a_bad_length_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return Lenient(url, track_message_length=True)

    report = await judge("atmosphere", make, cases="atmosphere.tms.*", signalled=_exactly)
    result = report.result("atmosphere.tms.client-bad-length")
    assert result.verdict is Verdict.FAILED
    assert "reached the application" in result.details
    assert report.result("atmosphere.tms.client-carry-over").verdict is Verdict.OK


class NoTimestamp(AtmosphereClient):
    """Sends its close request with a _ that is no timestamp."""

    def _close_url(self, now: float, timestamp_ms: int | None = None) -> str | None:
        url = super()._close_url(now, timestamp_ms)
        return None if url is None else url.rsplit("&_=", 1)[0] + "&_=None"


async def test_a_close_request_without_a_timestamp_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return NoTimestamp(url)

    report = await judge("atmosphere", make, cases="atmosphere.close.*")
    result = report.result("atmosphere.close.http-request")
    assert result.verdict is Verdict.FAILED
    assert "timestamp" in result.details


class NoBeatAfterReopen(AtmosphereClient):
    """Stops its heartbeats for good at the first reconnect."""

    def _start_heartbeat(self, now: float) -> None:
        if self.state is not ClientState.OPEN or self._reopening():
            return
        super()._start_heartbeat(now)

    def _reopening(self) -> bool:
        return getattr(self, "reconnected", False)

    def reconnect(self) -> None:
        super().reconnect()
        self.reconnected = True


async def test_heartbeats_not_resumed_after_the_reopen_fail_the_cadence_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return NoBeatAfterReopen(url)

    report = await judge("atmosphere", make, cases="atmosphere.heartbeat.client-cadence")
    result = report.result("atmosphere.heartbeat.client-cadence")
    assert result.verdict is Verdict.FAILED
    assert "of the reopen" in result.details


class Rewriting(FleetFreedomClient):
    """Passes what the core delivers for one line through :meth:`rewrite`."""

    def receive(self, data: str, now: float) -> None:
        mark = len(self._events)
        super().receive(data, now)
        delivered = self._events[mark:]
        del self._events[mark:]
        for event in delivered:
            self._events.extend(self.rewrite(event, data))

    def rewrite(self, event: FleetFreedomEvent, data: str) -> list[FleetFreedomEvent]:
        return [event]


class DropsUnknown(Rewriting):
    """Keeps messages it does not model from its application."""

    def rewrite(self, event: FleetFreedomEvent, data: str) -> list[FleetFreedomEvent]:
        return [] if isinstance(event, UnknownMessage) else [event]


class BroadcastAsUnknown(Rewriting):
    """Hands a broadcast on as an unknown message."""

    def rewrite(self, event: FleetFreedomEvent, data: str) -> list[FleetFreedomEvent]:
        if isinstance(event, Broadcast):
            return [UnknownMessage(event.name, event.body, data)]
        return [event]


class DropsBadLines(Rewriting):
    """Keeps lines it cannot read from its application."""

    def rewrite(self, event: FleetFreedomEvent, data: str) -> list[FleetFreedomEvent]:
        return [] if isinstance(event, InvalidMessage) else [event]


class SalvagesBadLines(Rewriting):
    """Reads a broadcast whose body is a bare JSON string as that message."""

    def rewrite(self, event: FleetFreedomEvent, data: str) -> list[FleetFreedomEvent]:
        if isinstance(event, InvalidMessage) and event.name == "broadcast":
            rest = data.partition(" ")[2]
            return [Broadcast("broadcast", {"message": rest.strip('"')})]
        return [event]


class FailsOnBadLines(Rewriting):
    """Takes a line it cannot read for a broken stream."""

    def rewrite(self, event: FleetFreedomEvent, data: str) -> list[FleetFreedomEvent]:
        if isinstance(event, InvalidMessage) and event.name and self.ready:
            self.close()
            self.resumable = False
            return [CloseRequested(1002, "bad body")]
        return [event]


def _logged_in(cls: type[FleetFreedomClient]) -> Callable[[str], Any]:
    async def make(url: str) -> FleetFreedomClient:
        client = cls(url)
        client.send(Command.login("someone@example.com", "secret", "conformance-test"))
        return client

    return make


class BothSidesOrNothing(AtmosphereClient):
    """Trims a message only when it has blanks on both sides."""

    def receive(self, data: str, now: float) -> None:
        blank = " \t\n\r"
        one_sided = (data[:1] in blank) != (data[-1:] in blank) and data.strip(blank)
        if self.state is ClientState.OPEN and not self.track_message_length and one_sided:
            self._events.append(Message(data))
            return
        super().receive(data, now)


async def test_a_client_trimming_only_blanks_on_both_sides_fails_the_trims_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return BothSidesOrNothing(url)

    report = await judge("atmosphere", make, cases="atmosphere.tms.client-trims")
    result = report.result("atmosphere.tms.client-trims")
    assert result.verdict is Verdict.FAILED, result.details
    assert "a blank before it only" in result.details
    assert "a blank after it only" in result.details


class UntrimmedBehind(AtmosphereClient):
    """With TrackMessageSize, leaves the blanks on the messages after the first of a frame."""

    def _deliver_all(self, messages: list[str]) -> None:
        first, *rest = messages
        super()._deliver_all([first])
        self._events.extend(Message(m) for m in rest if m.strip())


async def test_blanks_on_a_message_behind_another_in_its_frame_are_judged() -> None:
    async def make(url: str) -> AtmosphereClient:
        return UntrimmedBehind(url, track_message_length=True)

    report = await judge("atmosphere", make, cases="atmosphere.tms.client-trims")
    result = report.result("atmosphere.tms.client-trims")
    assert result.verdict is Verdict.FAILED, result.details
    assert "behind 'hello' in one frame" in result.details
    assert "(the signal with a blank before it only):" not in result.details.split(";")[0]


class PaddingDelivered(AtmosphereClient):
    """Delivers a message equal to the heartbeat padding."""

    def receive(self, data: str, now: float) -> None:
        head, _, rest = data.partition("|")
        text = rest if self.track_message_length and head.isdigit() else data
        if self.state is ClientState.OPEN and text == self.padding:
            self._events.append(Message(text))
            return
        super().receive(data, now)


async def test_a_client_delivering_the_padding_fails_the_trims_case() -> None:
    for tms in (False, True):

        async def make(url: str, tms: bool = tms) -> AtmosphereClient:
            return PaddingDelivered(url, track_message_length=tms)

        report = await judge("atmosphere", make, cases="atmosphere.tms.client-trims")
        result = report.result("atmosphere.tms.client-trims")
        assert result.verdict is Verdict.FAILED, (tms, result.details)
        assert "padding" in result.details


class LosesAfterHandshake(AtmosphereClient):
    """Drops the messages that share the handshake's frame."""

    def _handshake(self, frame: str, now: float) -> str:
        super()._handshake(frame, now)
        return ""


async def test_a_client_losing_messages_in_the_handshake_frame_fails_carry_over() -> None:
    async def make(url: str) -> AtmosphereClient:
        return LosesAfterHandshake(url, track_message_length=True)

    report = await judge("atmosphere", make, cases="atmosphere.tms.*")
    result = report.result("atmosphere.tms.client-carry-over")
    assert result.verdict is Verdict.FAILED, result.details
    assert "the handshake frame" in result.details
    assert report.result("atmosphere.tms.client-trims").verdict is Verdict.OK


class DropsPending(AtmosphereClient):
    """Once a message is cut across frames, reads no frame again."""

    def receive(self, data: str, now: float) -> None:
        if self._decoder._pieces:
            return
        super().receive(data, now)


async def test_a_client_stuck_on_a_cut_message_fails_rather_than_unsupported() -> None:
    # It honoured the signal in the trims scenario, so ending on nothing afterwards is a
    # broken stream, not a client that ignores the signal.
    async def make(url: str) -> AtmosphereClient:
        return DropsPending(url, track_message_length=True)

    report = await judge("atmosphere", make, cases="atmosphere.tms.client-[tc]*")
    assert report.result("atmosphere.tms.client-trims").verdict is Verdict.OK
    result = report.result("atmosphere.tms.client-carry-over")
    assert result.verdict is Verdict.FAILED, result.details
    assert "honoured the signal in an earlier session" in result.details


class EagerCloseRequest(AtmosphereClient):
    """Sends the close request even when no handshake came (tracking id 0)."""

    def _close_url(self, now: float, timestamp_ms: int | None = None) -> str | None:
        return build_close_url(self.url, self.tracking_id, 1, self.headers)


async def test_a_close_request_before_any_handshake_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return EagerCloseRequest(url)

    report = await judge("atmosphere", make, cases="atmosphere.close.*")
    result = report.result("atmosphere.close.http-request")
    assert result.verdict is Verdict.FAILED, result.details
    assert "before any handshake" in result.details


class BeatsWhenZero(AtmosphereClient):
    """Takes an interval of 0 for a default of 0.7 s (longer than three kit intervals)."""

    def _start_heartbeat(self, now: float) -> None:
        if not self.heartbeat_interval:
            self.heartbeat_interval = 0.7
        super()._start_heartbeat(now)


async def test_a_client_beating_slowly_after_an_interval_of_zero_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return BeatsWhenZero(url)

    case = "atmosphere.heartbeat.client-none-when-zero"
    report = await judge("atmosphere", make, cases=case)
    assert report.result(case).verdict is Verdict.FAILED, report.result(case).details


TIMEOUT_CASES = "atmosphere.[ch][le]*.[hc][tl]*-[ri][en][qa]*"
"""atmosphere.close.http-request and atmosphere.heartbeat.client-inactivity-timeout."""
TIMED = dataclasses.replace(FAST, inactivity_timeout=1.5)


def _timing_out(**kw: Any) -> Callable[[str], Any]:
    async def make(url: str) -> AtmosphereClient:
        return AtmosphereClient(url, inactivity_timeout=1.5, **kw)

    return make


KEEPS = "fleetfreedom.subscriptions.client-keeps-unknown"
BAD_JSON = "fleetfreedom.errors.client-bad-json"


async def test_a_client_dropping_unknown_messages_fails() -> None:
    report = await judge("fleetfreedom", _logged_in(DropsUnknown), cases=KEEPS)
    result = report.result(KEEPS)
    assert result.verdict is Verdict.FAILED
    assert "only on the plain signal" in result.details


async def test_a_client_handing_a_broadcast_on_as_unknown_fails() -> None:
    report = await judge("fleetfreedom", _logged_in(BroadcastAsUnknown), cases=KEEPS)
    result = report.result(KEEPS)
    assert result.verdict is Verdict.FAILED
    assert "did not reach the application as a broadcast" in result.details


async def test_a_client_dropping_bad_lines_fails() -> None:
    report = await judge("fleetfreedom", _logged_in(DropsBadLines), cases=BAD_JSON)
    result = report.result(BAD_JSON)
    assert result.verdict is Verdict.FAILED
    assert "only on the plain signal" in result.details


async def test_a_client_reading_a_bad_body_as_a_broadcast_fails() -> None:
    report = await judge("fleetfreedom", _logged_in(SalvagesBadLines), cases=BAD_JSON)
    result = report.result(BAD_JSON)
    assert result.verdict is Verdict.FAILED
    assert "a line with a bad body ended the session" in result.details


async def test_a_client_failing_on_a_bad_body_fails() -> None:
    report = await judge("fleetfreedom", _logged_in(FailsOnBadLines), cases=BAD_JSON)
    result = report.result(BAD_JSON)
    assert result.verdict is Verdict.FAILED
    assert "ended after lines with a bad body" in result.details


LOGIN_AGAIN = "fleetfreedom.session.client-login-again"


class Amnesiac(FleetFreedomClient):
    """Forgets its credentials once logged in: a forgotten session just ends."""

    def _session_input(self, inp: Any, reason: str, code: int) -> None:
        super()._session_input(inp, reason, code)
        self.login_command = None


class NoReplay(FleetFreedomClient):
    """Logs in again after a forgotten session but does not replay its subscriptions."""

    def _forgotten(self, code: object, *, announce: bool = True) -> None:
        super()._forgotten(code, announce=announce)
        self._replay = {}


def _ff_broken(cls: type[FleetFreedomClient]) -> Callable[[str], Any]:
    async def make(url: str) -> FleetFreedomClient:
        client = cls(url)
        client.send(Command.login("someone@example.com", "secret", "conformance-test"))
        client.send(Command.subscribe(1, ["assetGeneral", "assetAdvanced"]))
        return client

    return make


async def test_our_client_logs_in_again_when_its_session_was_forgotten() -> None:
    report = await judge("fleetfreedom", _fleetfreedom, cases=LOGIN_AGAIN)
    result = report.result(LOGIN_AGAIN)
    assert result.verdict is Verdict.OK, result.details
    assert "renewed 2 subscription(s)" in result.details


async def test_a_client_not_logging_in_again_fails() -> None:
    report = await judge("fleetfreedom", _ff_broken(Amnesiac), cases=LOGIN_AGAIN)
    result = report.result(LOGIN_AGAIN)
    assert result.verdict is Verdict.FAILED
    assert "did not log in again" in result.details


async def test_a_client_not_subscribing_again_after_a_login_again_fails() -> None:
    report = await judge("fleetfreedom", _ff_broken(NoReplay), cases=LOGIN_AGAIN)
    result = report.result(LOGIN_AGAIN)
    assert result.verdict is Verdict.FAILED
    assert "not subscribed again" in result.details


async def test_the_inactivity_timeout_waits_only_when_asked() -> None:
    report = await judge("atmosphere", _atmosphere, cases=TIMEOUT_CASES)
    result = report.result("atmosphere.heartbeat.client-inactivity-timeout")
    assert result.verdict is Verdict.UNSUPPORTED
    assert "--inactivity-timeout" in result.details
    assert report.result("atmosphere.close.http-request").verdict is Verdict.OK


async def test_a_client_timing_out_in_order_passes() -> None:
    report = await judge("atmosphere", _timing_out(), cases=TIMEOUT_CASES, options=TIMED)
    for case in ("atmosphere.heartbeat.client-inactivity-timeout", "atmosphere.close.http-request"):
        assert report.result(case).verdict is Verdict.OK, report.result(case).details
    assert "s of silence" in report.result("atmosphere.heartbeat.client-inactivity-timeout").details


async def test_a_client_reconnecting_after_its_timeout_without_close_request_fails() -> None:
    make = _timing_out(reconnect_on_timeout=True)
    report = await judge("atmosphere", make, cases=TIMEOUT_CASES, options=TIMED)
    close = report.result("atmosphere.close.http-request")
    assert close.verdict is Verdict.FAILED, close.details
    assert "without a close request (the inactivity timeout)" in close.details
    timeout = report.result("atmosphere.heartbeat.client-inactivity-timeout")
    assert timeout.verdict is Verdict.NON_STRICT  # a SHOULD
    assert "reconnected" in timeout.details


async def test_a_client_never_timing_out_fails_the_timeout_case_only() -> None:
    make = _timing_out()

    async def never(url: str) -> AtmosphereClient:
        client = await make(url)
        client.inactivity_timeout = 0
        return client

    report = await judge("atmosphere", never, cases=TIMEOUT_CASES, options=TIMED)
    assert report.result("atmosphere.close.http-request").verdict is Verdict.OK
    timeout = report.result("atmosphere.heartbeat.client-inactivity-timeout")
    assert timeout.verdict is Verdict.NON_STRICT  # a SHOULD
    assert "still open" in timeout.details


class CountsLeadingZeros(AtmosphereClient):
    """Reads an interval of more than 15 characters as no heartbeat, leading zeros included."""

    def _handshake(self, frame: str, now: float) -> str:
        rest = super()._handshake(frame, now)
        fields = frame.split("|")
        pos = 1 if self.track_message_length else 0
        if self.state is ClientState.OPEN and len(fields) > pos + 1 and len(fields[pos + 1]) > 15:
            self.heartbeat_interval = 0.0
            self._heartbeat_at = None
        return rest


async def test_a_client_counting_leading_zeros_of_the_interval_fails_the_cadence_case() -> None:
    async def make(url: str) -> AtmosphereClient:
        return CountsLeadingZeros(url)

    case = "atmosphere.heartbeat.client-cadence"
    report = await judge("atmosphere", make, cases=case)
    assert report.result(case).verdict is Verdict.FAILED, report.result(case).details
    assert "0 heartbeat(s)" in report.result(case).details


class MonotonicStamp(AtmosphereClient):
    """Stamps its close request from a monotonic clock (seconds since boot, in ms)."""

    def _close_url(self, now: float, timestamp_ms: int | None = None) -> str | None:
        return super()._close_url(now, int(now * 1000))


async def test_a_close_request_stamped_from_a_monotonic_clock_fails() -> None:
    async def make(url: str) -> AtmosphereClient:
        return MonotonicStamp(url)

    report = await judge("atmosphere", make, cases="atmosphere.close.*")
    result = report.result("atmosphere.close.http-request")
    assert result.verdict is Verdict.FAILED, result.details
    assert "days from now" in result.details


def test_the_cli_passes_the_inactivity_timeout_to_the_kit() -> None:
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers())
    args = parser.parse_args(
        ["conformance", "client", "--protocol", "atmosphere", "--inactivity-timeout", "2.5"]
    )
    assert _options(args).inactivity_timeout == 2.5
    args = parser.parse_args(["conformance", "client", "--protocol", "atmosphere"])
    assert _options(args).inactivity_timeout == 300.0
