"""trackwire: sans-IO cores for the iTrack/Navixy (Atmosphere) and FleetFreedom real-time APIs.

The protocol cores live in subpackages (``trackwire.atmosphere``, …); this package re-exports
the error model and the one interface every core implements.
"""

from ._core import ClientCore, Core, CoreBase, Event, StateMachine
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._json import get_json_loads, set_json_loads
from ._reconnect import Backoff, ReconnectPolicy
from ._session import (
    DEFAULT_MAX_LOGIN_FAILURES,
    FinishReason,
    SessionFinished,
    SessionForgotten,
    SessionRestored,
)
from .atmosphere import AtmosphereClient, AtmosphereServer
from .fleetfreedom import FleetFreedomClient, FleetFreedomHub, FleetFreedomServer
from .itrack import ITrackClient, ITrackServer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_LOGIN_FAILURES",
    "AtmosphereClient",
    "AtmosphereServer",
    "Backoff",
    "ClientCore",
    "Core",
    "CoreBase",
    "Event",
    "FinishReason",
    "FleetFreedomClient",
    "FleetFreedomHub",
    "FleetFreedomServer",
    "ITrackClient",
    "ITrackServer",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectPolicy",
    "RemoteProtocolError",
    "SessionFinished",
    "SessionForgotten",
    "SessionRestored",
    "StateMachine",
    "__version__",
    "get_json_loads",
    "set_json_loads",
]
