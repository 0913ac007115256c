"""iTrack faults the kit catches: authorisation on every route, current states that a moving
fleet would hide, periodic batches, events under another name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trackwire.conformance import Level, ReferenceServer, Verdict
from trackwire.conformance._probes import ProbeOptions
from trackwire.conformance._runner import run_server_cases_async
from trackwire.itrack import ITrackServer, StatePush
from trackwire.itrack._codec import ActionFormatError
from trackwire.itrack._server import SourceState, parse_rate_limit
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


class RefusesTimespans(ITrackServer):
    """Refuses every batch request's rate_limit, even the documented 5s."""

    def _check(self, action: Any, user: str) -> None:
        super()._check(action, user)
        if any(getattr(r, "rate_limit", None) for r in getattr(action, "requests", [])):
            raise ActionFormatError("no timespan is good enough")


async def test_a_refused_state_batch_fails_and_blocks_what_needs_the_trackers(
    itrack: ReferenceServer,
) -> None:
    _serve(itrack, RefusesTimespans)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.actions.subscribe-state*", options=FAST, **LOGIN
    )
    batch = report.result("itrack.actions.subscribe-state-batch")
    assert batch.verdict is Verdict.FAILED, batch.details
    state = report.result("itrack.actions.subscribe-state")
    assert state.verdict is not Verdict.UNSUPPORTED
    assert state.blocked_by == "itrack.actions.subscribe-state-batch"


class SlowBatches(ITrackServer):
    """Sends its state batches every two rate_limits."""

    def _add_batch(self, request: Any, user: str, statuses: dict[int, str]) -> Any:
        batch = super()._add_batch(request, user, statuses)
        batch.rate = 2 * parse_rate_limit(request.rate_limit)
        return batch


async def test_batches_slower_than_the_rate_limit_fail(itrack: ReferenceServer) -> None:
    _serve(itrack, SlowBatches)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.events.state-batch", options=FAST, **LOGIN
    )
    result = report.result("itrack.events.state-batch")
    assert result.verdict is Verdict.FAILED, result.details
    assert "with rate_limit 1s" in result.details


class KeepsSelectedBatches(ITrackServer):
    """Answers an unsubscribe of selected trackers from a state_batch, but keeps them."""

    def _unsubscribe(self, requests: list[Any], user: str, legacy: Any = None) -> None:
        kept = {k: (b.tracker_ids and set(b.tracker_ids)) for k, b in self._batches.items()}
        super()._unsubscribe(requests, user, legacy)
        for kind, ids in kept.items():
            if kind in self._batches and ids:
                self._batches[kind].tracker_ids = ids


class ReplacesBatches(ITrackServer):
    """A second state_batch subscribe of selected trackers covers all of the user's."""

    def _add_batch(self, request: Any, user: str, statuses: dict[int, str]) -> Any:
        known = request.type in self._batches
        batch = super()._add_batch(request, user, statuses)
        if known:
            batch.tracker_ids = None
        return batch


@pytest.mark.parametrize(
    ("core", "problem"),
    [
        (KeepsSelectedBatches, "was still pushed after its unsubscribe"),
        (ReplacesBatches, "never subscribed, was batched"),
    ],
)
async def test_state_batches_of_selected_trackers_are_checked(
    itrack: ReferenceServer, core: type[ITrackServer], problem: str
) -> None:
    _serve(itrack, core)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.responses.unsubscribe", options=FAST, **LOGIN
    )
    result = report.result("itrack.responses.unsubscribe")
    assert result.verdict is Verdict.FAILED, result.details
    assert problem in result.details


class NoLifecycleForBatches(ITrackServer):
    """Sends lifecycle events to state subscribers only."""

    def _lifecycle_user(self, tracker_id: int) -> str | None:
        sub = self._states.get(tracker_id)
        return None if sub is None else sub.user


class LogoutForAll(ITrackServer):
    """Sends logout to every subscribed connection when any session ends."""

    def push_logout(self, now: float, session_hash: str | None = None) -> bool:
        return super().push_logout(now)


@pytest.mark.parametrize(
    ("core", "case", "problem"),
    [
        (NoLifecycleForBatches, "itrack.events.lifecycle", "on its state_batch subscription"),
        (LogoutForAll, "itrack.events.logout", "other tenant's session got a logout"),
    ],
)
async def test_operator_events_reach_whom_they_concern(
    itrack: ReferenceServer, core: type[ITrackServer], case: str, problem: str
) -> None:
    _serve(itrack, core)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases=case, options=FAST, operator=itrack.operator(),
        second_login="other", second_password="other", **LOGIN,
    )  # fmt: skip
    result = report.result(case)
    assert result.verdict is Verdict.FAILED, result.details
    assert problem in result.details


