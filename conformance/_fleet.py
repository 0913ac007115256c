"""A simulated fleet: vehicles driving smooth closed routes, reproducible from a seed.

Pure like the cores: time is passed in.  Each vehicle's position is a closed-form function of
time (a Catmull-Rom loop through random waypoints, driven with a trapezoid speed profile and
parked stops), so the same seed gives the same positions whatever the caller's step times.
Updates are numbered per vehicle, so tests can count lost or duplicated events.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Fleet", "Vehicle", "VehicleUpdate"]

EARTH_RADIUS_M = 6_371_000.0
DEFAULT_CENTER = (43.6532, -79.3832)
"""Where the demo fleets drive (downtown Toronto)."""


@dataclass(slots=True, frozen=True)
class VehicleUpdate:
    """One reported position; ``seq`` counts this vehicle's updates from 1."""

    vehicle_id: int
    seq: int
    time: float
    lat: float
    lng: float
    speed_kmh: float
    heading: int
    alt: int
    moving: bool
    odometer_m: float

    @property
    def movement_status(self) -> str:
        """The iTrack vocabulary: ``moving`` or ``parked``."""
        return "moving" if self.moving else "parked"


@dataclass(slots=True)
class Vehicle:
    """A simulated vehicle and its route; ``tenant`` says who may see it."""

    id: int
    name: str
    tenant: str
    kind: str = "vehicle"
    route: list[tuple[float, float]] = field(default_factory=list, repr=False)
    """Dense closed polyline as (north, east) metres from the fleet's centre."""
    cumulative: list[float] = field(default_factory=list, repr=False)
    cruise_ms: float = 12.0
    accel: float = 1.5
    drive_s: float = 240.0
    stop_s: float = 45.0
    phase_s: float = 0.0
    alt: int = 120
    seq: int = 0
    next_update: float = 0.0

    @property
    def length(self) -> float:
        return self.cumulative[-1]

    def distance_at(self, t: float) -> float:
        """Metres driven by time ``t`` (closed form: whole cycles plus the current one)."""
        t = max(0.0, t + self.phase_s)
        cycle = self.drive_s + self.stop_s
        per_cycle = self._drive_distance(self.drive_s)
        whole, into = divmod(t, cycle)
        return whole * per_cycle + self._drive_distance(min(into, self.drive_s))

    def speed_at(self, t: float) -> float:
        """Metres per second at time ``t``."""
        into = max(0.0, t + self.phase_s) % (self.drive_s + self.stop_s)
        if into >= self.drive_s:
            return 0.0
        return min(self.cruise_ms, self.accel * into, self.accel * (self.drive_s - into))

    def _drive_distance(self, into: float) -> float:
        # Trapezoid: accelerate for `ramp` s, cruise, decelerate over the last `ramp` s.
        ramp = self.cruise_ms / self.accel
        total = self.drive_s
        if into <= ramp:
            return 0.5 * self.accel * into * into
        full_up = 0.5 * self.accel * ramp * ramp
        if into <= total - ramp:
            return full_up + self.cruise_ms * (into - ramp)
        left = total - into
        return full_up * 2 + self.cruise_ms * (total - 2 * ramp) - 0.5 * self.accel * left * left

    def point_at(self, distance: float) -> tuple[float, float, float]:
        """(north, east, heading in degrees) at ``distance`` along the loop."""
        d = distance % self.length
        i = bisect.bisect_right(self.cumulative, d) - 1
        i = min(max(i, 0), len(self.route) - 2)
        (n0, e0), (n1, e1) = self.route[i], self.route[i + 1]
        span = self.cumulative[i + 1] - self.cumulative[i] or 1.0
        f = (d - self.cumulative[i]) / span
        heading = math.degrees(math.atan2(e1 - e0, n1 - n0)) % 360.0
        return n0 + (n1 - n0) * f, e0 + (e1 - e0) * f, heading


def _catmull_rom_loop(
    points: Sequence[tuple[float, float]], per_segment: int
) -> list[tuple[float, float]]:
    """A smooth closed curve through ``points``, sampled ``per_segment`` times per span."""
    out: list[tuple[float, float]] = []
    n = len(points)
    for i in range(n):
        p0, p1, p2, p3 = points[i - 1], points[i], points[(i + 1) % n], points[(i + 2) % n]
        for k in range(per_segment):
            t = k / per_segment
            t2, t3 = t * t, t * t * t
            out.append(
                tuple(  # type: ignore[arg-type]
                    0.5
                    * (
                        2 * p1[j]
                        + (-p0[j] + p2[j]) * t
                        + (2 * p0[j] - 5 * p1[j] + 4 * p2[j] - p3[j]) * t2
                        + (-p0[j] + 3 * p1[j] - 3 * p2[j] + p3[j]) * t3
                    )
                    for j in (0, 1)
                )
            )
    out.append(out[0])
    return out


