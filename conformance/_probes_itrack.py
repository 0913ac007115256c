"""Server probes of the iTrack application protocol (``docs/protocols/itrack.md``).

The subject URL is the API base URL (``https://api.example/v2/``): the kit logs in with
``--login``/``--password`` at ``<base>user/auth`` and opens ``<base>event/subscription``
with the Atmosphere query.  It learns the account's trackers by subscribing a
``state_batch`` for ``all`` once, and uses them in the other probes.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import trio

from trackwire.itrack import auth_url, subscription_url

from ._probes import (
    Blocked,
    Ctx,
    Findings,
    Item,
    Outcome,
    Peer,
    ProbeError,
    ProbeOptions,
    Unsupported,
    server_probe,
)
from ._probes_atmosphere import Handshake, blank, handshake_of, looks_like_handshake, open_url

__all__ = ["ITrackSession"]

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_BOGUS_TRACKER = 2_147_480_001
_SUBSCRIBE = "subscription/subscribe"
_UNSUBSCRIBE = "subscription/unsubscribe"
_TYPES = ("event", "response", "error")
_FORM = [("Content-Type", "application/x-www-form-urlencoded")]


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class ITrackSession:
    """One subscription socket: sends JSON actions, reads JSON messages (heartbeats, blank
    frames and handshakes skipped), and keeps every application message it saw."""

    def __init__(self, peer: Peer, handshake: Handshake) -> None:
        self.peer = peer
        self.handshake = handshake
        self.seen: list[Any] = []
        """Every application message, parsed (or the raw text when it is not JSON)."""

    def _application(self, item: Item) -> bool:
        padding = self.handshake.padding
        return not (blank(item) or item == padding or looks_like_handshake(item))

    async def send(self, message: Any) -> None:
        await self.peer.send(message if isinstance(message, str) else _compact(message))

    async def wait(self, accept: Callable[[Any], bool], timeout: float) -> Any | None:
        """The first message ``accept`` takes within ``timeout`` (others are only kept)."""
        deadline = trio.current_time() + timeout
        while True:
            item = await self.peer.recv(max(0.0, deadline - trio.current_time()))
            if item is None:
                return None
            if not self._application(item):
                continue
            message = _parse(item)
            self.seen.append(message)
            if accept(message):
                return message

    async def gather(self, duration: float) -> list[Any]:
        """Every application message within ``duration``."""
        got: list[Any] = []

        def keep(message: Any) -> bool:
            got.append(message)
            return False

        await self.wait(keep, duration)
        return got

    async def close(self) -> None:
        await self.peer.close()


def _parse(item: Item) -> Any:
    if isinstance(item, bytes):
        return item
    try:
        return json.loads(item)
    except ValueError:
        return item


def _is(kind: str, action: str | None = None) -> Callable[[Any], bool]:
    def accept(message: Any) -> bool:
        return (
            isinstance(message, dict)
            and message.get("type") == kind
            and (action is None or message.get("action") == action)
        )

    return accept


def _is_reply(message: Any) -> bool:
    return isinstance(message, dict) and message.get("type") in ("response", "error")


def _error_code(message: Any) -> object:
    status = message.get("status") if isinstance(message, dict) else None
    return status.get("code") if isinstance(status, dict) else None


def _events(messages: list[Any], name: str) -> list[dict[str, Any]]:
    return [
        m
        for m in messages
        if isinstance(m, dict) and m.get("type") == "event" and m.get("event") == name
    ]


async def _auth(ctx: Ctx, login: str, password: str) -> tuple[int, Any]:
    body = urlencode([("login", login), ("password", password)]).encode()
    answer = await ctx.http("POST", auth_url(ctx.url), body=body, headers=_FORM)
    return answer.status, answer.json()


async def session_hash(ctx: Ctx) -> str:
    """The run's session hash (one ``user/auth`` per run)."""
    cached = ctx.shared.get("itrack.hash")
    if isinstance(cached, str):
        return cached
    status, data = await _auth(ctx, ctx.credential("login"), ctx.credential("password"))
    if not (isinstance(data, dict) and data.get("success") is True):
        raise Blocked(
            "itrack.auth.success",
            f"user/auth refused the given login (HTTP {status}, status "
            f"{_error_code(data)!r}): check the credentials, or the server's user/auth",
        )
    value = data.get("hash")
    if not isinstance(value, str):
        raise Blocked("itrack.auth.success", f"user/auth answered no hash: {data!r:.200}")
    ctx.shared["itrack.hash"] = value
    return value


async def open_session(ctx: Ctx) -> ITrackSession:
    peer, handshake = await handshake_of(ctx)
    return ITrackSession(peer, handshake)


async def trackers(ctx: Ctx) -> list[int]:
    """The account's trackers with status ``normal`` (learnt once per run)."""
    cached = ctx.shared.get("itrack.trackers")
    if isinstance(cached, list):
        return cached
    found = await _normal_trackers(ctx, await session_hash(ctx))
    ctx.shared["itrack.trackers"] = found
    return found


async def _normal_trackers(ctx: Ctx, value: str) -> list[int]:
    """The trackers a ``state_batch`` for ``all`` answers ``normal`` under hash ``value``.

    The request is the documented one (rate_limit ``5s``): a server that does not answer it
    with the covered trackers breaks ``itrack.actions.subscribe-state-batch``, and the
    probes that need the trackers are blocked by that, not unsupported."""
    session = await open_session(ctx)
    request = {"type": "state_batch", "target": {"type": "all"}, "rate_limit": "5s"}
    await session.send({"action": "subscribe", "hash": value, "requests": [request]})
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    await session.close()
    data = reply.get("data") if isinstance(reply, dict) else None
    statuses = data.get("state_batch") if isinstance(data, dict) else None
    if isinstance(statuses, dict) and isinstance(statuses.get("value"), dict):
        statuses = statuses["value"]
    if not (_is("response", _SUBSCRIBE)(reply) and isinstance(statuses, dict)):
        raise Blocked(
            "itrack.actions.subscribe-state-batch",
            f"a state_batch for all (rate_limit 5s) answered {reply!r:.200}, not a subscribe "
            "response with the covered trackers: the kit cannot learn the account's trackers",
        )
    found = sorted(int(k) for k, v in statuses.items() if v == "normal" and k.isdigit())
    if not found:
        raise Unsupported("the account has no tracker in status normal")
    return found


