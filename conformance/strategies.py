"""Hypothesis strategies for valid and invalid frames, messages and sessions of both protocols.

For property tests of any client or server of the Atmosphere transport, the iTrack
application messages and the FleetFreedom line protocol, e.g.:

.. not-run: a template: MyClient stands for the client under test

::

    from hypothesis import given
    from trackwire.conformance import strategies as tws

    @given(tws.track_message_size_streams())
    def test_my_client_reassembles(stream):
        client = MyClient(track_message_length=True)
        client.feed(tws.handshake_frame_for(stream))
        for frame in stream.frames:
            client.feed(frame)
        assert client.messages == list(stream.delivered)

Everything is generated from the public protocol facts of the specifications (JSON text or
plain dicts), never from trackwire's own cores, so that the strategies can judge them too.
Invalid inputs come as :class:`BadFrame` with the ``reason`` they are invalid for.

Hypothesis is needed only here: install ``trackwire[conformance]`` (or ``hypothesis``) to use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeAlias

try:
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trackwire.conformance.strategies needs hypothesis: pip install 'trackwire[conformance]'"
    ) from exc

from trackwire.atmosphere import RECONNECT_PADDING, encode_message, js_trim

__all__ = [
    "FLEETFREEDOM_ERROR_CODES",
    "INVALID_ITRACK_REASONS",
    "INVALID_LINE_REASONS",
    "ITRACK_ERROR_CODES",
    "ITRACK_EVENT_TYPES",
    "MALFORMED_HANDSHAKE_REASONS",
    "OBJECT_TYPES",
    "PIECE_SLOTS",
    "SUBSCRIPTION_TYPES",
    "WRONG_HASH_REASONS",
    "BadFrame",
    "Command",
    "Handshake",
    "TrackMessageSizeStream",
    "blank_frames",
    "connection_responses",
    "fleetfreedom_bodies",
    "fleetfreedom_command_lines",
    "fleetfreedom_commands",
    "fleetfreedom_datetimes",
    "fleetfreedom_error_codes",
    "fleetfreedom_lines",
    "fleetfreedom_names",
    "fleetfreedom_piece_lines",
    "fleetfreedom_pieces",
    "fleetfreedom_positions",
    "fleetfreedom_responses",
    "fleetfreedom_sessions",
    "garbage_frames",
    "handshake_frame_for",
    "handshake_frames",
    "handshakes",
    "heartbeat_frames",
    "invalid_fleetfreedom_lines",
    "invalid_itrack_action_frames",
    "itrack_action_frames",
    "itrack_actions",
    "itrack_errors",
    "itrack_events",
    "itrack_requests",
    "itrack_responses",
    "itrack_server_frames",
    "itrack_server_messages",
    "itrack_sessions",
    "itrack_source_states",
    "itrack_times",
    "json_texts",
    "json_values",
    "list_command",
    "malformed_handshake_frames",
    "non_handshake_frames",
    "oversize_fleetfreedom_lines",
    "paddings",
    "rate_limits",
    "session_hashes",
    "track_message_size_streams",
    "tracker_ids",
    "tracking_ids",
]


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that breaks the protocol, and how (``reason``, a kebab-case word)."""

    text: str
    reason: str


def _reasons(wanted: Sequence[str] | None, known: Sequence[str], what: str) -> SearchStrategy[str]:
    """The reasons to draw from: all of ``known``, or the ``wanted`` subset (checked)."""
    if wanted is None:
        return st.sampled_from(tuple(known))
    unknown = sorted(set(wanted) - set(known))
    if unknown or not wanted:
        raise ValueError(f"{what}: unknown or no reasons {unknown}; expected some of {known}")
    return st.sampled_from(tuple(wanted))


# -- shared building blocks -----------------------------------------------------------------

_TEXT = st.characters(codec="utf-8")
"""Any character that can travel in a WebSocket text frame (UTF-8: no lone surrogates)."""

_TRICKY = st.one_of(
    st.sampled_from('|0123456789X {}"\\:, \t\n'),
    st.characters(min_codepoint=0x10000, max_codepoint=0x1FFFF),
    st.characters(min_codepoint=0x80, max_codepoint=0x7FF),
    _TEXT,
)
"""Characters that break naive parsers: delimiters, digits, JSON syntax, astral and 2-byte."""


