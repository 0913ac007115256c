"""Hostile clients against the reference servers, on both server drivers (trio, asyncio).

Each reference server runs in a child process (as ``trackwire serve`` would), on 127.0.0.1,
with short settings so the run stays bounded: anonymous connections closed after 2 s, a
256 KiB outgoing buffer bound, a fast fleet.  The attacks come from 127.0.0.2; the
legitimate client, from 127.0.0.1, logs in and must get a position after every attack,
and the server process must still be running.

Attacks (one request each unless said otherwise):

- iTrack: an upgrade with ``X-Heartbeat-Server=%C2%B2``, with a heartbeat of 400 nines,
  with an ``X-Atmosphere-Framework`` of 4,400 digits; ``GET //[/user/auth``; ``user/auth``
  with a ``dealer_id`` of 5,000 digits; an action whose error reply echoes ``"\\ud800"``;
- FleetFreedom: ``noop {"reqId":NaN}``, ``{"reqId":1e999999}``, ``{"reqId":"\\ud800"}``;
- both: 300 idle anonymous sockets from one address (the per-address limit is 256; each
  is closed after the 2 s anonymous timeout); login spraying (a stranger guessing
  ``demo``'s password, then many names); a request with both Content-Length and
  Transfer-Encoding (smuggling); a client that stops reading (iTrack).

Prints one row per attack (attack → what the attacker got → figures) and exits 1 if any
server died or a legitimate client was not served.  Stops by itself (about 20-30 s)::

    python reliability/adversarial.py [--drivers trio,asyncio] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    RejectConnection,
    RejectData,
    Request,
)

from trackwire import FleetFreedomClient, ITrackClient
from trackwire.atmosphere import AtmosphereClient
from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet
from trackwire.drivers.trio import connect, itrack_login
from trackwire.fleetfreedom import Command, ConnectionResponse, Merged, SessionResponse
from trackwire.itrack import StateEvent, StateRequest, Subscribe, subscription_url

ATTACKER = "127.0.0.2"
VEHICLES = 20
RATE = 10.0
ANONYMOUS_TIMEOUT = 2.0
MAX_BUFFER = 256 * 1024
IDLE_SOCKETS = 300
CHILD_LIFETIME = 120.0
"""A child server stops by itself after this long, whatever happens to the parent."""
SECRET = "s3cret-attack-pw"
"""A password the attacks send: it must never appear in the servers' logs."""
OPEN = AtmosphereClient("http://h/v2/event/subscription").url_to_open.removeprefix("ws://h")


# -- the child: one reference server --------------------------------------------------------------