async def test_a_server_error_on_every_upgrade_fails_a_must_case(
    itrack: ReferenceServer,
) -> None:
    app: Any = itrack.app

    def factory(request: UpgradeRequest) -> ITrackServer:
        raise RuntimeError("no connection today")

    app.factory = factory
    report = await run_server_cases_async(itrack.url, "itrack", options=FAST, **LOGIN)
    failed = [r for r in report.results if r.verdict is Verdict.FAILED]
    assert failed
    assert failed[0].case.level is Level.MUST


class CrashesOnUnblock(ITrackServer):
    """Fails when its tracker is unblocked, before saying so."""

    def push_lifecycle(self, tracker_id: int, lifecycle_event: str, now: float) -> None:
        if lifecycle_event == "unblock":
            raise RuntimeError("no unblock today")
        super().push_lifecycle(tracker_id, lifecycle_event, now)


class NoLifecycleForReadings(ITrackServer):
    """Sends lifecycle events to state and state_batch subscribers, not readings_batch ones."""

    def _lifecycle_user(self, tracker_id: int) -> str | None:
        user = super()._lifecycle_user(tracker_id)
        readings = self._batches.get("readings_batch")
        if tracker_id not in self._states and "state_batch" not in self._batches and readings:
            return None
        return user


@pytest.mark.parametrize(
    ("core", "case", "problem"),
    [
        (CrashesOnUnblock, "itrack.events.lifecycle", "the operator's unblock of tracker"),
        (NoLifecycleForReadings, "itrack.events.lifecycle", "on its readings_batch"),
    ],
)
async def test_what_the_subject_sends_around_an_operator_action_is_judged(
    itrack: ReferenceServer, core: type[ITrackServer], case: str, problem: str
) -> None:
    _serve(itrack, core)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases=case, options=FAST, operator=itrack.operator(), **LOGIN
    )
    result = report.result(case)
    assert result.verdict is Verdict.FAILED, result.details
    assert problem in result.details


class SilentStates(ITrackServer):
    """Batches its trackers' changes but never pushes them as state events."""

    def push_state(self, tracker_id: int, state: Any, now: float, **options: Any) -> None:
        sub = self._states.pop(tracker_id, None)
        super().push_state(tracker_id, state, now, **options)
        if sub is not None:
            self._states[tracker_id] = sub


class EmptyBatches(ITrackServer):
    """Sends a state_batch every rate_limit, empty when nothing changed."""

    def next_deadline(self) -> float | None:
        dues = [b.last_flush + b.rate for b in self._batches.values()]
        deadline = super().next_deadline()
        return min([*dues, *([] if deadline is None else [deadline])], default=None)

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        for batch in self._batches.values():
            if now >= batch.last_flush + batch.rate:
                self._send({"type": "event", "event": batch.kind, "data": []})
                batch.last_flush = now


@pytest.mark.parametrize(
    ("core", "case", "problem"),
    [
        (SilentStates, "itrack.events.state-on-change", "no state event came"),
        (EmptyBatches, "itrack.responses.tracker-statuses", "non-existent tracker"),
    ],
)
async def test_silences_and_empty_pushes_are_caught(
    itrack: ReferenceServer, core: type[ITrackServer], case: str, problem: str
) -> None:
    _serve(itrack, core)
    report = await run_server_cases_async(itrack.url, "itrack", cases=case, options=FAST, **LOGIN)
    result = report.result(case)
    assert result.verdict is Verdict.FAILED, result.details
    assert problem in result.details


class FullForCompact(ITrackServer):
    """Sends the full form of the current states to compact subscriptions too."""

    def _current(self, tracker_id: int, compact: bool) -> SourceState | None:
        return super()._current(tracker_id, False)


async def test_the_full_form_for_a_compact_subscription_fails(itrack: ReferenceServer) -> None:
    _serve(itrack, FullForCompact)
    report = await run_server_cases_async(
        itrack.url, "itrack", cases="itrack.actions.subscribe-state*", options=FAST, **LOGIN
    )
    for case in ("itrack.actions.subscribe-state", "itrack.actions.subscribe-state-batch"):
        result = report.result(case)
        assert result.verdict is Verdict.FAILED, result.details
        assert "not compact" in result.details
