"""The soak at CI size: 30 clients (every driver, both protocols, both tenants) for a few
seconds against the reference servers; nothing lost, nothing duplicated, memory bounded.

The counting law itself is tested on :class:`Tally` directly, so that a soak that counted
nothing could not pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RELIABILITY = Path(__file__).resolve().parent.parent / "reliability"
sys.path.insert(0, str(RELIABILITY))

import soak  # noqa: E402


def test_tally_counts_gaps_repeats_and_what_reconnects_may_do() -> None:
    tally = soak.Tally()
    tally.connected()
    for seq in (5, 6, 7, 9, 9, 8, 10):
        tally.update(1, seq)
    assert (tally.events, tally.lost, tally.duplicated) == (7, 1, 2)
    tally.closed()
    tally.connected()
    tally.update(1, 10)  # the current state a resubscribe sends again
    tally.update(2, 3)
    tally.closed()
    tally.connected()
    tally.update(1, 14)  # 11..13 happened while disconnected
    tally.update(2, 1)  # back in time: never allowed
    assert (tally.resent, tally.skipped_offline, tally.regressions) == (1, 3, 1)
    assert (tally.lost, tally.duplicated) == (1, 2)
    assert tally.events_per_connection == [7, 2, 2]
    assert tally.summary()["vehicles"] == 2


def test_plan_spreads_clients_over_drivers_protocols_and_tenants() -> None:
    specs = soak.plan(24)
    combos = {(s.driver, s.protocol, s.tenant) for s in specs}
    assert len(combos) == 3 * 2 * 2
    assert len({s.name for s in specs}) == 24


def test_memory_report_gives_the_slope_after_warmup() -> None:
    samples = [(t, (100 + 2 * t) * (1 << 20), 1000 * (50 + t), 0) for t in range(10)]
    report = soak.Memory.report(samples, warmup=5)
    assert report["rss_mib_start"] == 110
    assert report["rss_mib_end"] == 118
    assert report["rss_mib_slope_per_min"] == pytest.approx(120)
    assert report["blocks_k_slope_per_min"] == pytest.approx(60)


async def test_thirty_clients_lose_and_duplicate_nothing() -> None:
    config = soak.SoakConfig(clients=30, seconds=5, vehicles=10, rate=5, server="inline")
    result = await soak.run_soak(config)
    totals = result.totals
    assert totals["clients"] == 30
    assert totals["silent_clients"] == 0
    assert set(totals["events_by"]) == {"trio", "asyncio", "blocking", "itrack", "fleetfreedom"}
    assert all(count > 0 for count in totals["events_by"].values())
    assert (totals["lost"], totals["duplicated"], totals["regressions"]) == (0, 0, 0)
    assert totals["cache_rollbacks"] == 0
    assert totals["connections"] == 30
    assert totals["reconnect_failures"] == 0
    assert totals["errors"] == 0
    assert not result.thread_failures
    assert not result.leftover_threads
    assert result.clean
    # Every client saw every vehicle of its tenant (demo 10, other 5).
    assert {c["vehicles"] for c in result.clients} == {10, 5}
    # Memory after warm-up stays within a generous bound (a leak per event would not).
    assert result.memory["rss_mib_end"] - result.memory["rss_mib_start"] < 64
    assert result.server_stats["itrack_cores_held"] <= 15


def test_the_command_line_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(RELIABILITY / "soak.py"),
            "--clients",
            "6",
            "--seconds",
            "2",
            "--vehicles",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "lost" in done.stdout
    assert "duplicated" in done.stdout
    assert "verdict" in done.stdout
    assert "clean" in done.stdout
    data = json.loads(out.read_text())
    assert data["clean"] is True
    assert data["totals"]["clients"] == 6
    assert data["server_memory"]["rss_mib_end"] > 0  # the child process reported its memory
