"""Server probes of the Atmosphere transport (``docs/protocols/atmosphere.md``), and the helpers the
iTrack probes share: opening with a given query, reading the handshake, checking
TrackMessageSize prefixes.

The subject URL is the Atmosphere endpoint (``http(s)://`` or ``ws(s)://``, e.g.
``https://api.example/v2/event/subscription``); the kit adds the query of spec §1 itself.
Probes send a few text messages to make the server answer; any server application will do,
and an echo application lets the UTF-16 length case see non-ASCII text come back.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import trio

from trackwire.atmosphere import DEFAULT_FRAMEWORK, build_close_url, build_open_url, utf16_len
from trackwire.itrack import subscription_url

from ._probes import (
    SLOW_LIMIT,
    Ctx,
    Findings,
    Item,
    Outcome,
    Peer,
    ProbeOptions,
    SubjectBroke,
    Unsupported,
    server_probe,
    unsupported,
)

__all__ = [
    "Handshake",
    "blank",
    "endpoint",
    "looks_like_handshake",
    "open_atmosphere",
    "parse_handshake",
    "split_prefixed",
]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_HANDSHAKE = re.compile(rf"({_UUID})\|(\d+)\|([^|]*)\|")
_LOOKS_LIKE_HANDSHAKE = re.compile(rf"(?:\d+\|)?\s*{_UUID}\s*\|")
_PREFIX = re.compile(r"(\d+)\|")
_JAVA_BLANK = "".join(map(chr, range(0x21)))
_NON_ASCII_PROBE = "trackwire conformance é😀"
"""A message whose UTF-16 length (26), UTF-8 byte count (29) and code point count (25)
all differ, so a wrong length prefix shows which one the server counted."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """The parts of an Atmosphere handshake frame."""

    uuid: str
    interval_ms: int
    padding: str
    frame: str


def parse_handshake(frame: str, prefixed: bool) -> Handshake | None:
    """The handshake in ``frame`` (``<n>|`` first when ``prefixed``), or ``None``."""
    body = frame
    if prefixed:
        match = _PREFIX.match(frame)
        if match is None:
            return None
        body = frame[match.end() :]
    found = _HANDSHAKE.match(body)
    if found is None:
        return None
    return Handshake(found.group(1), int(found.group(2)), found.group(3), frame)


def looks_like_handshake(item: Item) -> bool:
    """Whether a frame has the shape of a handshake (``[<n>|]<uuid>|...``)."""
    return isinstance(item, str) and _LOOKS_LIKE_HANDSHAKE.match(item) is not None


def blank(item: Item) -> bool:
    """Empty or whitespace-only (what Java trims away), e.g. the reconnect padding."""
    return isinstance(item, str) and not item.strip(_JAVA_BLANK)


def split_prefixed(frame: str) -> tuple[list[str], str | None]:
    """The messages of a length-prefixed frame, and why it does not parse (``None`` if it
    does): each ``<n>|`` must be followed by exactly ``n`` UTF-16 code units."""
    messages: list[str] = []
    i = 0
    while i < len(frame):
        match = _PREFIX.match(frame, i)
        if match is None:
            return messages, f"no <length>| prefix before {frame[i : i + 24]!r}"
        wanted = int(match.group(1))
        start = k = match.end()
        units = 0
        while units < wanted and k < len(frame):
            units += 2 if ord(frame[k]) > 0xFFFF else 1
            k += 1
        if units != wanted:
            rest = frame[start:]
            return messages, (
                f"prefix {wanted}, but the message has {utf16_len(rest)} UTF-16 code units "
                f"({len(rest.encode('utf-8', 'surrogatepass'))} UTF-8 bytes, {len(rest)} code "
                "points)"
            )
        messages.append(frame[start:k])
        i = k
    return messages, None


def endpoint(ctx: Ctx) -> str:
    """The Atmosphere endpoint: the URL itself, or ``<base>event/subscription`` for iTrack."""
    return subscription_url(ctx.url) if ctx.protocol == "itrack" else ctx.url


def open_url(
    ctx: Ctx,
    *,
    tracking_id: str = "0",
    tms: bool = False,
    protocol: bool = True,
    framework: str = DEFAULT_FRAMEWORK,
    heartbeat_server: int | None = None,
    base: str | None = None,
) -> str:
    return build_open_url(
        base or endpoint(ctx),
        tracking_id=tracking_id,
        framework=framework,
        track_message_length=tms,
        heartbeat_server=heartbeat_server,
        content_type="application/json",
        enable_protocol=protocol,
    )


async def open_atmosphere(
    ctx: Ctx,
    *,
    tms: bool = False,
    heartbeat_server: int | None = None,
    base: str | None = None,
) -> tuple[Peer, Handshake | None, list[Item]]:
    """A new protocol connection (tracking id 0): the peer, its handshake (``None`` when none
    came within ``reply_wait``) and the frames before and including it."""
    peer = await ctx.open(open_url(ctx, tms=tms, heartbeat_server=heartbeat_server, base=base))
    frames = await peer.collect(ctx.options.reply_wait, until=looks_like_handshake)
    handshake = None
    if frames and isinstance(frames[-1], str) and looks_like_handshake(frames[-1]):
        handshake = parse_handshake(frames[-1], tms)
    return peer, handshake, frames


async def handshake_of(
    ctx: Ctx, *, tms: bool = False, heartbeat_server: int | None = None
) -> tuple[Peer, Handshake]:
    """A new connection and its handshake, or :class:`Unsupported` (another case judges a
    missing handshake)."""
    peer, handshake, frames = await open_atmosphere(ctx, tms=tms, heartbeat_server=heartbeat_server)
    if handshake is None:
        await peer.close()
        shown = f" (got {frames[:3]!r})" if frames else ""
        raise Unsupported("no well-formed handshake to start from" + shown)
    return peer, handshake


_INTERNAL_ERROR = 1011


def _check_alive(during: str, *peers: Peer) -> None:
    """Raise :class:`SubjectBroke` when the server ended one of ``peers`` with 1011 (internal
    error): it failed on well-formed traffic, as a 5xx answer to a valid upgrade would be."""
    for peer in peers:
        closed = peer.closed
        if closed is not None and closed.by_peer and closed.code == _INTERNAL_ERROR:
            reason = closed.reason
            why = f", reason {reason!r}" if reason and reason != "internal error" else ""
            raise SubjectBroke(
                "close 1011",
                f"the server ended the connection with 1011 (internal error{why}) {during}",
            )


def _provoke() -> list[str]:
    """Messages that make most servers answer: plain text, and a JSON action with a hash
    of the wrong length (an iTrack server answers it with an error echoing the data)."""
    return [
        _NON_ASCII_PROBE,
        '{"action":"subscribe","hash":"x","requests":"' + _NON_ASCII_PROBE + '"}',
    ]


def _application(frames: list[Item], padding: str) -> list[Item]:
    """Frames that are neither blank, nor heartbeats (``X`` or ``1|X``), nor handshakes."""
    beat = f"{utf16_len(padding)}|{padding}"
    return [
        f
        for f in frames
        if not blank(f) and f != padding and f != beat and not looks_like_handshake(f)
    ]


# -- §1 and §2: the handshake ----------------------------------------------------------------


@server_probe(
    "atmosphere.handshake.tracking-id-zero",
    "atmosphere.handshake.first-frame",
    "atmosphere.handshake.format",
)
async def new_client_handshake(ctx: Ctx) -> dict[str, Outcome]:
    peer, handshake, frames = await open_atmosphere(ctx)
    await peer.close()
    got = frames[-1] if frames else None
    if handshake is None and got is None:
        missing = Outcome(False, f"no frame within {ctx.options.reply_wait} s")
        return {
            "atmosphere.handshake.tracking-id-zero": missing,
            "atmosphere.handshake.first-frame": missing,
            "atmosphere.handshake.format": unsupported("no handshake to judge"),
        }
    seen = looks_like_handshake(got) if got is not None else False
    first = Findings()
    first.expect(seen, f"no handshake frame among {frames[:3]!r}")
    first.expect(len(frames) == 1, f"{len(frames) - 1} frame(s) before the handshake")
    form = Findings()
    if seen and isinstance(got, str):
        form.expect(handshake is not None, f"{got!r} is not <uuid>|<ms>|<padding>|")
        if handshake is not None:
            interval = handshake.interval_ms
            form.expect(
                interval == 0 or PLAUSIBLE_INTERVAL_MS[0] <= interval <= PLAUSIBLE_INTERVAL_MS[1],
                f"the handshake announces a client heartbeat every {interval} ms: not a "
                f"plausible interval (0, or {PLAUSIBLE_INTERVAL_MS[0]} to "
                f"{PLAUSIBLE_INTERVAL_MS[1]} ms)",
            )
        form.note(f"handshake {got!r}")
    return {
        "atmosphere.handshake.tracking-id-zero": Outcome(
            seen, f"handshake {got!r}" if seen else f"no handshake among {frames[:3]!r}"
        ),
        "atmosphere.handshake.first-frame": first.outcome(),
        "atmosphere.handshake.format": (
            form.outcome() if seen else unsupported("no handshake to judge")
        ),
    }


@server_probe("atmosphere.handshake.only-when-asked")
async def handshake_only_when_asked(ctx: Ctx) -> Outcome:
    findings = Findings()
    for label, url in (
        ("without X-atmo-protocol", open_url(ctx, protocol=False)),
        ("with framework 2.0.0-javascript", open_url(ctx, framework="2.0.0-javascript")),
    ):
        peer = await ctx.open(url)
        frames = await peer.collect(ctx.options.settle)
        findings.expect(
            not any(looks_like_handshake(f) for f in frames),
            f"a handshake came {label}: {[f for f in frames if looks_like_handshake(f)][:1]!r}",
        )
        await peer.close()
    return findings.outcome()


@server_probe("atmosphere.handshake.unique-uuid")
async def handshake_unique_uuid(ctx: Ctx) -> Outcome:
    first_peer, first = await handshake_of(ctx)
    second_peer, second = await handshake_of(ctx)
    await first_peer.close()
    await second_peer.close()
    return Outcome(
        first.uuid != second.uuid,
        f"UUIDs {first.uuid} and {second.uuid}",
    )


@server_probe("atmosphere.handshake.length-prefixed")
async def handshake_length_prefixed(ctx: Ctx) -> Outcome:
    peer, handshake, frames = await open_atmosphere(ctx, tms=True)
    await peer.close()
    if not frames:
        return Outcome(False, f"no frame within {ctx.options.reply_wait} s")
    got = frames[-1]
    if handshake is None:
        return Outcome(False, f"first frame {got!r} is not <n>|<uuid>|<ms>|<padding>|")
    _, problem = split_prefixed(handshake.frame)
    return Outcome(problem is None, problem or f"handshake {handshake.frame!r}")


@server_probe("atmosphere.handshake.nothing-appended")
async def handshake_nothing_appended(ctx: Ctx) -> Outcome:
    peer, _, frames = await open_atmosphere(ctx)
    await peer.close()
    got = frames[-1] if frames else None
    if not isinstance(got, str) or not looks_like_handshake(got):
        return unsupported("no handshake to judge")
    return Outcome(
        _HANDSHAKE.fullmatch(got) is not None,
        f"handshake frame {got!r}",
    )


@server_probe("atmosphere.handshake.once")
async def handshake_once(ctx: Ctx) -> Outcome:
    peer, handshake = await handshake_of(ctx)
    if handshake.interval_ms > 0:
        await peer.send(handshake.padding)
    for message in _provoke():
        await peer.send(message)
    frames = await peer.collect(ctx.options.settle)
    again = [f for f in frames if looks_like_handshake(f)]
    _check_alive("after the kit's heartbeat and messages", peer)
    await peer.close()
    return Outcome(not again, f"second handshake {again[0]!r}" if again else "")


# -- §3: TrackMessageSize ----------------------------------------------------------------------


@server_probe("atmosphere.tms.only-when-requested")
async def tms_only_when_requested(ctx: Ctx) -> Outcome:
    peer, _, frames = await open_atmosphere(ctx)
    for message in _provoke():
        await peer.send(message)
    frames += await peer.collect(ctx.options.settle)
    _check_alive("after the kit's messages", peer)
    await peer.close()
    prefixed = [f for f in frames if isinstance(f, str) and _PREFIX.match(f)]
    return Outcome(
        not prefixed,
        f"prefixed frame {prefixed[0]!r}" if prefixed else f"{len(frames)} frame(s) unprefixed",
    )


@server_probe("atmosphere.tms.every-write-prefixed", "atmosphere.tms.utf16-length")
async def tms_prefixes(ctx: Ctx) -> dict[str, Outcome]:
    peer, handshake, frames = await open_atmosphere(ctx, tms=True)
    # The edges of blankness too: a leading space before text is no blank message (it needs
    # its prefix), an empty one is (an echoing application shows both).
    for message in [*_provoke(), " " + _NON_ASCII_PROBE, ""]:
        await peer.send(message)
    frames += await peer.collect(ctx.options.settle)
    _check_alive("after the kit's messages", peer)
    await peer.close()
    if handshake is not None:
        # The other route: what the server writes first when the client comes back with
        # its tracking id (the Java server: blank padding, which may go unprefixed).
        again = await ctx.open(open_url(ctx, tms=True, tracking_id=handshake.uuid))
        frames += await again.collect(ctx.options.reply_wait, until=lambda item: True)
        frames += await again.collect(ctx.options.settle)
        await again.close()
    every = Findings()
    lengths = Findings()
    non_ascii = 0
    for frame in frames:
        if not isinstance(frame, str) or blank(frame):
            continue
        every.expect(_PREFIX.match(frame), f"frame without a length prefix: {frame[:60]!r}")
        if not _PREFIX.match(frame):
            continue
        _, problem = split_prefixed(frame)
        if not frame.isascii():
            non_ascii += 1
        lengths.expect(problem is None, f"{problem} in {frame[:60]!r}")
    every.note(f"{len(frames)} frame(s), those after a reconnect included")
    results = {"atmosphere.tms.every-write-prefixed": every.outcome()}
    if lengths.problems or non_ascii:
        lengths.note(f"{non_ascii} non-ASCII message(s) correctly prefixed")
        results["atmosphere.tms.utf16-length"] = lengths.outcome()
    else:
        results["atmosphere.tms.utf16-length"] = unsupported(
            "no non-ASCII message came back (the probe sends 'é😀' in a text message and "
            "in a JSON action; an echoing application shows it)"
        )
    return results


@server_probe("atmosphere.tms.blank-unprefixed")
async def tms_blank_unprefixed(ctx: Ctx) -> Outcome:
    peer, handshake = await handshake_of(ctx, tms=True)
    await peer.close()
    again = await ctx.open(open_url(ctx, tms=True, tracking_id=handshake.uuid))
    frames = await again.collect(ctx.options.settle)
    # A blank message: an echoing application writes it back, blank.
    await again.send("  \t ")
    frames += await again.collect(ctx.options.settle)
    await again.close()
    seen = []
    for frame in frames:
        if not isinstance(frame, str):
            continue
        match = _PREFIX.match(frame)
        if match is not None and blank(frame[match.end() :]):
            return Outcome(False, f"blank write sent with a prefix: {frame[:16]!r}...")
        if blank(frame):
            seen.append(f"blank frame of {len(frame)} characters, unprefixed")
    if seen:
        return Outcome(True, "; ".join(seen))
    return unsupported(
        "no blank write observed (looked at the frames after a reconnect, and at the answer "
        "to a blank message)"
    )


# -- §4: heartbeats ----------------------------------------------------------------------------


@server_probe("atmosphere.heartbeat.server-swallows-padding")
async def heartbeat_swallowed(ctx: Ctx) -> Outcome:
    peer, handshake = await handshake_of(ctx)
    if handshake.interval_ms <= 0:
        await peer.close()
        return unsupported("the handshake announces no client heartbeat (interval 0)")
    await peer.send(handshake.padding)
    frames = await peer.collect(ctx.options.settle)
    answers = _application(frames, handshake.padding)
    still_open = peer.is_open
    _check_alive("after the kit's heartbeat", peer)
    await peer.close()
    findings = Findings()
    findings.expect(not answers, f"the heartbeat drew {answers[:2]!r}")
    findings.expect(still_open, "the server closed the connection after a heartbeat")
    return findings.outcome()


PLAUSIBLE_INTERVAL_MS = (1000, 3_600_000)
"""Client heartbeat intervals a handshake may announce besides 0 (none): from 1 s (the
client would flood the server) to 1 h (its timeout would never catch a dead link)."""


SHORT_ASK = 1
"""The X-Heartbeat-Server value (seconds) of the "short" connection: below most servers'
interval (it may not shorten it), above a quick test server's (it must lengthen it)."""


