"""Both reference servers as ASGI applications, for uvicorn, hypercorn or a framework.

.. code-block:: sh

    uvicorn --factory trackwire.conformance.asgi:itrack --port 8080
    uvicorn --factory trackwire.conformance.asgi:fleetfreedom --port 8081
    hypercorn --bind 127.0.0.1:8080 'trackwire.conformance.asgi:itrack()'

The iTrack one answers ``user/auth`` and the Atmosphere close request over HTTP and the
event subscription over WebSocket (``/v2/event/subscription``); the FleetFreedom one takes
the ghostId in the path, the query or a subprotocol.  Both move the demo fleet from the ASGI
lifespan, on ``time.monotonic``.
"""

from __future__ import annotations

from typing import Any

from trackwire.drivers.asgi import ASGIApp

from ._reference import FleetFreedomReference, ITrackReference, demo_fleet

__all__ = ["fleetfreedom", "itrack", "reference_app"]


def reference_app(
    platform: str,
    *,
    vehicles: int = 10,
    seed: int = 1,
    rate: float = 1.0,
    heartbeat_ms: int = 30000,
) -> ASGIApp[Any]:
    """The ``"itrack"`` or ``"fleetfreedom"`` reference server on a fresh demo fleet."""
    fleet = demo_fleet(vehicles, seed=seed, rate=rate)
    if platform == "itrack":
        itrack = ITrackReference(fleet, heartbeat_interval_ms=heartbeat_ms)
        return ASGIApp(itrack.factory, http_handler=itrack.http_handler, ticker=itrack)
    if platform == "fleetfreedom":
        reference = FleetFreedomReference(fleet)
        return ASGIApp(reference.factory, ticker=reference)
    raise ValueError(f"unknown platform {platform!r}: 'itrack' or 'fleetfreedom'")


def itrack() -> ASGIApp[Any]:
    """The iTrack reference server (``uvicorn --factory``)."""
    return reference_app("itrack")


def fleetfreedom() -> ASGIApp[Any]:
    """The FleetFreedom reference server (``uvicorn --factory``)."""
    return reference_app("fleetfreedom")
