"""Payloads shared by the benchmarks: realistic frames of the sizes the issues name."""

from __future__ import annotations

import json

# A 357-byte iTrack `state` event (compact source state, as the spec quotes it).
STATE_EVENT = json.dumps(
    {
        "type": "event",
        "event": "state",
        "data": {
            "source_id": 10284,
            "gps": {
                "updated": "2018-10-17 12:51:43",
                "signal_level": 100,
                "location": {"lat": 14.330065796228606, "lng": -90.99037259141691},
                "heading": 248,
                "speed": 0,
                "alt": 431,
            },
            "connection_status": "active",
            "movement_status": "parked",
            "last_update": "2018-10-17 12:51:46",
            "gsm": {"updated": "2018-10-17 12:51:46", "level": 6},
        },
    },
    separators=(",", ":"),
)
assert len(STATE_EVENT) == 357, len(STATE_EVENT)

# A FleetFreedom ``assetAdvancedMerged`` line of about 400 bytes: the advanced piece of a
# vehicle (position, odometer, engine hours, providers, attributes; spec §6), ``v`` one slot.
ASSET_ADVANCED: dict[str, object] = {
    "id": 5021,
    "company": 1,
    "position": {
        "lat": 45.50884,
        "lng": -73.58781,
        "accuracy": 5,
        "altitude": 43,
        "bearing": 248,
        "speed": 42.5,
        "speedLimit": 50,
        "dts": "2024-03-05T14:22:31.000Z",
        "origin": 7781,
    },
    "odometer": 18234.512,
    "engineHours": 1234.5,
    "places": [],
    "providers": ["7781"],
    "relationships": {},
    "tags": ["north"],
    "attributes": {"fuel": {"name": "Fuel", "simple": "71", "raw": "71.25"}},
    "v": [1042],
}


def asset_line(asset_id: int = 5021, version: int = 1042) -> str:
    """One ``assetAdvancedMerged`` frame for ``asset_id`` at piece version ``version``."""
    body = dict(ASSET_ADVANCED, id=asset_id, v=[version])
    return "assetAdvancedMerged " + json.dumps(body, separators=(",", ":"))


ASSET_LINE = asset_line()
assert 380 <= len(ASSET_LINE) <= 420, len(ASSET_LINE)
ASSET_BODY = ASSET_LINE.partition(" ")[2]
"""The JSON part of :data:`ASSET_LINE` (what a bare decoder is given)."""
