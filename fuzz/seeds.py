"""Write the seed corpus of every fuzz target (``fuzz/corpus/<target>/``) from spec examples.

Run ``python fuzz/seeds.py`` after changing a target's input layout; the files are small and
kept in the repository so that the seed-corpus test and the fuzzers start from them.
Each seed is byte 0 (the target's option bits) followed by frames separated by ``0xff``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
SEP = b"\xff"

HANDSHAKE = "b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|"
HASH = "f4bf1b754034213653dad99c78c4b237"
STATE = {
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
}
ITRACK_SERVER_MESSAGES = [
    {"type": "event", "event": "state", "data": STATE, "user_time": "2018-10-17 12:51:50"},
    {"type": "event", "event": "state_batch", "data": [STATE]},
    {"type": "event", "event": "lifecycle", "data": {"source_id": 1, "lifecycle_event": "block"}},
    {"type": "event", "event": "logout", "data": "session closed"},
    {
        "type": "response",
        "action": "subscription/subscribe",
        "events": ["state"],
        "data": {"state": {"value": {"15564": "normal", "15565": "blocked"}, "success": True}},
    },
    {"type": "response", "action": "subscription/unsubscribe", "events": ["state"], "data": [1]},
    {
        "type": "error",
        "action": "subscription/subscribe",
        "status": {"code": 3, "description": "Wrong hash"},
        "data": {"events": ["state"], "trackers": [15564]},
    },
]
ITRACK_ACTIONS: list[dict[str, Any]] = [
    {
        "action": "subscribe",
        "hash": "0123456789abcdef0123456789abcdef",
        "requests": [
            {"type": "state_batch", "target": {"type": "all"}, "rate_limit": "5s"},
            {"type": "state", "trackers": [1, 2, 3], "format": "compact"},
            {"type": "readings_batch", "target": {"type": "selected", "tracker_ids": [2]}},
            {"type": "iot_monitor", "target": {"type": "all"}, "rate_limit": "500ms"},
        ],
    },
    {
        "action": "unsubscribe",
        "hash": "0123456789abcdef0123456789abcdef",
        "requests": [{"type": "state", "trackers": [1]}],
    },
    {"action": "subscribe", "hash": HASH, "events": ["state"], "trackers": [15564, 15565]},
    {"action": "subscribe", "hash": "short", "requests": []},
]
FF_SERVER_MESSAGES = [
    'connectionResponse {"errorCode":8,"message":"Please login",'
    '"serverTime":"2018-04-12T16:13:00.000Z","ghostId":"ghost","expiry":"2018-04-12T17:13:00.000Z"}',
    'loginResponse {"reqId":1,"errorCode":0,"message":"OK","ghostId":"ghost","user":{"login":"a"}}',
    'subscribeResponse {"reqId":2,"errorCode":0,"company":{"id":1},"merged":["asset"],'
    '"denied":[],"invalid":["nope"]}',
    'assetAdvancedMerged {"id":7,"company":1,"v":[3],"position":{"lat":1.5,"lng":2.5}}',
    'assetDeleted {"id":7,"company":1}',
    'unknownCommandResponse {"reqId":3,"errorCode":61,"message":"unknownCommand"}',
    'broadcast {"kind":"maintenance","message":"soon","serverTime":"2018-04-12T16:13:00.000Z"}',
    "sessionEnded {}",
    "bad name {}",
    "noopResponse [1]",
]
FF_CLIENT_COMMANDS = [
    'login {"username":"a","password":"pw","userAgent":"fuzz","reqId":1}',
    'subscribe {"company":{"id":1},"subscriptionTypes":["asset","nope"],"reqId":2}',
    'getAsset {"asset":{"id":7},"reqId":3}',
    'mergeAsset {"asset":{"id":7,"v":[1,1],"name":"renamed"},"reqId":4}',
    'getAssetsList {"company":{"id":1},"reqId":5}',
    'removeAsset {"asset":{"id":7},"reqId":6}',
    'custom {"reqId":7}',
    'noop {"reqId":8}',
    'logout {"reqId":9}',
    "noop",
    "login {not json",
]


def frames(flags: int, parts: Sequence[str | bytes]) -> bytes:
    encoded = [p.encode("utf-8") if isinstance(p, str) else p for p in parts]
    return bytes([flags]) + SEP.join(encoded)


def ws_frames(texts: list[str], *, masked: bool) -> bytes:
    """WebSocket text frames as a client (masked with a zero key) or a server writes them."""
    out = b""
    for text in texts:
        payload = text.encode("utf-8")
        head = bytes([0x81])
        mask = 0x80 if masked else 0
        if len(payload) < 126:
            head += bytes([mask | len(payload)])
        else:
            head += bytes([mask | 126]) + len(payload).to_bytes(2, "big")
        out += head + (b"\0\0\0\0" if masked else b"") + payload
    return out


def close_frame(*, masked: bool) -> bytes:
    payload = (1000).to_bytes(2, "big") + b"bye"
    return (
        bytes([0x88, (0x80 if masked else 0) | len(payload)])
        + (b"\0\0\0\0" if masked else b"")
        + payload
    )


def seeds() -> dict[str, list[bytes]]:
    dumps = json.dumps
    itrack_texts = [dumps(m) for m in ITRACK_SERVER_MESSAGES]
    auth_ok = b'{"success":true,"hash":"22dd4b7ee4e1b2a7f1a2b3c4d5e6f7a8"}'
    auth_fail = b'{"success":false,"status":{"code":102,"description":"Wrong login or password"}}'
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    form = b"login=demo&password=secret"
    return {
        "atmosphere_client": [
            frames(0, [HANDSHAKE, "hello", "X", "", " \n", "a|b"]),
            frames(
                1, ["45|" + HANDSHAKE, "3|abc5|hello", "10|01234", "56789", "1|X", "5|\U0001f600!!"]
            ),
            frames(1, ["45|" + HANDSHAKE + "5|hello", "0x10|0123456789abcdef", "abc|x"]),
            frames(4, [HANDSHAKE.replace("|", "#|"), "msg"]),
            frames(2, ["no protocol", "", "", "", "", "", "late"]),
        ],
        "atmosphere_server": [
            frames(
                0,
                [
                    "/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework="
                    "2.3.6-javascript&X-Atmosphere-Transport=websocket&Content-Type=application/json"
                    "&X-atmo-protocol=true",
                    "X",
                    "hello",
                    "",
                    "X\n",
                ],
            ),
            frames(
                1,
                [
                    "/v2/event/subscription?X-Atmosphere-tracking-id="
                    + HANDSHAKE[:36]
                    + "&X-Atmosphere-TrackMessageSize=true&X-Heartbeat-Server=120",
                    "data",
                    "",
                ],
            ),
            frames(
                0, ["/p?X-Atmosphere-Framework=2.2.0&X-atmo-protocol&X-Heartbeat-Server=0", "x"]
            ),
        ],
        "trackmessagesize": [
            frames(0, ["3|abc5|hello", "10|01234", "56789", "3|abc4|de", "fg"]),
            frames(0, ["1e1|a", "0x2|ab", " 2 |cd", "-1|x", "Infinity|x", "nan|x"]),
            frames(0, ["300|" + "y" * 100, "z" * 100, "w" * 100]),
            frames(1, ["hello", "\U0001f600 astral", "", "a", b"\x01\x02\x03\x05\x07"]),
            frames(2, ["5::hello3::abc", "2::x"]),
            # Non-ASCII and astral text one character per frame; a length of 4,301 digits.
            frames(0, ["40|\u00e9", *"\u00e9a\u20ac" * 12, "\U0001f600" * 3]),
            frames(0, ["1" * 4301 + "|x", "0" * 50 + "2|ok", "\u0663|x"]),
            frames(
                2,  # UTF-16 frames: a surrogate pair cut between two of them
                [
                    t.encode("utf-16-le", "surrogatepass")
                    for t in ("20|\ud83d", "\ude00\ude00", "x" * 30)
                ],
            ),
        ],
        "itrack_messages": [
            frames(0, itrack_texts),
            frames(1, [*itrack_texts[:3], "not json", "[1,2]", '{"type":"event"}']),
            frames(2 | 1, list(itrack_texts[:2])),
        ],
        "itrack_server": [
            frames(0, [dumps(a) for a in ITRACK_ACTIONS] + ["X", "not json"]),
            frames(1, [dumps(ITRACK_ACTIONS[0]), dumps({**ITRACK_ACTIONS[0], "action": "x"})]),
            frames(
                2,
                [
                    dumps(ITRACK_ACTIONS[2]),
                    dumps(
                        {
                            "action": "unsubscribe",
                            "hash": HASH,
                            "events": ["state"],
                            "trackers": [1],
                        }
                    ),
                ],
            ),
        ],
        "fleetfreedom_codec": [
            frames(0, FF_SERVER_MESSAGES + FF_CLIENT_COMMANDS),
            frames(1, ['nan {"a":NaN}', 'big {"n":1e400}', 'deep {"a":[[[[[]]]]]}', "x"]),
        ],
        "fleetfreedom_client": [
            frames(0, FF_SERVER_MESSAGES),
            frames(1, [*FF_SERVER_MESSAGES[:2], "assetMerged " + dumps({"x": "y" * 60})]),
            frames(8, [*FF_SERVER_MESSAGES[:1], "", "", "", "", 'noopResponse {"reqId":2}']),
            frames(
                0, ['connectionResponse {"errorCode":16}', 'connectionResponse {"errorCode":3}']
            ),
        ],
        "fleetfreedom_server": [
            frames(0, FF_CLIENT_COMMANDS),
            frames(2, FF_CLIENT_COMMANDS),
            frames(1, [*FF_CLIENT_COMMANDS[:2], 'noop {"pad":"' + "p" * 80 + '"}']),
        ],
        "ws_client_stack": [
            frames(
                1, [ws_frames([HANDSHAKE, "hello", "X"], masked=False), close_frame(masked=False)]
            ),
            frames(1 | 4, [ws_frames(["45|" + HANDSHAKE, "5|hello"], masked=False), b""]),
            frames(
                1 | 2, [ws_frames(FF_SERVER_MESSAGES[:3], masked=False), b"\x89\x00", b"\x82\x01z"]
            ),
            frames(0, [b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"]),
            frames(0, [b"HTTP/1.1 101 Switching Protocols\r\n\r\n"]),
        ],
        "ws_server_stack": [
            frames(
                1,
                [ws_frames([dumps(ITRACK_ACTIONS[0]), "X"], masked=True), close_frame(masked=True)],
            ),
            frames(1 | 2, [ws_frames(FF_CLIENT_COMMANDS[:3], masked=True), b"\x89\x80\0\0\0\0"]),
            frames(
                0,
                [
                    b"POST /v2/user/auth HTTP/1.1\r\nHost: a\r\nContent-Type: "
                    b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
                    % len(form)
                    + form
                ],
            ),
            frames(
                0,
                [
                    b"GET /event/subscription?X-Atmosphere-Transport=close&X-Atmosphere-"
                    b"tracking-id=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                    b"GARBAGE\r\n\r\n",
                ],
            ),
            frames(4, [b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"h" * 600 + b"\r\n\r\n"]),
            # Content-Length and Transfer-Encoding together, and a request smuggled behind.
            frames(
                0,
                [
                    b"POST /v2/user/auth HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
                ],
            ),
        ],
        "itrack_auth": [
            frames(0, [response % len(auth_ok) + auth_ok]),
            frames(
                0,
                [
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(auth_fail),
                    auth_fail,
                ],
            ),
            frames(2, [auth_ok[:10], auth_ok[10:]]),
            frames(0, [b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\noops!"]),
            frames(
                1,
                [
                    b"POST /v2/user/auth HTTP/1.1\r\nHost: a\r\nContent-Type: "
                    b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(form),
                    form,
                ],
            ),
            frames(
                1,
                [
                    b"GET /v2/user/auth?login=demo&password=secret HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                ],
            ),
        ],
    }


EXPAND = b"\xfe"
"""The targets read ``EXPAND`` and one byte ``n`` as ``n * 20`` nines (``_common.expand``)."""


def nines(twenties: int) -> bytes:
    """A digit run of ``twenties * 20`` nines, as the targets expand it."""
    return EXPAND + bytes([twenties])


def _request(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"


def _subscribed(key: bytes) -> bytes:
    return (
        b'{"type":"response","action":"subscription/subscribe","events":["state"],'
        b'"data":{"state":{"value":{"' + key + b'":"normal"},"success":true}}}'
    )


def regressions() -> dict[str, dict[str, bytes]]:
    """Inputs that once ended a server or a session: kept as ``regress-*`` files."""
    return {
        "atmosphere_server": {
            "regress-heartbeat-superscript": frames(0, ["/p?X-Heartbeat-Server=%C2%B2", "x"]),
            "regress-heartbeat-400-nines": frames(0, [b"/p?X-Heartbeat-Server=" + nines(20)]),
            "regress-framework-4400-digits": frames(
                0, [b"/p?X-atmo-protocol=true&X-Atmosphere-Framework=" + nines(220) + b".2.3"]
            ),
        },
        "atmosphere_client": {
            "regress-interval-310-digits": frames(0, ["u|" + "9" * 310 + "|X|", "", ""]),
        },
        "itrack_messages": {
            "regress-tracker-id-4320-digits": frames(1, [_subscribed(nines(216))]),
        },
        "itrack_server": {
            "regress-echo-surrogate": frames(0, ['{"action":"subscribe","x":"\\ud800"}']),
            "regress-echo-nan": frames(0, ['{"action":"subscribe","data":{"a":NaN}}']),
            "regress-echo-infinity": frames(0, ['{"action":"unsubscribe","n":1e999999}']),
            "regress-target-superscript": frames(
                8, ["/p?X-Atmosphere-tracking-id=0&X-Heartbeat-Server=%C2%B2", "X"]
            ),
        },
        "itrack_auth": {
            "regress-bracket-target": frames(1, [_request(b"//[/user/auth")]),
            "regress-dealer-5000-digits": frames(
                1, [_request(b"/user/auth?login=demo&password=secret&dealer_id=" + nines(250))]
            ),
        },
        "fleetfreedom_client": {
            "regress-ghost-id-surrogate": frames(
                0, ['connectionResponse {"errorCode":8,"ghostId":"\\ud800"}', ""]
            ),
        },
        "fleetfreedom_server": {
            "regress-reqid-nan": frames(2, ['noop {"reqId":NaN}']),
            "regress-reqid-infinity": frames(2, ['noop {"reqId":1e999999}']),
            "regress-reqid-surrogate": frames(2, ['noop {"reqId":"\\ud800"}']),
        },
    }


def main() -> int:
    for target, named in regressions().items():
        for name, data in named.items():
            (CORPUS / target / name).write_bytes(data)
    for target, inputs in seeds().items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for data in inputs:
            name = "seed-" + hashlib.sha1(data).hexdigest()[:12]
            (folder / name).write_bytes(data)
    print(f"wrote {sum(len(v) for v in seeds().values())} seeds to {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
