"""The iTrack server core for one WebSocket connection, on top of the Atmosphere server."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import _json
from .._core import CoreBase
from .._json import json_safe
from ..atmosphere import AtmosphereEvent, AtmosphereServer, Message, OpenRequest, ServerState
from ._codec import (
    ActionFormatError,
    JsonDumps,
    JsonLoads,
    dumps,
    encode_error,
    encode_event,
    encode_subscribe_response,
    encode_unsubscribe_response,
    parse_action,
)
from ._directory import Directory
from ._events import ActionReceived, ActionRejected, ITrackEvent
from ._models import (
    BLOCKED,
    NORMAL,
    Action,
    IotMonitorRequest,
    LegacySubscribe,
    LegacyUnsubscribe,
    Request,
    SourceState,
    StateRequest,
    Subscribe,
    Unsubscribe,
)

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "INVALID_PARAMETERS",
    "MAX_IOT_TRACKERS",
    "SESSION_ENDED",
    "WRONG_FORMAT",
    "WRONG_HASH",
    "ITrackServer",
    "ServerEvent",
    "StatePush",
    "parse_rate_limit",
]

ServerEvent = ITrackEvent | AtmosphereEvent

WRONG_HASH = (3, "Wrong hash")
SESSION_ENDED = (4, "User not found or session ended")
WRONG_FORMAT = (5, "Wrong request format")
INVALID_PARAMETERS = (7, "Invalid parameters")

DEFAULT_RATE_LIMIT = 1.0
"""Seconds between batches when a request names no ``rate_limit`` (the doc gives none)."""
MAX_IOT_TRACKERS = 10
MAX_RATE_LIMIT = 3600.0
"""Longest ``rate_limit`` accepted (an hour); longer ones are invalid parameters (7)."""
MAX_BATCH_ITEMS = 10_000
"""Readings or IoT values one batch holds; past that the oldest are dropped."""
LEGACY_EVENTS = frozenset({"state"})
"""Event names the deprecated format may subscribe to."""

_SPAN = re.compile(r"\s*([0-9]{1,18}(?:\.[0-9]{1,18})?)\s*(ms|s|m|h)?\s*")
"""A timespan: ASCII digits (at most 18 before and 18 after the point), then a unit."""
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_rate_limit(text: str | None) -> float:
    """A timespan such as ``5s``, ``500ms``, ``1m`` (bare numbers are seconds) in seconds."""
    if text is None:
        return DEFAULT_RATE_LIMIT
    match = _SPAN.fullmatch(text)
    if match is None:
        raise ActionFormatError(f"rate_limit {text!r:.40} is not a timespan")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds > MAX_RATE_LIMIT:
        raise ActionFormatError(f"rate_limit {text!r:.40} is over {MAX_RATE_LIMIT:.0f} s")
    return seconds


@dataclass(slots=True)
class _Batch:
    """One batch subscription of this connection: target, cadence and what is waiting."""

    kind: str
    user: str
    tracker_ids: set[int] | None
    rate: float
    compact: bool
    last_flush: float
    states: dict[int, SourceState] = field(default_factory=dict)
    items: list[tuple[int, Any]] = field(default_factory=list)
    """Readings or attribute values waiting, each with its tracker's id."""

    def covers(self, tracker_id: int) -> bool:
        return self.tracker_ids is None or tracker_id in self.tracker_ids

    @property
    def pending(self) -> bool:
        return bool(self.states or self.items)


class StatePush:
    """One state update for many connections, encoded once per form.

    Build one per update and pass it to :meth:`ITrackServer.push_state` of every connection:
    the ``state`` message is encoded the first time a form (``full`` or ``compact``, per
    JSON encoder) is needed and the same text goes to every other subscriber.  Build a new
    one for the next update (the text is never re-read from ``state``).
    """

    __slots__ = ("_texts", "state", "user_time")

    def __init__(self, state: SourceState, user_time: str | None = None) -> None:
        self.state = state
        self.user_time = user_time
        self._texts: dict[tuple[bool, JsonDumps], str] = {}

    def text(self, compact: bool, dumps: JsonDumps = dumps) -> str:
        """The encoded ``state`` message in the ``compact`` or full form."""
        key = (compact, dumps)
        text = self._texts.get(key)
        if text is None:
            shown = self.state.compact() if compact else self.state
            text = dumps(encode_event("state", shown.raw, user_time=self.user_time))
            self._texts[key] = text
        return text

    def __repr__(self) -> str:
        return f"StatePush({self.state!r}, user_time={self.user_time!r})"


@dataclass(slots=True)
class _StateSub:
    user: str
    compact: bool