def _subscribe_state(value: str, ids: list[int]) -> dict[str, Any]:
    return {"action": "subscribe", "hash": value, "requests": [{"type": "state", "trackers": ids}]}


# -- §1: user/auth and the socket --------------------------------------------------------------


@server_probe("itrack.auth.success")
async def auth_success(ctx: Ctx) -> Outcome:
    status, data = await _auth(ctx, ctx.credential("login"), ctx.credential("password"))
    findings = Findings()
    findings.expect(isinstance(data, dict), f"HTTP {status}: the body is not a JSON object")
    if isinstance(data, dict):
        findings.expect(data.get("success") is True, f"success is {data.get('success')!r}")
        value = data.get("hash")
        findings.expect(
            isinstance(value, str) and _HEX32.fullmatch(value),
            f"hash {value!r} is not 32 hex characters",
        )
        if isinstance(value, str):
            ctx.shared.setdefault("itrack.hash", value)
    return findings.outcome()


@server_probe("itrack.auth.failure")
async def auth_failure(ctx: Ctx) -> Outcome:
    wrong = ctx.credential("password") + "-wrong-" + secrets.token_hex(4)
    status, data = await _auth(ctx, ctx.credential("login"), wrong)
    findings = Findings()
    if findings.expect(isinstance(data, dict), f"HTTP {status}: the body is not a JSON object"):
        findings.expect(data.get("success") is False, f"success is {data.get('success')!r}")
        findings.expect(_error_code(data) == 102, f"status code {_error_code(data)!r}, not 102")
        findings.expect("hash" not in data, "a hash came with the refusal")
    return findings.outcome()


@server_probe("itrack.open.path-spellings")
async def path_spellings(ctx: Ctx) -> Outcome:
    findings = Findings()
    base = subscription_url(ctx.url)
    for path in (base, base + "/"):
        peer = await ctx.open(open_url(ctx, base=path), allow_refusal=True)
        if findings.expect(peer.connected is not None, f"{path}: {peer.failure}"):
            frames = await peer.collect(ctx.options.reply_wait, until=looks_like_handshake)
            findings.expect(any(looks_like_handshake(f) for f in frames), f"{path}: no handshake")
        await peer.close()
    return findings.outcome()


# -- §2 and §3: subscribing and what follows --------------------------------------------------


@server_probe(
    "itrack.actions.subscribe-state",
    "itrack.responses.subscribe",
    "itrack.events.state-after-subscribe",
    "itrack.events.source-state-shape",
    "itrack.messages.type-field",
)
async def subscribe_state(ctx: Ctx) -> dict[str, Outcome]:
    value = await session_hash(ctx)
    ids = (await trackers(ctx))[:3]
    # A witness subscribed first sees every state the server knows, with the time the kit
    # read it: the current states the subject sends must be ones the witness already had.
    witness = await open_session(ctx)
    await witness.send(_subscribe_state(value, ids))
    await witness.wait(_is_reply, ctx.options.reply_wait)
    await witness.gather(ctx.options.settle)
    session = await open_session(ctx)
    await session.send(_subscribe_state(value, ids))
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    after = await session.gather(ctx.options.settle)
    await session.close()
    # The compact form beside the full one (the witness's): current states and changes.
    compact = await open_session(ctx)
    compact_request = {"type": "state", "trackers": ids, "format": "compact"}
    await compact.send({"action": "subscribe", "hash": value, "requests": [compact_request]})
    await compact.wait(_is_reply, ctx.options.reply_wait)
    await compact.gather(max(ctx.options.settle, 0.3))
    await compact.close()
    await witness.close()
    results: dict[str, Outcome] = {}
    accepted = _is("response", _SUBSCRIBE)(reply)
    forms = _compact_problems(_events(witness.seen + session.seen, "state"),
                              _events(compact.seen, "state"))  # fmt: skip
    results["itrack.actions.subscribe-state"] = Outcome(
        accepted and not forms,
        f"subscribe of {ids} answered {reply!r:.200}" if not accepted else "; ".join(forms),
    )
    shape = Findings()
    if accepted:
        assert isinstance(reply, dict)
        shape.expect(isinstance(reply.get("events"), list), "no events list")
        data = reply.get("data")
        entry = data.get("state") if isinstance(data, dict) else None
        statuses = entry.get("value") if isinstance(entry, dict) else None
        if shape.expect(isinstance(statuses, dict), f"no data.state.value in {reply!r:.200}"):
            assert isinstance(statuses, dict)
            assert isinstance(entry, dict)
            shape.expect(
                sorted(statuses) == sorted(str(i) for i in ids),
                f"statuses for {sorted(statuses)}, asked {ids}",
            )
            shape.expect(entry.get("success", True) is True, f"success {entry.get('success')!r}")
        results["itrack.responses.subscribe"] = shape.outcome()
    else:
        results["itrack.responses.subscribe"] = Outcome(
            False, f"no subscribe response: {reply!r:.200}"
        )
    states = _events(after, "state")
    results["itrack.events.state-after-subscribe"] = _current_states(
        ctx, witness.peer.number, session.peer.number, states, len(ids)
    )
    form = Findings()
    for event in states:
        data = event.get("data")
        if not form.expect(isinstance(data, dict), f"state data {data!r:.80} is not an object"):
            continue
        assert isinstance(data, dict)
        form.expect(
            type(data.get("source_id")) is int, f"source_id {data.get('source_id')!r} not an int"
        )
        gps = data.get("gps") if isinstance(data.get("gps"), dict) else {}
        assert isinstance(gps, dict)
        for name, stamp in (
            ("gps.updated", gps.get("updated")),
            ("last_update", data.get("last_update")),
            ("user_time", event.get("user_time", data.get("user_time"))),
        ):
            if stamp is not None:
                form.expect(
                    isinstance(stamp, str) and _LOCAL_TIME.fullmatch(stamp),
                    f"{name} {stamp!r} is not YYYY-MM-DD HH:MM:SS",
                )
    results["itrack.events.source-state-shape"] = (
        form.outcome() if states else Outcome(None, "no state event to judge")
    )
    typed = Findings()
    for message in session.seen:
        typed.expect(
            isinstance(message, dict) and message.get("type") in _TYPES,
            f"message without type event/response/error: {message!r:.120}",
        )
    typed.note(f"{len(session.seen)} message(s) typed")
    results["itrack.messages.type-field"] = typed.outcome()
    return results