class Fleet:
    """Vehicles of several tenants, each reporting every ``1 / rate`` seconds.

    ``tenants`` maps a tenant name to its number of vehicles; ids are consecutive from
    ``first_id`` in tenant order.  :meth:`step` returns the updates due by ``now``.
    """

    def __init__(
        self,
        tenants: dict[str, int] | None = None,
        *,
        seed: int = 1,
        rate: float = 1.0,
        center: tuple[float, float] = DEFAULT_CENTER,
        first_id: int = 1001,
        radius_m: float = 3000.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 (updates per second per vehicle)")
        self.rate = rate
        self.center = center
        self.seed = seed
        rng = random.Random(seed)
        self.vehicles: dict[int, Vehicle] = {}
        vehicle_id = first_id
        for tenant, count in (tenants or {"demo": 10}).items():
            for index in range(count):
                self.vehicles[vehicle_id] = self._make(rng, vehicle_id, tenant, index, radius_m)
                vehicle_id += 1
        self._last: dict[int, VehicleUpdate] = {}

    def _make(
        self, rng: random.Random, vid: int, tenant: str, index: int, radius: float
    ) -> Vehicle:
        cx, cy = rng.uniform(-radius, radius) * 0.3, rng.uniform(-radius, radius) * 0.3
        waypoints = []
        count = rng.randint(5, 8)
        for k in range(count):
            angle = 2 * math.pi * k / count + rng.uniform(-0.3, 0.3)
            r = rng.uniform(0.35, 1.0) * radius
            waypoints.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
        if rng.random() < 0.5:
            waypoints.reverse()
        route = _catmull_rom_loop(waypoints, 24)
        cumulative = [0.0]
        for (n0, e0), (n1, e1) in itertools.pairwise(route):
            cumulative.append(cumulative[-1] + math.hypot(n1 - n0, e1 - e0))
        kinds = ("vehicle", "vehicle", "vehicle", "trailer", "person")
        kind = kinds[rng.randrange(len(kinds))]
        return Vehicle(
            id=vid,
            name=f"{tenant.capitalize()} {kind} {index + 1:02d}",
            tenant=tenant,
            kind=kind,
            route=route,
            cumulative=cumulative,
            cruise_ms=rng.uniform(8.0, 22.0) if kind != "person" else rng.uniform(1.0, 1.6),
            accel=rng.uniform(1.0, 2.5),
            drive_s=rng.uniform(120.0, 600.0),
            stop_s=rng.uniform(20.0, 120.0),
            phase_s=rng.uniform(0.0, 600.0),
            alt=rng.randint(76, 180),
        )

    def of_tenant(self, tenant: str) -> list[Vehicle]:
        return [v for v in self.vehicles.values() if v.tenant == tenant]

    def position(self, vehicle_id: int, t: float) -> VehicleUpdate:
        """Where a vehicle is at time ``t`` (does not count as an update)."""
        vehicle = self.vehicles[vehicle_id]
        return self._update(vehicle, t, vehicle.seq)

    def _update(self, vehicle: Vehicle, t: float, seq: int) -> VehicleUpdate:
        driven = vehicle.distance_at(t)
        north, east, heading = vehicle.point_at(driven)
        lat0, lng0 = self.center
        lat = lat0 + math.degrees(north / EARTH_RADIUS_M)
        lng = lng0 + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
        speed = vehicle.speed_at(t) * 3.6
        return VehicleUpdate(
            vehicle_id=vehicle.id,
            seq=seq,
            time=t,
            lat=round(lat, 7),
            lng=round(lng, 7),
            speed_kmh=round(speed, 1),
            heading=round(heading) % 360,
            alt=vehicle.alt,
            moving=speed > 0.5,
            odometer_m=round(driven, 1),
        )

    def step(self, now: float, ids: Iterable[int] | None = None) -> list[VehicleUpdate]:
        """The updates due by ``now``: at most one per vehicle (a late caller skips slots)."""
        period = 1.0 / self.rate
        out: list[VehicleUpdate] = []
        for vehicle in (
            self.vehicles.values() if ids is None else map(self.vehicles.__getitem__, ids)
        ):
            if now < vehicle.next_update:
                continue
            vehicle.seq += 1
            update = self._update(vehicle, now, vehicle.seq)
            self._last[vehicle.id] = update
            out.append(update)
            slots = math.floor((now - vehicle.next_update) / period) + 1
            vehicle.next_update += slots * period
        return out

    def latest(self, vehicle_id: int, now: float = 0.0) -> VehicleUpdate:
        """The last update reported for a vehicle (its position at ``now`` if none yet)."""
        last = self._last.get(vehicle_id)
        return last if last is not None else self.position(vehicle_id, now)

    def next_deadline(self) -> float | None:
        return min((v.next_update for v in self.vehicles.values()), default=None)
