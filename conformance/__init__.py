"""The trackwire conformance kit: judge any client or server against the two protocols.

- :data:`CATALOGUE`: every MUST and SHOULD of the protocol specifications as a :class:`Case`
  with a stable id, its spec section, level, role and expectation; :func:`select` and
  :func:`get` find cases, :func:`verdict_for` and :func:`exit_code` judge them.
- ``trackwire.conformance.strategies``: hypothesis strategies for valid and invalid frames,
  messages and whole sessions (needs the ``conformance`` extra).
- :func:`run_server_cases` / :func:`run_client_cases`: the kit acts as the client (or the
  server), probes, and judges; a :class:`Report` renders as text, JSON or JUnit.
- The reference servers and their simulated fleet (``_reference``, ``_fleet``), which the
  ``trackwire`` command line serves; :class:`ReferenceServer` runs one in a thread for tests,
  scriptable (and ``pytest --trackwire-…`` / the ``trackwire_itrack_server`` fixtures);
  several processes of one server share sessions, versions and pushes through a
  :class:`SharedState` (:class:`InMemoryState`, :class:`RedisState`) run by
  :func:`run_shared`.
- :class:`Operator`: the hook the kit calls for cases that need the server's operator
  (block a tracker, end a session); :meth:`ReferenceServer.operator` implements it.
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
from ._cli import add_subcommands
from ._cli import run as run_cli
from ._fleet import Fleet, Vehicle, VehicleUpdate
from ._harness import Operator, ReferenceServer, operator_for
from ._probes import ProbeOptions
from ._probes_client import CLOSE_SIGNAL
from ._redis import RedisConnection, RedisError, RedisState, RespParser, encode_command
from ._reference import (
    DEFAULT_ADDRESS_FAILURES,
    DEFAULT_ANONYMOUS_TIMEOUT,
    DEFAULT_LOGIN_FAILURES,
    DEFAULT_LOGIN_WINDOW,
    DEMO_FLEETFREEDOM,
    DEMO_ITRACK,
    FleetFreedomReference,
    ITrackReference,
    LoginThrottle,
    demo_fleet,
)
from ._report import CaseResult, Report, WireRecord, render_json, render_junit, render_text
from ._runner import (
    DEFAULT_TIMEOUT,
    probed_cases,
    run_client_cases,
    run_client_cases_async,
    run_server_cases,
    run_server_cases_async,
)
from ._shared import (
    DEFAULT_ITRACK_SESSION_TTL,
    DEFAULT_LEAD_TTL,
    Change,
    Delete,
    Expire,
    InMemoryState,
    MemoryBackplane,
    Put,
    Replica,
    SharedFleet,
    SharedState,
    run_shared,
    shared_demo_fleet,
)

__all__ = [
    "CATALOGUE",
    "CLOSE_SIGNAL",
    "DEFAULT_ADDRESS_FAILURES",
    "DEFAULT_ANONYMOUS_TIMEOUT",
    "DEFAULT_ITRACK_SESSION_TTL",
    "DEFAULT_LEAD_TTL",
    "DEFAULT_LOGIN_FAILURES",
    "DEFAULT_LOGIN_WINDOW",
    "DEFAULT_TIMEOUT",
    "DEMO_FLEETFREEDOM",
    "DEMO_ITRACK",
    "Case",
    "CaseResult",
    "Change",
    "Delete",
    "Expire",
    "Fleet",
    "FleetFreedomReference",
    "ITrackReference",
    "InMemoryState",
    "Level",
    "LoginThrottle",
    "MemoryBackplane",
    "Operator",
    "ProbeOptions",
    "ProtocolName",
    "Put",
    "RedisConnection",
    "RedisError",
    "RedisState",
    "ReferenceServer",
    "Replica",
    "Report",
    "RespParser",
    "Role",
    "SharedFleet",
    "SharedState",
    "Vehicle",
    "VehicleUpdate",
    "Verdict",
    "WireRecord",
    "add_subcommands",
    "demo_fleet",
    "encode_command",
    "exit_code",
    "get",
    "operator_for",
    "probed_cases",
    "render_json",
    "render_junit",
    "render_text",
    "run_cli",
    "run_client_cases",
    "run_client_cases_async",
    "run_server_cases",
    "run_server_cases_async",
    "run_shared",
    "select",
    "shared_demo_fleet",
    "verdict_for",
]