_COMPACT = frozenset({"source_id", "gps", "connection_status", "movement_status", "last_update"})
"""The fields of the documented compact source state; full adds more."""


def _compact_problems(full: list[Any], compact: list[Any]) -> list[str]:
    """A compact state has no field its full form lacks, and where the full form has more
    than the compact fields, fewer fields than the full one (full adds them), source by
    source."""
    fields: dict[object, set[str]] = {}
    for state in _states_in(full):
        fields.setdefault(state.get("source_id"), set()).update(state)
    for state in _states_in(compact):
        known = fields.get(state.get("source_id"), set())
        if known and set(state) - known:
            return [
                f"a compact state of source {state.get('source_id')} carries "
                f"{sorted(set(state) - known)[:4]}, which its full form lacks: not compact"
            ]
        if known - _COMPACT and not set(state) < known:
            return [
                f"a compact state of source {state.get('source_id')} carries "
                f"{sorted(set(state) - _COMPACT)[:4]} (as the full form does): not compact"
            ]
    return []


def _states_in(messages: list[Any]) -> list[dict[str, Any]]:
    """The source states that state and state_batch events among ``messages`` carry."""
    found = []
    for message in messages:
        data = message.get("data") if isinstance(message, dict) else None
        found += [s for s in (data if isinstance(data, list) else [data]) if isinstance(s, dict)]
    return found


def _current_states(
    ctx: Ctx, witness: int, subject: int, states: list[dict[str, Any]], asked: int
) -> Outcome:
    """Judge the first state of each source after a subscribe: it must be the state the
    server already had, not a later change, which a moving fleet would otherwise pass off as
    one.  A state read with the response (within 5 ms: written in the same flush) is taken
    as current; otherwise the witness connection, subscribed first, must have read the same
    state before the response came (give or take 50 ms)."""
    sources = {e["data"].get("source_id") for e in states if isinstance(e.get("data"), dict)}
    if not states or len(sources) > asked:
        return Outcome(
            False, f"{len(states)} state event(s) for {len(sources)} source(s) after "
            f"subscribing {asked}",
        )  # fmt: skip
    seen: dict[str, float] = {}
    answered: float | None = None
    arrived: dict[object, tuple[float, str]] = {}
    for record in ctx.log.records:
        if record.direction != "received" or record.connection not in (witness, subject):
            continue
        message = _parse(record.data)
        if record.connection == subject and answered is None and _is_reply(message):
            answered = record.time
        if not (_is("event")(message) and message.get("event") == "state"):
            continue
        data = message.get("data")
        if record.connection == witness:
            seen.setdefault(_compact(data), record.time)
        elif answered is not None and isinstance(data, dict):
            arrived.setdefault(data.get("source_id"), (record.time, _compact(data)))
    if answered is None:
        return Outcome(False, "no subscribe response in the wire log")
    findings = Findings()
    for source, (at, key) in arrived.items():
        if at - answered <= 0.005:
            continue
        when = seen.get(key)
        findings.expect(
            when is None or when <= answered + 0.05,
            f"the first state of source {source} came {at - answered:.2f} s after the response "
            "and is a change the server pushed then, not its current state",
        )
    findings.note(f"current states of {len(arrived)} source(s) right after the response")
    return findings.outcome()


