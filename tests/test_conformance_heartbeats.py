"""Heartbeat faults the kit catches: a server heartbeat that a client's small
X-Heartbeat-Server shortens, one counted from the last read instead of the last write, one
missing with TrackMessageSize, one stopped instead of lengthened, a server failing (1011) on
its heartbeat or on a client's message, an implausible client interval in the handshake."""

from __future__ import annotations

from typing import Any

from test_conformance_runner import serving

from trackwire.atmosphere import AtmosphereServer
from trackwire.conformance import ITrackReference, Verdict, demo_fleet
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._report import Report
from trackwire.conformance._runner import run_server_cases_async
from trackwire.itrack import ITrackServer
from trackwire.ws import Refuse, UpgradeRequest


async def _judge(
    transport: type[AtmosphereServer], cases: str, options: ProbeOptions, **settings: Any
) -> Report:
    app = ITrackReference(demo_fleet(2))
    settings = {"heartbeat_interval_ms": 30000, "server_heartbeat": 0.5, **settings}

    def factory(request: UpgradeRequest) -> ITrackServer | Refuse:
        link = transport(request.target, **settings)
        core = ITrackServer(request.target, app.directory, transport=link)
        app.connections[core] = None
        return core

    async with serving(app, factory) as port:
        return await run_server_cases_async(
            f"http://127.0.0.1:{port}/v2/event/subscription", "atmosphere", cases=cases,
            timeout=6.0, options=options,
        )  # fmt: skip


FAST = ProbeOptions(reply_wait=0.8, settle=0.2, push_wait=0.6, idle_wait=1.0)


class CountsFromReads(AtmosphereServer):
    """Restarts its heartbeat timer on every frame it reads."""

    def receive(self, data: str, now: float) -> None:
        super().receive(data, now)
        self._last_write = now


async def test_a_heartbeat_counted_from_the_last_read_fails() -> None:
    report = await _judge(CountsFromReads, "atmosphere.heartbeat.server-idle-*", FAST)
    result = report.result("atmosphere.heartbeat.server-idle-heartbeat")
    assert result.verdict is Verdict.FAILED
    assert "from its last read" in result.details


async def test_the_reference_heartbeat_counts_from_its_last_write() -> None:
    report = await _judge(AtmosphereServer, "atmosphere.heartbeat.server-*", FAST)
    for result in report.results:
        assert result.verdict is Verdict.OK, (result.id, result.details)


class Shortens(AtmosphereServer):
    """Takes any X-Heartbeat-Server, shorter ones included."""

    def __init__(self, request: Any, **settings: Any) -> None:
        super().__init__(request, **settings)
        asked = self.request.heartbeat_server
        if asked:
            self.server_heartbeat = float(asked)


async def test_a_heartbeat_shortened_by_the_client_fails() -> None:
    slow = ProbeOptions(reply_wait=0.8, settle=0.2, idle_wait=2.6)
    report = await _judge(
        Shortens, "atmosphere.heartbeat.server-interval-request", slow, server_heartbeat=2.0
    )
    result = report.result("atmosphere.heartbeat.server-interval-request")
    assert result.verdict is Verdict.NON_STRICT
    assert "never shorten" in result.details


async def test_an_implausible_client_interval_fails_the_handshake_format() -> None:
    report = await _judge(
        AtmosphereServer, "atmosphere.handshake.format", FAST, heartbeat_interval_ms=5
    )
    result = report.result("atmosphere.handshake.format")
    assert result.verdict is Verdict.FAILED
    assert "every 5 ms" in result.details


async def test_a_minute_of_idle_wait_needs_slow() -> None:
    report = await _judge(
        AtmosphereServer, "atmosphere.heartbeat.server-idle-heartbeat", ProbeOptions()
    )
    result = report.result("atmosphere.heartbeat.server-idle-heartbeat")
    assert result.verdict is Verdict.UNSUPPORTED
    assert "--slow" in result.details


class StopsWhenLengthened(AtmosphereServer):
    """Turns its heartbeat off when a client asks for a longer interval."""

    def __init__(self, request: Any, **settings: Any) -> None:
        super().__init__(request, **settings)
        asked = self.request.heartbeat_server
        if asked and asked > settings.get("server_heartbeat", 60.0):
            self.server_heartbeat = 0.0


async def test_a_heartbeat_stopped_instead_of_lengthened_fails() -> None:
    options = ProbeOptions(reply_wait=0.8, settle=0.2, idle_wait=1.8)
    report = await _judge(StopsWhenLengthened, "atmosphere.heartbeat.server-interval-*", options)
    result = report.result("atmosphere.heartbeat.server-interval-request")
    assert result.verdict is Verdict.NON_STRICT
    assert "a longer interval must still bring heartbeats" in result.details
    reference = await _judge(AtmosphereServer, "atmosphere.heartbeat.server-interval-*", options)
    assert reference.result("atmosphere.heartbeat.server-interval-request").verdict is Verdict.OK


async def test_a_heartbeat_stopped_instead_of_lengthened_fails_the_idle_heartbeat() -> None:
    # The MUST: after at most the longer X-Heartbeat-Server value the server writes its
    # heartbeat; the kit watches that connection long enough even with a 1 s idle wait.
    report = await _judge(StopsWhenLengthened, "atmosphere.heartbeat.server-idle-*", FAST)
    result = report.result("atmosphere.heartbeat.server-idle-heartbeat")
    assert result.verdict is Verdict.FAILED
    assert "X-Heartbeat-Server=1" in result.details


class NoHeartbeatWithTrackMessageSize(AtmosphereServer):
    """Sends its heartbeat only to clients without TrackMessageSize."""

    def __init__(self, request: Any, **settings: Any) -> None:
        super().__init__(request, **settings)
        if self.track_message_length:
            self.server_heartbeat = 0.0


async def test_a_heartbeat_missing_with_track_message_size_fails() -> None:
    report = await _judge(NoHeartbeatWithTrackMessageSize, "atmosphere.*heartbeat*", FAST)
    prefixed = report.result("atmosphere.tms.heartbeat-prefixed")
    assert prefixed.verdict is Verdict.FAILED
    assert "had its heartbeat after" in prefixed.details
    idle = report.result("atmosphere.heartbeat.server-idle-heartbeat")
    assert idle.verdict is Verdict.FAILED
    assert "with TrackMessageSize" in idle.details


class FailsAfterItsHeartbeat(AtmosphereServer):
    """Raises once it has written a heartbeat (the driver ends the connection with 1011)."""

    def handle_timer(self, now: float) -> None:
        before = len(self._out)
        super().handle_timer(now)
        if len(self._out) > before and self.request.heartbeat_server is None:
            raise RuntimeError("a broken heartbeat")


async def test_a_server_failing_after_its_heartbeat_fails() -> None:
    report = await _judge(FailsAfterItsHeartbeat, "atmosphere.*heartbeat*", FAST)
    result = report.result("atmosphere.heartbeat.server-idle-heartbeat")
    assert result.verdict is Verdict.FAILED
    assert "1011 (internal error)" in result.details


class FailsOnMessages(AtmosphereServer):
    """Raises on any client frame but its heartbeat."""

    def receive(self, data: str, now: float) -> None:
        super().receive(data, now)
        if data != self.padding:
            raise RuntimeError("a broken server core")


async def test_a_server_failing_on_a_message_fails() -> None:
    report = await _judge(FailsOnMessages, "atmosphere.handshake.once", FAST)
    result = report.result("atmosphere.handshake.once")
    assert result.verdict is Verdict.FAILED
    assert "1011 (internal error)" in result.details