def _short_window(wait: float) -> float:
    """How long the "short" connection is watched: long enough for a heartbeat at
    :data:`SHORT_ASK` seconds, with a margin, when ``wait`` is shorter."""
    return max(wait, 2.0 * SHORT_ASK)


def _idle(options: ProbeOptions) -> float:
    if options.idle_wait > SLOW_LIMIT and not options.slow:
        return 0.0
    return _short_window(options.idle_wait) + 2 * options.settle


@server_probe(
    "atmosphere.heartbeat.server-idle-heartbeat",
    "atmosphere.tms.heartbeat-prefixed",
    "atmosphere.heartbeat.server-interval-request",
    extra_time=_idle,
)
async def idle_heartbeats(ctx: Ctx) -> dict[str, Outcome]:
    wait = ctx.options.idle_wait
    if wait > SLOW_LIMIT and not ctx.options.slow:
        raise Unsupported(
            f"waits {wait:g} s for idle heartbeats: run with --slow, or give the server's "
            "interval with --idle-wait S (a little more than it) when it is shorter"
        )
    plain, plain_hs = await handshake_of(ctx)
    prefixed, prefixed_hs = await handshake_of(ctx, tms=True)
    silent, silent_hs = await handshake_of(ctx, heartbeat_server=0)
    # "chatty": the kit keeps writing, the server does not: its heartbeat counts from its own
    # last write, so it must still come.  "short": asks for 1 s, which may not shorten it,
    # and must lengthen a shorter one (heartbeats still come, at most 1 s apart).
    chatty, chatty_hs = await handshake_of(ctx)
    short, short_hs = await handshake_of(ctx, heartbeat_server=SHORT_ASK)
    peers = (plain, prefixed, silent, chatty, short)
    seen: dict[str, list[Item]] = {}
    first_beat: dict[str, float] = {}
    started = trio.current_time()
    beat = f"{utf16_len(prefixed_hs.padding)}|{prefixed_hs.padding}"

    async def watch(name: str, peer: Peer, stop: str | None, window: float = wait) -> None:
        def until(item: Item) -> bool:
            if item == stop and name not in first_beat:
                first_beat[name] = trio.current_time() - started
            return item == stop

        seen[name] = await peer.collect(window, until=None if stop is None else until)

    async def chatter(peer: Peer, padding: str) -> None:
        if chatty_hs.interval_ms <= 0:
            return  # the padding would be application data, and draw answers
        while name_open(peer) and "chatty" not in first_beat:
            await peer.send(padding)
            await trio.sleep(max(0.05, wait / 8))

    def name_open(peer: Peer) -> bool:
        return peer.is_open and trio.current_time() - started < wait

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, "plain", plain, plain_hs.padding)
        nursery.start_soon(watch, "prefixed", prefixed, beat)
        nursery.start_soon(watch, "silent", silent, None)
        nursery.start_soon(watch, "chatty", chatty, chatty_hs.padding)
        nursery.start_soon(watch, "short", short, short_hs.padding, _short_window(wait))
        nursery.start_soon(chatter, chatty, chatty_hs.padding)
    own = first_beat.get("plain")
    if own is not None and "prefixed" not in first_beat and prefixed.is_open:
        # Opened after the plain one, its heartbeat may be due a moment later.
        more = await prefixed.collect(ctx.options.settle, until=lambda item: item == beat)
        seen["prefixed"] += more
    _check_alive("while the kit waited for its heartbeats", *peers)
    for peer in peers:
        await peer.close()
    results: dict[str, Outcome] = {}
    idle = Findings()
    frames = seen["prefixed"]
    prefixed_beat = beat in frames or prefixed_hs.padding in frames
    if idle.expect(
        plain_hs.padding in seen["plain"],
        f"no heartbeat {plain_hs.padding!r} within {wait} s of silence",
    ):
        idle.note(f"heartbeat {plain_hs.padding!r} after {first_beat.get('plain', 0):.1f} s")
        idle.expect(
            chatty_hs.interval_ms <= 0 or chatty_hs.padding in seen["chatty"],
            f"no heartbeat within {wait} s while the kit kept writing and the server did not: "
            "the server counts inactivity from its last read, not its last write",
        )
        idle.expect(
            prefixed_beat,
            f"no heartbeat within {wait} s on the connection with TrackMessageSize, while the "
            f"one without had its heartbeat after {first_beat.get('plain', 0):.1f} s",
        )
    if own is not None and own < SHORT_ASK:
        window = _short_window(wait)
        idle.expect(
            short_hs.padding in seen["short"],
            f"no heartbeat within {window:g} s with X-Heartbeat-Server={SHORT_ASK}, longer than "
            f"the server's own interval ({own:.1f} s): a longer interval must still bring "
            "heartbeats, at most that far apart",
        )
    results["atmosphere.heartbeat.server-idle-heartbeat"] = idle.outcome()
    if beat in frames:
        results["atmosphere.tms.heartbeat-prefixed"] = Outcome(True, f"heartbeat {beat!r}")
    elif prefixed_hs.padding in frames:
        results["atmosphere.tms.heartbeat-prefixed"] = Outcome(
            False, f"heartbeat {prefixed_hs.padding!r} sent without its prefix {beat!r}"
        )
    elif own is not None:
        results["atmosphere.tms.heartbeat-prefixed"] = Outcome(
            False,
            f"no heartbeat {beat!r} within {wait} s with TrackMessageSize, while the "
            f"connection without it had its heartbeat after {own:.1f} s",
        )
    else:
        results["atmosphere.tms.heartbeat-prefixed"] = unsupported(f"no heartbeat within {wait} s")
    request = Findings()
    beats = [f for f in seen["silent"] if f == silent_hs.padding]
    request.expect(not beats, f"{len(beats)} heartbeat(s) despite X-Heartbeat-Server=0")
    quick = first_beat.get("short")
    if own is not None and own > 1.5 * SHORT_ASK:
        request.expect(
            quick is None or quick >= 0.7 * own,
            f"X-Heartbeat-Server={SHORT_ASK} brought the heartbeat after {quick or 0:.1f} s "
            f"instead of the server's {own:.1f} s: a client may lengthen it, never shorten it",
        )
    elif own is not None and own < SHORT_ASK:
        request.expect(
            quick is not None,
            f"no heartbeat within {_short_window(wait):g} s with X-Heartbeat-Server="
            f"{SHORT_ASK} while the server's own interval is {own:.1f} s: a longer interval "
            "must still bring heartbeats",
        )
    else:
        request.note("the server's own interval is not above 1.5 s: shortening not tried")
    request.note(f"no heartbeat within {wait} s with X-Heartbeat-Server=0")
    results["atmosphere.heartbeat.server-interval-request"] = request.outcome()
    return results


