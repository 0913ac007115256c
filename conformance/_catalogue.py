"""The case catalogue: every MUST and SHOULD of the three protocol specifications.

Each :class:`Case` names one requirement of the protocol reference shipped with the project
(``docs/protocols/atmosphere.md``, ``itrack.md`` and ``fleetfreedom.md``) with a stable id, the
section and the sentence it comes from (``quote``, verbatim once Markdown markup is removed),
the role it judges, and what a subject must do.  The runner and the reports key everything on
``Case.id``, so ids never change meaning; a withdrawn requirement gets a new id rather than a
reused one.

Levels: the spec's "must", "never", "always" and "required", and behaviour without which the
official peers break, are MUST; its "should", and behaviour of the official peers that a
compatible subject is expected to copy but that nothing breaks on, are SHOULD.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

__all__ = [
    "CATALOGUE",
    "Case",
    "Level",
    "ProtocolName",
    "Role",
    "Verdict",
    "exit_code",
    "get",
    "select",
    "verdict_for",
]

ProtocolName = Literal["atmosphere", "itrack", "fleetfreedom"]
"""The protocols the kit judges (one spec file each)."""

Role = Literal["server", "client", "both"]
"""Which side of the connection a case judges; ``both`` applies to either subject."""

PROTOCOLS: tuple[ProtocolName, ...] = get_args(ProtocolName)
ROLES: tuple[Role, ...] = get_args(Role)

ID_PATTERN = re.compile(
    r"(atmosphere|itrack|fleetfreedom)(\.[a-z][a-z0-9]*)+\.[a-z0-9]+(-[a-z0-9]+)*"
)
"""Well-formed case ids: lowercase dotted, protocol first, the last part in kebab-case."""


class Level(enum.Enum):
    """How binding a requirement is: a failed MUST fails the run, a failed SHOULD does not."""

    MUST = "MUST"
    SHOULD = "SHOULD"


class Verdict(enum.Enum):
    """The outcome of one case against one subject."""

    OK = "OK"
    NON_STRICT = "NON-STRICT"
    """A SHOULD case failed: the subject works but differs from the reference behaviour."""
    FAILED = "FAILED"
    """A MUST case failed."""
    UNSUPPORTED = "UNSUPPORTED"
    """The case cannot be judged for this subject (feature absent, nothing to observe)."""
    ERROR = "ERROR"
    """The case itself could not run (timeout, connection refused, a bug in the kit)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One requirement of a spec, judged against a server or a client."""

    id: str
    """Stable id, e.g. ``atmosphere.handshake.tracking-id-zero``."""
    protocol: ProtocolName
    section: str
    """Section of the protocol reference page, e.g. ``"§2"``."""
    level: Level
    role: Role
    description: str
    """One line: what the case checks."""
    expectation: str
    """What the subject must do, concretely (frames, codes), in a sentence or two."""
    quote: str
    """The sentence (or the part of it) of the protocol reference the case comes from, without
    markup."""

    def judges(self, role: str) -> bool:
        """Whether this case applies to a subject playing ``role`` (``server``/``client``)."""
        return self.role == role or self.role == "both" or role == "both"


_M = Level.MUST
_S = Level.SHOULD


def _case(
    case_id: str,
    section: str,
    level: Level,
    role: Role,
    description: str,
    expectation: str,
    quote: str,
) -> Case:
    protocol = cast(ProtocolName, case_id.partition(".")[0])
    return Case(case_id, protocol, section, level, role, description, expectation, quote)


# fmt: off
_ATMOSPHERE = (
    # §1 Opening the connection
    _case("atmosphere.open.tracking-id-zero-first", "§1", _M, "client",
          "The first connection announces tracking id 0.",
          "The first WebSocket URL's query holds X-Atmosphere-tracking-id=0.",
          "On the first connection the tracking id is 0; on every reconnect it is the UUID the "
          "handshake gave."),
    _case("atmosphere.open.transport-and-framework", "§1", _M, "client",
          "The query names the websocket transport and the framework version.",
          "The query holds X-Atmosphere-Transport=websocket and X-Atmosphere-Framework=<version>.",
          "Three parameters are always present: the tracking id, the framework version and "
          "X-Atmosphere-Transport=websocket."),
    _case("atmosphere.open.framework-version", "§1", _M, "client",
          "The framework version is recent enough to get the handshake.",
          "X-Atmosphere-Framework reads at least 221 (digits of the part before '-' joined, "
          "e.g. 2.3.6-javascript is 236).",
          "It computes the framework version by joining the digits of the part before the "
          "first -, so 2.3.6-javascript reads 236."),
    _case("atmosphere.open.atmo-protocol", "§1", _S, "client",
          "The client enables the Atmosphere protocol.",
          "The query holds X-atmo-protocol=true (atmosphere.js enableProtocol, on by default).",
          "X-atmo-protocol=true is sent when the client's enableProtocol option is on, which "
          "is its default."),
    _case("atmosphere.handshake.tracking-id-zero", "§1", _M, "server",
          "A new protocol client (tracking id 0) gets the handshake.",
          "A connection with X-Atmosphere-tracking-id=0, X-atmo-protocol=true and framework "
          "2.3.6-javascript receives the handshake frame.",
          "The server sends the handshake of §2 only if the tracking id is 0, X-atmo-protocol "
          "is present and that version number is at least 221."),
    _case("atmosphere.handshake.only-when-asked", "§1", _M, "server",
          "No handshake without X-atmo-protocol or for a framework older than 2.2.1.",
          "A connection without X-atmo-protocol, or with X-Atmosphere-Framework=2.0.0-javascript, "
          "receives no frame of the form <uuid>|<ms>|<padding>|.",
          "A client announcing an older framework gets no handshake at all"),
    # §2 The handshake frame
    _case("atmosphere.handshake.first-frame", "§2", _M, "server",
          "The handshake is the first frame the server sends.",
          "No frame (heartbeat, application message) precedes the handshake on a new connection.",
          "The handshake is the first frame the server sends on a new connection."),
    _case("atmosphere.handshake.format", "§2", _M, "server",
          "The handshake is <uuid>|<client-heartbeat-ms>|<padding>| with the trailing delimiter.",
          "The frame is a 36-character UUID, '|', a decimal interval in ms, '|', the padding "
          "(X by default, empty without heartbeat support), and a final '|'.",
          "The frame has the form <uuid>|<client-heartbeat-ms>|<heartbeat-padding>| with a "
          "final delimiter"),
    _case("atmosphere.handshake.unique-uuid", "§2", _M, "server",
          "Every new client gets its own random UUID.",
          "Two connections with tracking id 0 receive handshakes with different UUIDs.",
          "the uuid is a random 36-character UUID; it names the client across reconnects"),
    _case("atmosphere.handshake.length-prefixed", "§2", _M, "server",
          "With TrackMessageSize the handshake carries a length prefix too.",
          "With X-Atmosphere-TrackMessageSize=true the first frame is <n>|<uuid>|<ms>|<padding>|, "
          "n being the UTF-16 length of the rest (45 for padding X and 30000 ms).",
          "When TrackMessageSize is on (§3), the handshake itself is length-prefixed like "
          "every other server write"),
    _case("atmosphere.handshake.nothing-appended", "§2", _M, "server",
          "Without TrackMessageSize nothing follows the handshake in its frame.",
          "Without X-Atmosphere-TrackMessageSize the handshake frame ends with its last '|'; "
          "application messages go in later frames.",
          "So a server never puts data after the handshake in the same frame unless "
          "TrackMessageSize is on."),
    _case("atmosphere.handshake.once", "§2", _M, "server",
          "The handshake is sent once per tracking id.",
          "No second handshake follows on the connection, whatever the client sends.",
          "A server therefore sends the handshake once per tracking id, never again."),
    _case("atmosphere.handshake.client-waits", "§2", _M, "client",
          "The client opens on the handshake frame, not on the socket's open.",
          "With the protocol on, the client sends nothing (no heartbeat, no application "
          "message) between the socket opening and the handshake frame.",
          "The client opens (its onOpen callback) on this frame, not when the socket opens."),
    _case("atmosphere.handshake.client-short-frame", "§2", _S, "client",
          "A frame with too few fields is a message, and the client keeps waiting.",
          "Served hello before the real handshake, the client still opens on the handshake and "
          "reconnects with that handshake's UUID.",
          "A frame with too few fields is delivered as an ordinary message, and the client "
          "goes on waiting for the handshake."),
    _case("atmosphere.handshake.client-second-is-data", "§2", _S, "client",
          "A second handshake-looking frame does not replace the tracking id.",
          "After a later frame <other-uuid>|30000|X| the client still reconnects with the first "
          "handshake's UUID.",
          "A second frame shaped like a handshake after the first one is delivered as ordinary "
          "data"),
    _case("atmosphere.heartbeat.client-padding-exact", "§2", _M, "client",
          "The client's heartbeat is exactly the handshake's padding, untrimmed.",
          "Given the handshake <uuid>|1000|P|, the client's heartbeat frames are exactly P "
          "(any padding, spaces included, sent as received).",
          "the padding is, character for character, the client's heartbeat (it is not trimmed)"),
    _case("atmosphere.heartbeat.client-none-when-zero", "§2", _M, "client",
          "An interval of 0 means no client heartbeats.",
          "After the handshake <uuid>|0|X| the client sends no X frames.",
          "client-heartbeat-ms is how often the client must send its heartbeat; 0 means never."),
    # §3 TrackMessageSize framing
    _case("atmosphere.tms.only-when-requested", "§3", _M, "server",
          "Length prefixes only for clients that asked for them.",
          "Without X-Atmosphere-TrackMessageSize=true no server frame carries a <n>| prefix.",
          "The framing is on only if the client asks for it with "
          "X-Atmosphere-TrackMessageSize=true"),
    _case("atmosphere.tms.every-write-prefixed", "§3", _M, "server",
          "With TrackMessageSize every server write is <length>|<message>.",
          "Every non-blank server frame, handshake and heartbeats included, starts with the "
          "decimal length of its message and the delimiter.",
          "Then every server write goes out as <length>|<message>"),
    _case("atmosphere.tms.utf16-length", "§3", _M, "server",
          "Lengths count UTF-16 code units, not bytes or code points.",
          "A message holding é and 😀 is prefixed with String.length (é counts 1, 😀 counts 2), "
          "not with its UTF-8 byte count nor its code point count.",
          "where length counts the message in UTF-16 code units"),
    _case("atmosphere.tms.heartbeat-prefixed", "§3", _M, "server",
          "Server heartbeats are prefixed too.",
          "With TrackMessageSize the server heartbeat frame is 1|X (for padding X).",
          "Server heartbeats carry the prefix too: 1|X."),
    _case("atmosphere.tms.blank-unprefixed", "§3", _S, "server",
          "Empty or whitespace-only writes go out without a prefix.",
          "A blank server write (such as the reconnect padding) is sent as it is, with no "
          "<n>| prefix.",
          "The Java server (2.4.x) writes empty and whitespace-only messages without a prefix."),
    _case("atmosphere.tms.client-carry-over", "§3", _M, "client",
          "The client reassembles messages across frames and splits several per frame.",
          "3|abc5|hello delivers abc and hello; 10|01234 then 56789 delivers 0123456789; "
          "3|abc4|de then fg delivers abc then defg.",
          "a client cannot count on one message per frame: it holds a carry-over buffer and "
          "reads messages in a loop."),
    _case("atmosphere.tms.client-no-delimiter-raw", "§3", _S, "client",
          "A frame without the delimiter is delivered as it is.",
          "With nothing pending, a frame 1 is delivered as the message 1 and does not change the "
          "carry-over buffer.",
          "A frame without any delimiter is delivered as it is and leaves the carry-over "
          "buffer alone"),
    _case("atmosphere.tms.client-bad-length", "§3", _M, "client",
          "A length that is not a number is stream corruption, not a message.",
          "After a frame x|abc the client reports a protocol error and drops its buffer; it "
          "delivers neither x|abc nor abc to the application.",
          "A length that is not a number leaves the stream out of step"),
    _case("atmosphere.tms.client-frames-unprefixed", "§3", _M, "client",
          "Client frames never carry a length prefix.",
          "With TrackMessageSize on, the client's heartbeat is exactly X and its messages are "
          "sent without a <n>| prefix.",
          "Frames from the client to the server never carry a length prefix, even with the "
          "option on."),
    _case("atmosphere.tms.client-trims", "§3", _M, "client",
          "Messages are trimmed; empty ones and the padding are not delivered.",
          "The frame 5|  a   (a message with spaces around a) delivers a; 3|    (blank) and "
          "1|X (the padding) deliver nothing to the application.",
          "The client trims each message before delivery, and delivers neither empty messages "
          "nor messages equal to the heartbeat padding."),
    # §4 Heartbeats
    _case("atmosphere.heartbeat.client-cadence", "§4", _M, "client",
          "The client sends the padding every client-heartbeat-ms on a fixed cadence.",
          "After the handshake <uuid>|1000|X| the client sends X about every 1000 ms from the "
          "handshake on, whatever else it sends.",
          "the client writes the padding, exactly, as a text frame every client-heartbeat-ms, "
          "on a fixed cadence that other traffic does not reset"),
    _case("atmosphere.heartbeat.server-swallows-padding", "§4", _M, "server",
          "A client frame equal to the padding is a heartbeat, not data.",
          "A client frame X draws no application reply (over iTrack: no error) and the "
          "connection stays open.",
          "The server swallows a client frame whose bytes are exactly the padding"),
    _case("atmosphere.heartbeat.server-idle-heartbeat", "§4", _M, "server",
          "An idle server sends its own heartbeat.",
          "After at most 60 s without a write (or the longer X-Heartbeat-Server value) the server "
          "sends X, or 1|X with TrackMessageSize, as a frame of its own.",
          "after N seconds without any write to a client, the server writes the padding as a "
          "frame of its own (X, or 1|X with TrackMessageSize)."),
    _case("atmosphere.heartbeat.server-interval-request", "§4", _S, "server",
          "X-Heartbeat-Server may lengthen or disable server heartbeats, never shorten them.",
          "With X-Heartbeat-Server=0 the server sends no heartbeats; a value below the server's "
          "interval does not make heartbeats come sooner.",
          "A client may ask for a longer interval, or 0 for none, with "
          "X-Heartbeat-Server=<seconds>, but never for a shorter one."),
    _case("atmosphere.heartbeat.client-inactivity-timeout", "§4", _S, "client",
          "A client that hears nothing for its timeout closes for good.",
          "After the inactivity timeout (300 s by default) without frames the client sends the "
          "close request, closes the socket and does not reconnect.",
          "When the timer fires, the client raises onClientTimeout (status 408), sends the "
          "close request of §6, closes the socket and does not reconnect"),
    # §5 Reconnecting
    _case("atmosphere.reconnect.client-reconnects", "§5", _S, "client",
          "The client reconnects after an unexpected close.",
          "When the server drops an open connection, the client opens a new WebSocket to the "
          "same endpoint.",
          "After an unexpected close the client reconnects"),
    _case("atmosphere.reconnect.tracking-id-reuse", "§5", _M, "client",
          "Reconnects present the handshake's UUID and otherwise the same query.",
          "The reconnect URL holds X-Atmosphere-tracking-id=<the handshake's UUID>; every other "
          "query parameter is as on the first connection.",
          "presenting X-Atmosphere-tracking-id=<uuid>, with the rest of the query unchanged"),
    _case("atmosphere.reconnect.no-handshake", "§5", _M, "server",
          "A reconnect with a known UUID gets no handshake.",
          "A connection with X-Atmosphere-tracking-id=<uuid from a handshake> receives no "
          "handshake frame; the resource keeps that UUID.",
          "The server keeps that UUID for the resource and sends no handshake"),
    _case("atmosphere.reconnect.first-frame", "§5", _M, "server",
          "The server sends a frame right after accepting a reconnect.",
          "Right after a reconnect the server sends some frame (the Java server: 2048 spaces "
          "and \\n) without waiting for the client.",
          "A compatible server must send a frame right after it accepts a reconnect."),
    _case("atmosphere.reconnect.client-reopens-on-first-frame", "§5", _S, "client",
          "The client reopens on the first frame after reconnecting.",
          "After reconnecting the client sends no application message before the server's "
          "first frame.",
          "onReopen fires on the first frame the client receives after reconnecting, not when "
          "the socket opens"),
    # §6 Closing
    _case("atmosphere.close.http-request", "§6", _M, "client",
          "Closing sends the HTTP close request, then closes the socket.",
          "On close the client requests <http-url>?X-Atmosphere-Transport=close&"
          "X-Atmosphere-tracking-id=<uuid>&_=<ms> (GET, or POST by sendBeacon), then closes "
          "the socket; it does not reconnect.",
          "Before closing the socket, the client's close() (and the client timeout) sends a "
          "plain HTTP request rather than a WebSocket frame"),
    _case("atmosphere.close.server-forgets", "§6", _M, "server",
          "After the close request the resource is gone.",
          "The server answers the close request for <uuid>, pushes nothing more to it and does "
          "not resume it for a later connection presenting that UUID.",
          "The server marks the resource as closed by the client and does not keep it for a "
          "reconnect."),
    # §7 Other frames
    _case("atmosphere.frames.client-ignores-blank", "§7", _M, "client",
          "Empty and whitespace-only frames are ignored.",
          "Empty frames, whitespace-only frames and the reconnect padding (2048 spaces and \\n) "
          "deliver nothing and leave the connection open.",
          "Empty and whitespace-only frames from the server are ignored"),
)

_ITRACK = (
    # §1 Workflow
    _case("itrack.auth.success", "§1", _M, "server",
          "user/auth with valid credentials answers a 32-hex hash.",
          "POST <base>user/auth (form-encoded login and password, or GET with query) answers "
          "{\"success\": true, \"hash\": <32 hex chars>}.",
          "On success it answers {\"success\": true, \"hash\": \"<32 hex characters>\"}."),
    _case("itrack.auth.failure", "§1", _M, "server",
          "user/auth with a wrong password answers code 102.",
          "A wrong login or password answers {\"success\": false, \"status\": {\"code\": 102, "
          "\"description\": ...}} and no hash.",
          "On failure it answers {\"success\": false, \"status\": {\"code\": 102, "
          "\"description\": \"Wrong login or password\"}} and no hash."),
    _case("itrack.open.path-spellings", "§1", _S, "server",
          "The WebSocket is served with and without the trailing slash.",
          "Both <base>event/subscription and <base>event/subscription/ accept the Atmosphere "
          "WebSocket.",
          "deployments answer at both spellings, with and without the trailing slash."),
    _case("itrack.open.client-path", "§1", _M, "client",
          "The client opens the WebSocket at <base>event/subscription.",
          "Every upgrade request of the session targets the API base path followed by "
          "event/subscription (with or without the trailing slash).",
          "Open the WebSocket at `<base>event/subscription` with the Atmosphere query"),
    _case("itrack.session.subscribe-after-handshake", "§1", _M, "client",
          "The client subscribes only after the Atmosphere handshake.",
          "No subscribe frame reaches the server before the handshake frame was sent.",
          "Wait for the Atmosphere handshake before sending subscribe."),
    _case("itrack.session.resubscribe-after-reconnect", "§1", _M, "client",
          "After a reconnect the client sends its subscriptions again.",
          "After reconnecting (and the server's first frame) the client sends subscribe again "
          "for every subscription still in effect.",
          "After a reconnect the client sends its subscriptions again"),
    _case("itrack.session.client-forgotten-hash", "§1", _M, "client",
          "A client that logs in again after error 3 or 4 uses the fresh hash only.",
          "After an error 3 or 4 on its action, the client never sends that hash again; if it "
          "logs in again (user/auth), its later actions carry the fresh hash and subscribe "
          "again to what it had.",
          "3 wrong user hash, 4 user not found or session ended"),
    _case("itrack.errors.bad-params", "§1", _S, "server",
          "Malformed requests are refused with invalid parameters.",
          "A subscribe whose requests are malformed (trackers not integers, unknown type, bad "
          "target or rate_limit) gets a type error with code 7 and changes no subscription.",
          "7 invalid parameters"),
    # §2 Client → server: actions
    _case("itrack.actions.action-and-hash", "§2", _M, "client",
          "Every client message is a JSON object with action and a 32-character hash.",
          "Every non-heartbeat client frame is a JSON object with action subscribe or "
          "unsubscribe and hash, the 32-character string from user/auth.",
          "Each client message carries action and hash."),
    _case("itrack.actions.client-valid-requests", "§2", _M, "client",
          "Requests follow the documented shapes.",
          "state requests carry an integer array trackers; batch requests a target "
          "{\"type\": \"all\"} or {\"type\": \"selected\", \"tracker_ids\": [..]}; "
          "rate_limit is a timespan such as 5s.",
          "target is either {\"type\": \"all\"} or {\"type\": \"selected\", \"tracker_ids\": "
          "[...]}."),
    _case("itrack.actions.subscribe-state", "§2", _M, "server",
          "A current-format state subscription is accepted.",
          "{\"action\": \"subscribe\", \"hash\": H, \"requests\": [{\"type\": \"state\", "
          "\"trackers\": [own ids]}]} is answered by a subscribe response.",
          "state: trackers (an integer array) and format (full by default, or compact); one "
          "event per tracker."),
    _case("itrack.actions.subscribe-state-batch", "§2", _M, "server",
          "A state_batch subscription with a target is accepted.",
          "A state_batch request with target all or selected and rate_limit 5s is answered by a "
          "subscribe response listing the covered trackers.",
          "state_batch: target, rate_limit (a timespan string such as 5s) and format; events "
          "carry arrays of states."),
    _case("itrack.actions.legacy-format", "§2", _S, "server",
          "The deprecated events/trackers format is still accepted.",
          "{\"action\": \"subscribe\", \"hash\": H, \"events\": [\"state\"], \"trackers\": [..]} "
          "is answered with data {\"state\": {\"<id>\": \"<status>\"}}.",
          "An older format from the iTrack era is still seen"),
    _case("itrack.actions.iot-monitor-limit", "§2", _S, "server",
          "iot_monitor covers at most 10 trackers.",
          "An iot_monitor request naming more than 10 trackers is refused with a type error "
          "(code 7) instead of being subscribed.",
          "iot_monitor: target (at most 10 trackers) and rate_limit."),
    _case("itrack.actions.hash-required", "§2", _M, "server",
          "An action without a valid 32-character hash is refused with code 3.",
          "An action whose hash is missing or not a 32-character string is answered "
          "{\"type\": \"error\", \"action\": \"subscription/subscribe\", \"status\": {\"code\": 3, "
          "...}} and subscribes nothing.",
          "hash is required: a string of 32 characters."),
    # §3 Server → client
    _case("itrack.messages.type-field", "§3", _M, "server",
          "Every server message has a type.",
          "Every non-heartbeat server frame is a JSON object whose type is event, response or "
          "error.",
          "Each message from the server names its type (event, response or error)"),
    _case("itrack.responses.subscribe", "§3", _M, "server",
          "subscribe is answered with per-tracker statuses.",
          "{\"type\": \"response\", \"action\": \"subscription/subscribe\", \"events\": [..], "
          "\"data\": {\"state\": {\"value\": {\"<id>\": \"<status>\"}, \"success\": true}}}, one "
          "entry per requested tracker.",
          "A subscribe is answered like this:"),
    _case("itrack.responses.tracker-statuses", "§3", _M, "server",
          "Unknown and other users' trackers are reported unknown and yield nothing.",
          "The user's own trackers are normal (or blocked/disallowed); a tracker that does not "
          "exist or belongs to another user is unknown and no event about it is ever sent.",
          "unknown (no such tracker, or one that is not this user's)"),
    _case("itrack.responses.unsubscribe", "§3", _M, "server",
          "unsubscribe is answered with the ids removed, and their events stop.",
          "{\"type\": \"response\", \"action\": \"subscription/unsubscribe\", \"events\": [..], "
          "\"data\": [ids]}; no state event for those trackers follows.",
          "An unsubscribe is answered with {\"type\": \"response\", \"action\": "
          "\"subscription/unsubscribe\", \"events\": [\"state\"], \"data\": [15568]}."),
    _case("itrack.responses.client-tolerates-variants", "§3", _M, "client",
          "The client accepts every documented response shape.",
          "Subscribe responses without success, and legacy ones (data {\"state\": {\"<id>\": "
          "status}}), are accepted and the client keeps working.",
          "one live deployment answers without success"),
    _case("itrack.errors.wrong-hash", "§3", _M, "server",
          "A well-formed hash that is no live session is refused.",
          "An action with an unknown 32-hex hash is answered {\"type\": \"error\", \"action\": "
          "\"subscription/subscribe\", \"status\": {\"code\": 3, ...}} (4 if the server tells an "
          "ended session apart) and subscribes nothing.",
          "\"status\": {\"code\": 3, \"description\": \"Wrong hash\"}"),
    _case("itrack.errors.bad-json", "§3", _M, "server",
          "A frame that is not a JSON action draws an error, and serving goes on.",
          "A non-JSON frame, a JSON non-object or an unknown action is answered {\"type\": "
          "\"error\", \"action\": \"null\", \"status\": {\"code\": 5, ...}}; a valid subscribe "
          "afterwards still works.",
          "For an unexpected error action can be \"null\", and data may be missing."),
    _case("itrack.errors.client-null-action", "§3", _M, "client",
          "The client accepts errors with action \"null\" and no data.",
          "{\"type\": \"error\", \"action\": \"null\", \"status\": {\"code\": 1, ...}} reaches the "
          "application as an error and the connection stays up.",
          "For an unexpected error action can be \"null\", and data may be missing."),
    _case("itrack.errors.client-bad-json", "§3", _M, "client",
          "A server frame that is not a typed JSON object is kept raw.",
          "A frame that is not JSON, or lacks type, reaches the application as an invalid or "
          "unknown message with its raw text, and later frames are still processed.",
          "Each message from the server names its type (event, response or error) and mostly "
          "carries data."),
    _case("itrack.events.state-after-subscribe", "§3", _M, "server",
          "Current states follow the subscribe response.",
          "Right after the response, one {\"type\": \"event\", \"event\": \"state\", \"data\": "
          "<source state>} per normal tracker with a known state.",
          "sent when it changes, right after subscribing and after an unblock"),
    _case("itrack.events.state-on-change", "§3", _M, "server",
          "A subscribed tracker's change is pushed as a state event.",
          "When a subscribed tracker moves, a state event with its new source state follows; "
          "trackers not subscribed on this connection produce none.",
          "data is one source state, sent when it changes"),
    _case("itrack.events.blocked", "§3", _M, "server",
          "Blocked trackers send no states until unblocked.",
          "A blocked tracker yields no state events (lifecycle events still flow); on unblock "
          "its current state is sent.",
          "blocked (no state events, though lifecycle events still flow; the current state is "
          "sent on unblock)"),
    _case("itrack.events.state-batch", "§3", _M, "server",
          "state_batch sends current states, then changes every rate_limit.",
          "An initial state_batch event with the current states, then at most one event per "
          "rate_limit holding only the states changed since the previous one.",
          "sent right after subscribing, then once per rate_limit with the states changed "
          "since the last one."),
    _case("itrack.events.lifecycle", "§3", _M, "server",
          "State subscribers get lifecycle events without asking.",
          "{\"type\": \"event\", \"event\": \"lifecycle\", \"data\": {\"source_id\": N, "
          "\"lifecycle_event\": \"block\" | \"unblock\" | \"corrupt\"}} reaches every state or "
          "state_batch subscriber of that tracker.",
          "A subscription to state, state_batch or readings_batch includes it without being "
          "asked."),
    _case("itrack.events.logout", "§3", _M, "server",
          "An ended session is announced, and its hash dies.",
          "Subscribed connections get {\"type\": \"event\", \"event\": \"logout\", \"data\": "
          "\"session closed\"}; later actions with that hash are refused (code 3 or 4).",
          "logout: data is \"session closed\"; every subscription implies it."),
    _case("itrack.events.client-logout", "§3", _M, "client",
          "After a logout event the client sends that hash no more.",
          "After {\"type\": \"event\", \"event\": \"logout\"} the client sends no action "
          "with that hash, on this connection or a reconnect, and ends or keeps the connection "
          "in order (no dropped socket, no error close).",
          "The hash is dead from then on."),
    _case("itrack.events.source-state-shape", "§3", _M, "server",
          "Source states carry source_id and offset-less local times.",
          "data has an integer source_id; gps.updated, last_update and user_time read "
          "YYYY-MM-DD HH:MM:SS with no offset.",
          "Times read YYYY-MM-DD HH:MM:SS in the user's time zone, with no offset."),
    _case("itrack.tenants.isolation", "§3", _M, "server",
          "A user never sees, subscribes to or is pushed another tenant's trackers.",
          "With the first account's hash, the second account's trackers answer unknown (or "
          "disallowed), never normal; no state or state_batch event carries them, and "
          "state_batch for all leaves them out.",
          "unknown (no such tracker, or one that is not this user's)"),
    _case("itrack.events.client-keeps-unknown", "§3", _M, "client",
          "The client keeps fields and events it does not model.",
          "Unknown fields of known events, and events such as readings_batch, iot_monitor or "
          "new ones, reach the application with their raw data.",
          "a client has to keep the fields it does not model."),
)

_FLEETFREEDOM = (
    # §1 Transport and framing
    _case("fleetfreedom.framing.text-frames", "§1", _M, "server",
          "The server sends text frames only.",
          "Every server frame is a UTF-8 text frame; none is binary.",
          "Only text frames are used, encoded in UTF-8."),
    _case("fleetfreedom.framing.client-binary-is-error", "§1", _S, "client",
          "A binary frame is a protocol error for the client.",
          "On a binary frame from the server the client fails the connection rather than "
          "delivering it as a message.",
          "The official client treats a binary frame as a protocol error."),
    _case("fleetfreedom.framing.line-format", "§1", _M, "both",
          "Every message is a lowerCamelCase name, one space, a JSON object.",
          "Every frame reads <name> + ' ' + <JSON object>, the name matching [a-z][A-Za-z0-9]*, "
          "e.g. noop {\"reqId\":1}.",
          "Every message, in both directions, is name SP body: a lowerCamelCase name, exactly "
          "one space (0x20), then a JSON object."),
    _case("fleetfreedom.framing.split-at-first-space", "§1", _M, "both",
          "Frames split at the first space only.",
          "A body holding spaces, e.g. login {\"username\": \"a b\", \"password\": \"c d\"}, "
          "is read as the name login and everything after the first space.",
          "A reader splits the frame at its first space."),
    _case("fleetfreedom.framing.client-always-body", "§1", _M, "client",
          "The client always sends a body.",
          "The client never sends a bare name: logout goes out as logout {}.",
          "clients never leave the body out and send {} when there is nothing to say."),
    _case("fleetfreedom.framing.client-reads-bare-name", "§1", _S, "client",
          "A server frame without a space is a name with an empty body.",
          "A server frame sessionEnded (no space) is read as sessionEnded with an empty body.",
          "The official C# client takes a frame with no space for a bare name whose body is "
          "empty"),
    _case("fleetfreedom.framing.compact-json", "§1", _S, "both",
          "JSON goes out compact.",
          "Bodies have no whitespace between JSON tokens (separators , and :).",
          "JSON is written without optional whitespace."),
    _case("fleetfreedom.framing.error-code-number", "§1", _M, "server",
          "errorCode is a JSON number; other enums are strings.",
          "Every response's errorCode is a JSON integer; enum values such as kind or multiUser "
          "are JSON strings.",
          "errorCode is a number; the other enums are JSON strings."),
    _case("fleetfreedom.session.connection-response-first", "§1", _M, "server",
          "connectionResponse is the server's first message.",
          "The first frame on every connection is connectionResponse {...}, sent without "
          "waiting for the client.",
          "Until the server has sent connectionResponse it accepts no command."),
    _case("fleetfreedom.session.no-command-before-connection-response", "§1", _M, "client",
          "The client holds its commands until connectionResponse.",
          "The client sends nothing before it has received connectionResponse, even when the "
          "server delays it.",
          "a client must hold its commands until then."),
    _case("fleetfreedom.errors.oversize-line", "§1", _S, "server",
          "An oversized line does not take the server down.",
          "A line of several MiB is refused (an error answer, or that connection closed) and "
          "the server keeps serving its other connections.",
          "Every message, in both directions, is name SP body"),
    _case("fleetfreedom.errors.client-bad-json", "§1", _M, "client",
          "A server frame with a bad body is kept raw.",
          "A server frame with invalid JSON or a non-object body reaches the application as an "
          "invalid message with its raw text; later frames are still processed.",
          "then a JSON object."),
    # §2 Connecting and sessions
    _case("fleetfreedom.session.ghost-id-path", "§2", _M, "server",
          "The ghostId in the path resumes a session; a blank path opens a new one.",
          "Connecting to /<ghostId> of a live session gives connectionResponse errorCode 0 with "
          "that ghostId; connecting to / gives a new ghostId.",
          "Connect to wss://host/ followed by the ghostId (blank for a new session)."),
    _case("fleetfreedom.session.ghost-id-query-or-subprotocol", "§2", _S, "server",
          "The ghostId is also accepted as a query parameter and as a subprotocol.",
          "?ghostId=<guid> and the WebSocket subprotocol <guid> resume the session as the path "
          "does.",
          "a server should take the ghostId from any of the three places."),
    _case("fleetfreedom.session.connection-response-fields", "§2", _M, "server",
          "connectionResponse always has errorCode, message, serverTime, ghostId, expiry.",
          "connectionResponse carries errorCode (number), message, serverTime, ghostId (GUID) "
          "and expiry on every connection.",
          "Always present: errorCode, message, serverTime, ghostId, expiry."),
    _case("fleetfreedom.session.session-fields-only-logged-in", "§2", _M, "server",
          "user and the policies appear only for a logged-in session.",
          "An anonymous connectionResponse has no user, sessionPolicy or passwordPolicy; a "
          "logged-in one (and loginResponse) has all three.",
          "Only a logged-in session adds user, sessionPolicy and passwordPolicy."),
    _case("fleetfreedom.session.anonymous-code-8", "§2", _S, "server",
          "A connection without a valid session gets code 8.",
          "Connecting without a ghostId, or with an unknown one, gives connectionResponse "
          "errorCode 8 (userNotLoggedIn).",
          "a server should answer 8 to a connection that brought no valid session."),
    _case("fleetfreedom.session.client-accepted-codes", "§2", _M, "client",
          "The client goes on after codes 0, 7, 8 and 16.",
          "After connectionResponse with errorCode 0, 7, 8 or 16 the client keeps the connection "
          "open (and logs in, or changes its password for 16).",
          "The official client continues after code 0 (success), 7 (sessionExpired), 8 "
          "(userNotLoggedIn) or 16 (passwordExpired)"),
    _case("fleetfreedom.session.client-login-again", "§2", _M, "client",
          "A client that logged in logs in again when its resumed session was forgotten.",
          "On a reconnect answered connectionResponse errorCode 8 (userNotLoggedIn), a client "
          "that had logged in keeps the connection open, sends login, and once logged in "
          "subscribes again for every company and type it had.",
          "The official client continues after code 0 (success), 7 (sessionExpired), 8 "
          "(userNotLoggedIn)"),
    _case("fleetfreedom.session.client-refused-closes", "§2", _S, "client",
          "Any other connectionResponse code makes the client close with 1008.",
          "After connectionResponse errorCode 9 (or any code other than 0, 7, 8, 16) the client "
          "closes with code 1008.",
          "closes with 1008 on any other code."),
    _case("fleetfreedom.session.login", "§2", _M, "server",
          "A valid login answers loginResponse with a new ghostId and the session.",
          "login {\"username\":U,\"password\":P,\"userAgent\":A,\"reqId\":1} answers loginResponse "
          "{\"reqId\":1,\"errorCode\":0,...} with serverTime, ghostId, expiry, user, "
          "sessionPolicy and passwordPolicy.",
          "loginResponse, which has every field of connectionResponse, the new ghostId to keep "
          "among them."),
    _case("fleetfreedom.session.user-agent-checked", "§2", _S, "server",
          "A userAgent outside the company's applications is refused.",
          "login with a userAgent the company does not allow answers loginResponse errorCode 12 "
          "(applicationNotAllowed).",
          "userAgent is checked against the applications the company allows (error 12)."),
    _case("fleetfreedom.session.resume", "§2", _M, "server",
          "Reconnecting with a live ghostId logs the socket straight in.",
          "A new connection presenting the ghostId from loginResponse gets connectionResponse "
          "errorCode 0 with user, sessionPolicy and passwordPolicy, and commands work without "
          "login.",
          "Reconnecting with a ghostId that is still valid logs the socket straight in"),
    _case("fleetfreedom.session.logout", "§2", _M, "server",
          "logout always succeeds and ends the session.",
          "logout {} answers logoutResponse errorCode 0 with ghostId and expiry; that ghostId no "
          "longer resumes a session.",
          "logout {} → logoutResponse {ghostId, expiry}, which always succeeds"),
    _case("fleetfreedom.session.client-closes-after-logout", "§2", _S, "client",
          "The client closes after logging out.",
          "After logoutResponse the client closes the socket.",
          "after which the client closes the socket."),
    _case("fleetfreedom.session.get-session-details", "§2", _M, "server",
          "getSessionDetails answers the connectionResponse fields.",
          "getSessionDetails {\"reqId\":3} answers getSessionDetailsResponse {\"reqId\":3,"
          "\"errorCode\":0,...} with serverTime, ghostId, expiry and, logged in, user and "
          "policies.",
          "getSessionDetails {} → the same fields as connectionResponse."),
    _case("fleetfreedom.session.noop", "§2", _M, "server",
          "noop answers noopResponse.",
          "noop {\"reqId\":N} answers noopResponse {\"reqId\":N,\"errorCode\":0,...}.",
          "noop {\"reqId\":N} → noopResponse"),
    _case("fleetfreedom.session.client-keepalive", "§2", _S, "client",
          "An idle client keeps its session alive with noop.",
          "After about 5 minutes without traffic the client sends noop {\"reqId\":N}; it sends "
          "no ping command.",
          "once about 5 minutes have passed in silence. No ping command exists."),
    _case("fleetfreedom.session.client-session-ended", "§2", _M, "client",
          "sessionEnded makes the client close for good.",
          "After sessionEnded {} the client closes the socket and does not reconnect.",
          "sessionEnded (the client must then close and must not reconnect)"),
    _case("fleetfreedom.session.session-ended", "§2", _M, "server",
          "A session ended on the server side is told with sessionEnded.",
          "When the operator ends a user's sessions, each of its connections gets sessionEnded "
          "and nothing more of its subscriptions, its ghostId no longer resumes, and another "
          "user's session goes on.",
          "The server pushes news about the session itself: sessionEnded (the client must then "
          "close and must not reconnect)"),
    _case("fleetfreedom.session.datetimes", "§2", _M, "server",
          "Datetimes are ISO 8601 UTC with milliseconds.",
          "serverTime, expiry and every other datetime look like 2018-04-12T16:13:00.000Z.",
          "Every datetime is written in ISO 8601, in UTC, to the millisecond: "
          "2018-04-12T16:13:00.000Z."),
    # §3 Requests and responses
    _case("fleetfreedom.commands.response-shape", "§3", _M, "server",
          "A command is answered by <name>Response with errorCode and message.",
          "getSessionDetails {} answers getSessionDetailsResponse {...} holding errorCode and "
          "message, whatever the outcome.",
          "The answer is named <name>Response; it repeats the reqId (present only if one was "
          "sent) and always holds errorCode and message"),
    _case("fleetfreedom.commands.req-id-echo", "§3", _M, "server",
          "Responses carry the request's reqId.",
          "noop {\"reqId\":7} and noop {\"reqId\":\"x\"} answer noopResponse with the same reqId "
          "value.",
          "it repeats the reqId (present only if one was sent)"),
    _case("fleetfreedom.commands.no-req-id-when-absent", "§3", _M, "server",
          "No reqId in the response when the request had none.",
          "noop {} answers noopResponse without a reqId field.",
          "present only if one was sent"),
    _case("fleetfreedom.commands.unknown-command", "§3", _M, "server",
          "Unknown commands get unknownCommandResponse 61.",
          "fooBar {\"reqId\":9} answers unknownCommandResponse {\"reqId\":9,\"errorCode\":61,...} "
          "and the connection stays usable.",
          "A command the server does not know gets unknownCommandResponse, with the reqId and "
          "errorCode 61 (unknownCommand)."),
    _case("fleetfreedom.commands.get-object", "§3", _M, "server",
          "get<Type> answers get<Type>Response with the object.",
          "getCompany {\"reqId\":1,\"company\":{\"id\":C}} for the user's company answers "
          "getCompanyResponse {\"reqId\":1,\"errorCode\":0,...,\"company\":{\"id\":C,...}}; a "
          "missing object gets its not-found code (28 companyNotFound).",
          "get<Type> {\"<type>\": {\"id\": N}} → get<Type>Response {\"<type>\": {…}}."),
    _case("fleetfreedom.commands.lists", "§3", _S, "server",
          "get<Types>List answers the company's objects.",
          "getAssetsList {\"company\":{\"id\":C}} answers getAssetsListResponse "
          "{\"company\":{\"id\":C},\"assets\":[...]} holding only company C's assets.",
          "Lists: get<Types>List {\"company\": {\"id\": N}} → {\"company\": {\"id\": N}, "
          "\"<types>\": [..]}"),
    _case("fleetfreedom.versions.stale-merge-refused", "§3", _M, "server",
          "A merge with a stale v is refused with code 6.",
          "merge<Type> with a v older than the stored one answers merge<Type>Response errorCode "
          "6 (wrongVersionKey) and leaves the object unchanged.",
          "A merge whose v is stale is refused with errorCode 6 (wrongVersionKey)"),
    _case("fleetfreedom.commands.merge", "§3", _M, "server",
          "merge<Type> creates or changes an object and answers its id and company.",
          "mergeAsset without an id (with company and kind) creates an asset and answers "
          "mergeAssetResponse {\"asset\":{\"id\":N,\"company\":C}}; a merge of it with its "
          "current v answers the same, getAsset then shows the change with a higher version in "
          "the changed piece's slot, and subscribers get each changed piece as "
          "<piece>Merged holding that piece's fields (§6); removeAsset then removes it.",
          "The answer is merge<Type>Response {\"<type>\": {\"id\": N, \"company\": C}}."),
    # §4 Subscriptions and sync messages
    _case("fleetfreedom.subscriptions.subscribe", "§4", _M, "server",
          "subscribe is answered and takes effect for that company.",
          "subscribe {\"reqId\":2,\"company\":{\"id\":C},\"subscriptionTypes\":[\"assetGeneral\"]} "
          "answers subscribeResponse {\"reqId\":2,\"errorCode\":0,...}.",
          "adds the listed types to what this connection receives for that company"),
    _case("fleetfreedom.subscriptions.merged-denied-invalid", "§4", _S, "server",
          "subscribeResponse lists the types merged, denied and invalid.",
          "subscribeResponse carries company {id}, merged (types in effect), denied and invalid "
          "(unknown names such as noSuchType).",
          "5.x answers subscribeResponse {company:{id}, merged:[…types now in effect…], "
          "denied:[…refused for permission…], invalid:[…unknown names…]}."),
    _case("fleetfreedom.subscriptions.foreign-company-denied", "§4", _M, "server",
          "Subscribing to another tenant's company yields nothing.",
          "subscribe to a company the user may not see puts the types in denied (or answers "
          "errorCode 4 or 5), and no message about that company follows.",
          "denied:[…refused for permission…]"),
    _case("fleetfreedom.subscriptions.only-subscribed", "§4", _M, "server",
          "Sync messages follow the connection's subscriptions only.",
          "Merged, Deleted and Suspended pushes concern only the companies and types this "
          "connection subscribed to, and none precede subscribeResponse.",
          "After subscribeResponse the server pushes:"),
    _case("fleetfreedom.subscriptions.unsubscribe", "§4", _M, "server",
          "unsubscribe removes the types for that company.",
          "After unsubscribe {\"company\":{\"id\":C},\"subscriptionTypes\":[T]} is answered, no "
          "<T>Merged about company C follows.",
          "unsubscribe, with the same body, removes them."),
    _case("fleetfreedom.subscriptions.list", "§4", _S, "server",
          "getSubscriptionsList reports the connection's subscriptions.",
          "getSubscriptionsList {} answers getSubscriptionsListResponse {\"subscriptions\": "
          "[{\"company\": C, \"subscriptionTypes\": [...]}]} matching what was subscribed.",
          "getSubscriptionsList {} → {subscriptions: [{company: 42, subscriptionTypes: […]}]}."),
    _case("fleetfreedom.subscriptions.per-connection", "§4", _M, "server",
          "Subscriptions belong to the connection, not the session.",
          "A second connection of the same session, or a reconnect, starts with no "
          "subscriptions: nothing is pushed to it until it subscribes.",
          "Subscriptions live and die with the connection"),
    _case("fleetfreedom.subscriptions.client-resubscribe", "§4", _M, "client",
          "After a reconnect the client subscribes again.",
          "After reconnecting (connectionResponse errorCode 0) the client sends subscribe again "
          "for every company and type it had.",
          "after a reconnect the client has to subscribe anew and read its lists again"),
    _case("fleetfreedom.subscriptions.piece-messages", "§4", _M, "server",
          "Changes are pushed as one message per changed piece.",
          "A change arrives as <subscriptionType>Merged {...} (e.g. assetAdvancedMerged with id, "
          "company and v), one message per changed piece.",
          "each changed piece of an object is a message of its own."),
    _case("fleetfreedom.subscriptions.deleted", "§4", _S, "server",
          "Deletions are pushed as <objectType>Deleted.",
          "Removing a subscribed object pushes <objectType>Deleted {\"id\":N,\"company\":C} "
          "(companyDeleted {id, parent}, userDeleted {company, login}).",
          "<objectType>Deleted {\"id\": N, \"company\": C} for the whole object"),
    _case("fleetfreedom.subscriptions.client-keeps-unknown", "§4", _M, "client",
          "Messages the client does not model reach the application.",
          "broadcast, alerts, <objectType>Suspended and unknown names are delivered raw and the "
          "client keeps going.",
          "Alerts and broadcast arrive whatever the subscriptions."),
    # §5 Versions
    _case("fleetfreedom.versions.objects-carry-v", "§5", _M, "server",
          "Synchronised objects carry v, one version per piece.",
          "Objects in get and list responses carry v, an array of integers with a slot per "
          "piece (an asset at least 2, a company 6).",
          "Each synchronised object has v: an array holding one version number per piece."),
    _case("fleetfreedom.versions.piece-single-v", "§5", _M, "server",
          "A piece message carries a one-element v.",
          "Every <piece>Merged push carries v with exactly one integer, that piece's version.",
          "A piece message such as assetAdvancedMerged carries a v of exactly one element, the "
          "version of that piece"),
    _case("fleetfreedom.versions.increasing", "§5", _S, "server",
          "Successive pieces of a slot carry increasing versions.",
          "Two pushes of the same piece of the same object carry strictly increasing v[0]; a get "
          "afterwards shows at least that version in the slot.",
          "A cache takes an incoming piece only when its version is above the one it holds for "
          "that slot"),
    _case("fleetfreedom.versions.client-no-rollback", "§5", _M, "client",
          "Replayed or reordered pieces never roll an object back.",
          "After assetGeneralMerged with v [5], a replayed one with v [4] leaves the client's "
          "object at version 5 with the newer fields.",
          "a replayed or out-of-order message can never take an object back to an older state."),
    # §6 Objects
    _case("fleetfreedom.objects.client-position-optional", "§6", _M, "client",
          "Every position field may be absent.",
          "A position with any subset of its fields (even {}) is accepted.",
          "any of its fields may be absent."),
    # §7 Error codes
    _case("fleetfreedom.errors.client-unknown-code", "§7", _M, "client",
          "Unknown error codes are carried through as numbers.",
          "A response with errorCode 9999 reaches the application with code 9999.",
          "A code not in this list must still reach the application as a number."),
    _case("fleetfreedom.errors.bad-json", "§7", _M, "server",
          "A bad body is answered with invalidData, and serving goes on.",
          "The frames 'getCompany {not json' and 'getCompany [1]' are answered by "
          "getCompanyResponse errorCode 3 (invalidData); a noop afterwards is answered.",
          "3 invalidData"),
    _case("fleetfreedom.errors.bad-name", "§7", _M, "server",
          "A frame without a valid name is an unknown command, and serving goes on.",
          "Frames such as Login {}, {\"a\":1} or random text answer unknownCommandResponse "
          "errorCode 61; a noop afterwards is answered.",
          "61 unknownCommand"),
    _case("fleetfreedom.errors.wrong-credentials", "§7", _M, "server",
          "A wrong password is refused with invalidCredentials.",
          "login with a wrong password answers loginResponse with the same reqId and errorCode "
          "11, and the connection stays logged out.",
          "11 invalidCredentials"),
    _case("fleetfreedom.errors.not-logged-in", "§7", _S, "server",
          "Commands before login are refused with userNotLoggedIn.",
          "Before login, getCompany {\"reqId\":1,\"company\":{\"id\":1}} answers "
          "getCompanyResponse {\"reqId\":1,\"errorCode\":8,...} with no company.",
          "8 userNotLoggedIn"),
    _case("fleetfreedom.errors.anonymous-refused", "§7", _M, "server",
          "Before login nothing is read, subscribed or pushed.",
          "Before login, get<Type>, get<Types>List, getCompany, merge<Type>, subscribe and "
          "getSubscriptionsList all answer a non-zero errorCode with no payload, and no "
          "<type>Merged push follows.",
          "8 userNotLoggedIn"),
    _case("fleetfreedom.errors.foreign-tenant-refused", "§7", _M, "server",
          "A user never reads, lists, subscribes to or is pushed another company's objects.",
          "With the first user's session, getCompany, get<Type> and get<Types>List for the "
          "second user's company and objects answer a non-zero errorCode (or nothing of it), "
          "subscribe to it is refused or denied, and no push about it arrives.",
          "4 invalidPermission, 5 permissionDenied"),
    # §8 How the official clients behave
    _case("fleetfreedom.client.reconnect-backoff", "§8", _S, "client",
          "Reconnects back off from 1 s, doubling, to 5 min.",
          "Successive failed reconnect attempts wait about 1 s, 2 s, 4 s and so on, capped at "
          "5 minutes.",
          "Reconnect with a backoff from 1 s, doubling up to 5 min"),
    _case("fleetfreedom.client.no-reconnect-after-end", "§8", _M, "client",
          "No reconnect after logout, sessionEnded or a refused connectionResponse.",
          "After logoutResponse, sessionEnded or a connectionResponse code other than 0, 7, 8, "
          "16 the client opens no new connection.",
          "never after logout, sessionEnded or a refused connectionResponse."),
    _case("fleetfreedom.client.reconnect-same-ghost-id", "§8", _M, "client",
          "Reconnects present the session's ghostId.",
          "The reconnect carries the ghostId of the session (path, ?ghostId= or subprotocol), "
          "so that the server resumes it.",
          "After reconnecting: the same ghostId, subscribe again, read the lists again."),
    _case("fleetfreedom.client.close-code", "§8", _S, "client",
          "The client closes with 1000 and a short reason.",
          "A deliberate close uses code 1000 with a reason of at most 123 bytes.",
          "Close with code 1000 (a reason of at most 123 bytes)."),
)
# fmt: on

CATALOGUE: tuple[Case, ...] = _ATMOSPHERE + _ITRACK + _FLEETFREEDOM
"""Every case, grouped by protocol and in spec order."""

_BY_ID: dict[str, Case] = {case.id: case for case in CATALOGUE}


def get(case_id: str) -> Case:
    """The case with this id; ``KeyError`` names the id when there is none."""
    try:
        return _BY_ID[case_id]
    except KeyError:
        raise KeyError(f"no conformance case {case_id!r}") from None


def select(
    protocol: str | None = None, role: str | None = None, pattern: str | None = None
) -> tuple[Case, ...]:
    """The cases of ``protocol`` judging ``role`` whose id matches the glob ``pattern``.

    ``None`` leaves a criterion out.  ``role="server"`` also takes the ``both`` cases.  The
    pattern is an :mod:`fnmatch` glob on the id (``itrack.events.*``, ``*.reconnect.*``).
    """
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    return tuple(
        case
        for case in CATALOGUE
        if (protocol is None or case.protocol == protocol)
        and (role is None or case.judges(role))
        and (pattern is None or fnmatch.fnmatchcase(case.id, pattern))
    )


def verdict_for(level: Level | Case, passed: bool) -> Verdict:
    """OK when passed; otherwise FAILED for a MUST and NON-STRICT for a SHOULD."""
    if passed:
        return Verdict.OK
    if isinstance(level, Case):
        level = level.level
    return Verdict.FAILED if level is Level.MUST else Verdict.NON_STRICT


def exit_code(
    verdicts: Mapping[str, Verdict] | Iterable[tuple[str | Case, Verdict]], *, strict: bool = False
) -> int:
    """0 when no MUST case FAILED or hit an ERROR, else 1.

    ``verdicts`` maps case ids (or :class:`Case` objects) to verdicts.  With ``strict`` a
    failed or erroring SHOULD case counts too.  An id outside the catalogue raises ``KeyError``.
    """
    pairs = verdicts.items() if isinstance(verdicts, Mapping) else verdicts
    for key, verdict in pairs:
        case = key if isinstance(key, Case) else get(key)
        if verdict is Verdict.OK or verdict is Verdict.UNSUPPORTED:
            continue
        if case.level is Level.MUST or strict:
            return 1
    return 0
