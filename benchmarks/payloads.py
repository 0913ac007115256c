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