def json_values(max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any JSON value (null, booleans, integers, finite floats, strings, arrays, objects)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53), max_value=2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(_TRICKY, max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(_TRICKY, max_size=8), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def json_texts(values: SearchStrategy[Any], *, compact: bool | None = None) -> SearchStrategy[str]:
    """``values`` as JSON text: compact (``,``/``:``), spaced, or either when ``None``."""
    styles = st.booleans() if compact is None else st.just(compact)
    ascii_only = st.booleans()

    def dump(args: tuple[Any, bool, bool]) -> str:
        value, tight, escape = args
        separators = (",", ":") if tight else (", ", ": ")
        return json.dumps(value, separators=separators, ensure_ascii=escape)

    return st.tuples(values, styles, ascii_only).map(dump)


def garbage_frames() -> SearchStrategy[str]:
    """Text frames of any content: what a peer must survive without crashing or hanging."""
    return st.one_of(
        st.text(_TEXT, max_size=64),
        st.text(_TRICKY, max_size=64),
        st.sampled_from(
            ["", " ", "|", "||", "0|", "-1|x", "x|abc", "{", "}", "[", "null", "\x00", "\ufeff"]
        ),
        st.integers(min_value=0).map(lambda n: f"{n}|"),
    )


# -- Atmosphere ------------------------------------------------------------------------------


def tracking_ids() -> SearchStrategy[str]:
    """Tracking ids as a server issues them: random UUIDs, 36 characters."""
    return st.uuids().map(str)


def paddings() -> SearchStrategy[str]:
    """Heartbeat paddings: mostly the default ``X``, else short text without ``|`` (maybe empty)."""
    other = st.text(_TEXT.filter(lambda ch: ch != "|"), max_size=4)
    return st.one_of(st.just("X"), other)


@dataclass(frozen=True, slots=True)
class Handshake:
    """The fields of one handshake frame (spec atmosphere §2) and the frame itself."""

    uuid: str
    interval_ms: int
    padding: str
    track_message_length: bool = False

    @property
    def frame(self) -> str:
        """``<uuid>|<ms>|<padding>|``, length-prefixed when TrackMessageSize is on."""
        body = f"{self.uuid}|{self.interval_ms}|{self.padding}|"
        return encode_message(body) if self.track_message_length else body


def handshakes(
    *,
    track_message_length: bool | None = False,
    interval_ms: SearchStrategy[int] | None = None,
    padding: SearchStrategy[str] | None = None,
) -> SearchStrategy[Handshake]:
    """Valid handshakes; ``track_message_length=None`` draws both framings."""
    intervals = (
        interval_ms
        if interval_ms is not None
        else st.one_of(st.sampled_from([0, 30000]), st.integers(min_value=0, max_value=600_000))
    )
    tms = st.booleans() if track_message_length is None else st.just(track_message_length)
    return st.builds(
        Handshake, tracking_ids(), intervals, paddings() if padding is None else padding, tms
    )


def handshake_frames(*, track_message_length: bool | None = False) -> SearchStrategy[str]:
    """Valid handshake frames: ``<uuid>|<ms>|<padding>|`` (``45|…`` with TrackMessageSize)."""
    return handshakes(track_message_length=track_message_length).map(lambda h: h.frame)


def handshake_frame_for(
    stream: TrackMessageSizeStream, uuid: str = "b623a15d-9623-4fd8-a9d3-697036635c29"
) -> str:
    """The length-prefixed handshake that opens ``stream`` (its padding, 30000 ms)."""
    return Handshake(uuid, 30000, stream.padding, True).frame


def non_handshake_frames(*, track_message_length: bool = False) -> SearchStrategy[str]:
    """Frames a waiting client must pass through as messages (too few fields) or ignore
    (blank), staying unopened: text without ``|`` (``<n>|text`` with TrackMessageSize)."""
    no_bar = st.text(_TEXT.filter(lambda ch: ch != "|"), min_size=1, max_size=40).filter(
        lambda text: bool(js_trim(text))
    )
    short = no_bar.map(encode_message) if track_message_length else no_bar
    return st.one_of(short, blank_frames())


MALFORMED_HANDSHAKE_REASONS = (
    "uuid-length",
    "interval-not-digits",
    "no-trailing-delimiter",
    "data-appended",
    "missing-fields",
)


def malformed_handshake_frames(reasons: Sequence[str] | None = None) -> SearchStrategy[BadFrame]:
    """Handshake-shaped frames that break spec §2, for judging servers (unprefixed form).

    Reasons (:data:`MALFORMED_HANDSHAKE_REASONS`; ``reasons`` narrows them): ``uuid-length``
    (first field not 36 characters), ``interval-not-digits``, ``no-trailing-delimiter``,
    ``data-appended`` (text after the last ``|``), ``missing-fields`` (fewer than three ``|``).
    """
    picked = _reasons(reasons, MALFORMED_HANDSHAKE_REASONS, "malformed_handshake_frames")
    uuid = tracking_ids()
    ms = st.integers(min_value=0, max_value=600_000).map(str)
    pad = st.just("X")
    bad_uuid = st.text("0123456789abcdef-", max_size=48).filter(lambda u: len(u) != 36)
    bad_ms = st.one_of(
        st.sampled_from(["", "abc", "-5", "1.5", "3e4", " 30000", "0x10"]),
        st.text(_TEXT.filter(lambda ch: ch != "|" and not ch.isdigit()), min_size=1, max_size=6),
    )
    appended = st.text(_TEXT, min_size=1, max_size=20)
    makers: dict[str, SearchStrategy[BadFrame]] = {
        "uuid-length": st.builds(lambda u, m: BadFrame(f"{u}|{m}|X|", "uuid-length"), bad_uuid, ms),
        "interval-not-digits": st.builds(
            lambda u, m: BadFrame(f"{u}|{m}|X|", "interval-not-digits"), uuid, bad_ms
        ),
        "no-trailing-delimiter": st.builds(
            lambda u, m, p: BadFrame(f"{u}|{m}|{p}", "no-trailing-delimiter"), uuid, ms, pad
        ),
        "data-appended": st.builds(
            lambda u, m, d: BadFrame(f"{u}|{m}|X|{d}", "data-appended"), uuid, ms, appended
        ),
        "missing-fields": st.builds(
            lambda u, m, k: BadFrame("|".join([u, m][:k]) + ("|" if k else ""), "missing-fields"),
            uuid,
            ms,
            st.integers(min_value=0, max_value=2),
        ),
    }
    return picked.flatmap(makers.__getitem__)


def heartbeat_frames(
    padding: str | SearchStrategy[str] = "X", *, track_message_length: bool = False
) -> SearchStrategy[str]:
    """Heartbeat frames: the padding itself, or ``1|X`` (its length prefix) from a TMS server."""
    pads = padding if isinstance(padding, SearchStrategy) else st.just(padding)
    return pads.map(encode_message) if track_message_length else pads


def blank_frames() -> SearchStrategy[str]:
    """Frames a client ignores: empty, whitespace only, the 2048-space reconnect padding."""
    spaces = st.text(st.sampled_from(" \t\n\r\u00a0\u2028\ufeff"), max_size=8)
    return st.one_of(st.just(""), spaces, st.just(RECONNECT_PADDING))


@dataclass(frozen=True, slots=True)
class TrackMessageSizeStream:
    """Messages a TrackMessageSize server wrote and the frames they arrived in.

    ``frames`` are the length-prefixed writes concatenated and cut at arbitrary points that a
    conforming client must reassemble: every frame, joined to what the client still holds,
    contains the delimiter (a frame without one is delivered raw, spec atmosphere §3).
    """

    messages: tuple[str, ...]
    frames: tuple[str, ...]
    padding: str = "X"
    delimiter: str = "|"
    delivered: tuple[str, ...] = field(init=False)
    """What reaches the application: trimmed, without empty messages and heartbeats."""
    heartbeats: int = field(init=False)
    """How many messages the client reads as the server's heartbeat."""

    def __post_init__(self) -> None:
        delivered: list[str] = []
        beats = 0
        for message in self.messages:
            text = js_trim(message)
            if text == self.padding:
                beats += 1
            elif text:
                delivered.append(text)
        object.__setattr__(self, "delivered", tuple(delivered))
        object.__setattr__(self, "heartbeats", beats)


def _tms_messages() -> SearchStrategy[str]:
    # Blank writes go out unprefixed from a Java server, so they never share a stream.
    return st.text(_TRICKY, min_size=1, max_size=30).filter(lambda m: bool(js_trim(m)))


@st.composite
def _streams(
    draw: st.DrawFn,
    messages: SearchStrategy[str],
    padding: str,
    delimiter: str,
    heartbeats: bool,
    max_messages: int,
) -> TrackMessageSizeStream:
    items = draw(st.lists(messages, max_size=max_messages))
    if heartbeats:
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            items.insert(draw(st.integers(min_value=0, max_value=len(items))), padding)
    writes = [encode_message(m, delimiter) for m in items]
    stream = "".join(writes)
    starts = [0]
    for write in writes:
        starts.append(starts[-1] + len(write))
    cuts = draw(st.sets(st.integers(min_value=1, max_value=max(1, len(stream) - 1))))
    frames: list[str] = []
    begin = 0
    held = 0  # where the message the client holds a part of starts
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        if cut <= begin or delimiter not in stream[held:cut]:
            continue  # that cut would leave a frame the client delivers raw: merge it on
        frames.append(stream[begin:cut])
        begin = cut
        held = max(s for s in starts if s <= cut)
    return TrackMessageSizeStream(tuple(items), tuple(frames), padding, delimiter)


def track_message_size_streams(
    messages: SearchStrategy[str] | None = None,
    *,
    padding: str = "X",
    delimiter: str = "|",
    heartbeats: bool = True,
    max_messages: int = 8,
) -> SearchStrategy[TrackMessageSizeStream]:
    """Server writes as ``<utf16-length>|<message>``, split into frames anywhere a conforming
    client must cope with; ``heartbeats`` mixes in the padding as the server's heartbeat.

    ``messages`` defaults to non-blank text rich in digits, ``|``, astral and JSON characters.
    """
    return _streams(
        _tms_messages() if messages is None else messages,
        padding,
        delimiter,
        heartbeats,
        max_messages,
    )


# -- iTrack ----------------------------------------------------------------------------------

ITRACK_ERROR_CODES: Mapping[int, str] = {
    1: "Database error",
    3: "Wrong user hash",
    4: "User not found or session ended",
    5: "Wrong request format",
    7: "Invalid parameters",
    11: "Access denied",
    102: "Wrong login or password",
    103: "User not activated",
    104: "Logins limit exceeded",
    105: "Login attempts limit exceeded",
}
"""The API error codes spec itrack §1 lists."""

_TRACKER_STATUSES = ("normal", "blocked", "unknown", "disallowed")
_REQUEST_TYPES = ("state", "state_batch", "readings_batch", "iot_monitor")


def session_hashes() -> SearchStrategy[str]:
    """Session hashes as ``user/auth`` returns them: 32 lowercase hex characters."""
    return st.text("0123456789abcdef", min_size=32, max_size=32)


def tracker_ids() -> SearchStrategy[int]:
    """Tracker (or source) ids: positive integers."""
    return st.integers(min_value=1, max_value=2**31 - 1)


def rate_limits() -> SearchStrategy[str]:
    """Timespan strings such as ``5s``, ``500ms``, ``1m``."""
    return st.one_of(
        st.sampled_from(["1s", "5s", "500ms", "1m", "10s"]),
        st.builds("{}{}".format, st.integers(min_value=1, max_value=600), st.sampled_from("sm")),
    )


def itrack_times() -> SearchStrategy[str]:
    """Local times without an offset: ``YYYY-MM-DD HH:MM:SS``."""
    return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")
    )


