"""The iTrack and FleetFreedom reference servers mounted in a Starlette application.

    uvicorn --app-dir examples asgi_starlette:app --port 8080

serves ``/health``, the iTrack API under ``/itrack/v2/`` (``user/auth`` and the WebSocket
``/itrack/v2/event/subscription``) and FleetFreedom under ``/fleetfreedom/``.  The mounted
apps see paths below their mount point; Starlette does not pass the lifespan on to them, so
their fleets start moving with the first request.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from trackwire.conformance import FleetFreedomReference, ITrackReference, demo_fleet
from trackwire.drivers.asgi import ASGIApp

itrack = ITrackReference(demo_fleet(10))
fleetfreedom = FleetFreedomReference(demo_fleet(10))


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"itrack": len(itrack.connections), "fleet": len(itrack.fleet.vehicles)})


app = Starlette(
    routes=[
        Route("/health", health),
        Mount(
            "/itrack",
            app=ASGIApp(itrack.factory, http_handler=itrack.http_handler, ticker=itrack),
        ),
        Mount("/fleetfreedom", app=ASGIApp(fleetfreedom.factory, ticker=fleetfreedom)),
    ]
)
