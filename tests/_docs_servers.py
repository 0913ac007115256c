"""Both reference servers for the documentation examples, in a child process, loopback only.

    python tests/_docs_servers.py SECONDS

Serves the iTrack and the FleetFreedom reference servers (the demo accounts, 10 + 5 vehicles
moving at 4 Hz) on free ports of 127.0.0.1, prints one JSON line ``{"itrack": PORT,
"fleetfreedom": PORT}`` once both listen, and exits when its standard input closes or after
SECONDS, whichever comes first.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from typing import Any

import trio

from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet
from trackwire.drivers.trio import Server, serve


async def _tick(app: ITrackReference | FleetFreedomReference, server: Server[Any]) -> None:
    while True:
        deadline = app.next_deadline()
        await trio.sleep_until(trio.current_time() + 1.0 if deadline is None else deadline)
        server.flush(app.tick(trio.current_time()))


async def _stdin_closed() -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    while await stdin.receive_some():
        pass


async def main(seconds: float) -> None:
    wall = time.time() - trio.current_time()
    fleet = demo_fleet(10, seed=3, rate=4.0)
    itrack = ITrackReference(fleet, wall_offset=wall)
    fleetfreedom = FleetFreedomReference(fleet, wall_offset=wall)
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            first: Server[Any] = await nursery.start(
                functools.partial(
                    serve, itrack.factory, "127.0.0.1", 0, http_handler=itrack.http_handler
                )
            )
            second: Server[Any] = await nursery.start(
                functools.partial(serve, fleetfreedom.factory, "127.0.0.1", 0)
            )
            nursery.start_soon(_tick, itrack, first)
            nursery.start_soon(_tick, fleetfreedom, second)
            print(json.dumps({"itrack": first.port, "fleetfreedom": second.port}), flush=True)
            await _stdin_closed()
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]))