def _targets(max_trackers: int = 20) -> SearchStrategy[dict[str, Any]]:
    ids = st.lists(tracker_ids(), min_size=1, max_size=max_trackers, unique=True)
    return st.one_of(
        st.just({"type": "all"}), ids.map(lambda t: {"type": "selected", "tracker_ids": t})
    )


def _optional(base: dict[str, Any], draw: st.DrawFn, key: str, values: SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        base[key] = draw(values)


@st.composite
def _request(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    request: dict[str, Any] = {"type": kind}
    formats = st.sampled_from(["full", "compact"])
    if kind == "state":
        request["trackers"] = draw(st.lists(tracker_ids(), min_size=1, max_size=8, unique=True))
        _optional(request, draw, "format", formats)
        return request
    request["target"] = draw(_targets(10 if kind == "iot_monitor" else 20))
    _optional(request, draw, "rate_limit", rate_limits())
    if kind == "state_batch":
        _optional(request, draw, "format", formats)
    elif kind == "readings_batch":
        _optional(request, draw, "sensor_type", st.sampled_from(["temperature", "fuel", "any"]))
        _optional(request, draw, "include_components", st.booleans())
    elif request["target"]["type"] == "all":
        # iot_monitor takes at most 10 trackers: name them rather than risk "all".
        request["target"] = {"type": "selected", "tracker_ids": [draw(tracker_ids())]}
    return request


def itrack_requests(types: Sequence[str] = _REQUEST_TYPES) -> SearchStrategy[dict[str, Any]]:
    """Valid subscription requests (spec itrack §2) of the given ``types``."""
    return st.sampled_from(tuple(types)).flatmap(_request)


@st.composite
def _action(
    draw: st.DrawFn, action: str | None, legacy: bool | None, hashes: SearchStrategy[str]
) -> dict[str, Any]:
    name = action or draw(st.sampled_from(["subscribe", "unsubscribe"]))
    old = draw(st.booleans()) if legacy is None else legacy
    message: dict[str, Any] = {"action": name, "hash": draw(hashes)}
    if old:
        message["events"] = ["state"]
        message["trackers"] = draw(st.lists(tracker_ids(), min_size=1, max_size=8, unique=True))
    else:
        message["requests"] = draw(st.lists(itrack_requests(), min_size=1, max_size=3))
    return message


def itrack_actions(
    action: str | None = None,
    *,
    legacy: bool | None = False,
    hashes: SearchStrategy[str] | None = None,
) -> SearchStrategy[dict[str, Any]]:
    """Valid ``subscribe``/``unsubscribe`` actions; ``legacy`` picks the deprecated
    ``events``/``trackers`` format (``None``: either)."""
    return _action(action, legacy, session_hashes() if hashes is None else hashes)


def itrack_action_frames(
    action: str | None = None, *, legacy: bool | None = False
) -> SearchStrategy[str]:
    """:func:`itrack_actions` as JSON text frames."""
    return json_texts(itrack_actions(action, legacy=legacy))


_NOT_JSON = st.one_of(
    st.sampled_from(["{", "{'action': 'subscribe'}", "subscribe", '{"action":}', "[1,", "X\n"]),
    st.text(_TEXT, max_size=30),
).filter(lambda text: not _is_json(text))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


INVALID_ITRACK_REASONS = (
    "not-json",
    "not-object",
    "missing-action",
    "unknown-action",
    "missing-hash",
    "hash-not-string",
    "hash-not-32",
    "requests-not-list",
    "trackers-not-ints",
    "unknown-request-type",
    "bad-target",
    "iot-over-10",
)
WRONG_HASH_REASONS = ("missing-hash", "hash-not-string", "hash-not-32")
"""The :data:`INVALID_ITRACK_REASONS` a server answers with error code 3 (wrong hash)."""


@st.composite
def _bad_action(draw: st.DrawFn, reasons: SearchStrategy[str]) -> BadFrame:
    reason = draw(reasons)
    if reason == "not-json":
        return BadFrame(draw(_NOT_JSON), reason)
    if reason == "not-object":
        value = draw(json_values().filter(lambda v: not isinstance(v, dict)))
        return BadFrame(json.dumps(value), reason)
    action = draw(itrack_actions(legacy=False))
    if reason == "missing-action":
        del action["action"]
    elif reason == "unknown-action":
        action["action"] = draw(
            st.text(_TEXT, max_size=12).filter(lambda a: a not in ("subscribe", "unsubscribe"))
        )
    elif reason == "missing-hash":
        del action["hash"]
    elif reason == "hash-not-string":
        action["hash"] = draw(st.one_of(st.none(), st.integers(), st.lists(st.integers())))
    elif reason == "hash-not-32":
        action["hash"] = draw(st.text(_TEXT, max_size=40).filter(lambda h: len(h) != 32))
    elif reason == "requests-not-list":
        action["requests"] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=5)))
    elif reason == "trackers-not-ints":
        fraction = st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda x: not x.is_integer()
        )
        bad = st.one_of(st.text(max_size=5), fraction, st.none(), st.booleans())
        action["requests"] = [{"type": "state", "trackers": draw(st.lists(bad, min_size=1))}]
    elif reason == "unknown-request-type":
        kind = draw(st.text(_TEXT, max_size=12).filter(lambda k: k not in _REQUEST_TYPES))
        action["requests"] = [{"type": kind, "target": {"type": "all"}}]
    elif reason == "bad-target":
        target = draw(
            st.one_of(
                st.none(),
                st.just({"type": "some"}),
                st.just({"type": "selected"}),
                st.builds(lambda v: {"type": "selected", "tracker_ids": v}, st.text(max_size=4)),
            )
        )
        action["requests"] = [{"type": "state_batch", "target": target}]
    else:  # iot-over-10
        ids = draw(st.lists(tracker_ids(), min_size=11, max_size=20, unique=True))
        target = {"type": "selected", "tracker_ids": ids}
        action["requests"] = [{"type": "iot_monitor", "target": target}]
    return BadFrame(draw(json_texts(st.just(action))), reason)


