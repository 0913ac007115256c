"""What a client is subscribed to, kept so that it can be sent again after a reconnect."""

from __future__ import annotations

import dataclasses

from ._models import (
    Action,
    IotMonitorRequest,
    LegacySubscribe,
    LegacyUnsubscribe,
    ReadingsBatchRequest,
    Request,
    StateBatchRequest,
    StateRequest,
    Subscribe,
    Target,
    Unsubscribe,
)

__all__ = ["Subscriptions"]

_BatchRequest = StateBatchRequest | ReadingsBatchRequest | IotMonitorRequest


def _merge(old: Target, new: Target) -> Target:
    if old.tracker_ids is None or new.tracker_ids is None:
        return Target.all()
    return Target.selected(dict.fromkeys(old.tracker_ids + new.tracker_ids))


class Subscriptions:
    """The net effect of every subscribe and unsubscribe sent so far.

    ``state`` trackers accumulate (each keeps the request that added it, so its ``format``
    survives); a batch type keeps its latest parameters and the union of its targets
    (``all`` absorbs any selection, and unsubscribing a selection from ``all`` leaves
    ``all``: the protocol has no "all but" target).  Deprecated-format subscriptions are
    kept per event name.
    """

    __slots__ = ("batches", "legacy", "state")

    def __init__(self) -> None:
        self.state: dict[int, StateRequest] = {}
        self.batches: dict[str, _BatchRequest] = {}
        self.legacy: dict[str, dict[int, None]] = {}

    def __bool__(self) -> bool:
        return bool(self.state or self.batches or self.legacy)

    def clear(self) -> None:
        self.state.clear()
        self.batches.clear()
        self.legacy.clear()

    def apply(self, action: Action) -> None:
        if isinstance(action, Subscribe):
            for request in action.requests:
                self._add(request)
        elif isinstance(action, Unsubscribe):
            for request in action.requests:
                self._remove(request)
        elif isinstance(action, LegacySubscribe):
            for name in action.events:
                self.legacy.setdefault(name, {}).update(dict.fromkeys(action.trackers))
        elif isinstance(action, LegacyUnsubscribe):
            for name in action.events:
                trackers = self.legacy.get(name)
                if trackers is not None:
                    for tracker in action.trackers:
                        trackers.pop(tracker, None)
                    if not trackers:
                        del self.legacy[name]

    def _add(self, request: Request) -> None:
        if isinstance(request, StateRequest):
            for tracker in request.trackers:
                self.state[tracker] = request
            return
        old = self.batches.get(request.type)
        if old is not None:
            request = dataclasses.replace(request, target=_merge(old.target, request.target))
        self.batches[request.type] = request

    def _remove(self, request: Request) -> None:
        if isinstance(request, StateRequest):
            for tracker in request.trackers:
                self.state.pop(tracker, None)
            return
        old = self.batches.get(request.type)
        if old is None:
            return
        if request.target.tracker_ids is None:
            del self.batches[request.type]
        elif old.target.tracker_ids is not None:
            gone = set(request.target.tracker_ids)
            left = [t for t in old.target.tracker_ids if t not in gone]
            if left:
                self.batches[request.type] = dataclasses.replace(old, target=Target.selected(left))
            else:
                del self.batches[request.type]

    def actions(self) -> list[Action]:
        """The subscribe actions that recreate these subscriptions (empty when none)."""
        requests: list[Request] = []
        grouped: dict[int, tuple[StateRequest, list[int]]] = {}
        for tracker, origin in self.state.items():
            grouped.setdefault(id(origin), (origin, []))[1].append(tracker)
        for origin, trackers in grouped.values():
            requests.append(dataclasses.replace(origin, trackers=trackers))
        requests.extend(self.batches.values())
        out: list[Action] = [Subscribe(requests)] if requests else []
        by_trackers: dict[tuple[int, ...], list[str]] = {}
        for name, trackers_of in self.legacy.items():
            by_trackers.setdefault(tuple(trackers_of), []).append(name)
        for ids, names in by_trackers.items():
            out.append(LegacySubscribe(names, list(ids)))
        return out
