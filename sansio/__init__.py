"""trackwire: sans-IO cores for the iTrack/Navixy (Atmosphere) and FleetFreedom real-time APIs.

The protocol cores live in subpackages (``trackwire.atmosphere``, …); this package re-exports
the error model and the one interface every core implements.
"""

from . import _decoder
from ._core import ClientCore, Core, CoreBase, Event, StateMachine
from ._decoder import fast_available, get_decoder, set_decoder
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._json import get_json_loads, set_json_loads
from ._peer import current_peer, peer_context
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

_decoder._from_environment()  # TRACKWIRE_DECODER, or the fast decoder when installed

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
    "current_peer",
    "fast_available",
    "get_decoder",
    "get_json_loads",
    "peer_context",
    "set_decoder",
    "set_json_loads",
]
