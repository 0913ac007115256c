"""The ASGI driver: any server core, and plain HTTP, inside uvicorn, hypercorn or a framework.

.. not-run: it serves until interrupted (docs/tutorials/asgi.md has one that runs)

::

    import uvicorn
    from trackwire.conformance import ITrackReference, demo_fleet
    from trackwire.drivers.asgi import ASGIApp

    reference = ITrackReference(demo_fleet())
    app = ASGIApp(reference.factory, http_handler=reference.http_handler, ticker=reference)
    uvicorn.run(app, host="127.0.0.1", port=8080)

``trackwire.conformance.asgi`` has both reference servers ready made
(``uvicorn --factory trackwire.conformance.asgi:itrack``).  After pushing to cores from
outside (``ITrackServer.push_state``, ``FleetFreedomHub.publish``), ``app.flush(cores)``
writes what they queued.
"""

from ._asgi import ASGIApp, ASGIConnection, Ticker

__all__ = ["ASGIApp", "ASGIConnection", "Ticker"]