@server_probe("itrack.actions.subscribe-state-batch", "itrack.events.state-batch")
async def subscribe_state_batch(ctx: Ctx) -> dict[str, Outcome]:
    value = await session_hash(ctx)
    ids = await trackers(ctx)
    # A state subscription beside it tells whether the fleet moved during the watch.
    witness = await open_session(ctx)
    await witness.send(_subscribe_state(value, ids))
    await witness.wait(_is_reply, ctx.options.reply_wait)
    await witness.gather(ctx.options.settle)
    # The compact form of the batch beside the witness's full states.
    compact = await open_session(ctx)
    selected = {"type": "selected", "tracker_ids": ids}
    compact_request = {
        "type": "state_batch",
        "target": selected,
        "rate_limit": "5s",
        "format": "compact",
    }
    await compact.send({"action": "subscribe", "hash": value, "requests": [compact_request]})
    await compact.wait(_is_reply, ctx.options.reply_wait)
    compact_batches = _events(await compact.gather(ctx.options.settle), "state_batch")
    await compact.close()
    session = await open_session(ctx)
    rate = 1.0
    request = {"type": "state_batch", "target": {"type": "all"}, "rate_limit": "1s"}
    await session.send({"action": "subscribe", "hash": value, "requests": [request]})
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    times: list[float] = []
    batches: list[Any] = []
    changes: list[Any] = []

    def batch(message: Any) -> bool:
        if isinstance(message, dict) and message.get("event") == "state_batch":
            times.append(trio.current_time())
            batches.append(message.get("data"))
        return False

    changed_at: list[float] = []
    window = max(ctx.options.push_wait, 2.2 * rate)

    def change(message: Any) -> bool:
        if _events([message], "state"):
            changed_at.append(trio.current_time())
            changes.append(message)
        return False

    async def watch_changes() -> None:
        await witness.wait(change, window)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_changes)
        await session.wait(batch, window)
    await session.close()
    await witness.close()
    results: dict[str, Outcome] = {}
    data = reply.get("data") if isinstance(reply, dict) else None
    entry = data.get("state_batch") if isinstance(data, dict) else None
    covered = entry.get("value") if isinstance(entry, dict) else None
    accepted = _is("response", _SUBSCRIBE)(reply) and isinstance(covered, dict) and bool(covered)
    forms = _compact_problems(_events(witness.seen, "state"), compact_batches)
    results["itrack.actions.subscribe-state-batch"] = Outcome(
        accepted and not forms,
        "; ".join(forms) if accepted else f"state_batch for all answered {reply!r:.200}",
    )
    findings = Findings()
    if changes:
        findings.expect(
            len(batches) >= 2,
            f"{len(batches)} state_batch event(s) in {window:.1f} s with rate_limit 1s while "
            f"{len(changes)} state change(s) happened: the changes must follow every rate_limit",
        )
    if findings.expect(batches, "no state_batch event (not even the current states)"):
        findings.expect(
            all(isinstance(b, list) for b in batches), "a state_batch whose data is not a list"
        )
        findings.expect(
            all(b for b in batches[1:] if isinstance(b, list)), "an empty state_batch was sent"
        )
        if changed_at and changed_at[0] + 1.5 * rate <= times[0] + window:
            # The first change the witness saw must leave in a batch within one rate_limit
            # (half of one more for the clocks): "then once per rate_limit".
            due = changed_at[0] + 1.5 * rate
            later = [t for t in times[1:] if t >= changed_at[0] - 0.05]
            findings.expect(
                bool(later) and later[0] <= due,
                f"a change {changed_at[0] - times[0]:.2f} s after the first batch left "
                + (f"{later[0] - changed_at[0]:.2f} s later" if later else "in no batch")
                + " with rate_limit 1s",
            )
        gaps = [later - earlier for earlier, later in itertools.pairwise(times[1:])]
        findings.expect(
            all(gap >= 0.8 * rate for gap in gaps),
            f"batches {min(gaps, default=0):.2f} s apart with rate_limit 1s",
        )
        findings.note(f"{len(batches)} batch(es) for {len(ids)} tracker(s)")
    results["itrack.events.state-batch"] = findings.outcome()
    return results


@server_probe("itrack.actions.legacy-format")
async def legacy_format(ctx: Ctx) -> Outcome:
    value = await session_hash(ctx)
    ids = (await trackers(ctx))[:2]
    session = await open_session(ctx)
    await session.send({"action": "subscribe", "hash": value, "events": ["state"], "trackers": ids})
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    await session.close()
    data = reply.get("data") if isinstance(reply, dict) else None
    state = data.get("state") if isinstance(data, dict) else None
    ok = (
        _is("response", _SUBSCRIBE)(reply)
        and isinstance(state, dict)
        and sorted(state) == sorted(str(i) for i in ids)
        and all(isinstance(v, str) for v in state.values())
    )
    return Outcome(ok, f"legacy subscribe answered {reply!r:.200}")


@server_probe("itrack.actions.iot-monitor-limit")
async def iot_monitor_limit(ctx: Ctx) -> Outcome:
    value = await session_hash(ctx)
    own = await trackers(ctx)
    ids = (own + [_BOGUS_TRACKER + i for i in range(11)])[:11]
    session = await open_session(ctx)
    request = {"type": "iot_monitor", "target": {"type": "selected", "tracker_ids": ids}}
    await session.send({"action": "subscribe", "hash": value, "requests": [request]})
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    await session.close()
    return Outcome(
        _is("error")(reply) and _error_code(reply) == 7,
        f"iot_monitor of 11 trackers answered {reply!r:.200}",
    )


@server_probe("itrack.actions.hash-required")
async def hash_required(ctx: Ctx) -> Outcome:
    session = await open_session(ctx)
    findings = Findings()
    requests = [{"type": "state", "trackers": [1]}]

    async def refused(label: str, action: dict[str, Any], codes: tuple[int, ...] = (3,)) -> None:
        await session.send(action)
        reply = await session.wait(_is_reply, ctx.options.reply_wait)
        wanted = _SUBSCRIBE if action.get("action") == "subscribe" else _UNSUBSCRIBE
        findings.expect(
            _is("error", wanted)(reply) and _error_code(reply) in codes,
            f"{label} drew {reply!r:.160}, not an error with code {' or '.join(map(str, codes))}",
        )

    for verb in ("subscribe", "unsubscribe"):
        await refused(f"{verb} with no hash", {"action": verb, "requests": requests})
        await refused(
            f"{verb} with a 5-character hash",
            {"action": verb, "hash": "abcde", "requests": requests},
        )
    if ctx.credentials.get("login") is not None:
        # A valid action first: the connection must not remember its hash for the next ones.
        value = await session_hash(ctx)
        ids = (await trackers(ctx))[:1]
        await session.send(_subscribe_state(value, ids))
        reply = await session.wait(_is_reply, ctx.options.reply_wait)
        findings.expect(
            _is("response", _SUBSCRIBE)(reply), f"a valid subscribe drew {reply!r:.160}"
        )
        mine = [{"type": "state", "trackers": ids}]
        for verb in ("subscribe", "unsubscribe"):
            await refused(
                f"{verb} with no hash after a valid subscribe",
                {"action": verb, "requests": mine},
            )
            await refused(
                f"{verb} with an unknown hash after a valid subscribe",
                {"action": verb, "hash": secrets.token_hex(16), "requests": mine},
                (3, 4),
            )
    else:
        findings.note("without --login the kit did not try actions after a valid one")
    await session.close()
    return findings.outcome()