def invalid_itrack_action_frames(reasons: Sequence[str] | None = None) -> SearchStrategy[BadFrame]:
    """Client frames a server must refuse with a ``type: error`` message and survive.

    Reasons (:data:`INVALID_ITRACK_REASONS`; ``reasons`` narrows them): ``not-json``,
    ``not-object``, ``missing-action``, ``unknown-action`` (wrong request format);
    ``missing-hash``, ``hash-not-string``, ``hash-not-32`` (wrong hash, code 3:
    :data:`WRONG_HASH_REASONS`); ``requests-not-list``, ``trackers-not-ints``,
    ``unknown-request-type``, ``bad-target``, ``iot-over-10`` (invalid parameters).
    """
    return _bad_action(_reasons(reasons, INVALID_ITRACK_REASONS, "invalid_itrack_action_frames"))


@st.composite
def _source_state(draw: st.DrawFn, fmt: str | None, extra: bool) -> dict[str, Any]:
    full = draw(st.booleans()) if fmt is None else fmt == "full"
    coordinate = st.floats(allow_nan=False, allow_infinity=False)
    state: dict[str, Any] = {
        "source_id": draw(tracker_ids()),
        "gps": {
            "updated": draw(itrack_times()),
            "signal_level": draw(st.integers(min_value=0, max_value=100)),
            "location": {
                "lat": draw(coordinate.filter(lambda x: -90 <= x <= 90)),
                "lng": draw(coordinate.filter(lambda x: -180 <= x <= 180)),
            },
            "heading": draw(st.integers(min_value=0, max_value=359)),
            "speed": draw(st.integers(min_value=0, max_value=250)),
            "alt": draw(st.integers(min_value=-400, max_value=9000)),
        },
        "connection_status": draw(st.sampled_from(["active", "idle", "offline"])),
        "movement_status": draw(st.sampled_from(["moving", "stopped", "parked"])),
        "last_update": draw(itrack_times()),
    }
    if full:
        # Spec itrack §3 names these fields of the full format without fixing their shapes;
        # the values here are plausible placeholders.
        flags = st.lists(st.booleans(), max_size=8)
        state["gsm"] = {"updated": draw(itrack_times()), "signal_level": draw(st.integers(0, 100))}
        state["battery_level"] = draw(st.integers(min_value=0, max_value=100))
        state["battery_update"] = draw(itrack_times())
        state["inputs"] = draw(flags)
        state["inputs_update"] = draw(itrack_times())
        state["outputs"] = draw(flags)
        state["outputs_update"] = draw(itrack_times())
        state["actual_track_update"] = draw(itrack_times())
    if extra:
        # "Expect fields to be added over time": unknown fields a client must keep.
        names = st.from_regex(r"x_[a-z]{1,8}", fullmatch=True)
        state.update(draw(st.dictionaries(names, json_values(4), max_size=2)))
    return state


def itrack_source_states(
    format: str | None = None, *, extra: bool = True
) -> SearchStrategy[dict[str, Any]]:
    """Source states in the ``compact`` or ``full`` format (``None``: either); ``extra`` adds
    unknown ``x_…`` fields, as new server versions do."""
    return _source_state(format, extra)


@st.composite
def _event(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "event", "event": kind}
    if kind == "state":
        _optional(message, draw, "user_time", itrack_times())
        message["data"] = draw(itrack_source_states(None))
    elif kind == "state_batch":
        message["data"] = draw(st.lists(itrack_source_states(None), max_size=4))
    elif kind == "lifecycle":
        message["data"] = {
            "source_id": draw(tracker_ids()),
            "lifecycle_event": draw(st.sampled_from(["block", "unblock", "corrupt"])),
        }
    elif kind == "logout":
        message["data"] = "session closed"
    else:  # readings_batch, iot_monitor: the shape is not fixed; keep it raw
        message["data"] = draw(st.lists(st.dictionaries(st.text(max_size=8), json_values(4))))
    return message


ITRACK_EVENT_TYPES = (
    "state",
    "state_batch",
    "lifecycle",
    "logout",
    "readings_batch",
    "iot_monitor",
)


