"""The ``trackwire`` command line against its embedded reference servers (loopback only)."""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys

from trackwire.drivers._cli import main


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_watch_itrack_embedded_shows_only_the_demo_tenant() -> None:
    out = io.StringIO()
    code = main(
        ["watch", "itrack", "--json", "--count", "8", "--vehicles", "4", "--duration", "20"], out
    )
    rows = _json_lines(out.getvalue())
    assert code == 0
    assert len(rows) == 8
    # demo vehicles are 1001..1004 (source ids ×10); the other tenant's 1005.. never show.
    assert {row["id"] for row in rows} <= {"10010", "10020", "10030", "10040"}
    assert all(isinstance(row["lat"], float) and 43 < row["lat"] < 44.5 for row in rows)


def test_watch_itrack_selected_trackers_with_length_prefixes() -> None:
    out = io.StringIO()
    argv = ["watch", "itrack", "--json", "--count", "3", "--trackers", "1002",
            "--track-message-length", "--duration", "20"]  # fmt: skip
    assert main(argv, out) == 0
    assert {row["id"] for row in _json_lines(out.getvalue())} == {"10020"}


def test_watch_fleetfreedom_embedded_with_names_from_the_asset_list() -> None:
    out = io.StringIO()
    argv = [
        "watch",
        "fleetfreedom",
        "--json",
        "--count",
        "6",
        "--vehicles",
        "3",
        "--duration",
        "20",
    ]
    assert main(argv, out) == 0
    rows = _json_lines(out.getvalue())
    assert len(rows) == 6
    assert {row["id"] for row in rows} <= {"1001", "1002", "1003"}
    assert all(str(row["name"]).startswith("Demo ") for row in rows)


def test_watch_fleetfreedom_wrong_password_stops_with_a_clear_status() -> None:
    out = io.StringIO()
    argv = ["watch", "fleetfreedom", "--password", "nope", "--count", "1", "--duration", "3"]
    main(argv, out)
    assert "login refused: 11" in out.getvalue()


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    assert (
        main(["watch", "itrack", "--count", "2", "--vehicles", "2", "--duration", "20"], out) == 0
    )
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    assert all("km/h" in line for line in lines)


def test_serve_prints_url_and_demo_account_then_stops() -> None:
    out = io.StringIO()
    assert main(["serve", "fleetfreedom", "--duration", "0.2"], out) == 0
    line = out.getvalue().strip()
    assert line.startswith("FleetFreedom reference server on ws://127.0.0.1:")
    assert "demo@example.com / password demo, company 1" in line


def test_console_script_runs_the_main_job() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trackwire.drivers", "watch", "itrack", "--count", "3",
         "--duration", "30"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("km/h") == 3


def test_reference_timestamps_are_wall_clock_time() -> None:
    out = io.StringIO()
    argv = ["watch", "fleetfreedom", "--count", "1", "--vehicles", "1", "--duration", "20"]
    from trackwire.drivers import _cli

    seen: list[str] = []
    original = _cli._row_of_asset

    def spy(asset: dict[str, object]) -> _cli.Row:
        position = asset.get("position")
        if isinstance(position, dict):
            seen.append(str(position.get("dts")))
        return original(asset)

    _cli._row_of_asset = spy  # type: ignore[assignment]
    try:
        assert main(argv, out) == 0
    finally:
        _cli._row_of_asset = original  # type: ignore[assignment]
    stamp = datetime.datetime.fromisoformat(seen[-1].replace("Z", "+00:00"))
    assert abs((stamp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60
