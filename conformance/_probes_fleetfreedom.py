"""Server probes of the FleetFreedom / Trak-iT protocol (``docs/protocols/fleetfreedom.md``).

The subject URL is the WebSocket endpoint (``wss://socket.example/``); the kit adds the
ghostId itself.  Cases about a logged-in session need ``--username``/``--password``; the
account's company is read from the ``user`` of ``loginResponse``.  Push cases watch the
server's own pushes (a moving fleet) for ``push_wait`` seconds; a merge probe sends a stale
version on purpose, which a conforming server refuses without changing anything.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import trio

from ._probes import (
    Blocked,
    Ctx,
    Findings,
    Item,
    Outcome,
    Peer,
    ProbeError,
    Unsupported,
    server_probe,
    unsupported,
)

__all__ = ["FleetFreedomSession", "parse_line"]

_NAME = re.compile(r"[a-z][A-Za-z0-9]*")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_DATETIME_LIKE = re.compile(r"\d{4}-\d\d-\d\dT")
_SESSION_FIELDS = ("user", "sessionPolicy", "passwordPolicy")
_USER_AGENT = "trackwire-conformance"
_PUSH_SUFFIXES = ("Merged", "Deleted", "Suspended")

Line = tuple[str, Any, str]
"""A frame as the kit reads it: name, parsed body (``None`` if not JSON), raw text."""


def parse_line(item: Item) -> Line:
    """Split a frame at its first space (a bare name has an empty body)."""
    if isinstance(item, bytes):
        return "", None, item.hex()
    name, space, rest = item.partition(" ")
    if not space:
        return name, {}, item
    try:
        return name, json.loads(rest), item
    except ValueError:
        return name, None, item


def _compact(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _loose_whitespace(text: str) -> bool:
    """Whether a JSON text has whitespace between tokens (outside strings)."""
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in " \t\r\n":
            return True
    return False


def _datetimes(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string that looks like an ISO datetime, with where it was."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _datetimes(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _datetimes(item, f"{path}[{index}]")
    elif isinstance(value, str) and _DATETIME_LIKE.match(value):
        found.append((path, value))
    return found


_KEEPALIVE = 5 * 60.0
"""A session must outlive the client's keep-alive silence (spec §2: noop once about 5 minutes
have passed in silence)."""


def _seconds(value: object) -> float | None:
    """A wire datetime (2018-04-12T16:13:00.000Z) as POSIX seconds, or ``None``."""
    if not (isinstance(value, str) and _DATETIME.fullmatch(value)):
        return None
    stamp = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _session_expiry(findings: Findings, name: str, body: dict[str, Any]) -> None:
    """A logged-in answer's expiry lies after serverTime by the session's idle timeout: the
    policy's expireTimeout (minutes) when it names one, else at least the keep-alive silence."""
    start, end = _seconds(body.get("serverTime")), _seconds(body.get("expiry"))
    if start is None or end is None:
        findings.expect(False, f"{name} serverTime/expiry are no datetimes: {body!r:.160}")
        return
    policy = body.get("sessionPolicy")
    minutes = policy.get("expireTimeout") if isinstance(policy, dict) else None
    if isinstance(minutes, (int, float)) and not isinstance(minutes, bool) and minutes > 0:
        findings.expect(
            abs(end - start - minutes * 60.0) <= 60.0,
            f"{name} expiry is {end - start:.0f} s after serverTime, the policy's expireTimeout "
            f"{minutes} min",
        )
    else:
        findings.expect(
            end - start >= _KEEPALIVE,
            f"{name} expiry is {end - start:.0f} s after serverTime: the session dies before "
            "the client's 5-minute keep-alive",
        )
    for field_name in _SESSION_FIELDS:
        findings.expect(
            isinstance(body.get(field_name), dict),
            f"{name} {field_name} {body.get(field_name)!r:.60} is no JSON object",
        )