@server_probe("itrack.errors.bad-params")
async def bad_params(ctx: Ctx) -> Outcome:
    value = await session_hash(ctx)
    session = await open_session(ctx)
    findings = Findings()
    for requests in (
        [{"type": "state", "trackers": ["a"]}],
        [{"type": "no_such_type", "trackers": [1]}],
        [{"type": "state_batch", "target": {"type": "nobody"}}],
        [{"type": "state_batch", "target": {"type": "all"}, "rate_limit": "soon"}],
    ):
        await session.send({"action": "subscribe", "hash": value, "requests": requests})
        reply = await session.wait(_is_reply, ctx.options.reply_wait)
        findings.expect(
            _is("error")(reply) and _error_code(reply) == 7,
            f"{requests!r} drew {reply!r:.160}, not an error with code 7",
        )
    await session.close()
    return findings.outcome()


@server_probe("itrack.errors.wrong-hash")
async def wrong_hash(ctx: Ctx) -> Outcome:
    session = await open_session(ctx)
    findings = Findings()
    for verb in ("subscribe", "unsubscribe"):
        await session.send(
            {"action": verb, "hash": secrets.token_hex(16),
             "requests": [{"type": "state", "trackers": [1]}]}
        )  # fmt: skip
        reply = await session.wait(_is_reply, ctx.options.reply_wait)
        wanted = _SUBSCRIBE if verb == "subscribe" else _UNSUBSCRIBE
        findings.expect(
            _is("error", wanted)(reply) and _error_code(reply) in (3, 4),
            f"{verb} with an unknown hash drew {reply!r:.160}, not an error with code 3 or 4",
        )
    follow = await session.gather(ctx.options.settle)
    await session.close()
    findings.expect(not _events(follow, "state"), "state events followed for an unknown hash")
    return findings.outcome()


@server_probe("itrack.errors.bad-json")
async def bad_json(ctx: Ctx) -> Outcome:
    value = await session_hash(ctx)
    ids = (await trackers(ctx))[:1]
    session = await open_session(ctx)
    findings = Findings()
    for frame in ("this is not json", "[1,2,3]", _compact({"action": "dance", "hash": value})):
        await session.send(frame)
        reply = await session.wait(_is_reply, ctx.options.reply_wait)
        findings.expect(
            _is("error", "null")(reply) and _error_code(reply) == 5,
            f"{frame!r} drew {reply!r:.160}, not an error with action null and code 5",
        )
    await session.send(_subscribe_state(value, ids))
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    findings.expect(
        _is("response", _SUBSCRIBE)(reply), f"a valid subscribe then drew {reply!r:.160}"
    )
    await session.close()
    return findings.outcome()


@server_probe("itrack.responses.tracker-statuses")
async def tracker_statuses(ctx: Ctx) -> Outcome:
    value = await session_hash(ctx)
    own = (await trackers(ctx))[0]
    session = await open_session(ctx)
    await session.send(_subscribe_state(value, [own, _BOGUS_TRACKER]))
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    await session.close()
    # A state_batch of the unknown tracker alone: nothing about it, not even empty batches.
    nothing = await open_session(ctx)
    target = {"type": "selected", "tracker_ids": [_BOGUS_TRACKER]}
    request = {"type": "state_batch", "target": target, "rate_limit": "1s"}
    await nothing.send({"action": "subscribe", "hash": value, "requests": [request]})
    await nothing.wait(_is_reply, ctx.options.reply_wait)
    batches = _events(await nothing.gather(max(ctx.options.settle, 1.5)), "state_batch")
    await nothing.close()
    data = reply.get("data") if isinstance(reply, dict) else None
    entry = data.get("state") if isinstance(data, dict) else None
    statuses = entry.get("value") if isinstance(entry, dict) else None
    if not isinstance(statuses, dict):
        return Outcome(False, f"no statuses in {reply!r:.200}")
    findings = Findings()
    findings.expect(
        statuses.get(str(own)) in ("normal", "blocked", "disallowed"),
        f"own tracker {own} is {statuses.get(str(own))!r}",
    )
    findings.expect(
        statuses.get(str(_BOGUS_TRACKER)) == "unknown",
        f"non-existent tracker {_BOGUS_TRACKER} is {statuses.get(str(_BOGUS_TRACKER))!r}",
    )
    findings.expect(
        not batches,
        f"{len(batches)} state_batch event(s) for a subscription of non-existent tracker "
        f"{_BOGUS_TRACKER} alone: {batches[:1]!r:.120}",
    )
    return findings.outcome()


async def _one_tracker(ctx: Ctx) -> tuple[ITrackSession, str, int, int | None]:
    """A session subscribed to the state of one tracker, and that tracker's source id (from
    the state event that follows the response, when one came)."""
    value = await session_hash(ctx)
    own = (await trackers(ctx))[0]
    session = await open_session(ctx)
    await session.send(_subscribe_state(value, [own]))
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    if not _is("response", _SUBSCRIBE)(reply):
        await session.close()
        raise Blocked(
            "itrack.actions.subscribe-state",
            f"a state subscribe of tracker {own} answered {reply!r:.200}",
        )
    first = await session.wait(_is("event"), ctx.options.reply_wait)
    data = first.get("data") if isinstance(first, dict) else None
    source = data.get("source_id") if isinstance(data, dict) else None
    return session, value, own, source if type(source) is int else None


def _unsubscribe_time(options: ProbeOptions) -> float:
    return 6 * options.reply_wait + 3 * max(options.push_wait, 2.2)


