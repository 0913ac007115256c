"""How the FleetFreedom reference server scales out: 1, 2 and 4 processes on one Redis.

For each process count it starts a fresh ``redis-server`` and that many
``trackwire serve fleetfreedom --redis …`` processes (the first one moves the fleet; the
others get every push through Redis), then load-generator processes that open WebSocket
clients round-robin over the servers (each logs in and subscribes to company 1's
``assetAdvanced``), and measures:

- **connections/s**: clients opened and logged in per second (all at once, at most
  ``--in-flight`` per generator at a time), while nobody is subscribed yet;
- **pushes/s**: then every client subscribes at once; the messages the clients received
  per second over ``--seconds`` (after a second to settle), against what the fleet offered
  (its updates/s × the clients), and how many clients were still connected at the end;
- the CPU the server processes and Redis used over that window (in cores), and so the
  pushes delivered per CPU-second: the figure that least depends on what else the machine
  was doing.

A row "1, no Redis" is the same server without ``--redis``.  Everything runs on 127.0.0.1,
is bounded in time and stops its processes.  The load generators share the machine's
cores with the servers and Redis: the figures say what this machine did, not a limit of
the design.

    python benchmarks/scale.py                      # about a minute
    python benchmarks/scale.py --json scale.json --clients 600 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from _redis_helpers import CLI, ServeProcess, redis_process  # noqa: E402

LOGIN = 'login {"reqId":1,"username":"demo@example.com","password":"demo","userAgent":"scale"}'
SUBSCRIBE = 'subscribe {"reqId":2,"company":{"id":1},"subscriptionTypes":["assetAdvanced"]}'


# -- the load generator (a child process) -------------------------------------------------------


async def _client(url: str, counts: dict[str, int], ready: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(url, max_size=2**20, compression=None) as ws:
        await ws.recv()  # connectionResponse
        await ws.send(LOGIN)
        while not str(await ws.recv()).startswith("loginResponse"):
            pass
        counts["subscribed"] += 1
        await ready.wait()
        await ws.send(SUBSCRIBE)
        while True:
            await ws.recv(decode=False)
            counts["pushes"] += 1


async def _generate(urls: list[str], clients: int, in_flight: int, seconds: float) -> None:
    counts = {"subscribed": 0, "pushes": 0, "failed": 0}
    ready = asyncio.Event()
    gate = asyncio.Semaphore(in_flight)

    async def one(index: int) -> None:
        url = urls[index % len(urls)]
        try:
            async with gate:
                task = asyncio.ensure_future(_client(url, counts, ready))
                before = counts["subscribed"]
                while counts["subscribed"] == before and not task.done():
                    await asyncio.sleep(0.001)
            await task
        except Exception:
            counts["failed"] += 1

    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)  # "connect"
    assert line.strip() == "connect"
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(one(i)) for i in range(clients)]
    while counts["subscribed"] + counts["failed"] < clients:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    print(json.dumps({"connected": counts["subscribed"], "connect_s": elapsed}), flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)  # "count"
    ready.set()
    await asyncio.sleep(1.0)  # settle: the first pushes after the wait
    first = counts["pushes"]
    window_start = time.perf_counter()
    await asyncio.sleep(seconds)
    window = time.perf_counter() - window_start
    alive = sum(1 for t in tasks if not t.done())
    print(
        json.dumps({"pushes": counts["pushes"] - first, "window_s": window, "alive": alive}),
        flush=True,
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the parent ---------------------------------------------------------------------------------


class Generator:
    def __init__(self, urls: list[str], clients: int, in_flight: int, seconds: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--generate",
                ",".join(urls),
                "--clients",
                str(clients),
                "--in-flight",
                str(in_flight),
                "--seconds",
                str(seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def hear(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a load generator stopped early")
        result: dict[str, Any] = json.loads(line)
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def measure(count: int, args: argparse.Namespace, *, redis: bool = True) -> dict[str, Any]:
    """One row: ``count`` server processes (on a fresh Redis unless ``redis`` is false)."""
    fleet = ["--vehicles", str(args.vehicles), "--rate", str(args.rate)]
    with contextlib.ExitStack() as stack:
        servers: list[ServeProcess] = []
        pids: list[int] = []
        if redis:
            url, redis_proc = stack.enter_context(redis_process())
            pids.append(redis_proc.pid)
            for _ in range(count):
                servers.append(ServeProcess("fleetfreedom", url, *fleet, duration=300))
                stack.callback(servers[-1].stop)
        else:
            servers.append(_plain_server(fleet))
            stack.callback(servers[-1].stop)
        urls = [f"ws://127.0.0.1:{s.port}/" for s in servers]
        per = [args.clients // args.generators] * args.generators
        per[0] += args.clients - sum(per)
        generators = [Generator(urls, n, args.in_flight, args.seconds) for n in per]
        for generator in generators:
            stack.callback(generator.stop)
        time.sleep(1.0)  # the generators import websockets; the lead settles
        for generator in generators:
            generator.say("connect")
        connects = [g.hear() for g in generators]
        pids += [server.proc.pid for server in servers]
        for generator in generators:
            generator.say("count")
        time.sleep(1.0)  # as the generators: a second to settle
        cpu_before = _cpu_seconds(pids)
        time.sleep(args.seconds)
        cpu = _cpu_seconds(pids) - cpu_before
        counts = [g.hear() for g in generators]
    connected = sum(c["connected"] for c in connects)
    connect_s = max(c["connect_s"] for c in connects)
    pushes = sum(c["pushes"] for c in counts)
    window = max(c["window_s"] for c in counts)
    offered = args.vehicles * args.rate * connected
    return {
        "processes": count,
        "redis": redis,
        "clients": args.clients,
        "connected": connected,
        "connections_per_s": connected / connect_s if connect_s else 0.0,
        "alive_at_end": sum(c["alive"] for c in counts),
        "pushes_per_s": pushes / window,
        "server_cpu_per_s": cpu / window,
        "pushes_per_cpu_s": pushes / cpu if cpu else 0.0,
        "offered_per_s": offered,
    }


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _plain_server(fleet: list[str]) -> ServeProcess:
    """The same server without Redis (its ready line is parsed the same way)."""
    proc = ServeProcess.__new__(ServeProcess)
    proc.proc = subprocess.Popen(
        [*CLI, "serve", "fleetfreedom", "--duration", "300", *fleet],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.proc.stdout is not None
    line = proc.proc.stdout.readline()
    proc.port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
    return proc


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| servers | clients logged in (connected at end) | connections/s (WebSocket + login) "
        "| pushes/s received "
        "| offered pushes/s | server + Redis CPU (cores) | pushes per CPU-second |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = f"{row['processes']}" + (" on Redis" if row["redis"] else ", no Redis")
        lines.append(
            f"| {name} | {row['connected']} ({row['alive_at_end']}) "
            f"| {row['connections_per_s']:,.0f} | {row['pushes_per_s']:,.0f} "
            f"| {row['offered_per_s']:,.0f} | {row['server_cpu_per_s']:.2f} "
            f"| {row['pushes_per_cpu_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2,4", help="server process counts (1,2,4)")
    parser.add_argument("--clients", type=int, default=400, help="WebSocket clients (400)")
    parser.add_argument("--generators", type=int, default=2, help="load processes (2)")
    parser.add_argument("--in-flight", type=int, default=50, help="opening at once (50)")
    parser.add_argument("--vehicles", type=int, default=50, help="company 1's vehicles (50)")
    parser.add_argument("--rate", type=float, default=4.0, help="updates/s per vehicle (4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="counting window (5)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the median (1)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        asyncio.run(_generate(args.generate.split(","), args.clients, args.in_flight, args.seconds))
        return 0
    rows = []
    for count, redis in [(1, False)] + [(int(n), True) for n in args.processes.split(",")]:
        runs = [measure(count, args, redis=redis) for _ in range(args.repeat)]
        row = dict(runs[0])
        for key in ("connections_per_s", "pushes_per_s", "server_cpu_per_s", "pushes_per_cpu_s"):
            row[key] = statistics.median(run[key] for run in runs)
            row[key + "_runs"] = [round(run[key], 2) for run in runs]
        row["connected"] = min(run["connected"] for run in runs)
        row["alive_at_end"] = min(run["alive_at_end"] for run in runs)
        rows.append(row)
        print(render(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(render(rows))
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        f"\n{machine}; {args.vehicles} vehicles × {args.rate}/s, {args.seconds} s window, "
        f"median of {args.repeat}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
