"""The reference servers' applications: demo accounts, the simulated fleet, and its pushes.

Pure like the cores: a driver serves :meth:`factory` and :meth:`http_handler` on one port and
calls :meth:`tick` at :meth:`next_deadline`; each tick moves the fleet and queues the updates
on exactly the connections that may see them.  Two tenants share one fleet and never see
each other's vehicles.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trackwire import current_peer
from trackwire.fleetfreedom import (
    Account,
    ErrorCode,
    FleetFreedomHub,
    FleetFreedomServer,
    ghost_id_from_request,
)
from trackwire.itrack import (
    BLOCKED,
    NORMAL,
    AuthFailure,
    AuthResponder,
    AuthSuccess,
    Directory,
    GpsState,
    ITrackServer,
    Location,
    SourceState,
    StatePush,
    TrackerListResponder,
    is_auth_target,
    is_tracker_list_target,
)
from trackwire.ws import Accept, Headers, HttpResponse, Refuse, UpgradeRequest

from ._fleet import Fleet, VehicleUpdate

__all__ = [
    "DEFAULT_ADDRESS_FAILURES",
    "DEFAULT_ANONYMOUS_TIMEOUT",
    "DEFAULT_LOGIN_FAILURES",
    "DEFAULT_LOGIN_WINDOW",
    "DEMO_FLEETFREEDOM",
    "DEMO_ITRACK",
    "FleetFreedomReference",
    "ITrackReference",
    "LoginThrottle",
    "demo_fleet",
]

DEFAULT_LOGIN_FAILURES = 5
"""Failed logins of one login name from one address allowed within
:data:`DEFAULT_LOGIN_WINDOW`."""
DEFAULT_ADDRESS_FAILURES = 20
"""Failed logins (of any names) from one address allowed within :data:`DEFAULT_LOGIN_WINDOW`."""
DEFAULT_LOGIN_WINDOW = 60.0
"""The sliding window of the login rate limit, in seconds."""
DEFAULT_ANONYMOUS_TIMEOUT = 60.0
"""Seconds a FleetFreedom connection may stay without a login before the server closes it."""
ITRACK_LOGIN_LIMIT = (105, "Login attempts limit exceeded")
"""The iTrack API error a throttled ``user/auth`` gets (spec itrack §1)."""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A documented demo login of a reference server."""

    tenant: str
    login: str
    password: str = field(repr=False)
    company: int | None = None


DEMO_ITRACK = (DemoAccount("demo", "demo", "demo"), DemoAccount("other", "other", "other"))
"""iTrack logins: ``demo``/``demo`` and a second tenant ``other``/``other``."""

DEMO_FLEETFREEDOM = (
    DemoAccount("demo", "demo@example.com", "demo", 1),
    DemoAccount("other", "other@example.com", "other", 2),
)
"""FleetFreedom users: ``demo@example.com``/``demo`` (company 1) and ``other@example.com``/
``other`` (company 2)."""

ITRACK_PATHS = ("/v2/event/subscription", "/event/subscription")