@server_probe("itrack.responses.unsubscribe", extra_time=_unsubscribe_time)
async def unsubscribe(ctx: Ctx) -> Outcome:
    session, value, own, source = await _one_tracker(ctx)
    request = {"type": "state", "trackers": [own]}
    await session.send({"action": "unsubscribe", "hash": value, "requests": [request]})
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    after = await session.gather(ctx.options.push_wait)
    await session.close()
    findings = Findings()
    findings.expect(
        isinstance(reply, dict)
        and _is("response", _UNSUBSCRIBE)(reply)
        and isinstance(reply.get("data"), list)
        and own in reply["data"],
        f"unsubscribe of {own} answered {reply!r:.200}",
    )
    leaked = [
        e
        for e in _events(after, "state")
        if isinstance(e.get("data"), dict)
        and (source is None or e["data"].get("source_id") == source)
    ]
    findings.expect(not leaked, f"{len(leaked)} state event(s) after unsubscribing")
    mine = await trackers(ctx)
    if len(mine) >= 2:
        await _unsubscribe_batches(ctx, value, mine, findings)
    else:
        findings.note("one tracker only: state_batch unsubscribes not tried")
    return findings.outcome()


async def _sources(ctx: Ctx, session: ITrackSession, value: str, ids: list[int]) -> list[int]:
    """Subscribe ``session`` to the state of ``ids`` one at a time; the source id of each
    (from the current state after its response), -1 where none came."""
    found: list[int] = []
    for tracker in ids:
        await session.send(_subscribe_state(value, [tracker]))
        await session.wait(_is_reply, ctx.options.reply_wait)

        def new(message: Any) -> bool:
            return (
                bool(_events([message], "state"))
                and _sources_in(message)[:1] != []
                and (_sources_in(message)[0] not in found)
            )

        first = await session.wait(new, ctx.options.reply_wait)
        source = _sources_in(first)[0] if first is not None else None
        found.append(source if type(source) is int else -1)
    return found


def _batched(messages: list[Any]) -> set[object]:
    """The sources the ``state_batch`` events among ``messages`` carry."""
    return {s for m in _events(messages, "state_batch") for s in _sources_in(m)}


