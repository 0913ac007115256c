"""The asyncio driver: any client core on asyncio streams, any server core behind a
WebSocket + HTTP server, and iTrack login over HTTP.

::

    import asyncio
    from trackwire import FleetFreedomClient
    from trackwire.drivers.asyncio import connect
    from trackwire.fleetfreedom import Command, ConnectionResponse, SessionResponse

    async def main() -> None:
        async with connect(FleetFreedomClient("wss://socket.trakit.ca/")) as conn:
            async for event in conn:            # ends after GaveUp
                if isinstance(event, ConnectionResponse) and event.error_code != 0:
                    await conn.send(Command.login("me@example.com", "secret", "my-app"))
                elif isinstance(event, SessionResponse):
                    print(event.name, event.error_code)   # loginResponse 0
                    break

    asyncio.run(main())

Serving: ``await serve(factory, started=on_started)`` until cancelled (the arguments of
:func:`trackwire.drivers.trio.serve`), or ``async with await start_server(factory) as
server``; ``server.port``, ``server.connections``, and ``server.flush(cores)`` after pushing
to cores from outside.
"""

from trackwire.itrack import LoginRefused

from ._asyncio import DEFAULT_QUEUE_SIZE, Connection, connect, itrack_login, itrack_tracker_list
from ._asyncio_server import (
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_ADDRESS,
    EventHandler,
    Server,
    ServerConnection,
    serve,
    start_server,
)
from ._events import DriverEvent, GaveUp, ReconnectFailed, Reconnecting, Stalled
from ._session import DEFAULT_CONNECT_TIMEOUT

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
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
    "start_server",
]