def itrack_events(kinds: Sequence[str] = ITRACK_EVENT_TYPES) -> SearchStrategy[dict[str, Any]]:
    """Server events (``type: event``) of the given kinds, as dicts."""
    return st.sampled_from(tuple(kinds)).flatmap(_event)


@st.composite
def _response(draw: st.DrawFn, shape: str | None) -> dict[str, Any]:
    kind = shape or draw(st.sampled_from(["subscribe", "subscribe-legacy", "unsubscribe"]))
    ids = draw(st.lists(tracker_ids(), min_size=1, max_size=6, unique=True))
    if kind == "unsubscribe":
        events = draw(st.lists(st.sampled_from(_REQUEST_TYPES), min_size=1, max_size=2))
        return {
            "type": "response",
            "action": "subscription/unsubscribe",
            "events": events,
            "data": ids,
        }
    statuses = {str(i): draw(st.sampled_from(_TRACKER_STATUSES)) for i in ids}
    if kind == "subscribe-legacy":
        data: dict[str, Any] = {"state": statuses}
        events = ["state"]
    else:
        events = draw(
            st.lists(st.sampled_from(_REQUEST_TYPES), min_size=1, max_size=3, unique=True)
        )
        data = {}
        for name in events:
            entry: dict[str, Any] = {"value": statuses}
            if draw(st.booleans()) or draw(st.booleans()):  # usually present, not always
                entry["success"] = True
            data[name] = entry
    return {"type": "response", "action": "subscription/subscribe", "events": events, "data": data}


def itrack_responses(shape: str | None = None) -> SearchStrategy[dict[str, Any]]:
    """Responses to actions: ``subscribe`` (``value``, usually ``success``),
    ``subscribe-legacy`` (bare status map) or ``unsubscribe`` (list of ids)."""
    return _response(shape)


@st.composite
def _error(draw: st.DrawFn) -> dict[str, Any]:
    code = draw(st.sampled_from(sorted(ITRACK_ERROR_CODES)))
    action = draw(st.sampled_from(["subscription/subscribe", "subscription/unsubscribe", "null"]))
    message: dict[str, Any] = {
        "type": "error",
        "action": action,
        "status": {"code": code, "description": ITRACK_ERROR_CODES[code]},
    }
    if draw(st.booleans()):
        ids = st.lists(tracker_ids(), max_size=4)
        message["data"] = {"events": ["state"], "trackers": draw(ids)}
    return message


def itrack_errors() -> SearchStrategy[dict[str, Any]]:
    """Error messages: a listed code, ``action`` possibly ``"null"``, ``data`` optional."""
    return _error()


def itrack_server_messages() -> SearchStrategy[dict[str, Any]]:
    """Any valid server message: event, response or error."""
    return st.one_of(itrack_events(), itrack_responses(), itrack_errors())


def itrack_server_frames() -> SearchStrategy[str]:
    """:func:`itrack_server_messages` as JSON text frames."""
    return json_texts(itrack_server_messages())


