"""The asyncio client driver: any client core on asyncio streams.

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
"""

from trackwire.itrack import LoginRefused

from ._asyncio import DEFAULT_QUEUE_SIZE, Connection, connect, itrack_login, itrack_tracker_list
from ._events import DriverEvent, GaveUp, ReconnectFailed, Reconnecting
from ._session import DEFAULT_CONNECT_TIMEOUT

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_QUEUE_SIZE",
    "Connection",
    "DriverEvent",
    "GaveUp",
    "LoginRefused",
    "ReconnectFailed",
    "Reconnecting",
    "connect",
    "itrack_login",
    "itrack_tracker_list",
]
