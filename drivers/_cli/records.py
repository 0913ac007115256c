"""Application events as ``watch`` shows them: ``--json`` records, table rows, status lines.

Pure functions of the events (and, for iTrack, of the tracker list that names the sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackwire import Event
from trackwire.fleetfreedom import (
    Broadcast,
    ConnectionResponse,
    Deleted,
    Merged,
    MessageEvent,
    SessionEnded,
)
from trackwire.fleetfreedom import InvalidMessage as FFInvalid
from trackwire.fleetfreedom import Response as FFResponse
from trackwire.itrack import (
    ErrorMessage,
    IotMonitorEvent,
    LifecycleEvent,
    LogoutEvent,
    ReadingsBatchEvent,
    SourceState,
    StateBatchEvent,
    StateEvent,
    SubscribeResponse,
    TrackerInfo,
    UnsubscribeResponse,
)
from trackwire.itrack import InvalidMessage as ITrackInvalid
from trackwire.itrack import UnknownMessage as ITrackUnknown

from .view import Record, Row

__all__ = [
    "fleetfreedom_record",
    "itrack_record",
    "row_of_asset",
    "row_of_state",
    "status_of",
]

Translated = tuple[Record, list[Row]]


def _state_fields(state: SourceState) -> Record:
    gps = state.gps
    location = None if gps is None else gps.location
    return {
        "source_id": state.source_id,
        "lat": None if location is None else location.lat,
        "lng": None if location is None else location.lng,
        "speed": None if gps is None else gps.speed,
        "heading": None if gps is None else gps.heading,
    }


def row_of_state(state: SourceState, trackers: Mapping[int, TrackerInfo]) -> Row:
    """The row of an iTrack source state, named by the tracker list (``trackers``: by
    source id)."""
    fields = _state_fields(state)
    tracker = trackers.get(state.source_id)
    return Row(
        id="-" if tracker is None else str(tracker.tracker_id),
        source=str(state.source_id),
        name="" if tracker is None else tracker.label,
        lat=fields["lat"],
        lng=fields["lng"],
        speed=fields["speed"],
        heading=fields["heading"],
        status=state.movement_status or state.connection_status or "",
    )


def row_of_asset(asset: dict[str, Any]) -> Row:
    """The row of a FleetFreedom asset as the object cache holds it."""
    position = asset.get("position")
    if not isinstance(position, dict):
        position = {}
    speed = position.get("speed")
    return Row(
        id=str(asset.get("id")),
        name=str(asset.get("name") or ""),
        lat=position.get("lat"),
        lng=position.get("lng"),
        speed=speed,
        heading=position.get("bearing"),
        status="moving" if isinstance(speed, (int, float)) and speed > 0.5 else "parked",
    )


_SECRET_FIELDS = frozenset({"ghostId", "password", "hash"})


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    """A message for printing: session secrets (ghostId, password, hash) masked."""
    return {k: ("…" if k in _SECRET_FIELDS and v else v) for k, v in body.items()}


def itrack_record(event: Event, trackers: Mapping[int, TrackerInfo]) -> Translated | None:
    """The ``--json`` record and table rows of an iTrack application event (``None``: a
    transport event)."""
    record: Record
    if isinstance(event, StateEvent):
        record = {"kind": "state", **_state_fields(event.state), "message": event.raw}
        return record, [row_of_state(event.state, trackers)]
    if isinstance(event, StateBatchEvent):
        record = {
            "kind": "state_batch",
            "states": [_state_fields(s) for s in event.states],
            "message": event.raw,
        }
        return record, [row_of_state(s, trackers) for s in event.states]
    if isinstance(event, LifecycleEvent):
        record = {
            "kind": "lifecycle",
            "source_id": event.source_id,
            "lifecycle_event": event.lifecycle_event,
            "message": event.raw,
        }
        return record, []
    if isinstance(event, LogoutEvent):
        return {"kind": "logout", "reason": event.reason, "message": event.raw}, []
    if isinstance(event, SubscribeResponse):
        statuses = {
            str(tracker): status
            for result in event.results.values()
            for tracker, status in result.trackers.items()
        }
        return {"kind": "subscribed", "events": event.events, "trackers": statuses,
                "message": event.raw}, []  # fmt: skip
    if isinstance(event, UnsubscribeResponse):
        return {"kind": "unsubscribed", "trackers": event.trackers, "message": event.raw}, []
    if isinstance(event, ErrorMessage):
        record = {
            "kind": "error",
            "code": event.code,
            "description": event.description,
            "action": event.action,
            "message": event.raw,
        }
        return record, []
    if isinstance(event, (ReadingsBatchEvent, IotMonitorEvent)):
        return {"kind": "raw", "message": event.raw}, []
    if isinstance(event, (ITrackUnknown, ITrackInvalid)):
        return {"kind": "raw", "message": event.text}, []
    return None


def fleetfreedom_record(event: Event, login: int | None) -> Translated | None:
    """The ``--json`` record of a FleetFreedom application event (``None``: not one); its
    rows come from the object cache (see the watch loop)."""
    record: Record
    if isinstance(event, FFInvalid):
        return {"kind": "raw", "reason": event.reason, "message": event.raw}, []
    if not isinstance(event, MessageEvent):
        return None
    message = {"name": event.name, "body": _redacted(event.body)}
    body = event.body
    if isinstance(event, ConnectionResponse):
        record = {
            "kind": "connected",
            "error_code": event.error_code,
            "text": event.message,
        }
    elif isinstance(event, FFResponse):
        kind = "logged_in" if login is not None and event.req_id == login else "response"
        record = {
            "kind": kind,
            "name": event.name,
            "req_id": event.req_id,
            "error_code": event.error_code,
            "text": event.message,
        }
    elif isinstance(event, Merged):
        record = {"kind": "merged", "type": event.subscription_type, "id": body.get("id"),
                  "company": body.get("company"), "v": body.get("v")}  # fmt: skip
    elif isinstance(event, Deleted):
        record = {"kind": "deleted", "type": event.object_type, "id": event.key,
                  "company": event.company, "v": body.get("v")}  # fmt: skip
    elif isinstance(event, Broadcast):
        record = {"kind": "broadcast", "text": event.message}
    elif isinstance(event, SessionEnded):
        record = {"kind": "session_ended"}
    else:
        record = {"kind": "raw"}
    record["message"] = message
    return record, []


def _counts(statuses: Mapping[str, str]) -> str:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "(all)"


def status_of(record: Record) -> str | None:
    """The status line an application event is worth (``None``: it is data, such as a
    position, or nothing to say)."""
    kind = record["kind"]
    if kind == "subscribed":
        return "subscribed: " + _counts(record["trackers"])
    if kind == "unsubscribed":
        return f"unsubscribed: {record['trackers']}"
    if kind == "lifecycle":
        return f"source {record['source_id']}: {record['lifecycle_event']}"
    if kind == "logout":
        return f"logged out: {record['reason']}"
    if kind == "error":
        return f"error {record['code']}: {record['description']}"
    if kind == "connected":
        text = record["text"] or ""
        return f"connectionResponse {record['error_code']} {text}".rstrip()
    if kind == "logged_in":
        if record["error_code"] == 0:
            return "logged in"
        return f"login refused: {record['error_code']} {record['text'] or ''}".rstrip()
    if kind == "response":
        text = record["text"] or ""
        return f"{record['name']} {record['error_code']} {text}".rstrip()
    if kind == "deleted":
        return f"deleted: {record['type']} {record['id']}"
    if kind == "broadcast":
        return f"broadcast: {record['text']}"
    if kind == "session_ended":
        return "the server ended the session"
    if kind == "raw":
        return "a message trackwire does not model (see --json)"
    return None
