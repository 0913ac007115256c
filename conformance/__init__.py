"""The trackwire conformance kit: judge any client or server against the two protocols.

- :data:`CATALOGUE`: every MUST and SHOULD of the protocol specifications as a :class:`Case`
  with a stable id, its spec section, level, role and expectation; :func:`select` and
  :func:`get` find cases, :func:`verdict_for` and :func:`exit_code` judge them.
- ``trackwire.conformance.strategies``: hypothesis strategies for valid and invalid frames,
  messages and whole sessions (needs the ``conformance`` extra).
- The reference servers and their simulated fleet (``_reference``, ``_fleet``), which the
  ``trackwire`` command line serves.
"""

from ._catalogue import (
    CATALOGUE,
    Case,
    Level,
    ProtocolName,
    Role,
    Verdict,
    exit_code,
    get,
    select,
    verdict_for,
)
from ._fleet import Fleet, Vehicle, VehicleUpdate
from ._reference import (
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    demo_fleet,
)

__all__ = [
    "CATALOGUE",
    "DEMO_FLEETFREEDOM",
    "DEMO_ITRACK",
    "Case",
    "Fleet",
    "FleetFreedomReference",
    "ITrackReference",
    "Level",
    "ProtocolName",
    "Role",
    "Vehicle",
    "VehicleUpdate",
    "Verdict",
    "demo_fleet",
    "exit_code",
    "get",
    "select",
    "verdict_for",
]
