"""The simulated fleet: reproducible, smooth, plausible, numbered."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire.conformance._fleet import EARTH_RADIUS_M, Fleet


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[0] + b[0]) / 2)
    dn = math.radians(b[0] - a[0]) * EARTH_RADIUS_M
    de = math.radians(b[1] - a[1]) * EARTH_RADIUS_M * math.cos(lat)
    return math.hypot(dn, de)


@settings(max_examples=50)
@given(st.integers(0, 2**32), st.lists(st.floats(0.01, 30.0), min_size=1, max_size=40))
def test_same_seed_same_positions_whatever_the_step_times(seed: int, steps: list[float]) -> None:
    a = Fleet({"demo": 3}, seed=seed)
    b = Fleet({"demo": 3}, seed=seed)
    now = 0.0
    for step in steps:
        now += step
        a.step(now)  # b is never stepped: positions depend on time alone
    for vid in a.vehicles:
        pa, pb = a.position(vid, now), b.position(vid, now)
        assert (pa.lat, pa.lng, pa.speed_kmh, pa.heading) == (
            pb.lat,
            pb.lng,
            pb.speed_kmh,
            pb.heading,
        )


def test_different_seeds_differ() -> None:
    assert Fleet(seed=1).position(1001, 10.0) != Fleet(seed=2).position(1001, 10.0)


def test_updates_numbered_and_at_the_rate() -> None:
    fleet = Fleet({"demo": 2}, rate=2.0)
    seen: dict[int, list[int]] = {}
    t = 0.0
    while t <= 10.0:
        for update in fleet.step(t):
            seen.setdefault(update.vehicle_id, []).append(update.seq)
        t += 0.25
    for seqs in seen.values():
        assert seqs == list(range(1, 22))  # t = 0, 0.5, …, 10.0


def test_late_caller_skips_slots_without_gaps_in_numbering() -> None:
    fleet = Fleet({"demo": 1}, rate=1.0)
    assert [u.seq for u in fleet.step(0.0)] == [1]
    assert [u.seq for u in fleet.step(100.0)] == [2]
    assert fleet.step(100.5) == []
    assert fleet.next_deadline() == 101.0


def test_motion_is_smooth_and_plausible() -> None:
    fleet = Fleet({"demo": 5}, seed=7)
    for vid in fleet.vehicles:
        previous = fleet.position(vid, 0.0)
        for k in range(1, 1200):
            current = fleet.position(vid, k * 1.0)
            moved = _metres((previous.lat, previous.lng), (current.lat, current.lng))
            # At most the faster of the two speeds for one second, plus rounding.
            assert moved <= max(previous.speed_kmh, current.speed_kmh) / 3.6 + 0.5
            assert current.speed_kmh <= 22 * 3.6 + 0.1
            assert _metres(fleet.center, (current.lat, current.lng)) < 6000
            if current.moving and previous.moving:
                turn = abs((current.heading - previous.heading + 180) % 360 - 180)
                assert turn <= 60
            previous = current


def test_vehicles_park_and_drive() -> None:
    fleet = Fleet({"demo": 4}, seed=3)
    statuses = {
        fleet.position(v, t).movement_status for v in fleet.vehicles for t in range(0, 1500, 5)
    }
    assert statuses == {"moving", "parked"}


def test_tenants_get_their_own_vehicles() -> None:
    fleet = Fleet({"demo": 3, "other": 2})
    assert [v.id for v in fleet.of_tenant("demo")] == [1001, 1002, 1003]
    assert [v.id for v in fleet.of_tenant("other")] == [1004, 1005]
    assert fleet.vehicles[1004].name.startswith("Other ")


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        Fleet(rate=0)
