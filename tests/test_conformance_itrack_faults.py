"""iTrack faults the kit catches: authorisation on every route, current states that a moving
fleet would hide, periodic batches, events under another name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trackwire.conformance import ReferenceServer, Verdict
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._runner import run_server_cases_async
from trackwire.itrack import ITrackServer, StatePush
from trackwire.itrack._server import SourceState
from trackwire.ws import Refuse, UpgradeRequest

FAST = ProbeOptions(reply_wait=0.8, settle=0.3, push_wait=0.6, idle_wait=1.0)
LOGIN = {"login": "demo", "password": "demo"}


def _serve(server: ReferenceServer, core: type[ITrackServer]) -> None:
    """Serve ``core`` (a broken ITrackServer) instead of the reference one."""
    app: Any = server.app

    def factory(request: UpgradeRequest) -> ITrackServer | Refuse:
        made = core(request.target, app.directory)
        app.connections[made] = None
        return made

    app.factory = factory


@pytest.fixture
def itrack() -> Iterator[ReferenceServer]:
    with ReferenceServer("itrack", vehicles=3, rate=10) as server:
        yield server


class RemembersHash(ITrackServer):
    """Takes a connection's first valid hash for every later action without one."""

    def receive(self, data: str, now: float) -> None:
        known = getattr(self, "_remembered", None)
        if known is not None and '"hash"' not in data and data.startswith("{"):
            data = data[:-1] + f',"hash":"{known}"}}'
        super().receive(data, now)
        if self.session_hash is not None:
            self._remembered = self.session_hash


async def test_an_action_without_hash_after_a_valid_one_fails(itrack: ReferenceServer) -> None:
    _serve(itrack, RemembersHash)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.actions.hash-required", options=FAST, **LOGIN
    )
    result = report.result("itrack.actions.hash-required")
    assert result.verdict is Verdict.FAILED
    assert "with no hash after a valid subscribe" in result.details


class NoCurrentStates(ITrackServer):
    """Sends no current state after subscribing: only the changes that follow."""

    def _current(self, tracker_id: int, compact: bool) -> SourceState | None:
        return None


async def test_missing_current_states_are_caught_despite_a_moving_fleet() -> None:
    # The fleet moves every 2 s; a change landing within 50 ms of the response could pass for
    # a current state (a few per cent of tries, more on a loaded machine), so the mutant gets
    # three tries to be caught.
    verdicts = []
    for _ in range(3):
        with ReferenceServer("itrack", vehicles=3, rate=0.5) as server:
            _serve(server, NoCurrentStates)
            report = await run_server_cases_async(
                server.url, "itrack", cases="itrack.events.state-after-subscribe",
                options=ProbeOptions(reply_wait=0.8, settle=1.5), **LOGIN,
            )  # fmt: skip
        verdicts.append(report.result("itrack.events.state-after-subscribe").verdict)
        if verdicts[-1] is Verdict.FAILED:
            break
    assert Verdict.FAILED in verdicts


async def test_the_reference_sends_current_states(itrack: ReferenceServer) -> None:
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.events.state-after-subscribe", options=FAST, **LOGIN
    )
    result = report.result("itrack.events.state-after-subscribe")
    assert result.verdict is Verdict.OK, result.details


class OneBatch(ITrackServer):
    """Sends the first state_batch (current states) and never the periodic ones."""

    def handle_timer(self, now: float) -> None:
        self._batches.clear()
        super().handle_timer(now)


async def test_no_periodic_state_batch_fails(itrack: ReferenceServer) -> None:
    _serve(itrack, OneBatch)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.events.state-batch", options=FAST, **LOGIN
    )
    result = report.result("itrack.events.state-batch")
    assert result.verdict is Verdict.FAILED
    assert "must follow every rate_limit" in result.details


class RenamedStates(ITrackServer):
    """Sends its state events under another name."""

    def _send(self, message: dict[str, Any]) -> None:
        if message.get("event") == "state":
            message = {**message, "event": "position"}
        super()._send(message)

    def push_state(self, tracker_id: int, state: Any, now: float, **options: Any) -> None:
        # A StatePush carries its text ready made: take its state, so the pushes go
        # through _send (and get the wrong name) too.
        if isinstance(state, StatePush):
            state = state.state
        super().push_state(tracker_id, state, now, **options)


async def test_a_renamed_event_fails_instead_of_being_unsupported(itrack: ReferenceServer) -> None:
    _serve(itrack, RenamedStates)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.events.state-on-change", options=FAST, **LOGIN
    )
    result = report.result("itrack.events.state-on-change")
    assert result.verdict is Verdict.FAILED, result.details
    assert "position" in result.details
