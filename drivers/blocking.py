"""The blocking client driver: any client core on a plain socket, no threads, no event loop.

::

    from trackwire import FleetFreedomClient
    from trackwire.drivers.blocking import connect
    from trackwire.fleetfreedom import Command, ConnectionResponse, SessionResponse

    with connect(FleetFreedomClient("wss://socket.trakit.ca/")) as conn:
        for event in conn:                      # ends after GaveUp
            if isinstance(event, ConnectionResponse) and event.error_code != 0:
                conn.send(Command.login("me@example.com", "secret", "my-app"))
            elif isinstance(event, SessionResponse):
                print(event.name, event.error_code)   # loginResponse 0
                break

``conn.next_event(timeout)`` polls instead (``None`` when the time ran out).
"""

from trackwire.itrack import LoginRefused

from ._blocking import Connection, connect, itrack_login, itrack_tracker_list
from ._events import DriverEvent, GaveUp, ReconnectFailed, Reconnecting, Stalled
from ._session import DEFAULT_CONNECT_TIMEOUT

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "Connection",
    "DriverEvent",
    "GaveUp",
    "LoginRefused",
    "ReconnectFailed",
    "Reconnecting",
    "Stalled",
    "connect",
    "itrack_login",
    "itrack_tracker_list",
]
