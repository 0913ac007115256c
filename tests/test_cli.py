"""The ``trackwire`` command line, end to end through the console script (loopback only)."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator

import pytest
from _cli_helpers import CLI, records, run

from trackwire.drivers._cli import main


@pytest.fixture(
    params=[(p, loop) for loop in ("trio", "asyncio") for p in ("itrack", "fleetfreedom")],
    ids=lambda param: "-".join(param),
)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``trackwire serve --loop L`` in its own process; yields (platform, URL to watch)."""
    platform, loop = request.param
    proc = subprocess.Popen(
        [
            *CLI,
            "serve",
            platform,
            "--loop",
            loop,
            "--vehicles",
            "3",
            "--rate",
            "4",
            "--duration",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(https?|wss?)://127\.0\.0\.1:\d+/(v2/)?", line)
        assert match, line
        yield platform, match.group(0)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_watch_against_serve_for_both_platforms_and_tenants(served: tuple[str, str]) -> None:
    platform, url = served
    if platform == "itrack":
        demo = run("watch", "itrack", "--url", url, "--login", "demo", "--password", "demo",
                   "--batch", "--json", "--count", "4")  # fmt: skip
        other = run("watch", "itrack", "--url", url, "--login", "other", "--password", "other",
                    "--batch", "--json", "--count", "4")  # fmt: skip
        states = "state_batch"
    else:
        demo = run("watch", "fleetfreedom", "--url", url, "--username", "demo@example.com",
                   "--password", "demo", "--json", "--count", "12")  # fmt: skip
        other = run("watch", "fleetfreedom", "--url", url, "--username", "other@example.com",
                    "--password", "other", "--company", "2", "--json", "--count", "12")  # fmt: skip
        states = "merged"
    assert demo.returncode == 0, demo.stderr
    assert other.returncode == 0, other.stderr
    # demo vehicles are 1001..1003, the other tenant's 1004; ids as each protocol shows them
    if platform == "itrack":
        seen_demo = {s["source_id"] for r in records(demo.stdout) if r["kind"] == states
                     for s in r["states"]}  # type: ignore[attr-defined]  # fmt: skip
        seen_other = {s["source_id"] for r in records(other.stdout) if r["kind"] == states
                      for s in r["states"]}  # type: ignore[attr-defined]  # fmt: skip
        assert seen_demo == {10010, 10020, 10030}
        assert seen_other == {10040}
    else:
        seen_demo = {r["id"] for r in records(demo.stdout) if r["kind"] == states}
        seen_other = {r["id"] for r in records(other.stdout) if r["kind"] == states}
        assert seen_demo == {1001, 1002, 1003}
        assert seen_other == {1004}


def test_itrack_json_schema_through_the_console_script() -> None:
    done = run(
        "watch", "itrack", "--json", "--count", "3", "--trackers", "1002", "--duration", "30"
    )
    assert done.returncode == 0, done.stderr
    out = records(done.stdout)
    assert len(out) == 3
    assert out[0]["kind"] == "subscribed"
    assert out[0]["trackers"] == {"1002": "normal"}
    state = out[1]
    assert state["kind"] == "state"
    assert state["source_id"] == 10020
    assert {"lat", "lng", "speed", "heading", "message"} <= set(state)
    assert state["message"]["event"] == "state"  # type: ignore[index]


def test_fleetfreedom_json_schema_carries_types_ids_and_versions() -> None:
    done = run(
        "watch", "fleetfreedom", "--json", "--count", "10", "--vehicles", "2", "--duration", "30"
    )
    assert done.returncode == 0, done.stderr
    out = records(done.stdout)
    kinds = [r["kind"] for r in out]
    assert kinds[:2] == ["connected", "logged_in"]
    merged = [r for r in out if r["kind"] == "merged"]
    assert merged
    for record in merged:
        assert record["type"] == "assetAdvanced"
        assert record["company"] == 1
        assert isinstance(record["v"], list)
        assert len(record["v"]) == 1
        assert record["message"]["name"] == "assetAdvancedMerged"  # type: ignore[index]
    # the session's ghostId is a secret: masked in what is printed
    assert "…" in json.dumps(out[1]["message"], ensure_ascii=False)


def test_exit_codes() -> None:
    refused = run("watch", "itrack", "--login", "demo", "--password", "nope", "--count", "1",
                  "--duration", "30")  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "trackwire: login refused: 102 Wrong login or password"
    )
    assert "Traceback" not in refused.stderr
    unreachable = run("watch", "fleetfreedom", "--url", "ws://127.0.0.1:9/", "--username", "u",
                      "--password", "p", "--count", "1")  # fmt: skip
    assert unreachable.returncode == 1
    assert (
        unreachable.stderr.strip()
        .splitlines()[-1]
        .startswith("trackwire: cannot connect to ws://127.0.0.1:9/")
    )
    assert "Traceback" not in unreachable.stderr
    bad_login = run("watch", "fleetfreedom", "--username", "demo@example.com", "--password", "x",
                    "--count", "5", "--duration", "30")  # fmt: skip
    assert bad_login.returncode == 1
    assert "login refused: 11" in bad_login.stderr
    assert run("watch", "nowhere").returncode == 2
    assert run("watch", "itrack", "--hash", "abc").returncode == 2
    assert run("serve").returncode == 2


def test_plain_lines_when_not_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert (
        main(["watch", "itrack", "--count", "3", "--vehicles", "2", "--duration", "30"], out, err)
        == 0
    )
    lines = out.getvalue().splitlines()
    assert sum("km/h" in line for line in lines) == 2  # the subscription answer is status
    assert all("km/h" in line for line in lines)
    assert "# connected" in err.getvalue()  # status goes to stderr, data to stdout
    assert "# subscribed: 2 normal" in err.getvalue()


def test_serve_prints_url_and_demo_account_then_stops() -> None:
    out = io.StringIO()
    assert main(["serve", "fleetfreedom", "--duration", "0.2"], out) == 0
    line = out.getvalue().strip()
    assert line.startswith("FleetFreedom reference server on ws://127.0.0.1:")
    assert "demo@example.com / password demo, company 1" in line


def test_reference_timestamps_are_wall_clock_time() -> None:
    done = run(
        "watch", "fleetfreedom", "--json", "--count", "8", "--vehicles", "1", "--duration", "30"
    )
    stamps = [r["message"]["body"]["position"]["dts"] for r in records(done.stdout)  # type: ignore[index]
              if r["kind"] == "merged"]  # fmt: skip
    assert stamps
    stamp = datetime.datetime.fromisoformat(str(stamps[-1]).replace("Z", "+00:00"))
    assert abs((stamp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60


def test_live_table_on_a_terminal() -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "watch", "itrack", "--vehicles", "2", "--duration", "4"],
        stdout=follower, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(follower)
    screen = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        proc.wait(timeout=30)
        os.close(leader)
    text = screen.decode("utf-8", "replace")
    assert "\x1b[2J" in text  # redrawn in place
    last = text.rsplit("\x1b[2J", 1)[-1]
    assert "km/h" in last.splitlines()[0]
    assert "10010" in last
    assert "10020" in last
    assert "events/s" in last
