"""The trio driver: any client core over a (reconnecting) WebSocket, any server core behind
a WebSocket + HTTP server, and iTrack login over HTTP.

::

    import trio
    from trackwire import ITrackClient
    from trackwire.drivers.trio import connect, itrack_login, itrack_tracker_list
    from trackwire.itrack import StateEvent, StateRequest, Subscribe, subscription_url

    async def main() -> None:
        base = "https://api.itrack.live/v2/"
        session_hash = await itrack_login(base, "me", "secret")
        core = ITrackClient(subscription_url(base), session_hash)
        async with connect(core) as conn:       # reconnects with the same tracking id
            await conn.send(Subscribe([StateRequest([1701976, 1701975])]))
            async for event in conn:            # ends after GaveUp
                if isinstance(event, StateEvent):
                    print(event.state)
                    break                       # leaving the block closes the connection

    trio.run(main)

Serving: ``server = await nursery.start(serve, factory)``; ``server.port``,
``server.connections``, and ``server.flush(cores)`` after pushing to cores from outside.
"""

from ._events import DriverEvent, GaveUp, ReconnectFailed, Reconnecting, Stalled
from ._trio import (
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_QUEUE_SIZE,
    Connection,
    EventHandler,
    LoginRefused,
    Server,
    ServerConnection,
    connect,
    itrack_login,
    itrack_tracker_list,
    serve,
)

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_PER_ADDRESS",
    "DEFAULT_QUEUE_SIZE",
    "Connection",
    "DriverEvent",
    "EventHandler",
    "GaveUp",
    "LoginRefused",
    "ReconnectFailed",
    "Reconnecting",
    "Server",
    "ServerConnection",
    "Stalled",
    "connect",
    "itrack_login",
    "itrack_tracker_list",
    "serve",
]
