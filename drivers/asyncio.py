"""The asyncio client driver: any client core on asyncio streams.

::

    from trackwire import FleetFreedomClient
    from trackwire.drivers.asyncio import connect
    from trackwire.fleetfreedom import Command, ConnectionResponse

    async with connect(FleetFreedomClient("wss://socket.trakit.ca/")) as conn:
        async for event in conn:                # ends after GaveUp
            if isinstance(event, ConnectionResponse):
                await conn.send(Command.login("me", "secret", "my-app"))
"""

from trackwire.itrack import LoginRefused

from ._asyncio import DEFAULT_QUEUE_SIZE, Connection, connect, itrack_login
from ._events import DriverEvent, GaveUp, ReconnectFailed, Reconnecting, Stalled
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
    "Stalled",
    "connect",
    "itrack_login",
]