@st.composite
def _itrack_session(
    draw: st.DrawFn, session_hash: str | None, padding: str, max_steps: int
) -> list[str]:
    hash_ = session_hash if session_hash is not None else draw(session_hashes())

    def frame(message: dict[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"))

    def subscribe() -> str:
        action = draw(itrack_actions("subscribe", legacy=False, hashes=st.just(hash_)))
        for request in action["requests"]:
            if request["type"] == "state":
                subscribed.update(request["trackers"])
        return frame(action)

    subscribed: set[int] = set()
    frames = [subscribe()]
    for _ in range(draw(st.integers(min_value=0, max_value=max_steps))):
        step = draw(st.sampled_from(["subscribe", "unsubscribe", "heartbeat"]))
        if step == "heartbeat":
            frames.append(padding)
        elif step == "unsubscribe" and subscribed:
            gone = draw(st.lists(st.sampled_from(sorted(subscribed)), min_size=1, unique=True))
            subscribed.difference_update(gone)
            request = {"type": "state", "trackers": gone}
            frames.append(frame({"action": "unsubscribe", "hash": hash_, "requests": [request]}))
        else:
            frames.append(subscribe())
    return frames


def itrack_sessions(
    session_hash: str | None = None, *, padding: str = "X", max_steps: int = 8
) -> SearchStrategy[list[str]]:
    """What a client sends after the handshake: a ``subscribe`` first, then subscribes,
    unsubscribes of state trackers subscribed before, and heartbeats, all with one hash."""
    return _itrack_session(session_hash, padding, max_steps)


# -- FleetFreedom ----------------------------------------------------------------------------

SUBSCRIPTION_TYPES: tuple[str, ...] = (
    "analyticRule", "analyticSummary", "assetAdvanced", "assetGeneral", "assetMessage",
    "behaviour", "behaviourLog", "behaviourScript", "companyGeneral", "companyLabels",
    "companyPolicies", "contact", "dispatchTask", "hosCarrier", "hosEvent", "hosInspection",
    "icon", "maintenanceJob", "maintenanceSchedule", "picture", "placeGeneral",
    "providerAdvanced", "providerConfiguration", "providerGeneral", "reportResult",
    "reportTemplate", "userAdvanced", "userGeneral", "userGroup",
    # 5.x
    "assetDispatch", "dispatchJob", "formTemplate", "formResult", "providerScript",
    "providerConfig", "providerControl", "providerRegistration", "companyReseller",
    "billingProfile", "billingHosting", "billingDiscount", "billingLicense", "billingReport",
    "document", "reportSchedule", "userAuthentication", "userState", "machine",
)  # fmt: skip
"""Subscription types of 4.10.2, then those 5.x adds (spec fleetfreedom §4)."""

PIECE_SLOTS: Mapping[str, tuple[str, int]] = {
    "assetGeneral": ("asset", 0),
    "assetAdvanced": ("asset", 1),
    "assetDispatch": ("asset", 2),
    "providerGeneral": ("provider", 0),
    "providerAdvanced": ("provider", 1),
    "providerControl": ("provider", 2),
    "userGeneral": ("user", 0),
    "userAdvanced": ("user", 1),
    "placeGeneral": ("place", 0),
    "companyGeneral": ("company", 0),
    "companyLabels": ("company", 3),
    "companyPolicies": ("company", 4),
    "companyReseller": ("company", 5),
}
"""Piece subscription types → (object type, slot of ``v``), from spec fleetfreedom §5."""

OBJECT_TYPES: tuple[str, ...] = ("asset", "provider", "user", "place", "company")
"""The synchronised object types with a documented ``v`` layout."""

FLEETFREEDOM_ERROR_CODES: Mapping[int, str] = {
    0: "success", 1: "unknown", 2: "service", 3: "invalidData", 4: "invalidPermission",
    5: "permissionDenied", 6: "wrongVersionKey", 7: "sessionExpired", 8: "userNotLoggedIn",
    9: "sessionKilled", 10: "loggedOut", 11: "invalidCredentials", 12: "applicationNotAllowed",
    13: "ipNotAllowed", 14: "multiUserDenied", 15: "noncompliantPassword",
    16: "passwordExpired", 17: "samePassword", 19: "sessionNotFound", 20: "assetNotFound",
    28: "companyNotFound", 40: "placeNotFound", 43: "providerNotFound", 54: "userNotFound",
    61: "unknownCommand", 105: "commandThrottled", 125: "unchanged", 142: "formTemplateInUse",
}  # fmt: skip
"""A selection of the codes of spec fleetfreedom §7 that tests most often meet."""

_LAST_KNOWN_CODE = 142


def list_command(object_type: str) -> str:
    """``get<Types>List`` for ``object_type`` (y → ies, ch → es, else + s): ``getAssetsList``."""
    name = object_type[:1].upper() + object_type[1:]
    if name.endswith("y"):
        plural = name[:-1] + "ies"
    elif name.endswith("ch"):
        plural = name + "es"
    else:
        plural = name + "s"
    return f"get{plural}List"


def fleetfreedom_names() -> SearchStrategy[str]:
    """lowerCamelCase message names: an ASCII lowercase letter, then ASCII letters/digits."""
    return st.from_regex(r"[a-z][a-zA-Z0-9]{0,24}", fullmatch=True)


def fleetfreedom_bodies(*, req_id: bool | None = None) -> SearchStrategy[dict[str, Any]]:
    """JSON-object bodies; ``req_id`` True/False forces a ``reqId`` in or out."""
    keys = st.text(_TRICKY, max_size=10).filter(lambda k: k != "reqId")
    base = st.dictionaries(keys, json_values(6), max_size=5)
    if req_id is False:
        return base
    with_id = st.builds(
        lambda body, n: {"reqId": n, **body}, base, st.integers(min_value=0, max_value=2**31)
    )
    return with_id if req_id else st.one_of(base, with_id)


def _line(name: str, body: Mapping[str, Any], compact: bool = True) -> str:
    separators = (",", ":") if compact else (", ", ": ")
    return name + " " + json.dumps(body, separators=separators, ensure_ascii=False)


def fleetfreedom_lines(
    names: SearchStrategy[str] | None = None,
    bodies: SearchStrategy[dict[str, Any]] | None = None,
    *,
    compact: bool = True,
) -> SearchStrategy[str]:
    """Valid lines ``name {json}``: one space, a JSON object (compact unless told)."""
    return st.builds(
        lambda n, b: _line(n, b, compact),
        fleetfreedom_names() if names is None else names,
        fleetfreedom_bodies() if bodies is None else bodies,
    )


def oversize_fleetfreedom_lines(limit: int, *, slack: int = 64) -> SearchStrategy[str]:
    """Well-formed lines over ``limit`` UTF-8 bytes (by at most ``slack`` once ``limit``
    exceeds the name and braces); multi-byte characters make characters and bytes differ."""
    if limit < 0:
        raise ValueError("limit must be >= 0")

    def build(args: tuple[str, str, int]) -> str:
        name, char, extra = args
        head = name + ' {"pad":"'
        tail = '"}'
        size = limit + extra - len(head.encode()) - len(tail)
        width = len(char.encode())
        count = max(0, size // width)
        line = head + char * count + "a" * max(0, size - count * width) + tail
        while len(line.encode()) <= limit:  # tiny limits: the fixed parts dominate
            line = line[:-2] + "a" + tail
        return line

    chars = st.sampled_from(["a", "é", "€", "😀"])
    return st.tuples(fleetfreedom_names(), chars, st.integers(min_value=1, max_value=slack)).map(
        build
    )


INVALID_LINE_REASONS = ("no-space", "bad-json", "not-object", "bad-name", "oversize")


@st.composite
def _bad_line(draw: st.DrawFn, max_line: int | None, reasons: SearchStrategy[str]) -> BadFrame:
    reason = draw(reasons)
    name = draw(fleetfreedom_names())
    if reason == "no-space":
        return BadFrame(draw(st.one_of(st.just(name), st.just(name + "{}"))), reason)
    if reason == "bad-json":
        return BadFrame(name + " " + draw(_NOT_JSON), reason)
    if reason == "not-object":
        value = draw(json_values().filter(lambda v: not isinstance(v, dict)))
        return BadFrame(name + " " + json.dumps(value), reason)
    if reason == "bad-name":
        bad = st.one_of(
            st.from_regex(r"[A-Z][a-zA-Z0-9]{0,12}", fullmatch=True),
            st.from_regex(r"[0-9][a-zA-Z0-9]{0,12}", fullmatch=True),
            st.builds(lambda n, c: n + c, fleetfreedom_names(), st.sampled_from("_-.:/é{")),
            st.just(""),
            st.text(_TEXT.filter(lambda ch: ch != " "), min_size=1, max_size=8).filter(
                lambda n: not (n.isascii() and n.isalnum() and "a" <= n[0] <= "z")
            ),
        )
        return BadFrame(draw(bad) + " {}", reason)
    assert max_line is not None
    return BadFrame(draw(oversize_fleetfreedom_lines(max_line)), reason)


def invalid_fleetfreedom_lines(
    max_line: int | None = None, reasons: Sequence[str] | None = None
) -> SearchStrategy[BadFrame]:
    """Lines that break ``name SP {json}`` (spec fleetfreedom §1).

    Reasons (:data:`INVALID_LINE_REASONS`; ``reasons`` narrows them): ``no-space`` (a bare
    name: lenient readers, such as the official C# client, take it as an empty body),
    ``bad-json``, ``not-object`` (array, string, number, null body), ``bad-name`` (not
    lowerCamelCase, or empty), and, with ``max_line`` only, ``oversize``.
    """
    known = INVALID_LINE_REASONS if max_line is not None else INVALID_LINE_REASONS[:-1]
    return _bad_line(max_line, _reasons(reasons, known, "invalid_fleetfreedom_lines"))


Command: TypeAlias = tuple[str, dict[str, Any]]
"""A FleetFreedom message as ``(name, body)``."""


def _object_ref(object_type: str, draw: st.DrawFn) -> dict[str, Any]:
    if object_type == "user":
        return {"login": draw(st.from_regex(r"[a-z]{1,8}@[a-z]{1,6}\.com", fullmatch=True))}
    return {"id": draw(tracker_ids())}


@st.composite
def _command(draw: st.DrawFn, names: Sequence[str], req_id: bool | None) -> Command:
    name = draw(st.sampled_from(tuple(names)))
    companies = st.integers(min_value=1, max_value=10_000)
    object_type = draw(st.sampled_from(OBJECT_TYPES))
    body: dict[str, Any]
    if name == "login":
        body = {
            "username": draw(st.text(_TEXT, min_size=1, max_size=16)),
            "password": draw(st.text(_TEXT, max_size=16)),
            "userAgent": draw(st.sampled_from(["trackwire", "fleet-web/4.10", "Mozilla/5.0"])),
        }
    elif name in ("subscribe", "unsubscribe"):
        types = st.lists(st.sampled_from(SUBSCRIPTION_TYPES), min_size=1, max_size=4, unique=True)
        body = {"company": {"id": draw(companies)}, "subscriptionTypes": draw(types)}
    elif name == "get":
        name = "get" + object_type[0].upper() + object_type[1:]
        body = {object_type: _object_ref(object_type, draw)}
    elif name == "list":
        name = list_command(object_type)
        body = {"company": {"id": draw(companies)}}
    elif name == "merge":
        name = "merge" + object_type[0].upper() + object_type[1:]
        piece: dict[str, Any] = {"id": draw(tracker_ids()), "name": draw(st.text(max_size=12))}
        piece["v"] = draw(st.lists(st.integers(min_value=0, max_value=2**31), min_size=1))
        body = {object_type: piece}
    elif name == "remove":
        name = "remove" + object_type[0].upper() + object_type[1:]
        body = {object_type: _object_ref(object_type, draw)}
    elif name == "updateOwnPassword":
        body = {"current": draw(st.text(max_size=12)), "password": draw(st.text(max_size=12))}
    else:  # logout, noop, getSessionDetails, getSubscriptionsList
        body = {}
    if req_id or (req_id is None and draw(st.booleans())):
        body = {"reqId": draw(st.integers(min_value=1, max_value=2**31)), **body}
    return name, body


_COMMANDS = (
    "login",
    "logout",
    "noop",
    "getSessionDetails",
    "subscribe",
    "unsubscribe",
    "getSubscriptionsList",
    "get",
    "list",
    "merge",
    "remove",
    "updateOwnPassword",
)


def fleetfreedom_commands(
    names: Sequence[str] = _COMMANDS, *, req_id: bool | None = None
) -> SearchStrategy[Command]:
    """Client commands ``(name, body)`` of spec fleetfreedom §2–§4.

    ``names`` picks among ``login``, ``logout``, ``noop``, ``getSessionDetails``,
    ``subscribe``, ``unsubscribe``, ``getSubscriptionsList``, ``updateOwnPassword`` and the
    families ``get``, ``list``, ``merge``, ``remove`` (expanded to ``getAsset``,
    ``getAssetsList``, ``mergeCompany``, …).  ``req_id`` True/False forces a ``reqId``.
    """
    return _command(names, req_id)


def fleetfreedom_command_lines(
    names: Sequence[str] = _COMMANDS, *, req_id: bool | None = None
) -> SearchStrategy[str]:
    """:func:`fleetfreedom_commands` as compact lines."""
    return fleetfreedom_commands(names, req_id=req_id).map(lambda c: _line(*c))


def fleetfreedom_datetimes() -> SearchStrategy[str]:
    """ISO 8601 UTC datetimes with milliseconds: ``2018-04-12T16:13:00.000Z``."""
    moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
    return moments.map(
        lambda m: (
            m.replace(microsecond=m.microsecond // 1000 * 1000).isoformat(timespec="milliseconds")
            + "Z"
        )
    )


@st.composite
def _position(draw: st.DrawFn) -> dict[str, Any]:
    finite = st.floats(allow_nan=False, allow_infinity=False)
    fields: dict[str, SearchStrategy[Any]] = {
        "lat": finite.filter(lambda x: -90 <= x <= 90),
        "lng": finite.filter(lambda x: -180 <= x <= 180),
        "accuracy": st.integers(min_value=0, max_value=5000),
        "altitude": st.integers(min_value=-400, max_value=9000),
        "bearing": st.integers(min_value=0, max_value=359),
        "speed": st.integers(min_value=0, max_value=250),
        "speedLimit": st.integers(min_value=0, max_value=130),
        "dts": fleetfreedom_datetimes(),
        "origin": tracker_ids(),
        "address": st.text(max_size=30),
        "streetAddress": st.fixed_dictionaries(
            {},
            optional={
                key: st.text(max_size=12)
                for key in ("number", "street", "city", "province", "postal", "country", "region")
            }
            | {"isToll": st.booleans()},
        ),
    }
    chosen = draw(st.sets(st.sampled_from(sorted(fields))))
    return {key: draw(fields[key]) for key in sorted(chosen)}


def fleetfreedom_positions() -> SearchStrategy[dict[str, Any]]:
    """Positions with any subset of their fields (every field may be absent, spec §6)."""
    return _position()


@st.composite
def _piece(draw: st.DrawFn, pieces: Sequence[str], companies: SearchStrategy[int]) -> Command:
    piece = draw(st.sampled_from(tuple(pieces)))
    object_type, _slot = PIECE_SLOTS[piece]
    body: dict[str, Any] = {"id": draw(tracker_ids())}
    if object_type == "company":
        body["parent"] = draw(companies)
    else:
        body["company"] = draw(companies)
    if piece == "assetGeneral":
        body["kind"] = draw(st.sampled_from(["asset", "person", "trailer", "vehicle"]))
        body["name"] = draw(st.text(max_size=20))
        body["labels"] = draw(st.lists(st.text(max_size=8), max_size=3))
    elif piece == "assetAdvanced":
        _optional(body, draw, "position", fleetfreedom_positions())
        _optional(body, draw, "odometer", st.floats(min_value=0, max_value=1e7))
        body["tags"] = draw(st.lists(st.text(max_size=8), max_size=3))
    elif piece.endswith("General"):
        body["name"] = draw(st.text(max_size=20))
    body["v"] = [draw(st.integers(min_value=1, max_value=2**31))]
    return piece + "Merged", body


def fleetfreedom_pieces(
    pieces: Sequence[str] | None = None, *, companies: SearchStrategy[int] | None = None
) -> SearchStrategy[Command]:
    """Piece pushes ``(<piece>Merged, body)``: ``id``, ``company`` (``parent`` for companies),
    piece fields, and ``v`` with exactly one element; :data:`PIECE_SLOTS` gives its slot."""
    return _piece(
        tuple(PIECE_SLOTS if pieces is None else pieces),
        st.integers(min_value=1, max_value=10_000) if companies is None else companies,
    )


def fleetfreedom_piece_lines(pieces: Sequence[str] | None = None) -> SearchStrategy[str]:
    """:func:`fleetfreedom_pieces` as compact lines."""
    return fleetfreedom_pieces(pieces).map(lambda c: _line(*c))


def fleetfreedom_error_codes(*, known: bool | None = None) -> SearchStrategy[int]:
    """``errorCode`` values: documented ones (0–142), unknown ones, or either (``None``)."""
    documented = st.integers(min_value=0, max_value=_LAST_KNOWN_CODE)
    unknown = st.integers(min_value=_LAST_KNOWN_CODE + 1, max_value=2**31 - 1)
    if known is None:
        return st.one_of(documented, unknown)
    return documented if known else unknown


@st.composite
def _fleet_response(
    draw: st.DrawFn, names: SearchStrategy[str], codes: SearchStrategy[int]
) -> Command:
    body: dict[str, Any] = {}
    _optional(body, draw, "reqId", st.integers(min_value=0, max_value=2**31))
    code = draw(codes)
    body["errorCode"] = code
    body["message"] = FLEETFREEDOM_ERROR_CODES.get(code, draw(st.text(max_size=20)))
    _optional(body, draw, "errorDetails", st.builds(lambda k: {"kind": k}, fleetfreedom_names()))
    return draw(names) + "Response", body


def fleetfreedom_responses(
    names: SearchStrategy[str] | None = None, *, codes: SearchStrategy[int] | None = None
) -> SearchStrategy[Command]:
    """Responses ``(<name>Response, body)``: ``errorCode`` and ``message`` always, ``reqId``
    and ``errorDetails`` (tagged by ``kind``) sometimes."""
    return _fleet_response(
        fleetfreedom_names() if names is None else names,
        fleetfreedom_error_codes() if codes is None else codes,
    )


@st.composite
def _connection_response(draw: st.DrawFn, logged_in: bool | None) -> Command:
    logged = draw(st.booleans()) if logged_in is None else logged_in
    code = 0 if logged else draw(st.sampled_from([0, 7, 8, 16]))
    now = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)))
    stamp = now.replace(microsecond=now.microsecond // 1000 * 1000, tzinfo=timezone.utc)

    def iso(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    body: dict[str, Any] = {
        "errorCode": code,
        "message": FLEETFREEDOM_ERROR_CODES.get(code, "error"),
        "serverTime": iso(stamp),
        "ghostId": str(draw(st.uuids())),
        "expiry": iso(stamp + timedelta(minutes=draw(st.integers(min_value=1, max_value=720)))),
    }
    if logged:
        body["user"] = {
            "login": draw(st.from_regex(r"[a-z]{1,8}@[a-z]{1,6}\.com", fullmatch=True)),
            "company": draw(st.integers(min_value=1, max_value=10_000)),
        }
        body["sessionPolicy"] = {
            "applications": [],
            "expireTimeout": 60,
            "idleAllowed": True,
            "ipv4Ranges": [],
            "maxSessions": 0,
            "multiUser": draw(st.sampled_from(["allow", "deny", "replace"])),
        }
        body["passwordPolicy"] = {
            "expireMode": draw(st.sampled_from(["days", "never", "sessions"])),
            "expireThreshold": 0,
            "includeLetters": False,
            "includeNumbers": False,
            "includeSpecial": False,
            "includeUpperLower": False,
            "minimumLength": 8,
        }
    return "connectionResponse", body


def connection_responses(logged_in: bool | None = None) -> SearchStrategy[Command]:
    """``connectionResponse`` bodies: always ``errorCode``, ``message``, ``serverTime``,
    ``ghostId``, ``expiry``; ``user`` and the policies only when logged in (code 0)."""
    return _connection_response(logged_in)


@st.composite
def _fleet_session(
    draw: st.DrawFn, resume: bool | None, companies: Sequence[int], max_steps: int
) -> list[str]:
    resumed = draw(st.booleans()) if resume is None else resume
    counter = 0

    def line(name: str, body: dict[str, Any]) -> str:
        nonlocal counter
        counter += 1
        return _line(name, {"reqId": counter, **body})

    lines: list[str] = []
    if not resumed:
        _, login = draw(fleetfreedom_commands(["login"], req_id=False))
        lines.append(line("login", login))
    held: dict[int, set[str]] = {}
    types = st.lists(st.sampled_from(SUBSCRIPTION_TYPES[:29]), min_size=1, max_size=3, unique=True)
    for _ in range(draw(st.integers(min_value=0, max_value=max_steps))):
        step = draw(
            st.sampled_from(["noop", "details", "subscribe", "unsubscribe", "list", "get", "lists"])
        )
        company = draw(st.sampled_from(tuple(companies)))
        if step == "subscribe":
            chosen = draw(types)
            held.setdefault(company, set()).update(chosen)
            lines.append(
                line("subscribe", {"company": {"id": company}, "subscriptionTypes": chosen})
            )
        elif step == "unsubscribe" and held:
            company = draw(st.sampled_from(sorted(held)))
            gone = draw(st.lists(st.sampled_from(sorted(held[company])), min_size=1, unique=True))
            held[company].difference_update(gone)
            if not held[company]:
                del held[company]
            body = {"company": {"id": company}, "subscriptionTypes": gone}
            lines.append(line("unsubscribe", body))
        elif step == "list":
            lines.append(line("getSubscriptionsList", {}))
        elif step == "details":
            lines.append(line("getSessionDetails", {}))
        elif step == "get":
            lines.append(line("getCompany", {"company": {"id": company}}))
        elif step == "lists":
            object_type = draw(st.sampled_from(OBJECT_TYPES[:4]))
            lines.append(line(list_command(object_type), {"company": {"id": company}}))
        else:
            lines.append(line("noop", {}))
    if draw(st.booleans()):
        lines.append(line("logout", {}))
    return lines


def fleetfreedom_sessions(
    *, resume: bool | None = None, companies: Sequence[int] = (1, 2, 3), max_steps: int = 10
) -> SearchStrategy[list[str]]:
    """What a client sends after ``connectionResponse``, in a plausible order.

    ``login`` first (left out when ``resume``: the ghostId logged the socket in), then
    session, subscription and read commands with ``reqId`` counting up from 1; ``unsubscribe``
    only of types subscribed before for that company; ``logout`` only last.
    """
    return _fleet_session(resume, tuple(companies), max_steps)