def demo_fleet(vehicles: int = 10, *, seed: int = 1, rate: float = 1.0) -> Fleet:
    """The demo fleet: ``vehicles`` for the ``demo`` tenant and half as many for ``other``."""
    return Fleet({"demo": vehicles, "other": max(1, vehicles // 2)}, seed=seed, rate=rate)


class LoginThrottle:
    """Rate limit of failed logins over a sliding window, per (address, login) pair and per
    address; time and the peer address are passed in.

    A login name that failed ``max_failures`` times from one address within the last
    ``window`` seconds is refused from that address, without its password being checked,
    until the oldest of those failures leaves the window: someone guessing a user's password
    from elsewhere cannot lock that user out.  An address that failed
    ``max_address_failures`` times within the window (any names: spraying many logins) is
    refused for every login the same way (``None``: no per-address limit).  Refused
    attempts are not counted (a throttled client cannot extend its own lock-out); a success
    forgets the pair's failures, not the address's.  At most ``max_logins`` pairs and
    ``max_addresses`` addresses are tracked (the stalest are dropped first), so guessing
    many names from many addresses costs bounded memory.  The address ``""`` (unknown: no
    driver told it) is one address like any other.
    """

    __slots__ = (
        "_addresses",
        "_failures",
        "max_address_failures",
        "max_addresses",
        "max_failures",
        "max_logins",
        "window",
    )

    def __init__(
        self,
        max_failures: int = DEFAULT_LOGIN_FAILURES,
        window: float = DEFAULT_LOGIN_WINDOW,
        *,
        max_address_failures: int | None = DEFAULT_ADDRESS_FAILURES,
        max_logins: int = 100_000,
        max_addresses: int = 100_000,
    ) -> None:
        if max_failures < 1 or window <= 0 or max_logins < 1 or max_addresses < 1:
            raise ValueError("max_failures, window, max_logins and max_addresses must be positive")
        if max_address_failures is not None and max_address_failures < 1:
            raise ValueError("max_address_failures must be positive (None turns it off)")
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self.window = window
        self.max_logins = max_logins
        self.max_addresses = max_addresses
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, table: OrderedDict[Any, deque[float]], key: Any, now: float) -> int:
        times = table.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del table[key]
        return len(times)

    def allowed(self, login: str, now: float, address: str = "") -> bool:
        """Whether ``login`` may try a password from ``address`` at ``now``."""
        if self._recent(self._failures, (address, login), now) >= self.max_failures:
            return False
        limit = self.max_address_failures
        return limit is None or self._recent(self._addresses, address, now) < limit

    def failed(self, login: str, now: float, address: str = "") -> None:
        """Record a failed attempt of ``login`` from ``address`` at ``now``."""
        self._record(self._failures, (address, login), now, self.max_failures, self.max_logins)
        if self.max_address_failures is not None:
            self._record(
                self._addresses, address, now, self.max_address_failures, self.max_addresses
            )

    def _record(
        self, table: OrderedDict[Any, deque[float]], key: Any, now: float, keep: int, most: int
    ) -> None:
        self._recent(table, key, now)
        times = table.get(key)
        if times is None:
            times = table[key] = deque(maxlen=keep)
            while len(table) > most:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        times.append(now)

    def succeeded(self, login: str, address: str = "") -> None:
        """``login`` got in from ``address``: that pair's failures are forgotten."""
        self._failures.pop((address, login), None)

    @property
    def tracked(self) -> int:
        """How many (address, login) pairs have failures on record."""
        return len(self._failures)

    @property
    def tracked_addresses(self) -> int:
        """How many addresses have failures on record."""
        return len(self._addresses)


class _ThrottledDirectory(Directory):
    """A directory whose ``authenticate`` goes through a :class:`LoginThrottle`."""

    __slots__ = ("_clock", "throttle")

    def __init__(self, throttle: LoginThrottle, clock: Callable[[], float], **options: Any) -> None:
        super().__init__(**options)
        self.throttle = throttle
        self._clock = clock

    def authenticate(
        self, login: str, password: str, dealer_id: int | None = None
    ) -> AuthSuccess | AuthFailure:
        now = self._clock()
        address = current_peer()
        if not self.throttle.allowed(login, now, address):
            return AuthFailure(*ITRACK_LOGIN_LIMIT)
        result = super().authenticate(login, password, dealer_id)
        if isinstance(result, AuthFailure):
            self.throttle.failed(login, now, address)
        else:
            self.throttle.succeeded(login, address)
        return result


def _wall(now: float, offset: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(now + offset, tz=_dt.timezone.utc)


class ITrackReference:
    """The iTrack reference server: ``user/auth``, ``tracker/list`` (each vehicle's name is
    its tracker's label), the event subscription socket, the fleet.

    ``wall_offset`` turns the monotonic ``now`` into wall-clock time for the timestamps
    (``YYYY-MM-DD HH:MM:SS``, UTC as the demo users' time zone).  ``user/auth`` is
    rate-limited per (peer address, login) and per address by ``login_throttle`` (5 and 20
    failures per 60 s by default; error 105 beyond), reading the time from ``clock`` and
    the address from :func:`trackwire.current_peer`.  A connection that has sent no action
    with a valid hash ``anonymous_timeout`` seconds after the app first saw it (at the
    :meth:`tick` after it opened; :meth:`next_deadline` brings ticks at least every second
    while one is waiting) is closed, whatever its heartbeat setting.
    :meth:`block`, :meth:`unblock` and :meth:`logout` are the operator's actions: they send
    ``lifecycle`` and ``logout`` events to whoever may see them.

    ``session_ttl`` (seconds, off by default) ends every ``user/auth`` session that long
    after it began: the hash is forgotten and its connections are closed, as after a server
    restart, so a client meets error 4 on its next action.  :meth:`forget_sessions` forgets
    every hash at once (what a restart of a server without a session store does).
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        session_ttl: float | None = None,
        heartbeat_interval_ms: int = 30000,
        wall_offset: float | None = None,
        hash_factory: Callable[[], str] | None = None,
        login_throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
        anonymous_timeout: float | None = DEFAULT_ANONYMOUS_TIMEOUT,
    ) -> None:
        self.fleet = fleet
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.wall_offset = time.time() - time.monotonic() if wall_offset is None else wall_offset
        self.login_throttle = LoginThrottle() if login_throttle is None else login_throttle
        options: dict[str, Any] = {} if hash_factory is None else {"hash_factory": hash_factory}
        self.directory: Directory = _ThrottledDirectory(self.login_throttle, clock, **options)
        for account in DEMO_ITRACK:
            self.directory.add_user(account.login, account.password)
        for vehicle in fleet.vehicles.values():
            self.directory.add_tracker(
                vehicle.tenant, vehicle.id, source_id=vehicle.id * 10, label=vehicle.name
            )
            self.directory.set_state(vehicle.id, self.source_state(fleet.latest(vehicle.id)))
        self.responder = AuthResponder(self.directory)
        self.tracker_list = TrackerListResponder(self.directory, model="trackwire-simulated")
        self.connections: dict[ITrackServer, float | None] = {}
        """Live connections → when the app first saw them (set by :meth:`tick`)."""
        self.anonymous_timeout = anonymous_timeout
        self._last_tick: float | None = None
        if session_ttl is not None and session_ttl <= 0:
            raise ValueError("session_ttl must be > 0 (None turns it off)")
        self.session_ttl = session_ttl
        self._born: dict[str, float] = {}
        """Hash → when :meth:`tick` first saw it (for ``session_ttl``)."""

    def forget_sessions(self) -> None:
        """Forget every session hash (a restart that loses the session store)."""
        self.directory.sessions.clear()
        self._born.clear()

    def _expire_sessions(self, now: float) -> list[ITrackServer]:
        """End the sessions older than ``session_ttl``; returns the connections closed."""
        ttl = self.session_ttl
        closed: list[ITrackServer] = []
        if ttl is None:
            return closed
        born = self._born
        for session_hash in self.directory.sessions:
            born.setdefault(session_hash, now)
        for session_hash, since in list(born.items()):
            if session_hash not in self.directory.sessions:
                del born[session_hash]
            elif now - since >= ttl:
                del born[session_hash]
                self.directory.logout(session_hash)
                for conn in list(self.connections):
                    if conn.session_hash == session_hash:
                        conn.close()  # the stack closes the WebSocket; the client comes back
                        del self.connections[conn]
                        closed.append(conn)
        return closed

    def source_state(self, update: VehicleUpdate) -> SourceState:
        stamp = _wall(update.time, self.wall_offset).strftime("%Y-%m-%d %H:%M:%S")
        gps = GpsState.create(
            updated=stamp,
            signal_level=100,
            location=Location.create(update.lat, update.lng),
            heading=update.heading,
            speed=update.speed_kmh,
            alt=update.alt,
        )
        return SourceState.create(
            update.vehicle_id * 10,
            gps=gps,
            connection_status="active",
            movement_status=update.movement_status,
            last_update=stamp,
            seq=update.seq,
        )

    def factory(self, request: UpgradeRequest) -> ITrackServer | Refuse:
        """A core for a WebSocket at ``/v2/event/subscription`` (or without ``/v2``)."""
        path = request.target.split("?", 1)[0].rstrip("/")
        if path not in ITRACK_PATHS:
            return Refuse(404, body=b"Not Found\n")
        core = ITrackServer(
            request.target, self.directory, heartbeat_interval_ms=self.heartbeat_interval_ms
        )
        self.connections[core] = None
        return core

    def http_handler(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> HttpResponse | None:
        """``GET|POST /v2/user/auth`` and ``/v2/tracker/list`` (or without ``/v2``); anything
        else is 404."""
        if is_tracker_list_target(target):
            return self.tracker_list(method, target, headers, body)
        if not is_auth_target(target):
            return None
        return self.responder(method, target, headers, body)

    def tick(self, now: float) -> list[ITrackServer]:
        """Move the fleet to ``now``; queue the updates; return the connections to flush
        (those closed here for staying anonymous too: their close is theirs to write)."""
        self._last_tick = now
        updates = self.fleet.step(now)
        expired: list[ITrackServer] = []
        for conn, seen in list(self.connections.items()):
            if conn.state.name == "CLOSED":
                del self.connections[conn]
            elif seen is None:
                self.connections[conn] = now
            elif (
                self.anonymous_timeout is not None
                and conn.session_hash is None
                and now - seen >= self.anonymous_timeout
            ):
                conn.close()  # never authenticated: the stack closes the WebSocket
                del self.connections[conn]
                expired.append(conn)
        expired += self._expire_sessions(now)  # returned too: flushing starts their close
        for update in updates:
            self.apply(update, now)
        return [*self.connections, *expired]

    def apply(self, update: VehicleUpdate, now: float) -> list[ITrackServer]:
        """Report one position (from the fleet, or set by an operator): the tracker's state
        changes and its subscribers get it, encoded once for all of them.  Returns the
        connections to flush."""
        state = self.source_state(update)
        self.directory.set_state(update.vehicle_id, state)
        push = StatePush(state)
        for conn in self.connections:
            conn.push_state(update.vehicle_id, push, now)
        return list(self.connections)

    def next_deadline(self) -> float | None:
        """The next fleet step, or sooner the next anonymous connection to close (and, while
        any connection is still anonymous, a second after the last tick: they are checked then)."""
        deadline = self.fleet.next_deadline()
        last = self._last_tick
        if self.anonymous_timeout is None or last is None:
            return deadline
        if any(conn.session_hash is None for conn in self.connections):
            return last + 1.0 if deadline is None else min(deadline, last + 1.0)
        return deadline

    def block(self, tracker_id: int, now: float) -> list[ITrackServer]:
        """Block a tracker: its subscribers get ``lifecycle`` ``block`` and no more states."""
        self.directory.set_status(tracker_id, BLOCKED)
        return self._lifecycle(tracker_id, "block", now)

    def unblock(self, tracker_id: int, now: float) -> list[ITrackServer]:
        """Unblock it: ``lifecycle`` ``unblock``, then its current state, as the real server."""
        self.directory.set_status(tracker_id, NORMAL)
        return self._lifecycle(tracker_id, "unblock", now)

    def _lifecycle(self, tracker_id: int, event: str, now: float) -> list[ITrackServer]:
        for conn in self.connections:
            conn.push_lifecycle(tracker_id, event, now)
        return list(self.connections)

    def logout(self, login: str, now: float) -> list[ITrackServer]:
        """End every session of ``login``: its hashes die, its connections get ``logout``."""
        ended = self.directory.logout_user(login)
        for conn in self.connections:
            for session_hash in ended:
                conn.push_logout(now, session_hash)
        return list(self.connections)


class FleetFreedomReference:
    """The FleetFreedom reference server: sessions, assets from the fleet, their pushes.

    Logins are rate-limited per (peer address, username) and per address by
    ``login_throttle`` (5 and 20 failures per 60 s by default; errorCode 73
    ``sessionThrottled`` beyond), reading the time from ``clock`` and the address from
    :func:`trackwire.current_peer`;
    a connection that has not logged in after ``anonymous_timeout`` seconds is closed.

    ``session_ttl`` (seconds, off by default) ends every session that long after it began:
    the ghostId is forgotten and its connections are closed, so the client's next
    ``connectionResponse`` is 8 and it must log in again.  :meth:`forget_sessions` forgets
    every session at once.  Position versions are the wall clock's milliseconds (or the
    next number), so they keep growing across a restart, as a server's database would.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        session_ttl: float | None = None,
        wall_offset: float | None = None,
        ghost_ids: Callable[[], str] | None = None,
        login_throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
        anonymous_timeout: float | None = DEFAULT_ANONYMOUS_TIMEOUT,
    ) -> None:
        self.fleet = fleet
        self.login_throttle = LoginThrottle() if login_throttle is None else login_throttle
        self._clock = clock
        self.wall_offset = time.time() - time.monotonic() if wall_offset is None else wall_offset
        self.accounts = {
            a.login: Account(a.login, a.company or 0, user={"login": a.login, "company": a.company})
            for a in DEMO_FLEETFREEDOM
        }
        self._passwords = {a.login: a.password for a in DEMO_FLEETFREEDOM}
        self._company = {a.tenant: a.company or 0 for a in DEMO_FLEETFREEDOM}
        options: dict[str, Any] = {
            "wall_offset": self.wall_offset,
            "anonymous_timeout": anonymous_timeout,
        }
        if ghost_ids is not None:
            options["ghost_ids"] = ghost_ids
        self.hub = FleetFreedomHub(self._authenticate, **options)
        if session_ttl is not None and session_ttl <= 0:
            raise ValueError("session_ttl must be > 0 (None turns it off)")
        self.session_ttl = session_ttl
        self._born: dict[str, float] = {}
        for vehicle in fleet.vehicles.values():
            update = fleet.latest(vehicle.id)
            self.hub.put("asset", self._asset(vehicle.id, update, general=True))

    def _authenticate(self, username: str, password: str) -> Account | ErrorCode | None:
        now = self._clock()
        address = current_peer()
        throttle = self.login_throttle
        if not throttle.allowed(username, now, address):
            return ErrorCode.SESSION_THROTTLED
        if self._passwords.get(username) != password:
            throttle.failed(username, now, address)
            return None
        throttle.succeeded(username, address)
        return self.accounts[username]

    def _asset(self, vehicle_id: int, update: VehicleUpdate, *, general: bool) -> dict[str, Any]:
        vehicle = self.fleet.vehicles[vehicle_id]
        asset: dict[str, Any] = {
            "id": vehicle.id,
            "company": self._company[vehicle.tenant],
            "position": self._position(update),
            "odometer": round(update.odometer_m / 1000.0, 3),
            "seq": update.seq,
        }
        if general:
            asset.update(kind=vehicle.kind, name=vehicle.name, labels=[], tags=[], icon=0)
        return asset

    def _position(self, update: VehicleUpdate) -> dict[str, Any]:
        dts = _wall(update.time, self.wall_offset).isoformat(timespec="milliseconds")
        return {
            "lat": update.lat,
            "lng": update.lng,
            "accuracy": 5,
            "altitude": update.alt,
            "bearing": update.heading,
            "speed": update.speed_kmh,
            "dts": dts.replace("+00:00", "Z"),
        }

    def factory(self, request: UpgradeRequest) -> FleetFreedomServer | Accept[FleetFreedomServer]:
        """A core for a connection; the ghostId may come in the path, query or subprotocol."""
        ghost = ghost_id_from_request(request.target, request.subprotocols)
        core = self.hub.connect(ghost)
        if ghost is not None and ghost in request.subprotocols:
            return Accept(core, subprotocol=ghost)
        return core

    def tick(self, now: float) -> list[FleetFreedomServer]:
        """Move the fleet; push ``assetAdvancedMerged`` (the position piece, next version).

        Expired sessions are forgotten here too, so a long-running server's session table
        stays as large as its live sessions (each login adds one).
        """
        self.hub.prune(now)
        touched = dict.fromkeys(self._expire_sessions(now))
        for update in self.fleet.step(now):
            touched.update(dict.fromkeys(self.apply(update, now)))
        return list(touched)

    def apply(self, update: VehicleUpdate, now: float) -> list[FleetFreedomServer]:
        """Report one position (from the fleet, or set by an operator): the asset's position
        piece gets its next version and its subscribers get ``assetAdvancedMerged``."""
        stored = self.hub.get("asset", update.vehicle_id)
        if stored is None:
            return []
        version = list(stored["v"])
        # Past the wall clock's milliseconds too: a restarted server, which starts again from
        # its first version, still never sends one below what clients have seen.
        version[1] = max(version[1] + 1, int((update.time + self.wall_offset) * 1000))
        advanced = self._asset(update.vehicle_id, update, general=False)
        stored.update(advanced, v=version)
        body = dict(advanced, v=[version[1]])
        return self.hub.publish("assetAdvancedMerged", stored["company"], body)

    def end_sessions(self, username: str) -> list[FleetFreedomServer]:
        """The operator ends every session of ``username``: its connections get
        ``sessionEnded`` and its ghostIds stop resuming.  Returns the connections to flush."""
        ended: list[FleetFreedomServer] = []
        for ghost, session in list(self.hub.sessions.items()):
            if session.account.login == username:
                ended += self.hub.end_session(ghost)
        return ended

    def expire_sessions(self, now: float) -> None:
        """Every session expires at ``now`` (silently: a connection learns it on its next
        command, or a resume is refused)."""
        for session in self.hub.sessions.values():
            session.expires_at = min(session.expires_at, now)
        self.hub.prune(now)

    def next_deadline(self) -> float | None:
        return self.fleet.next_deadline()

    def forget_sessions(self) -> None:
        """Forget every session (a restart that loses the session store)."""
        self.hub.sessions.clear()
        self._born.clear()

    def _expire_sessions(self, now: float) -> list[FleetFreedomServer]:
        """End the sessions older than ``session_ttl``; returns the connections closed."""
        ttl = self.session_ttl
        closed: list[FleetFreedomServer] = []
        if ttl is None:
            return closed
        sessions = self.hub.sessions
        born = self._born
        for ghost_id in sessions:
            born.setdefault(ghost_id, now)
        for ghost_id, since in list(born.items()):
            if ghost_id not in sessions:
                del born[ghost_id]
            elif now - since >= ttl:
                del born[ghost_id]
                self.hub.forget_session(ghost_id, "expired")
                for conn in list(self.hub.connections):
                    if conn.ghost_id == ghost_id:
                        conn.close()  # the stack closes the WebSocket; the client comes back
                        closed.append(conn)
        return closed