# -- §5 and §6: reconnecting and closing -------------------------------------------------------


@server_probe("atmosphere.reconnect.no-handshake", "atmosphere.reconnect.first-frame")
async def reconnect(ctx: Ctx) -> dict[str, Outcome]:
    peer, handshake = await handshake_of(ctx)
    await peer.close()
    again = await ctx.open(open_url(ctx, tracking_id=handshake.uuid))
    first = await again.collect(ctx.options.reply_wait, until=lambda item: True)
    later = await again.collect(ctx.options.settle)
    await again.close()
    frames = first + later
    handshakes = [f for f in frames if looks_like_handshake(f)]
    first_frame = Outcome(
        bool(first),
        f"first frame {first[0][:40]!r}..."
        if first
        else f"nothing within {ctx.options.reply_wait} s of accepting the reconnect",
    )
    return {
        "atmosphere.reconnect.no-handshake": Outcome(
            not handshakes,
            f"handshake on reconnect: {handshakes[0]!r}"
            if handshakes
            else f"reconnected with {handshake.uuid}: no handshake",
        ),
        "atmosphere.reconnect.first-frame": first_frame,
    }


@server_probe("atmosphere.close.server-forgets")
async def close_request(ctx: Ctx) -> Outcome:
    peer, handshake = await handshake_of(ctx)
    url = build_close_url(endpoint(ctx), handshake.uuid, int(time.time() * 1000))
    answer = await ctx.http("GET", url)
    findings = Findings()
    findings.expect(200 <= answer.status < 300, f"the close request got HTTP {answer.status}")
    frames = await peer.collect(ctx.options.settle)
    pushed = _application(frames, handshake.padding)
    findings.expect(not pushed, f"pushed after the close request: {pushed[:2]!r}")
    await peer.close()
    findings.note(f"close request answered {answer.status}; nothing pushed afterwards")
    return findings.outcome()