class ITrackServer(CoreBase[ServerEvent]):
    """Sans-IO iTrack server side of one client connection.

    Validates every action against ``directory`` and answers as the real server does
    (errors 3, 4, 5, 7; per-tracker status; current states right after subscribing).  The
    application pushes updates with :meth:`push_state`, :meth:`push_lifecycle`,
    :meth:`push_readings`, :meth:`push_iot` and :meth:`push_logout` on every connection;
    each goes out only where this connection is subscribed (and nothing goes once the
    transport closed).  Batches leave when :meth:`handle_timer` reaches their ``rate_limit``.
    """

    __slots__ = (
        "_batches",
        "_dumps",
        "_loads",
        "_now",
        "_states",
        "directory",
        "session_hash",
        "transport",
    )

    def __init__(
        self,
        request: OpenRequest | str,
        directory: Directory,
        *,
        transport: AtmosphereServer | None = None,
        heartbeat_interval_ms: int = 30000,
        loads: JsonLoads | None = None,
        dumps: JsonDumps = dumps,
    ) -> None:
        super().__init__()
        self.transport = transport or AtmosphereServer(
            request, heartbeat_interval_ms=heartbeat_interval_ms
        )
        self.directory = directory
        self.session_hash: str | None = None
        """The hash of the last accepted action: what :meth:`push_logout` matches."""
        self._loads = loads
        self._dumps = dumps
        self._states: dict[int, _StateSub] = {}
        self._batches: dict[str, _Batch] = {}
        self._now = 0.0

    @property
    def state(self) -> ServerState:
        return self.transport.state

    @property
    def subscribed(self) -> bool:
        return bool(self._states or self._batches)

    # -- transport -------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        self._now = now
        self.transport.connection_made(now)
        self._drain()

    def receive(self, data: str, now: float) -> None:
        self._now = now
        self.transport.receive(data, now)
        self._drain()

    def receive_eof(self, now: float) -> None:
        self._now = now
        self.transport.receive_eof(now)
        self._drain()

    def _drain(self) -> None:
        transport = self.transport
        while (event := transport.next_event()) is not None:
            if type(event) is Message:
                self._handle(event.data)
            else:
                self._events.append(event)

    def send(self, item: str | dict[str, Any], now: float | None = None) -> None:
        """Queue one application message (a JSON object is encoded first)."""
        if now is not None:
            self._now = now
        self.transport.send(item if isinstance(item, str) else self._dumps(item), now)

    def _send(self, message: dict[str, Any]) -> None:
        if self.transport.state is ServerState.OPEN:
            self.transport.send(self._dumps(message), self._now)

    def data_to_send(self) -> list[str]:
        return self.transport.data_to_send()

    def close(self) -> None:
        self.transport.close()

    # -- actions ---------------------------------------------------------------------------

    def _reject(
        self, error: tuple[int, str], text: str, action: str | None, data: Any = None
    ) -> None:
        # The echo is the client's own JSON: NaN, 1e999999, lone surrogate escapes and deep
        # nesting are made writable as strict UTF-8 JSON whatever ``dumps`` is in use.
        self._send(encode_error(error[0], error[1], action, json_safe(data)))
        self._events.append(ActionRejected(error[0], error[1], text))

    def _handle(self, text: str) -> None:
        try:
            obj = (self._loads or _json.loads)(text)
        except Exception:  # any failure of the (replaceable) decoder: not JSON
            self._reject(WRONG_FORMAT, text, None)
            return
        if type(obj) is not dict:
            self._reject(WRONG_FORMAT, text, None)
            return
        name = obj.get("action")
        if name != "subscribe" and name != "unsubscribe":
            self._reject(WRONG_FORMAT, text, None)
            return
        action_name = f"subscription/{name}"
        echo = {k: v for k, v in obj.items() if k != "action" and k != "hash"} or None
        session_hash = obj.get("hash")
        if type(session_hash) is not str or len(session_hash) != 32:
            self._reject(WRONG_HASH, text, action_name, echo)
            return
        user = self.directory.user_of(session_hash)
        if user is None:
            self._reject(SESSION_ENDED, text, action_name, echo)
            return
        try:
            action = parse_action(obj)
            self._check(action, user)
        except ActionFormatError:
            self._reject(INVALID_PARAMETERS, text, action_name, echo)
            return
        self.session_hash = session_hash
        if isinstance(action, Subscribe):
            self._subscribe(action.requests, user)
        elif isinstance(action, Unsubscribe):
            self._unsubscribe(action.requests, user)
        elif isinstance(action, LegacySubscribe):
            self._subscribe([StateRequest(action.trackers)], user, legacy=action.events)
        else:
            self._unsubscribe([StateRequest(action.trackers)], user, legacy=action.events)
        self._events.append(ActionReceived(action, user, session_hash))

    def _check(self, action: Action, user: str) -> None:
        """Validate what parsing cannot: timespans, known legacy events, iot_monitor's cap."""
        if isinstance(action, (LegacySubscribe, LegacyUnsubscribe)):
            if not LEGACY_EVENTS.issuperset(action.events):
                raise ActionFormatError("unknown event name")
            return
        for request in action.requests:
            if isinstance(request, StateRequest):
                continue
            parse_rate_limit(request.rate_limit)
            if isinstance(request, IotMonitorRequest):
                ids = request.target.tracker_ids
                count = len(self.directory.trackers_of(user)) if ids is None else len(ids)
                if count > MAX_IOT_TRACKERS:
                    raise ActionFormatError("iot_monitor takes at most 10 trackers")

    def _statuses(self, user: str, ids: Iterable[int]) -> dict[int, str]:
        status = self.directory.status
        return {tracker: status(user, tracker) for tracker in ids}

    def _subscribe(
        self, requests: list[Request], user: str, legacy: list[str] | None = None
    ) -> None:
        results: dict[str, dict[int, str]] = {}
        initial: list[dict[str, Any]] = []
        for request in requests:
            if isinstance(request, StateRequest):
                statuses = self._statuses(user, request.trackers)
                compact = request.format == "compact"
                for tracker, status in statuses.items():
                    if status in (NORMAL, BLOCKED):
                        self._states[tracker] = _StateSub(user, compact)
                    if status == NORMAL:
                        state = self._current(tracker, compact)
                        if state is not None:
                            initial.append(encode_event("state", state.raw))
            else:
                ids = request.target.tracker_ids
                covered = self.directory.trackers_of(user) if ids is None else ids
                statuses = self._statuses(user, covered)
                batch = self._add_batch(request, user, statuses)
                if request.type == "state_batch":
                    states = [
                        self._current(t, batch.compact)
                        for t, status in statuses.items()
                        if status == NORMAL
                    ]
                    data = [s.raw for s in states if s is not None]
                    if data:
                        initial.append(encode_event("state_batch", data))
            results[request.type] = {**results.get(request.type, {}), **statuses}
        names = list(results) if legacy is None else legacy
        if legacy is not None:
            results = dict.fromkeys(legacy, results["state"])
        self._send(encode_subscribe_response(names, results, legacy=legacy is not None))
        for message in initial:
            self._send(message)

    def _current(self, tracker_id: int, compact: bool) -> SourceState | None:
        tracker = self.directory.trackers.get(tracker_id)
        if tracker is None or tracker.state is None:
            return None
        return tracker.state.compact() if compact else tracker.state

    def _add_batch(self, request: Request, user: str, statuses: dict[int, str]) -> _Batch:
        assert not isinstance(request, StateRequest)
        ids = request.target.tracker_ids
        wanted = None if ids is None else {t for t, s in statuses.items() if s in (NORMAL, BLOCKED)}
        compact = getattr(request, "format", None) == "compact"
        rate = parse_rate_limit(request.rate_limit)
        old = self._batches.get(request.type)
        if old is not None:
            old.user, old.rate, old.compact = user, rate, compact
            if old.tracker_ids is not None:
                old.tracker_ids = None if wanted is None else old.tracker_ids | wanted
            return old
        batch = _Batch(request.type, user, wanted, rate, compact, self._now)
        self._batches[request.type] = batch
        return batch

    def _unsubscribe(
        self, requests: list[Request], user: str, legacy: list[str] | None = None
    ) -> None:
        removed: dict[int, None] = {}
        for request in requests:
            if isinstance(request, StateRequest):
                for tracker in request.trackers:
                    if self._states.pop(tracker, None) is not None:
                        removed[tracker] = None
                continue
            batch = self._batches.get(request.type)
            if batch is None:
                continue
            ids = request.target.tracker_ids
            if ids is None:
                del self._batches[request.type]
                removed.update(
                    dict.fromkeys(
                        self.directory.trackers_of(user)
                        if batch.tracker_ids is None
                        else batch.tracker_ids
                    )
                )
            elif batch.tracker_ids is not None:
                gone = batch.tracker_ids.intersection(ids)
                batch.tracker_ids -= gone
                for tracker in gone:  # their waiting states stay out of the next batch
                    batch.states.pop(tracker, None)
                if batch.items:  # and so do their waiting readings or values
                    batch.items = [pair for pair in batch.items if pair[0] not in gone]
                removed.update(dict.fromkeys(t for t in ids if t in gone))
                if not batch.tracker_ids:
                    del self._batches[request.type]
        names = [r.type for r in requests] if legacy is None else legacy
        self._send(encode_unsubscribe_response(list(dict.fromkeys(names)), list(removed)))

    # -- pushes from the application -------------------------------------------------------

    def _normal(self, user: str, tracker_id: int) -> bool:
        return self.directory.status(user, tracker_id) == NORMAL

    def push_state(
        self,
        tracker_id: int,
        state: SourceState | StatePush,
        now: float,
        *,
        user_time: str | None = None,
    ) -> None:
        """A tracker's state changed: a ``state`` event now, or into the next ``state_batch``.

        Goes only where this connection subscribed the tracker and the directory says it is
        ``normal`` for the subscriber.  Pushing one update to many connections, pass the same
        :class:`StatePush` to each: the message is encoded once (its ``user_time`` is used).
        """
        self._now = now
        push: StatePush | None = None
        if isinstance(state, StatePush):
            push = state
            user_time = push.user_time
            state = push.state
        sub = self._states.get(tracker_id)
        if sub is not None and self._normal(sub.user, tracker_id):
            if push is not None:
                if self.transport.state is ServerState.OPEN:
                    self.transport.send(push.text(sub.compact, self._dumps), self._now)
            else:
                shown = state.compact() if sub.compact else state
                self._send(encode_event("state", shown.raw, user_time=user_time))
        batch = self._batches.get("state_batch")
        if batch is not None and batch.covers(tracker_id) and self._normal(batch.user, tracker_id):
            batch.states[tracker_id] = state.compact() if batch.compact else state

    def _push_items(self, kind: str, tracker_id: int, items: Iterable[Any], now: float) -> None:
        self._now = now
        batch = self._batches.get(kind)
        if batch is not None and batch.covers(tracker_id) and self._normal(batch.user, tracker_id):
            batch.items.extend((tracker_id, item) for item in items)
            if len(batch.items) > MAX_BATCH_ITEMS:
                del batch.items[: len(batch.items) - MAX_BATCH_ITEMS]

    def push_readings(self, tracker_id: int, readings: Iterable[Any], now: float) -> None:
        """Sensor readings of a tracker, for the next ``readings_batch``."""
        self._push_items("readings_batch", tracker_id, readings, now)

    def push_iot(self, tracker_id: int, values: Iterable[Any], now: float) -> None:
        """Attribute values of a tracker, for the next ``iot_monitor`` batch."""
        self._push_items("iot_monitor", tracker_id, values, now)

    def _lifecycle_user(self, tracker_id: int) -> str | None:
        sub = self._states.get(tracker_id)
        if sub is not None:
            return sub.user
        for kind in ("state_batch", "readings_batch"):
            batch = self._batches.get(kind)
            if batch is not None and batch.covers(tracker_id):
                return batch.user
        return None

    def push_lifecycle(self, tracker_id: int, lifecycle_event: str, now: float) -> None:
        """``block``/``unblock``/``corrupt`` of a tracker (update the directory first).

        Sent to subscribers of its states or readings, blocked or not; on ``unblock`` the
        current state follows, as the real server does.
        """
        self._now = now
        user = self._lifecycle_user(tracker_id)
        tracker = self.directory.trackers.get(tracker_id)
        if user is None or tracker is None or tracker.owner != user:
            return
        data = {"source_id": tracker.source_id, "lifecycle_event": lifecycle_event}
        self._send(encode_event("lifecycle", data))
        if lifecycle_event == "unblock" and tracker.state is not None:
            self.push_state(tracker_id, tracker.state, now)

    def push_logout(self, now: float, session_hash: str | None = None) -> bool:
        """The session ended: send ``logout`` if this connection is subscribed (under
        ``session_hash``, when given) and drop its subscriptions.  Returns whether it went."""
        self._now = now
        if not self.subscribed:
            return False
        if session_hash is not None and session_hash != self.session_hash:
            return False
        self._send(encode_event("logout", "session closed"))
        self._states.clear()
        self._batches.clear()
        return True

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadline = self.transport.next_deadline()
        for batch in self._batches.values():
            if batch.pending:
                due = batch.last_flush + batch.rate
                if deadline is None or due < deadline:
                    deadline = due
        return deadline

    def handle_timer(self, now: float) -> None:
        self._now = max(self._now, now)
        self.transport.handle_timer(now)
        self._drain()
        for batch in self._batches.values():
            if batch.pending and now >= batch.last_flush + batch.rate:
                if batch.states:
                    data: list[Any] = [s.raw for s in batch.states.values()]
                    batch.states = {}
                else:
                    data = [item for _, item in batch.items]
                    batch.items = []
                self._send(encode_event(batch.kind, data))
                batch.last_flush = now