async def _unsubscribe_batches(ctx: Ctx, value: str, mine: list[int], findings: Findings) -> None:
    """State_batch subscriptions of selected trackers, added to and taken away in parts:
    each unsubscribe answers the ids it removed, and only those trackers stop.  A witness
    subscribed to their states tells which of them moved meanwhile."""
    a, b, *rest = mine[:3]
    witness = await open_session(ctx)
    sa, sb, *others = await _sources(ctx, witness, value, [a, b, *rest])
    moved: list[Any] = []

    async def watch(duration: float) -> list[Any]:
        async def keep() -> None:
            moved.extend(_events(await witness.gather(duration), "state"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep)
            return await session.gather(duration)

    def moving(source: int) -> bool:
        return source in {s for m in moved for s in _sources_in(m)}

    def selected(*ids: int) -> dict[str, Any]:
        return {"type": "state_batch", "target": {"type": "selected", "tracker_ids": list(ids)},
                "rate_limit": "1s"}  # fmt: skip

    session = await open_session(ctx)
    window = max(ctx.options.push_wait, 2.2)
    for requests in ([selected(a), {"type": "state", "trackers": [a]}], [selected(b)]):
        await session.send({"action": "subscribe", "hash": value, "requests": requests})
        reply = await session.wait(_is_reply, ctx.options.reply_wait)
        findings.expect(
            _is("response", _SUBSCRIBE)(reply), f"subscribing {requests!r:.120} drew {reply!r:.160}"
        )
    moved.clear()
    pushed = await watch(window)
    if moving(sb):
        findings.expect(
            sb in _batched(pushed),
            f"tracker {b}, added by a second state_batch subscribe, moved but was in no batch",
        )
    for tracker, source in zip(rest, others, strict=True):
        findings.expect(
            source not in _batched(pushed), f"tracker {tracker}, never subscribed, was batched"
        )
    # The first request unsubscribes what was never subscribed: it must not stop the others.
    never = {"type": "readings_batch", "target": {"type": "selected", "tracker_ids": [a]}}
    # The batch request names a tracker it never covered too: that one is no removed id.
    requests = [never, {"type": "state", "trackers": [a]}, selected(a, *rest)]
    await session.send({"action": "unsubscribe", "hash": value, "requests": requests})
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    removed = reply.get("data") if _is("response", _UNSUBSCRIBE)(reply) and reply else None
    findings.expect(
        isinstance(removed, list) and a in removed and not {b, *rest} & set(removed),
        f"unsubscribing tracker {a} from state and state_batch answered {reply!r:.200}, not "
        f"data listing {a} (and not {[b, *rest]}, never subscribed or still subscribed)",
    )
    moved.clear()
    pushed = await watch(window)
    findings.expect(
        sa not in _batched(pushed) and not any(_sources_in(m) == [sa] for m in pushed),
        f"tracker {a} was still pushed after its unsubscribe",
    )
    if moving(sb):
        findings.expect(
            sb in _batched(pushed), f"tracker {b} moved but left no batch after {a} was removed"
        )
    await session.send(
        {"action": "unsubscribe", "hash": value, "requests": [{"type": "state_batch",
         "target": {"type": "all"}}]}
    )  # fmt: skip
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    removed = reply.get("data") if _is("response", _UNSUBSCRIBE)(reply) and reply else None
    findings.expect(
        isinstance(removed, list) and b in removed and a not in removed,
        f"unsubscribing state_batch for all answered {reply!r:.200}, not data listing {b} "
        f"(and not {a}, removed before)",
    )
    pushed = await session.gather(window)
    findings.expect(
        not _events(pushed, "state_batch"), "state_batch events after unsubscribing it for all"
    )
    await session.close()
    await witness.close()
    findings.note("state_batch of selected trackers: added to, and unsubscribed in parts")


@server_probe("itrack.events.state-on-change")
async def state_on_change(ctx: Ctx) -> Outcome:
    session, value, own, source = await _one_tracker(ctx)
    mark = len(session.seen)
    # A state_batch of the same tracker beside it tells whether the tracker moved.
    witness = await open_session(ctx)
    request = {"type": "state_batch", "target": {"type": "selected", "tracker_ids": [own]},
               "rate_limit": "1s"}  # fmt: skip
    await witness.send({"action": "subscribe", "hash": value, "requests": [request]})
    await witness.wait(_is_reply, ctx.options.reply_wait)
    initial = await witness.wait(_is("event"), ctx.options.settle)
    window = max(ctx.options.push_wait, 1.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.gather, window)
        batches = _events(await witness.gather(window), "state_batch")
    after = session.seen[mark:]
    await witness.close()
    await session.close()
    moved = [b for b in batches if b is not initial and source in _sources_in(b)]
    states = [e for e in _events(after, "state") if isinstance(e.get("data"), dict)]
    others = [e for e in states if e["data"].get("source_id") != source]
    known = ("state", "state_batch", "lifecycle", "logout", "readings_batch", "iot_monitor")
    strange = sorted({str(m.get("event")) for m in session.seen
                      if _is("event")(m) and m.get("event") not in known})  # fmt: skip
    if strange and not states:
        return Outcome(False, f"events named {strange[:3]} came, never state")
    if source is None:
        return Outcome(None, "no initial state event tells the tracker's source id")
    if others:
        return Outcome(False, f"state events about other sources: {others[0]!r:.160}")
    if not states and moved:
        return Outcome(False, f"tracker {own} moved (its state_batch says so), no state event came")
    if not states:
        return Outcome(None, f"tracker {own} did not change within {window} s")
    return Outcome(True, f"{len(states)} change(s) of tracker {own} pushed")


# -- §3: what the operator does (block, unblock, end a session) --------------------------------


def _lifecycle(name: str, source: int | None) -> Callable[[Any], bool]:
    def accept(message: Any) -> bool:
        data = message.get("data") if isinstance(message, dict) else None
        return (
            _is("event")(message)
            and message.get("event") == "lifecycle"
            and isinstance(data, dict)
            and data.get("lifecycle_event") == name
            and (source is None or data.get("source_id") == source)
        )

    return accept


def _state_of(source: int | None) -> Callable[[Any], bool]:
    def accept(message: Any) -> bool:
        data = message.get("data") if isinstance(message, dict) else None
        return (
            _is("event")(message)
            and message.get("event") == "state"
            and isinstance(data, dict)
            and (source is None or data.get("source_id") == source)
        )

    return accept


@server_probe("itrack.events.lifecycle", "itrack.events.blocked")
async def operator_block(ctx: Ctx) -> dict[str, Outcome]:
    operator = ctx.needs_operator("block and unblock a tracker")
    session, value, own, source = await _one_tracker(ctx)
    # Who subscribed the tracker by state_batch or readings_batch gets its lifecycle too.
    batched: dict[str, tuple[ITrackSession, Any]] = {}
    for kind in ("state_batch", "readings_batch"):
        other = await open_session(ctx)
        target = {"type": "selected", "tracker_ids": [own]}
        request = {"type": kind, "target": target, "rate_limit": "1s"}
        await other.send({"action": "subscribe", "hash": value, "requests": [request]})
        batched[kind] = (other, await other.wait(_is_reply, ctx.options.reply_wait))
    failures: list[str] = []

    async def act(verb: str) -> None:
        try:
            await getattr(operator, verb)(own)
        except NotImplementedError as exc:
            raise Unsupported(f"the operator cannot {verb} a tracker: {exc}") from None
        except Exception as exc:  # the subject failed the action: judge what it sent
            failures.append(f"the operator's {verb} of tracker {own} failed ({exc!r:.120})")

    blocked = False
    try:
        await act("block")
        blocked = True
        block_event = await session.wait(_lifecycle("block", source), ctx.options.reply_wait)
        during = await session.gather(ctx.options.push_wait)
        await act("unblock")
        blocked = False
        unblock_event = await session.wait(_lifecycle("unblock", source), ctx.options.reply_wait)
        current = await session.wait(_state_of(source), ctx.options.reply_wait)
    finally:
        if blocked:
            with trio.CancelScope(shield=True), trio.move_on_after(ctx.options.reply_wait):
                await operator.unblock(own)
    lifecycle = Findings()
    for kind, (other, reply) in batched.items():
        announced = await other.wait(_lifecycle("block", source), ctx.options.settle)
        await other.close()
        if not _is("response", _SUBSCRIBE)(reply):
            # A readings_batch may need a sensor_type the kit does not know.
            lifecycle.expect(kind != "state_batch", f"a {kind} subscribe drew {reply!r:.160}")
            lifecycle.note(f"a {kind} subscribe drew {reply!r:.80}")
            continue
        lifecycle.expect(
            announced is not None,
            f"no lifecycle block event for tracker {own} on its {kind} subscription",
        )
    await session.close()
    lifecycle.expect(block_event is not None, f"no lifecycle block event for tracker {own}")
    lifecycle.expect(unblock_event is not None, f"no lifecycle unblock event for tracker {own}")
    lifecycle.note(f"block and unblock of tracker {own} announced")
    if lifecycle.problems:
        lifecycle.problems.extend(failures)
    held = Findings()
    leaked = [m for m in during if _state_of(source)(m)]
    held.expect(not leaked, f"{len(leaked)} state event(s) of tracker {own} while blocked")
    held.expect(current is not None, f"no current state of tracker {own} after unblocking")
    held.note("no state while blocked; the current state followed the unblock")
    if failures and not (lifecycle.problems or held.problems):
        raise ProbeError("; ".join(failures))  # nothing amiss on the wire: no verdict
    if held.problems:
        held.problems.extend(failures)
    return {"itrack.events.lifecycle": lifecycle.outcome(), "itrack.events.blocked": held.outcome()}


@server_probe("itrack.events.logout")
async def operator_logout(ctx: Ctx) -> Outcome:
    operator = ctx.needs_operator("end a user's sessions")
    login = ctx.credential("login")
    session, value, own, _ = await _one_tracker(ctx)
    # Another tenant's subscribed session is no part of the ended one: no logout for it.
    bystander: ITrackSession | None = None
    if ctx.credentials.get("second-login") is not None:
        second = await _second_hash(ctx)
        bystander = await open_session(ctx)
        theirs = await _normal_trackers(ctx, second)
        await bystander.send(_subscribe_state(second, theirs[:1]))
        await bystander.wait(_is_reply, ctx.options.reply_wait)
    try:
        await operator.end_sessions(login)
    except NotImplementedError as exc:
        await session.close()
        raise Unsupported(f"the operator cannot end a session: {exc}") from None
    finally:
        ctx.shared.pop("itrack.hash", None)  # the run's own hash died with the session
    bye = await session.wait(
        lambda m: _is("event")(m) and m.get("event") == "logout", ctx.options.reply_wait
    )
    after = await session.gather(ctx.options.push_wait)
    await session.close()
    again = await open_session(ctx)
    await again.send(_subscribe_state(value, [own]))
    reply = await again.wait(_is_reply, ctx.options.reply_wait)
    await again.close()
    findings = Findings()
    if bystander is not None:
        wrong = [m for m in bystander.seen if _is("event")(m) and m.get("event") == "logout"]
        wrong += _events(await bystander.gather(ctx.options.settle), "logout")
        await bystander.close()
        findings.expect(not wrong, "the other tenant's session got a logout event too")
    findings.expect(
        isinstance(bye, dict) and bye.get("data") == "session closed",
        f"no logout event with data 'session closed' (got {bye!r:.160})",
    )
    states = [m for m in after if _state_of(None)(m)]
    findings.expect(not states, f"{len(states)} state event(s) after the logout event")
    findings.expect(
        _is("error")(reply) and _error_code(reply) in (3, 4),
        f"the ended session's hash then drew {reply!r:.160}, not an error with code 3 or 4",
    )
    return findings.outcome()


# -- tenants -----------------------------------------------------------------------------------


async def _second_hash(ctx: Ctx) -> str:
    login = ctx.credential("second-login")
    status, data = await _auth(ctx, login, ctx.credential("second-password"))
    value = data.get("hash") if isinstance(data, dict) and data.get("success") is True else None
    if not isinstance(value, str):
        raise ProbeError(f"user/auth refused the second login (HTTP {status})")
    return value


def _sources_in(message: Any) -> list[object]:
    """The source ids a state or state_batch event carries."""
    if not _is("event")(message):
        return []
    data = message.get("data")
    states = data if isinstance(data, list) else [data]
    return [s.get("source_id") for s in states if isinstance(s, dict)]


@server_probe("itrack.tenants.isolation")
async def tenant_isolation(ctx: Ctx) -> Outcome:
    value = await session_hash(ctx)
    mine = await trackers(ctx)
    second = await _second_hash(ctx)
    theirs = await _normal_trackers(ctx, second)
    # The second tenant's own view gives its trackers' source ids.
    own_view = await open_session(ctx)
    await own_view.send(_subscribe_state(second, theirs))
    await own_view.wait(_is_reply, ctx.options.reply_wait)
    shown = await own_view.gather(ctx.options.settle)
    await own_view.close()
    their_sources = {source for m in shown for source in _sources_in(m) if source is not None}
    findings = Findings()
    shared = sorted(set(mine) & set(theirs))
    findings.expect(not shared, f"trackers {shared[:5]} are normal for both accounts")
    session = await open_session(ctx)
    await session.send(_subscribe_state(value, theirs))
    reply = await session.wait(_is_reply, ctx.options.reply_wait)
    batch = {"type": "state_batch", "target": {"type": "all"}, "rate_limit": "1s"}
    await session.send({"action": "subscribe", "hash": value, "requests": [batch]})
    batch_reply = await session.wait(_is_reply, ctx.options.reply_wait)
    pushed = await session.gather(max(ctx.options.push_wait, 2.2))
    await session.close()
    data = reply.get("data") if isinstance(reply, dict) else None
    entry = data.get("state") if isinstance(data, dict) else None
    statuses = entry.get("value", entry) if isinstance(entry, dict) else None
    if _is("response")(reply) and isinstance(statuses, dict):
        normal = [k for k, v in statuses.items() if v == "normal"]
        findings.expect(not normal, f"the other tenant's trackers {normal[:5]} answered normal")
    else:
        findings.expect(_is("error")(reply), f"subscribing them drew {reply!r:.160}")
    data = batch_reply.get("data") if isinstance(batch_reply, dict) else None
    covered = data.get("state_batch") if isinstance(data, dict) else None
    covered = covered.get("value", covered) if isinstance(covered, dict) else {}
    listed = sorted(int(k) for k in covered if str(k).isdigit() and int(k) in set(theirs))
    findings.expect(not listed, f"state_batch for all covers the other tenant's {listed[:5]}")
    leaked = [m for m in pushed if set(_sources_in(m)) & their_sources]
    findings.expect(
        not leaked, f"{len(leaked)} push(es) about the other tenant: {leaked[:1]!r:.160}"
    )
    findings.note(
        f"{len(theirs)} tracker(s) of the other tenant: not normal, not in state_batch for all, "
        f"never pushed (watched {len(their_sources)} source(s))"
    )
    return findings.outcome()