def child(driver: str, platform: str) -> None:
    """Serve one reference app until stdin closes (or :data:`CHILD_LIFETIME`); print the
    port as one JSON line; log what the driver logs on stderr."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    fleet = demo_fleet(VEHICLES, rate=RATE)
    app: Any
    if platform == "itrack":
        app = ITrackReference(fleet, anonymous_timeout=ANONYMOUS_TIMEOUT)
        options: dict[str, Any] = {"http_handler": app.http_handler}
    else:
        app = FleetFreedomReference(fleet, anonymous_timeout=ANONYMOUS_TIMEOUT)
        options = {}
    options["max_buffer"] = MAX_BUFFER
    if driver == "trio":
        trio.run(_child_trio, app, options)
    else:
        import asyncio

        asyncio.run(_child_asyncio(app, options))


def _announce(port: int) -> None:
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)


async def _child_trio(app: Any, options: dict[str, Any]) -> None:
    from trackwire.drivers.trio import serve

    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve, app.factory, "127.0.0.1", 0, **options))

        async def tick() -> None:
            while True:
                deadline = app.next_deadline()
                await trio.sleep_until(trio.current_time() + 1 if deadline is None else deadline)
                server.flush(app.tick(trio.current_time()))

        async def stdin_closed() -> None:
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)

        nursery.start_soon(tick)
        _announce(server.port)
        with trio.move_on_after(CHILD_LIFETIME):
            await stdin_closed()
        nursery.cancel_scope.cancel()


async def _child_asyncio(app: Any, options: dict[str, Any]) -> None:
    import asyncio

    from trackwire.drivers.asyncio import start_server

    loop = asyncio.get_running_loop()
    async with await start_server(app.factory, "127.0.0.1", 0, **options) as server:

        async def tick() -> None:
            while True:
                deadline = app.next_deadline()
                delay = 1.0 if deadline is None else max(0.0, deadline - loop.time())
                await asyncio.sleep(delay)
                server.flush(app.tick(loop.time()))

        ticker = loop.create_task(tick())
        _announce(server.port)
        stdin = loop.run_in_executor(None, sys.stdin.read)
        await asyncio.wait([stdin], timeout=CHILD_LIFETIME)
        ticker.cancel()


# -- the parent: attacks and checks ---------------------------------------------------------------


@dataclass
class Row:
    server: str
    attack: str
    result: str = ""
    figures: str = ""
    survived: bool = False
    served: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.survived and self.served


class Child:
    """A reference server in a child process."""

    def __init__(self, driver: str, platform: str) -> None:
        self.driver = driver
        self.platform = platform
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", driver, platform],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{driver}/{platform} server did not start: {self.stop()}")
        self.port = int(json.loads(line)["port"])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Stop it; its stderr (the driver's log)."""
        proc = self.proc
        try:
            _, err = proc.communicate(input="", timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        return err or ""


async def _tcp(source: str, port: int) -> trio.SocketStream:
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def http_exchange(port: int, request: bytes, wait: float = 2.0) -> bytes:
    """Send ``request`` from the attacker's address; everything answered until the server
    closes, ``wait`` seconds pass, or it is quiet for 0.3 s after answering."""
    stream = await _tcp(ATTACKER, port)
    answer = b""
    try:
        await stream.send_all(request)
        with trio.move_on_after(wait):
            while True:
                with trio.move_on_after(0.3 if answer else wait):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    answer += chunk
                    continue
                break
    except (trio.BrokenResourceError, OSError):
        pass
    finally:
        await stream.aclose()
    return answer


def statuses(answer: bytes) -> list[int]:
    found = []
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            parts = line.split()
            if len(parts) > 1 and parts[1].isdigit():
                found.append(int(parts[1]))
    return found


async def ws_exchange(port: int, target: str, messages: Sequence[str], wait: float = 0.6) -> str:
    """Upgrade from the attacker's address, send ``messages``, report what came back."""
    stream = await _tcp(ATTACKER, port)
    ws = WSConnection(ConnectionType.CLIENT)
    texts: list[str] = []
    outcome = ""
    try:
        await stream.send_all(ws.send(Request(host="127.0.0.1", target=target)))
        opened = False
        with trio.move_on_after(wait):
            while not outcome:
                data = await stream.receive_some(65536)
                if not data:
                    outcome = "connection closed"
                    break
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        opened = True
                        for text in messages:
                            await stream.send_all(ws.send(Message(data=text)))
                    elif isinstance(event, RejectConnection):
                        outcome = f"HTTP {event.status_code}"
                    elif isinstance(event, RejectData):
                        pass
                    elif isinstance(event, CloseConnection):
                        outcome = f"101, then close {event.code}"
                    elif isinstance(event, Message):
                        texts.append(str(event.data))
        if not outcome:
            outcome = "101, still open" if opened else "no answer"
    except (trio.BrokenResourceError, OSError, Exception) as exc:  # a reset, or wsproto
        outcome = outcome or f"{type(exc).__name__}"
    finally:
        await stream.aclose()
    replies = [t for t in texts if t.strip().strip("X")]
    if replies:
        last = replies[-1].split("|")[-1]
        outcome += f"; reply {last[:60]!r}"
    return outcome


# -- the legitimate client -------------------------------------------------------------------------


def demo_trackers() -> list[int]:
    fleet = demo_fleet(VEHICLES, rate=RATE)
    return sorted(v.id for v in fleet.vehicles.values() if v.tenant == "demo")


async def legit_itrack(port: int) -> float:
    """Log in as ``demo`` and subscribe; seconds to the first position."""
    start = trio.current_time()
    base = f"http://127.0.0.1:{port}/v2/"
    with trio.fail_after(10):
        session_hash = await itrack_login(base, "demo", "demo")
        core = ITrackClient(subscription_url(base), session_hash)
        async with connect(core, reconnect=None) as conn:
            await conn.send(Subscribe([StateRequest(demo_trackers())]))
            async for event in conn:
                if isinstance(event, StateEvent):
                    return trio.current_time() - start
    raise RuntimeError("no position")


async def legit_fleetfreedom(port: int) -> float:
    """Log in as ``demo@example.com`` and subscribe; seconds to the first position."""
    start = trio.current_time()
    with trio.fail_after(10):
        async with connect(FleetFreedomClient(f"ws://127.0.0.1:{port}/"), reconnect=None) as conn:
            async for event in conn:
                if isinstance(event, ConnectionResponse):
                    await conn.send(Command.login("demo@example.com", "demo", "adversarial"))
                elif isinstance(event, SessionResponse) and event.error_code == 0:
                    await conn.send(Command.subscribe(1, ["assetAdvanced"]))
                elif isinstance(event, Merged):
                    return trio.current_time() - start
    raise RuntimeError("no position")


# -- the attacks -----------------------------------------------------------------------------------

Attack = Callable[[Child, Row], Awaitable[None]]


def single_ws(target: str, messages: Sequence[str] = ()) -> Attack:
    async def attack(child: Child, row: Row) -> None:
        start = time.perf_counter()
        row.result = await ws_exchange(child.port, target, messages)
        row.figures = f"answered in {(time.perf_counter() - start) * 1000:.0f} ms"

    return attack


def single_http(request: bytes) -> Attack:
    async def attack(child: Child, row: Row) -> None:
        start = time.perf_counter()
        answer = await http_exchange(child.port, request)
        codes = statuses(answer)
        row.result = " + ".join(f"HTTP {c}" for c in codes) or "closed, no answer"
        row.figures = f"{len(codes)} response(s) in {(time.perf_counter() - start) * 1000:.0f} ms"
        row.details["responses"] = codes

    return attack


def upgrade_request(target: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def idle_sockets(child: Child, row: Row) -> None:
    """Open many WebSockets from one address and send nothing after the upgrade; each
    accepted one must get the server's close (frame or EOF) after the anonymous timeout."""
    target = OPEN if child.platform == "itrack" else "/"
    peers: list[tuple[trio.SocketStream, WSConnection]] = []
    outcome: dict[str, int] = {"accepted": 0, "refused": 0}
    closed_at: list[float] = []
    start = trio.current_time()

    async def idle(stream: trio.SocketStream, ws: WSConnection) -> None:
        try:
            while chunk := await stream.receive_some(65536):
                ws.receive_data(chunk)
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        outcome["accepted"] += 1
                    elif isinstance(event, RejectConnection):
                        outcome["refused" if event.status_code == 503 else "other"] = (
                            outcome.get("refused", 0) + 1
                        )
                        return
                    elif isinstance(event, CloseConnection):
                        closed_at.append(trio.current_time() - start)
                        return
        except (trio.BrokenResourceError, OSError):
            pass
        closed_at.append(trio.current_time() - start)

    try:
        with trio.move_on_after(ANONYMOUS_TIMEOUT + 6):
            async with trio.open_nursery() as nursery:
                for _ in range(IDLE_SOCKETS):
                    stream = await _tcp(ATTACKER, child.port)
                    ws = WSConnection(ConnectionType.CLIENT)
                    peers.append((stream, ws))
                    await stream.send_all(ws.send(Request(host="127.0.0.1", target=target)))
                    nursery.start_soon(idle, stream, ws)
                await trio.sleep(0.2)
                row.details["legit_during"] = await (
                    legit_itrack(child.port)
                    if child.platform == "itrack"
                    else legit_fleetfreedom(child.port)
                )
        accepted, refused = outcome["accepted"], outcome["refused"]
        closed = len(closed_at)
        slowest = max(closed_at) if closed_at else float("nan")
        row.result = f"{accepted} served, {refused} refused 503"
        row.figures = (
            f"{closed}/{accepted} closed by the server within {slowest:.1f} s "
            f"(anonymous timeout {ANONYMOUS_TIMEOUT:.0f} s); legit client served meanwhile"
        )
        row.details.update(accepted=accepted, refused=refused, closed=closed)
        if closed < accepted:
            row.result += f"; {accepted - closed} NOT closed"
            row.served = False
    finally:
        for stream, _ in peers:
            await stream.aclose()


async def itrack_spraying(child: Child, row: Row) -> None:
    def auth(login: str, password: str) -> bytes:
        body = f"login={login}&password={password}".encode()
        return (
            b"POST /v2/user/auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    async def code(login: str, password: str) -> int:
        answer = await http_exchange(child.port, auth(login, password))
        body = answer.partition(b"\r\n\r\n")[2]
        parsed = json.loads(body) if body else {}
        return 0 if parsed.get("success") else int(parsed.get("status", {}).get("code", -1))

    guesses = 0
    while await code("demo", SECRET) == 102 and guesses < 50:
        guesses += 1
    legit = await legit_itrack(child.port)
    names = 0
    while await code(f"user{names}", SECRET) == 102 and names < 100:
        names += 1
    row.result = f"demo locked for the stranger after {guesses} guesses (105), not for demo"
    row.figures = (
        f"{guesses} guesses, then {names} more names until 105 for every name from that "
        f"address; demo logged in from elsewhere in {legit * 1000:.0f} ms"
    )
    row.details.update(guesses=guesses, names=names)


async def fleetfreedom_spraying(child: Child, row: Row) -> None:
    async def login(user: str, password: str) -> int:
        stream = await _tcp(ATTACKER, child.port)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host="127.0.0.1", target="/")))
        body = json.dumps({"username": user, "password": password, "reqId": 1})
        code = -1
        try:
            with trio.fail_after(5):
                while code < 0:
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    ws.receive_data(data)
                    for event in ws.events():
                        if isinstance(event, Message) and str(event.data).startswith(
                            "connectionResponse"
                        ):
                            await stream.send_all(ws.send(Message(data=f"login {body}")))
                        elif isinstance(event, Message) and str(event.data).startswith(
                            "loginResponse"
                        ):
                            code = int(json.loads(str(event.data).split(" ", 1)[1])["errorCode"])
        finally:
            await stream.aclose()
        return code

    guesses = 0
    while await login("demo@example.com", SECRET) != 73 and guesses < 50:
        guesses += 1
    legit = await legit_fleetfreedom(child.port)
    names = 0
    while await login(f"u{names}@example.com", SECRET) != 73 and names < 100:
        names += 1
    row.result = f"demo locked for the stranger after {guesses} guesses (73), not for demo"
    row.figures = (
        f"{guesses} guesses, then {names} more names until 73 for every name from that "
        f"address; demo logged in from elsewhere in {legit * 1000:.0f} ms"
    )
    row.details.update(guesses=guesses, names=names)