class FleetFreedomSession:
    """One connection: the ``connectionResponse`` that opened it, commands with their
    answers, and every frame seen (pushes included, in :attr:`seen`)."""

    def __init__(self, ctx: Ctx, peer: Peer, first: Line | None) -> None:
        self.ctx = ctx
        self.peer = peer
        self.first = first
        self.seen: list[Line] = [] if first is None else [first]
        self._req_id = 100

    @property
    def connection_response(self) -> dict[str, Any]:
        first = self.first
        if first is None or first[0] != "connectionResponse" or not isinstance(first[1], dict):
            raise Unsupported(
                f"the connection did not open with connectionResponse: {first!r:.160}"
            )
        return first[1]

    def next_id(self) -> int:
        self._req_id += 1
        return self._req_id

    async def send(self, name: str, body: dict[str, Any]) -> None:
        await self.peer.send(f"{name} {_compact(body)}")

    async def wait(self, accept: Callable[[Line], bool], timeout: float) -> Line | None:
        deadline = trio.current_time() + timeout
        while True:
            item = await self.peer.recv(max(0.0, deadline - trio.current_time()))
            if item is None:
                return None
            line = parse_line(item)
            self.seen.append(line)
            if accept(line):
                return line

    async def gather(self, duration: float) -> list[Line]:
        got: list[Line] = []

        def keep(line: Line) -> bool:
            got.append(line)
            return False

        await self.wait(keep, duration)
        return got

    async def reply_to(self, name: str, req_id: object) -> dict[str, Any] | None:
        """The response to command ``name`` carrying ``req_id`` (``None``: the first
        ``<name>Response`` or ``unknownCommandResponse``)."""
        wanted = (name + "Response", "unknownCommandResponse")

        def accept(line: Line) -> bool:
            body = line[1]
            if line[0] not in wanted or not isinstance(body, dict):
                return False
            return req_id is None or body.get("reqId") == req_id

        line = await self.wait(accept, self.ctx.options.reply_wait)
        return None if line is None else line[1]

    async def call(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Send a command with a fresh reqId and wait for its response."""
        req_id = self.next_id()
        await self.send(name, {**(body or {}), "reqId": req_id})
        return await self.reply_to(name, req_id)

    async def login(self) -> dict[str, Any]:
        """Log in with the run's credentials; :class:`ProbeError` when refused."""
        body = await self.call(
            "login",
            {
                "username": self.ctx.credential("username"),
                "password": self.ctx.credential("password"),
                "userAgent": _USER_AGENT,
            },
        )
        return _login_accepted(body)

    async def close(self) -> None:
        await self.peer.close()


_CODE_CASE = "fleetfreedom.framing.error-code-number"


def _login_accepted(
    body: dict[str, Any] | None, who: str = "the given credentials"
) -> dict[str, Any]:
    """``body`` when it is a successful ``loginResponse``; otherwise :class:`ProbeError`, or
    :class:`Blocked` by the error-code case when ``errorCode`` is not a JSON integer (a
    ``"0"`` string: the login may have worked, but no client can tell)."""
    if body is None:
        raise ProbeError(f"no loginResponse to the login with {who}")
    code = body.get("errorCode")
    if type(code) is not int:
        raise Blocked(
            _CODE_CASE,
            f"loginResponse errorCode {code!r} is not a JSON integer, so no login can be judged",
        )
    if code != 0:
        raise Blocked(
            "fleetfreedom.session.login",
            f"the login with {who} was refused: errorCode {code}, message "
            f"{str(body.get('message'))[:120]!r} (check the credentials, or the server's login)",
        )
    return body


def _url(ctx: Ctx, ghost: str | None, how: str) -> str:
    base = ctx.url.rstrip("/")
    if ghost is None:
        return base + "/"
    if how == "query":
        return f"{base}/?ghostId={ghost}"
    if how == "subprotocol":
        return base + "/"
    return f"{base}/{ghost}"


async def connect(ctx: Ctx, ghost: str | None = None, how: str = "path") -> FleetFreedomSession:
    """Open a connection (with ``ghost`` in the path, query or subprotocol) and read its
    first frame."""
    subprotocols = [ghost] if ghost is not None and how == "subprotocol" else []
    peer = await ctx.open(_url(ctx, ghost, how), subprotocols=subprotocols)
    item = await peer.recv(ctx.options.reply_wait)
    return FleetFreedomSession(ctx, peer, None if item is None else parse_line(item))


async def logged_in(ctx: Ctx) -> tuple[FleetFreedomSession, dict[str, Any], int]:
    """A logged-in connection, its loginResponse and the user's company."""
    ctx.credential("username")
    session = await connect(ctx)
    answer = await session.login()
    user = answer.get("user")
    company = user.get("company") if isinstance(user, dict) else None
    if isinstance(company, dict):
        company = company.get("id")
    if type(company) is not int:
        await session.close()
        raise Unsupported(f"loginResponse names no company for the user: {user!r:.160}")
    return session, answer, company


def _code(body: dict[str, Any] | None) -> object:
    return None if body is None else body.get("errorCode")


def _pushes(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line[0].endswith(_PUSH_SUFFIXES)]


def _company_of(line: Line) -> object:
    body = line[1]
    if not isinstance(body, dict):
        return None
    if line[0] == "companyDeleted" or line[0].startswith("company"):
        return body.get("parent", body.get("company", body.get("id")))
    company = body.get("company")
    return company.get("id") if isinstance(company, dict) else company


def _is_guid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


# -- §1: framing, judged over a whole ordinary session ----------------------------------------


@server_probe(
    "fleetfreedom.framing.text-frames",
    "fleetfreedom.framing.line-format",
    "fleetfreedom.framing.compact-json",
    "fleetfreedom.framing.error-code-number",
    "fleetfreedom.session.datetimes",
    "fleetfreedom.session.connection-response-first",
    "fleetfreedom.session.connection-response-fields",
)
async def session_walk(ctx: Ctx) -> dict[str, Outcome]:
    session = await connect(ctx)
    first = session.first
    await session.call("noop")
    await session.call("getSessionDetails")
    answer: dict[str, Any] | None = None
    if ctx.credentials.get("username") is not None:
        try:
            answer = await session.login()
        except Blocked:
            answer = None  # judged below, as the error-code case's own finding
    if answer is not None:
        await session.call("getSessionDetails")
        user = answer.get("user")
        company = user.get("company") if isinstance(user, dict) else None
        if type(company) is int:
            await session.call("getAssetsList", {"company": {"id": company}})
            await session.call(
                "subscribe", {"company": {"id": company}, "subscriptionTypes": ["assetAdvanced"]}
            )
            await session.gather(ctx.options.settle)
        await session.call("logout")
    binary = session.peer.binary_frames
    await session.close()
    lines = [line for line in session.seen if line[0] or line[1] is not None]
    form, compact, codes, times = Findings(), Findings(), Findings(), Findings()
    for name, body, raw in lines:
        shape = (
            _NAME.fullmatch(name) is not None
            and raw[len(name) : len(name) + 1] == " "
            and isinstance(body, dict)
        )
        form.expect(shape, f"not <name> <JSON object>: {raw[:80]!r}")
        if shape:
            compact.expect(not _loose_whitespace(raw[len(name) + 1 :]), f"loose JSON: {raw[:80]!r}")
        if isinstance(body, dict) and (name.endswith("Response")):
            code = body.get("errorCode")
            codes.expect(type(code) is int, f"{name} errorCode {code!r} is not a JSON integer")
        for where, value in _datetimes(body):
            times.expect(_DATETIME.fullmatch(value), f"{name} {where} {value!r}")
    results = {
        "fleetfreedom.framing.text-frames": Outcome(
            binary == 0, f"{binary} binary frame(s)" if binary else f"{len(lines)} text frames"
        ),
        "fleetfreedom.framing.line-format": form.outcome(),
        "fleetfreedom.framing.compact-json": compact.outcome(),
        "fleetfreedom.framing.error-code-number": codes.outcome(),
        "fleetfreedom.session.datetimes": times.outcome(),
    }
    opened = first is not None and first[0] == "connectionResponse"
    results["fleetfreedom.session.connection-response-first"] = Outcome(
        opened,
        "connectionResponse came first, unasked" if opened else f"first frame {first!r:.160}",
    )
    fields = Findings()
    if opened and first is not None and isinstance(first[1], dict):
        body = first[1]
        fields.expect(type(body.get("errorCode")) is int, f"errorCode {body.get('errorCode')!r}")
        fields.expect(isinstance(body.get("message"), str), "no message")
        fields.expect(isinstance(body.get("serverTime"), str), "no serverTime")
        fields.expect(_is_guid(body.get("ghostId")), f"ghostId {body.get('ghostId')!r} no GUID")
        fields.expect(isinstance(body.get("expiry"), str), "no expiry")
        start, end = _seconds(body.get("serverTime")), _seconds(body.get("expiry"))
        fields.expect(
            start is None or end is None or end >= start,
            f"expiry {body.get('expiry')!r} is before serverTime {body.get('serverTime')!r}",
        )
        results["fleetfreedom.session.connection-response-fields"] = fields.outcome()
    else:
        results["fleetfreedom.session.connection-response-fields"] = unsupported(
            "no connectionResponse to judge"
        )
    return results


@server_probe("fleetfreedom.framing.split-at-first-space")
async def split_at_first_space(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    frame = 'login {"username": "a b", "password": "c d", "userAgent": "x y", "reqId": 41}'
    await session.peer.send(frame)
    answer = await session.reply_to("login", None)
    await session.close()
    return Outcome(
        answer is not None and _code(answer) not in (3, 61, None),
        f"a login body with spaces drew loginResponse {answer!r:.160}",
    )


# -- §3: requests and responses ----------------------------------------------------------------


@server_probe("fleetfreedom.commands.req-id-echo")
async def req_id_echo(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    findings = Findings()
    for req_id in (7, "x"):
        await session.send("noop", {"reqId": req_id})
        line = await session.wait(lambda line: line[0] == "noopResponse", ctx.options.reply_wait)
        body = None if line is None else line[1]
        findings.expect(
            isinstance(body, dict) and body.get("reqId") == req_id,
            f"noop with reqId {req_id!r} drew {body!r:.120}",
        )
    await session.close()
    return findings.outcome()


@server_probe("fleetfreedom.commands.no-req-id-when-absent")
async def no_req_id(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    await session.send("noop", {})
    answer = await session.reply_to("noop", None)
    await session.close()
    return Outcome(
        answer is not None and "reqId" not in answer, f"noop {{}} drew noopResponse {answer!r:.120}"
    )


@server_probe("fleetfreedom.commands.unknown-command")
async def unknown_command(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    await session.send("fooBar", {"reqId": 9})
    line = await session.wait(lambda line: line[0].endswith("Response"), ctx.options.reply_wait)
    after = await session.call("noop")
    await session.close()
    findings = Findings()
    body = line[1] if line is not None else None
    findings.expect(
        line is not None
        and line[0] == "unknownCommandResponse"
        and isinstance(body, dict)
        and body.get("reqId") == 9
        and body.get("errorCode") == 61,
        f"fooBar drew {line!r:.160}",
    )
    findings.expect(_code(after) == 0, f"a noop afterwards drew {after!r:.120}")
    return findings.outcome()


@server_probe("fleetfreedom.commands.response-shape")
async def response_shape(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    await session.send("getSessionDetails", {})
    answer = await session.reply_to("getSessionDetails", None)
    await session.close()
    return Outcome(
        answer is not None
        and type(answer.get("errorCode")) is int
        and isinstance(answer.get("message"), str),
        f"getSessionDetails {{}} drew {answer!r:.160}",
    )


@server_probe("fleetfreedom.session.noop")
async def noop(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    req_id = session.next_id()
    await session.send("noop", {"reqId": req_id})
    answer = await session.reply_to("noop", req_id)
    await session.close()
    return Outcome(_code(answer) == 0, f"noop drew noopResponse {answer!r:.120}")


# -- §7: errors --------------------------------------------------------------------------------


@server_probe("fleetfreedom.errors.bad-json")
async def bad_json(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    findings = Findings()
    for frame in ("getCompany {not json", "getCompany [1]"):
        await session.peer.send(frame)
        line = await session.wait(lambda line: line[0].endswith("Response"), ctx.options.reply_wait)
        findings.expect(
            line is not None and line[0] == "getCompanyResponse" and _code(line[1]) == 3,
            f"{frame!r} drew {line!r:.160}",
        )
    after = await session.call("noop")
    findings.expect(_code(after) == 0, f"a noop afterwards drew {after!r:.120}")
    await session.close()
    return findings.outcome()


@server_probe("fleetfreedom.errors.bad-name")
async def bad_name(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    findings = Findings()
    for frame in ("Login {}", '{"a":1}', "%% !"):
        await session.peer.send(frame)
        line = await session.wait(lambda line: line[0].endswith("Response"), ctx.options.reply_wait)
        findings.expect(
            line is not None and line[0] == "unknownCommandResponse" and _code(line[1]) == 61,
            f"{frame!r} drew {line!r:.160}",
        )
    after = await session.call("noop")
    findings.expect(_code(after) == 0, f"a noop afterwards drew {after!r:.120}")
    await session.close()
    return findings.outcome()


@server_probe("fleetfreedom.errors.oversize-line")
async def oversize_line(ctx: Ctx) -> Outcome:
    session = await connect(ctx)
    await session.peer.send('noop {"reqId":1,"pad":"' + "x" * (4 << 20) + '"}')
    line = await session.wait(lambda line: line[0].endswith("Response"), ctx.options.reply_wait)
    refused = line is not None or session.peer.ended.is_set()
    await session.close()
    other = await connect(ctx)
    ok = other.first is not None and other.first[0] == "connectionResponse"
    await other.close()
    findings = Findings()
    findings.expect(refused, "no answer and the connection stayed open after a 4 MiB line")
    findings.expect(ok, "a new connection got no connectionResponse afterwards")
    findings.note(f"4 MiB line: {'closed' if line is None else line[0]}; serving goes on")
    return findings.outcome()


_PAYLOADS = ("company", "asset", "assets", "subscriptions", "merged")


async def _known_ids(ctx: Ctx) -> tuple[int, object]:
    """A real company and asset id to ask for (the user's, when the run has a login)."""
    if ctx.credentials.get("username") is None:
        return 1, 1
    session, _, company = await logged_in(ctx)
    assets = await _assets(session, company)
    await session.close()
    return company, (assets[0].get("id") if assets else 1)


@server_probe("fleetfreedom.errors.not-logged-in", "fleetfreedom.errors.anonymous-refused")
async def not_logged_in(ctx: Ctx) -> dict[str, Outcome]:
    company, asset = await _known_ids(ctx)
    session = await connect(ctx)
    commands: list[tuple[str, dict[str, Any]]] = [
        ("getCompany", {"company": {"id": company}}),
        ("getAsset", {"asset": {"id": asset}}),
        ("getAssetsList", {"company": {"id": company}}),
        ("mergeAsset", {"asset": {"id": asset, "v": [0, 0], "notes": "trackwire anonymous"}}),
        ("getSubscriptionsList", {}),
        ("subscribe", {"company": {"id": company}, "subscriptionTypes": _TYPES}),
    ]
    answers = [(name, await session.call(name, body)) for name, body in commands]
    pushed = _pushes(await session.gather(ctx.options.push_wait))
    await session.close()
    refused, coded = Findings(), Findings()
    for name, answer in answers:
        code = _code(answer)
        payload = [k for k in _PAYLOADS if answer is not None and answer.get(k)]
        refused.expect(
            type(code) is int and code != 0 and not payload,
            f"{name} before login drew {answer!r:.160}",
        )
        coded.expect(code == 8, f"{name} before login drew errorCode {code!r}, not 8")
    refused.expect(not pushed, f"pushed before login: {pushed[:1]!r:.160}")
    refused.note(f"{len(commands)} commands refused before login, nothing pushed")
    return {
        "fleetfreedom.errors.not-logged-in": coded.outcome(),
        "fleetfreedom.errors.anonymous-refused": refused.outcome(),
    }


async def _second_login(ctx: Ctx) -> tuple[FleetFreedomSession, int]:
    username = ctx.credential("second-username")
    session = await connect(ctx)
    body = await session.call(
        "login",
        {"username": username, "password": ctx.credential("second-password"),
         "userAgent": _USER_AGENT},
    )  # fmt: skip
    answer = _login_accepted(body, "the second account")
    user = answer.get("user")
    company = user.get("company") if isinstance(user, dict) else None
    if isinstance(company, dict):
        company = company.get("id")
    if type(company) is not int:
        await session.close()
        raise Unsupported("the second loginResponse names no company for the user")
    return session, company


async def _foreign_findings(
    ctx: Ctx, viewer: FleetFreedomSession, company: int, asset: object, who: str
) -> Findings:
    """What ``viewer`` must not get of ``company`` (another tenant's) and its ``asset``."""
    findings = Findings()
    shown = await viewer.call("getCompany", {"company": {"id": company}})
    body = shown.get("company") if shown is not None else None
    findings.expect(
        _code(shown) != 0 or not (isinstance(body, dict) and body.get("id") == company),
        f"{who}: getCompany of company {company} drew {shown!r:.160}",
    )
    if asset is not None:
        got = await viewer.call("getAsset", {"asset": {"id": asset}})
        findings.expect(
            _code(got) != 0 or not (got is not None and got.get("asset")),
            f"{who}: getAsset of the other company's asset {asset!r} drew {got!r:.160}",
        )
    made = await viewer.call(
        "mergeAsset", {"asset": {"company": company, "kind": "vehicle", "name": _MARK}}
    )
    if _code(made) == 0:
        stray = made.get("asset") if made is not None else None
        if isinstance(stray, dict):
            await viewer.call("removeAsset", {"asset": {"id": stray.get("id")}})
    findings.expect(
        type(_code(made)) is int and _code(made) != 0,
        f"{who}: creating an asset in company {company} drew {made!r:.160}",
    )
    listed = await viewer.call("getAssetsList", {"company": {"id": company}})
    assets = listed.get("assets") if listed is not None else None
    findings.expect(
        _code(listed) != 0 or not assets,
        f"{who}: getAssetsList of company {company} drew {listed!r:.160}",
    )
    answer = await viewer.call(
        "subscribe", {"company": {"id": company}, "subscriptionTypes": _TYPES}
    )
    merged = answer.get("merged") if answer is not None else None
    findings.expect(
        _code(answer) != 0 or not merged,
        f"{who}: subscribing to company {company} drew {answer!r:.160}",
    )
    pushed = [line for line in _pushes(await viewer.gather(ctx.options.push_wait))
              if _company_of(line) == company]  # fmt: skip
    findings.expect(not pushed, f"{who}: pushes about company {company}: {pushed[:1]!r:.160}")
    return findings


@server_probe("fleetfreedom.errors.foreign-tenant-refused")
async def foreign_tenant(ctx: Ctx) -> Outcome:
    first, _, company = await logged_in(ctx)
    second, other = await _second_login(ctx)
    if other == company:
        await first.close()
        await second.close()
        raise Unsupported(f"both accounts belong to company {company}: give another tenant's")
    mine = await _assets(first, company)
    theirs = await _assets(second, other)
    findings = Findings()
    for viewer, target, asset, who in (
        (first, other, theirs[0].get("id") if theirs else None, "the first user"),
        (second, company, mine[0].get("id") if mine else None, "the second user"),
    ):
        found = await _foreign_findings(ctx, viewer, target, asset, who)
        findings.problems += found.problems
    await first.close()
    await second.close()
    findings.note(
        f"companies {company} and {other}: neither reads, lists, subscribes to or is pushed "
        "the other's objects"
    )
    return findings.outcome()


@server_probe("fleetfreedom.errors.wrong-credentials")
async def wrong_credentials(ctx: Ctx) -> Outcome:
    username = ctx.credential("username")
    session = await connect(ctx)
    req_id = session.next_id()
    body = {"username": username, "password": ctx.credential("password") + "-wrong",
            "userAgent": _USER_AGENT, "reqId": req_id}  # fmt: skip
    await session.send("login", body)
    answer = await session.reply_to("login", None)
    details = await session.call("getSessionDetails")
    await session.close()
    findings = Findings()
    findings.expect(
        answer is not None and answer.get("reqId") == req_id and _code(answer) == 11,
        f"a wrong password drew {answer!r:.160}",
    )
    findings.expect(
        details is None or _code(details) != 0 or "user" not in details,
        f"the connection is logged in after a refused login: {details!r:.120}",
    )
    return findings.outcome()


# -- §2: sessions ------------------------------------------------------------------------------


@server_probe("fleetfreedom.session.login", "fleetfreedom.session.session-fields-only-logged-in")
async def login(ctx: Ctx) -> dict[str, Outcome]:
    ctx.credential("username")
    session = await connect(ctx)
    anonymous = session.connection_response
    req_id = session.next_id()
    await session.send(
        "login",
        {"username": ctx.credential("username"), "password": ctx.credential("password"),
         "userAgent": _USER_AGENT, "reqId": req_id},
    )  # fmt: skip
    answer = await session.reply_to("login", None)
    await session.close()
    login = Findings()
    if login.expect(answer is not None, "no loginResponse"):
        assert answer is not None
        login.expect(answer.get("reqId") == req_id, f"reqId {answer.get('reqId')!r}")
        login.expect(_code(answer) == 0, f"errorCode {_code(answer)!r}")
        for field in ("serverTime", "ghostId", "expiry", *_SESSION_FIELDS):
            login.expect(field in answer, f"no {field}")
        if _code(answer) == 0:
            _session_expiry(login, "loginResponse", answer)
    fields = Findings()
    if anonymous.get("errorCode") != 0:
        present = [f for f in _SESSION_FIELDS if f in anonymous]
        fields.expect(not present, f"anonymous connectionResponse has {present}")
    if answer is not None and _code(answer) == 0:
        missing = [f for f in _SESSION_FIELDS if f not in answer]
        fields.expect(not missing, f"loginResponse lacks {missing}")
    return {
        "fleetfreedom.session.login": login.outcome(),
        "fleetfreedom.session.session-fields-only-logged-in": fields.outcome(),
    }


@server_probe(
    "fleetfreedom.session.ghost-id-path",
    "fleetfreedom.session.resume",
    "fleetfreedom.session.ghost-id-query-or-subprotocol",
)
async def resume(ctx: Ctx) -> dict[str, Outcome]:
    session, answer, _ = await logged_in(ctx)
    ghost = answer.get("ghostId")
    if not isinstance(ghost, str):
        await session.close()
        raise Unsupported(f"loginResponse has no ghostId: {answer!r:.160}")
    await session.close()
    results: dict[str, Outcome] = {}
    path = await connect(ctx, ghost)
    resumed = path.connection_response
    details = await path.call("getSessionDetails")
    await path.close()
    fresh = await connect(ctx)
    new = fresh.connection_response
    await fresh.close()
    by_path = Findings()
    by_path.expect(
        resumed.get("errorCode") == 0, f"/<ghostId> got errorCode {resumed.get('errorCode')!r}"
    )
    by_path.expect(
        resumed.get("ghostId") == ghost, f"/<ghostId> got ghostId {resumed.get('ghostId')!r}"
    )
    by_path.expect(new.get("ghostId") != ghost, "a blank path got the same ghostId")
    results["fleetfreedom.session.ghost-id-path"] = by_path.outcome()
    again = Findings()
    again.expect(resumed.get("errorCode") == 0, f"errorCode {resumed.get('errorCode')!r}")
    for field in _SESSION_FIELDS:
        again.expect(field in resumed, f"no {field} on the resumed connection")
    again.expect(_code(details) == 0, f"getSessionDetails without login drew {details!r:.120}")
    if resumed.get("errorCode") == 0:
        _session_expiry(again, "the resumed connectionResponse", resumed)
    results["fleetfreedom.session.resume"] = again.outcome()
    other = Findings()
    for how in ("query", "subprotocol"):
        conn = await connect(ctx, ghost, how)
        body = conn.first[1] if conn.first is not None else None
        await conn.close()
        other.expect(
            isinstance(body, dict) and body.get("errorCode") == 0 and body.get("ghostId") == ghost,
            f"ghostId by {how}: {body!r:.120}",
        )
    results["fleetfreedom.session.ghost-id-query-or-subprotocol"] = other.outcome()
    return results


@server_probe("fleetfreedom.session.anonymous-code-8")
async def anonymous_code(ctx: Ctx) -> Outcome:
    findings = Findings()
    for label, ghost in (("no ghostId", None), ("an unknown ghostId", str(uuid.uuid4()))):
        session = await connect(ctx, ghost)
        code = session.connection_response.get("errorCode")
        await session.close()
        findings.expect(code == 8, f"{label}: connectionResponse errorCode {code!r}")
    return findings.outcome()


@server_probe("fleetfreedom.session.user-agent-checked")
async def user_agent_checked(ctx: Ctx) -> Outcome:
    session, answer, _ = await logged_in(ctx)
    await session.close()
    policy = answer.get("sessionPolicy")
    allowed = policy.get("applications") if isinstance(policy, dict) else None
    if not (isinstance(allowed, list) and allowed):
        return unsupported("the account's sessionPolicy allows every application")
    other = await connect(ctx)
    refused = await other.call(
        "login",
        {"username": ctx.credential("username"), "password": ctx.credential("password"),
         "userAgent": "trackwire-conformance-not-allowed"},
    )  # fmt: skip
    await other.close()
    return Outcome(_code(refused) == 12, f"a foreign userAgent drew {refused!r:.160}")


@server_probe("fleetfreedom.session.logout")
async def logout(ctx: Ctx) -> Outcome:
    session, answer, company = await logged_in(ctx)
    ghost = answer.get("ghostId")
    await session.call("subscribe", {"company": {"id": company}, "subscriptionTypes": _TYPES})
    before = await session.wait(lambda line: line[0].endswith("Merged"), ctx.options.push_wait)
    bye = await session.call("logout")
    after = _pushes(await session.gather(ctx.options.push_wait))
    await session.close()
    findings = Findings()
    findings.expect(
        _code(bye) == 0 and bye is not None and "ghostId" in bye and "expiry" in bye,
        f"logout drew {bye!r:.160}",
    )
    findings.expect(not after, f"{len(after)} push(es) after logout: the subscriptions live on")
    if before is None:
        findings.note(f"no push within {ctx.options.push_wait} s before logout to compare")
    if isinstance(ghost, str):
        again = await connect(ctx, ghost)
        code = again.connection_response.get("errorCode")
        await again.close()
        findings.expect(code != 0, "the logged-out ghostId still resumes the session")
    return findings.outcome()


def _ended_time(options: Any) -> float:
    return float(options.push_wait) + 6 * float(options.reply_wait)


@server_probe("fleetfreedom.session.session-ended", extra_time=_ended_time)
async def session_ended(ctx: Ctx) -> Outcome:
    operator = ctx.needs_operator("end a user's sessions")
    username = ctx.credential("username")
    first, answer, company = await logged_in(ctx)
    ghost = answer.get("ghostId")
    if not isinstance(ghost, str):
        await first.close()
        raise Unsupported(f"loginResponse has no ghostId: {answer!r:.160}")
    await first.call("subscribe", {"company": {"id": company}, "subscriptionTypes": _TYPES})
    resumed = await connect(ctx, ghost)
    bystander: FleetFreedomSession | None = None
    if ctx.credentials.get("second-username") is not None:
        bystander, _ = await _second_login(ctx)
    sessions = [s for s in (first, resumed, bystander) if s is not None]
    try:
        await operator.end_sessions(username)
    except NotImplementedError as exc:
        for session in sessions:
            await session.close()
        raise Unsupported(f"the operator cannot end a session: {exc}") from None
    findings = Findings()
    for label, session in (("the logged-in connection", first), ("the resumed one", resumed)):
        told = any(line[0] == "sessionEnded" for line in session.seen[1:])
        told = told or await session.wait(lambda line: line[0] == "sessionEnded",
                                          ctx.options.reply_wait) is not None  # fmt: skip
        findings.expect(told, f"{label} got no sessionEnded")
    after = _pushes(await first.gather(ctx.options.push_wait))
    findings.expect(not after, f"{len(after)} push(es) after sessionEnded")
    details = await first.call("getSessionDetails")
    findings.expect(
        details is None or _code(details) != 0,
        f"the ended session still answers getSessionDetails: {details!r:.120}",
    )
    if bystander is not None:
        still = await bystander.call("getSessionDetails")
        wrong = [line for line in bystander.seen if line[0] == "sessionEnded"]
        findings.expect(
            _code(still) == 0 and not wrong,
            f"the other user's session ended too: {still!r:.120}, {len(wrong)} sessionEnded",
        )
    for session in sessions:
        await session.close()
    again = await connect(ctx, ghost)
    code = again.connection_response.get("errorCode")
    await again.close()
    findings.expect(code != 0, "the ended session's ghostId still resumes it")
    findings.note("both connections of the session were told; its ghostId no longer resumes")
    return findings.outcome()


@server_probe("fleetfreedom.session.get-session-details")
async def get_session_details(ctx: Ctx) -> Outcome:
    session, _, _ = await logged_in(ctx)
    req_id = session.next_id()
    await session.send("getSessionDetails", {"reqId": req_id})
    answer = await session.reply_to("getSessionDetails", req_id)
    await session.close()
    findings = Findings()
    if findings.expect(answer is not None, "no getSessionDetailsResponse"):
        assert answer is not None
        findings.expect(_code(answer) == 0, f"errorCode {_code(answer)!r}")
        for field in ("serverTime", "ghostId", "expiry", *_SESSION_FIELDS):
            findings.expect(field in answer, f"no {field}")
        if _code(answer) == 0:
            _session_expiry(findings, "getSessionDetailsResponse", answer)
    return findings.outcome()


# -- §3 and §5: objects and versions -----------------------------------------------------------


async def _assets(session: FleetFreedomSession, company: int) -> list[dict[str, Any]]:
    answer = await session.call("getAssetsList", {"company": {"id": company}})
    assets = answer.get("assets") if answer is not None else None
    return [a for a in assets if isinstance(a, dict)] if isinstance(assets, list) else []


@server_probe(
    "fleetfreedom.commands.get-object",
    "fleetfreedom.commands.lists",
    "fleetfreedom.versions.objects-carry-v",
)
async def objects(ctx: Ctx) -> dict[str, Outcome]:
    session, _, company = await logged_in(ctx)
    req_id = session.next_id()
    await session.send("getAssetsList", {"reqId": req_id, "company": {"id": company}})
    listed = await session.reply_to("getAssetsList", req_id)
    assets = listed.get("assets") if listed is not None else None
    get = Findings()
    company_answer = await session.call("getCompany", {"company": {"id": company}})
    shown = company_answer.get("company") if company_answer is not None else None
    get.expect(
        (_code(company_answer) == 0 and isinstance(shown, dict) and shown.get("id") == company)
        or _code(company_answer) == 28,
        f"getCompany of the user's company drew {company_answer!r:.160}",
    )
    one: dict[str, Any] | None = None
    key: object = None
    source = "listed"
    if isinstance(assets, list) and assets and isinstance(assets[0], dict):
        key = assets[0].get("id")
    else:
        # No asset listed: one the server pushes about the user's company is the user's to
        # read all the same.
        await session.call(
            "subscribe", {"company": {"id": company}, "subscriptionTypes": ["assetAdvanced"]}
        )
        pushed = await session.wait(
            lambda line: line[0] == "assetAdvancedMerged" and _company_of(line) == company,
            ctx.options.push_wait,
        )
        key = pushed[1].get("id") if pushed is not None else None
        source = "pushed"
    if key is not None:
        answer = await session.call("getAsset", {"asset": {"id": key}})
        one = answer.get("asset") if answer is not None else None
        get.expect(
            _code(answer) == 0 and isinstance(one, dict) and one.get("id") == key,
            f"getAsset of {source} asset {key!r} of the user's company drew {answer!r:.160}",
        )
    await session.close()
    lists = Findings()
    if lists.expect(isinstance(assets, list), f"getAssetsList drew {listed!r:.160}"):
        assert isinstance(assets, list)
        assert listed is not None
        lists.expect(listed.get("company") == {"id": company}, f"company {listed.get('company')!r}")
        strangers = [
            a.get("id") for a in assets if isinstance(a, dict) and a.get("company") != company
        ]
        lists.expect(not strangers, f"assets of other companies listed: {strangers[:5]}")
        lists.note(f"{len(assets)} asset(s)")
    versions = Findings()
    judged = [a for a in (assets if isinstance(assets, list) else []) if isinstance(a, dict)]
    if one is not None:
        judged.append(one)
    for asset in judged:
        v = asset.get("v")
        versions.expect(
            isinstance(v, list) and len(v) >= 2 and all(type(x) is int for x in v),
            f"asset {asset.get('id')!r} has v {v!r}",
        )
    return {
        "fleetfreedom.commands.get-object": get.outcome(),
        "fleetfreedom.commands.lists": lists.outcome(),
        "fleetfreedom.versions.objects-carry-v": (
            versions.outcome() if judged else unsupported("no asset to look at")
        ),
    }


@server_probe("fleetfreedom.versions.stale-merge-refused")
async def stale_merge(ctx: Ctx) -> Outcome:
    session, _, company = await logged_in(ctx)
    assets = await _assets(session, company)
    target = next((a for a in assets if isinstance(a.get("v"), list) and a["v"]
                   and all(type(x) is int and x > 0 for x in a["v"])), None)  # fmt: skip
    if target is None:
        await session.close()
        return unsupported("no asset with a version above 0 to merge against")
    stale = [x - 1 for x in target["v"]]
    marker = "trackwire conformance stale merge"
    answer = await session.call(
        "mergeAsset", {"asset": {"id": target["id"], "v": stale, "notes": marker}}
    )
    unversioned = await session.call("mergeAsset", {"asset": {"id": target["id"], "notes": marker}})
    after = await session.call("getAsset", {"asset": {"id": target["id"]}})
    await session.close()
    findings = Findings()
    findings.expect(_code(answer) == 6, f"a stale v {stale} drew {answer!r:.160}")
    findings.expect(
        type(_code(unversioned)) is int and _code(unversioned) != 0,
        f"a merge of an existing asset without v drew {unversioned!r:.160}",
    )
    now = after.get("asset") if after is not None else None
    v = now.get("v") if isinstance(now, dict) else None
    # notes is a field of the general piece (§6), v[0]; the other pieces may move meanwhile
    # (a position report bumps v[1]).
    findings.expect(
        isinstance(now, dict) and now.get("notes") != marker
        and isinstance(v, list) and v[:1] == target["v"][:1],
        f"the asset changed: {now!r:.160}",
    )  # fmt: skip
    return findings.outcome()


# The pieces of an asset (spec §6): which piece each documented field belongs to.
_GENERAL_FIELDS = frozenset(("icon", "kind", "labels", "messagingAddress", "name", "notes",
                             "pictures", "reference", "make", "model", "plate", "year", "vin",
                             "colour", "serial"))  # fmt: skip
_ADVANCED_FIELDS = frozenset(("attributes", "odometer", "places", "position", "providers",
                              "relationships", "tags", "engineHours"))  # fmt: skip
_MARK = "trackwire conformance"
_PERMISSION_CODES = (4, 5, 71)


def _merge_time(options: Any) -> float:
    return 12 * float(options.reply_wait)


async def _line_about(
    session: FleetFreedomSession, since: int, name: str, key: object
) -> dict[str, Any] | None:
    """The first ``name`` frame about object ``key`` seen after ``session.seen[since]`` (or
    arriving within ``reply_wait``): pushes may come before or after the command's answer."""

    def about(line: Line) -> bool:
        return line[0] == name and isinstance(line[1], dict) and line[1].get("id") == key

    for line in session.seen[since:]:
        if about(line):
            return line[1]  # type: ignore[no-any-return]
    found = await session.wait(about, session.ctx.options.reply_wait)
    return None if found is None else found[1]


def _piece_findings(
    findings: Findings, name: str, piece: dict[str, Any] | None, sent: dict[str, Any]
) -> int | None:
    """Judge a pushed piece of the kit's asset against the fields ``sent``; its version."""
    if not findings.expect(piece is not None, f"no {name} for the kit's asset"):
        return None
    assert piece is not None
    own = _GENERAL_FIELDS if name == "assetGeneralMerged" else _ADVANCED_FIELDS
    other = _ADVANCED_FIELDS if name == "assetGeneralMerged" else _GENERAL_FIELDS
    findings.expect(
        "id" in piece and "company" in piece, f"{name} without id and company: {piece!r:.160}"
    )
    for field_name, value in sent.items():
        if field_name in own:
            findings.expect(
                piece.get(field_name) == value,
                f"{name} has {field_name} {piece.get(field_name)!r}, not {value!r}",
            )
        elif field_name in other:
            findings.expect(field_name not in piece, f"{name} carries {field_name} (§6)")
    v = piece.get("v")
    if findings.expect(
        isinstance(v, list) and len(v) == 1 and type(v[0]) is int, f"{name} v {v!r}"
    ):
        assert isinstance(v, list)
        return int(v[0])
    return None


@server_probe(
    "fleetfreedom.commands.merge", "fleetfreedom.subscriptions.deleted", extra_time=_merge_time
)
async def merge_and_remove(ctx: Ctx) -> dict[str, Outcome]:
    """Create an asset of the kit's own, change each of its pieces, remove it; a subscribed
    connection watches every push about it.  Nothing of the server's own data changes."""
    session, _, company = await logged_in(ctx)
    subscribed = await session.call(
        "subscribe", {"company": {"id": company}, "subscriptionTypes": _TYPES}
    )
    if _code(subscribed) != 0:
        await session.close()
        raise Unsupported(f"subscribe drew {subscribed!r:.160}")
    existing = {a.get("id") for a in await _assets(session, company)}
    general = {"kind": "vehicle", "name": _MARK, "notes": "created", "labels": []}
    advanced = {"tags": ["trackwire-conformance"], "odometer": 0.5, "attributes": {},
                "places": [], "providers": [], "relationships": [], "engineHours": 1}  # fmt: skip
    merge, deleted = Findings(), Findings()
    kindless = await session.call("mergeAsset", {"asset": {"company": company, "name": _MARK}})
    if _code(kindless) == 0:
        stray = kindless.get("asset") if kindless is not None else None
        if isinstance(stray, dict):
            await session.call("removeAsset", {"asset": {"id": stray.get("id")}})
    merge.expect(
        type(_code(kindless)) is int and _code(kindless) != 0,
        f"creating an asset without kind drew {kindless!r:.160}",
    )
    since = len(session.seen)
    created = await session.call("mergeAsset", {"asset": {"company": company, **general,
                                                          **advanced}})  # fmt: skip
    code = _code(created)
    if code in _PERMISSION_CODES:
        await session.close()
        reason = f"the user may not create an asset (errorCode {code}), so nothing is merged"
        cases = ("fleetfreedom.commands.merge", "fleetfreedom.subscriptions.deleted")
        return {case: unsupported(reason) for case in cases}
    ref = created.get("asset") if created is not None else None
    key = ref.get("id") if isinstance(ref, dict) else None
    if not merge.expect(
        code == 0 and isinstance(ref, dict) and ref.get("company") == company
        and key is not None and not isinstance(key, (dict, list)) and key not in existing,
        f"creating an asset (company and kind given) drew {created!r:.200}",
    ):  # fmt: skip
        await session.close()
        return {
            "fleetfreedom.commands.merge": merge.outcome(),
            "fleetfreedom.subscriptions.deleted": unsupported("no asset of the kit's to remove"),
        }
    removed = False
    try:
        versions = [
            _piece_findings(merge, name, await _line_about(session, since, name, key), sent)
            for name, sent in (("assetGeneralMerged", {**general, **advanced}),
                               ("assetAdvancedMerged", {**general, **advanced}))
        ]  # fmt: skip
        answer = await session.call("getAsset", {"asset": {"id": key}})
        stored = answer.get("asset") if answer is not None else None
        v = stored.get("v") if isinstance(stored, dict) else None
        if merge.expect(
            _code(answer) == 0 and isinstance(stored, dict) and stored.get("name") == _MARK
            and isinstance(v, list) and len(v) >= 2 and all(type(x) is int for x in v),
            f"getAsset of the created asset {key!r} drew {answer!r:.200}",
        ):  # fmt: skip
            assert isinstance(v, list)
            for slot, version in enumerate(versions):
                merge.expect(
                    version is None or v[slot] == version,
                    f"getAsset shows v {v}, the pushed piece {slot} had version {version}",
                )
            steps: tuple[dict[str, Any], ...] = ({"notes": "changed"}, {"tags": ["trackwire-x"]})
            for slot, changes in enumerate(steps):
                name = "assetGeneralMerged" if slot == 0 else "assetAdvancedMerged"
                since = len(session.seen)
                done = await session.call("mergeAsset", {"asset": {"id": key, "v": v, **changes}})
                merge.expect(
                    _code(done) == 0
                    and done is not None
                    and done.get("asset") == {"id": key, "company": company},
                    f"a merge of {changes} at the current v {v} drew {done!r:.200}",
                )
                version = _piece_findings(
                    merge, name, await _line_about(session, since, name, key), changes
                )
                after = await session.call("getAsset", {"asset": {"id": key}})
                now = after.get("asset") if after is not None else None
                new_v = now.get("v") if isinstance(now, dict) else None
                good = (
                    isinstance(now, dict)
                    and all(now.get(k) == value for k, value in changes.items())
                    and isinstance(new_v, list)
                    and len(new_v) == len(v)
                    and all(type(x) is int for x in new_v)
                    and new_v[slot] > v[slot]
                    and (version is None or new_v[slot] == version)
                )
                if not merge.expect(good, f"after merging {changes} at v {v}: {after!r:.200}"):
                    break
                assert isinstance(new_v, list)
                v = new_v
        since = len(session.seen)
        gone = await session.call("removeAsset", {"asset": {"id": key}})
        removed = _code(gone) == 0
        merge.expect(
            removed and gone is not None and gone.get("asset") == {"id": key, "company": company},
            f"removeAsset of the kit's asset drew {gone!r:.160}",
        )
        pushed = await _line_about(session, since, "assetDeleted", key)
        deleted.expect(
            pushed is not None and pushed.get("company") == company,
            f"removing subscribed asset {key!r} pushed {pushed!r:.160}, not assetDeleted "
            f"{{id, company}}",
        )
        again = await session.call("getAsset", {"asset": {"id": key}})
        merge.expect(
            type(_code(again)) is int and _code(again) != 0,
            f"getAsset of the removed asset drew {again!r:.160}",
        )
    finally:
        if not removed:
            await session.send("removeAsset", {"asset": {"id": key}})
        await session.close()
    merge.note(f"asset {key!r} created, both pieces merged and pushed, then removed")
    return {
        "fleetfreedom.commands.merge": merge.outcome(),
        "fleetfreedom.subscriptions.deleted": deleted.outcome(),
    }


# -- §4: subscriptions -------------------------------------------------------------------------


@server_probe(
    "fleetfreedom.subscriptions.subscribe",
    "fleetfreedom.subscriptions.merged-denied-invalid",
    "fleetfreedom.subscriptions.list",
)
async def subscribe(ctx: Ctx) -> dict[str, Outcome]:
    session, _, company = await logged_in(ctx)
    await session.send(
        "subscribe",
        {"reqId": 2, "company": {"id": company}, "subscriptionTypes": ["assetGeneral"]},
    )
    first = await session.reply_to("subscribe", 2)
    second = await session.call(
        "subscribe",
        {"company": {"id": company}, "subscriptionTypes": ["assetGeneral", "noSuchType"]},
    )
    listed = await session.call("getSubscriptionsList")
    await session.close()
    sub = Outcome(_code(first) == 0, f"subscribe drew {first!r:.160}")
    lists = Findings()
    if lists.expect(second is not None, "no subscribeResponse"):
        assert second is not None
        lists.expect(second.get("company") == {"id": company}, f"company {second.get('company')!r}")
        merged, denied, invalid = (second.get(k) for k in ("merged", "denied", "invalid"))
        lists.expect(isinstance(merged, list) and "assetGeneral" in merged, f"merged {merged!r}")
        lists.expect(isinstance(denied, list), f"denied {denied!r}")
        lists.expect(isinstance(invalid, list) and "noSuchType" in invalid, f"invalid {invalid!r}")
    held = Findings()
    subs = listed.get("subscriptions") if listed is not None else None
    if held.expect(isinstance(subs, list), f"getSubscriptionsList drew {listed!r:.160}"):
        assert isinstance(subs, list)
        mine = [
            s
            for s in subs
            if isinstance(s, dict) and s.get("company") in (company, {"id": company})
        ]
        types = mine[0].get("subscriptionTypes") if mine else None
        held.expect(
            isinstance(types, list) and "assetGeneral" in types,
            f"subscriptions {subs!r:.160} lack assetGeneral for company {company}",
        )
    return {
        "fleetfreedom.subscriptions.subscribe": sub,
        "fleetfreedom.subscriptions.merged-denied-invalid": lists.outcome(),
        "fleetfreedom.subscriptions.list": held.outcome(),
    }


_TYPES = ["assetGeneral", "assetAdvanced"]
_SLOT = {"assetGeneral": 0, "assetAdvanced": 1}


@server_probe(
    "fleetfreedom.subscriptions.only-subscribed",
    "fleetfreedom.subscriptions.piece-messages",
    "fleetfreedom.versions.piece-single-v",
    "fleetfreedom.versions.increasing",
)
async def pushes(ctx: Ctx) -> dict[str, Outcome]:
    session, _, company = await logged_in(ctx)
    await session.gather(ctx.options.settle / 2)
    # Only assetGeneral first: the moving fleet's assetAdvanced pieces must not come.
    before = len(session.seen)
    general = await session.call(
        "subscribe", {"company": {"id": company}, "subscriptionTypes": ["assetGeneral"]}
    )
    early = _pushes(session.seen[before:])
    partial = _pushes(await session.gather(ctx.options.push_wait))
    req_id = session.next_id()
    await session.send(
        "subscribe", {"reqId": req_id, "company": {"id": company}, "subscriptionTypes": _TYPES}
    )
    reply = await session.reply_to("subscribe", req_id)
    lines = await session.gather(ctx.options.push_wait)
    pushed = _pushes(lines)
    strays = [line for line in lines if line[0] and not line[0].endswith("Response")
              and line not in pushed]  # fmt: skip
    assets = await _assets(session, company)
    await session.close()
    if _code(reply) != 0 or _code(general) != 0:
        raise Unsupported(f"subscribe failed: {reply!r:.160}")
    only = Findings()
    only.expect(not early, f"pushed before subscribeResponse: {early[:1]!r:.160}")
    advanced = [line for line in partial if line[0] == "assetAdvancedMerged"]
    only.expect(
        not advanced,
        f"{len(advanced)} assetAdvancedMerged push(es) with only assetGeneral subscribed",
    )
    if strays and not pushed:
        names = sorted({line[0] for line in strays})
        return {
            "fleetfreedom.subscriptions.only-subscribed": only.outcome(),
            "fleetfreedom.subscriptions.piece-messages": Outcome(
                False, f"pushes named {names[:3]}, not <subscriptionType>Merged"
            ),
            "fleetfreedom.versions.piece-single-v": unsupported("no <type>Merged push to judge"),
            "fleetfreedom.versions.increasing": unsupported("no <type>Merged push to judge"),
        }
    for name, body, raw in pushed:
        about = _company_of((name, body, raw))
        subscribed = name.endswith("Merged") and name[: -len("Merged")] in _TYPES
        subscribed = subscribed or (name in ("assetDeleted", "assetSuspended"))
        only.expect(about == company, f"push about company {about!r}: {raw[:100]!r}")
        only.expect(subscribed, f"push of an unsubscribed type: {raw[:100]!r}")
    if not pushed and not only.problems:
        return {
            case: unsupported(f"no push within {ctx.options.push_wait} s")
            for case in (
                "fleetfreedom.subscriptions.only-subscribed",
                "fleetfreedom.subscriptions.piece-messages",
                "fleetfreedom.versions.piece-single-v",
                "fleetfreedom.versions.increasing",
            )
        }
    only.note(f"{len(pushed)} push(es), all about company {company}")
    pieces, single, increasing = Findings(), Findings(), Findings()
    last: dict[tuple[str, object], int] = {}
    for name, body, raw in pushed:
        if not name.endswith("Merged"):
            continue
        ok = isinstance(body, dict) and "id" in body and "company" in body and "v" in body
        pieces.expect(ok, f"piece without id, company and v: {raw[:100]!r}")
        v = body.get("v") if isinstance(body, dict) else None
        single.expect(isinstance(v, list) and len(v) == 1 and type(v[0]) is int, f"{name} v {v!r}")
        if isinstance(body, dict) and isinstance(v, list) and v and type(v[0]) is int:
            piece = (name, body.get("id"))
            if piece in last:
                increasing.expect(
                    v[0] > last[piece], f"{name} {piece[1]!r} v {last[piece]} then {v[0]}"
                )
            last[piece] = v[0]
    stored = {a.get("id"): a.get("v") for a in assets}
    for (name, key), version in last.items():
        slot = _SLOT.get(name[: -len("Merged")])
        now = stored.get(key)
        if slot is not None and isinstance(now, list) and len(now) > slot:
            increasing.expect(
                now[slot] >= version, f"asset {key!r} slot {slot} reads {now[slot]} after {version}"
            )
    return {
        "fleetfreedom.subscriptions.only-subscribed": only.outcome(),
        "fleetfreedom.subscriptions.piece-messages": pieces.outcome(),
        "fleetfreedom.versions.piece-single-v": single.outcome(),
        "fleetfreedom.versions.increasing": increasing.outcome(),
    }


@server_probe("fleetfreedom.subscriptions.foreign-company-denied")
async def foreign_company(ctx: Ctx) -> Outcome:
    session, _, company = await logged_in(ctx)
    foreign = company + 1
    answer = await session.call(
        "subscribe", {"company": {"id": foreign}, "subscriptionTypes": _TYPES}
    )
    lines = await session.gather(ctx.options.push_wait)
    await session.close()
    findings = Findings()
    denied = answer.get("denied") if answer is not None else None
    merged = answer.get("merged") if answer is not None else None
    findings.expect(
        _code(answer) in (4, 5)
        or (_code(answer) == 0 and isinstance(denied, list) and set(_TYPES) <= set(denied)
            and not merged),
        f"subscribing to company {foreign} drew {answer!r:.200}",
    )  # fmt: skip
    leaked = [line for line in _pushes(lines) if _company_of(line) == foreign]
    findings.expect(not leaked, f"pushes about company {foreign}: {leaked[:1]!r:.160}")
    return findings.outcome()


@server_probe("fleetfreedom.subscriptions.unsubscribe")
async def unsubscribe(ctx: Ctx) -> Outcome:
    session, _, company = await logged_in(ctx)
    types = ["assetAdvanced"]
    await session.call("subscribe", {"company": {"id": company}, "subscriptionTypes": types})
    seen = await session.wait(lambda line: line[0] == "assetAdvancedMerged", ctx.options.push_wait)
    answer = await session.call(
        "unsubscribe", {"company": {"id": company}, "subscriptionTypes": types}
    )
    after = await session.gather(ctx.options.push_wait)
    await session.close()
    leaked = [line for line in after if line[0] == "assetAdvancedMerged"]
    findings = Findings()
    findings.expect(_code(answer) == 0, f"unsubscribe drew {answer!r:.160}")
    findings.expect(not leaked, f"{len(leaked)} assetAdvancedMerged after unsubscribing")
    if seen is None and not leaked:
        return unsupported(f"no assetAdvancedMerged within {ctx.options.push_wait} s to stop")
    return findings.outcome()


@server_probe("fleetfreedom.subscriptions.per-connection")
async def per_connection(ctx: Ctx) -> Outcome:
    first, answer, company = await logged_in(ctx)
    ghost = answer.get("ghostId")
    if not isinstance(ghost, str):
        await first.close()
        raise Unsupported("loginResponse has no ghostId")
    await first.call("subscribe", {"company": {"id": company}, "subscriptionTypes": _TYPES})
    second = await connect(ctx, ghost)
    if second.connection_response.get("errorCode") != 0:
        await first.close()
        await second.close()
        raise Unsupported("the session could not be resumed on a second connection")
    got: dict[str, list[Line]] = {}

    async def watch(name: str, session: FleetFreedomSession) -> None:
        got[name] = _pushes(await session.gather(ctx.options.push_wait))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, "first", first)
        nursery.start_soon(watch, "second", second)
    await first.close()
    await second.close()
    if got["second"]:
        return Outcome(False, f"the unsubscribed connection got {got['second'][0][2][:100]!r}")
    if not got["first"]:
        return unsupported(f"no push within {ctx.options.push_wait} s on either connection")
    return Outcome(True, f"{len(got['first'])} push(es) on the subscribed connection only")