async def slow_reader(child: Child, row: Row) -> None:
    """An authenticated iTrack client that stops reading and keeps asking for states."""
    base = f"http://127.0.0.1:{child.port}/v2/"
    session_hash = await itrack_login(base, "demo", "demo")
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.bind((ATTACKER, 0))
    await sock.connect(("127.0.0.1", child.port))
    stream = trio.SocketStream(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    subscribe = json.dumps(
        {
            "action": "subscribe",
            "hash": session_hash,
            "requests": [{"type": "state", "trackers": demo_trackers()}],
        }
    )
    start = trio.current_time()
    sent = 0
    try:
        await stream.send_all(ws.send(Request(host="127.0.0.1", target=OPEN)))
        with trio.fail_after(5):
            while not any(isinstance(e, AcceptConnection) for e in ws.events()):
                ws.receive_data(await stream.receive_some(65536))
        with trio.move_on_after(15):
            while True:
                await stream.send_all(ws.send(Message(data=subscribe)))
                sent += 1
                await trio.sleep(0.002)
    except (trio.BrokenResourceError, OSError):
        pass
    aborted = trio.current_time() - start
    legit = await legit_itrack(child.port)
    await stream.aclose()
    row.result = "aborted by the server" if aborted < 15 else "NOT aborted within 15 s"
    row.figures = (
        f"after {aborted:.1f} s and {sent} subscribe requests (buffer bound "
        f"{MAX_BUFFER // 1024} KiB); legit client served in {legit * 1000:.0f} ms"
    )
    if aborted >= 15:
        row.served = False


SMUGGLE = (
    b"POST /v2/user/auth HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    b"GET /v2/user/auth?login=demo&password=" + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
)

ITRACK_ATTACKS: list[tuple[str, Attack]] = [
    ("upgrade X-Heartbeat-Server=%C2%B2", single_ws(OPEN + "&X-Heartbeat-Server=%C2%B2")),
    ("upgrade X-Heartbeat-Server=9×400", single_ws(OPEN + "&X-Heartbeat-Server=" + "9" * 400)),
    (
        "upgrade X-Atmosphere-Framework of 4,400 digits",
        single_ws(OPEN.replace("2.3.6-javascript", "1" * 4400)),
    ),
    ("GET //[/user/auth", single_http(b"GET //[/user/auth HTTP/1.1\r\nHost: x\r\n\r\n")),
    (
        "user/auth dealer_id of 5,000 digits",
        single_http(
            b"GET /v2/user/auth?login=demo&password="
            + SECRET.encode()
            + b"&dealer_id="
            + b"7" * 5000
            + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
    ),
    ('action echoing "\\ud800"', single_ws(OPEN, ['{"action":"\\ud800"}'])),
    ("idle anonymous sockets from one address", idle_sockets),
    ("login spraying", itrack_spraying),
    ("CL+TE smuggling", single_http(SMUGGLE)),
    ("slow reader", slow_reader),
]

FLEETFREEDOM_ATTACKS: list[tuple[str, Attack]] = [
    ('noop {"reqId":NaN}', single_ws("/", ['noop {"reqId":NaN}'])),
    ('noop {"reqId":1e999999}', single_ws("/", ['noop {"reqId":1e999999}'])),
    ('noop {"reqId":"\\ud800"}', single_ws("/", ['noop {"reqId":"\\ud800"}'])),
    ("idle anonymous sockets from one address", idle_sockets),
    ("login spraying", fleetfreedom_spraying),
    ("CL+TE smuggling", single_http(SMUGGLE.replace(b"/v2/user/auth", b"/"))),
]


async def run_attacks(child: Child, attacks: list[tuple[str, Attack]]) -> list[Row]:
    legit = legit_itrack if child.platform == "itrack" else legit_fleetfreedom
    rows = []
    for name, attack in attacks:
        row = Row(f"{child.platform}/{child.driver}", name, served=True)
        try:
            await attack(child, row)
        except Exception as exc:  # the attack itself broke: nothing was shown
            row.result = f"the attack failed: {type(exc).__name__}: {str(exc)[:80]}"
            row.served = False
        row.survived = child.alive
        if row.survived and row.served:
            try:
                row.details["legit_after"] = await legit(child.port)
            except Exception as exc:
                row.served = False
                row.result += f"; legit client NOT served ({type(exc).__name__})"
        else:
            row.served = False
        rows.append(row)
    return rows


def run(drivers: Sequence[str]) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    problems: list[str] = []
    for driver in drivers:
        for platform, attacks in (
            ("itrack", ITRACK_ATTACKS),
            ("fleetfreedom", FLEETFREEDOM_ATTACKS),
        ):
            server = Child(driver, platform)
            try:
                rows += trio.run(run_attacks, server, attacks)
            finally:
                log = server.stop()
            failures = log.count("failed, closed")
            if SECRET in log:
                problems.append(f"{platform}/{driver}: the attack password is in the log")
            if failures:
                rows[-1].details["isolated_failures"] = failures
            sys.stderr.write(f"# {platform}/{driver}: {failures} connection(s) isolated\n")
    return rows, problems


def _raise_fd_limit(wanted: int = 4096) -> None:
    """Room for the idle-socket flood (a few hundred sockets on each side)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: Sequence[str] | None = None) -> int:
    _raise_fd_limit()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drivers", default="trio,asyncio")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--serve", nargs=2, metavar=("DRIVER", "PLATFORM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        child(*args.serve)
        return 0
    start = time.monotonic()
    rows, problems = run(args.drivers.split(","))
    width = max(len(r.attack) for r in rows)
    for row in rows:
        mark = "ok  " if row.ok else "FAIL"
        print(f"{mark} {row.server:<20} {row.attack:<{width}}  → {row.result}  → {row.figures}")
    for problem in problems:
        print(f"FAIL {problem}")
    failed = [r for r in rows if not r.ok]
    print(f"# {time.monotonic() - start:.1f} s")
    print(f"{len(rows) - len(failed)} passed, {len(failed) + len(problems)} failed")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in rows], indent=2))
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
