"""Smoke tests of the benchmark runner: it runs, prints its table and writes valid JSON.

No figure is judged here (the machines are noisy); only the shape of the output is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
VERDICTS = {"ok", "MISSED", "info"}
ALONE = "atmosphere client alone (no JSON): 1 msg/frame, TMS on"
"""One timed case (its non-ASCII sibling has "non-ASCII" before "TMS")."""


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_list_names_every_case_group() -> None:
    names = run("--list").splitlines()
    assert {name.split()[0] for name in names} == {"1", "2", "3", "4", "5", "6", "7", "8"}
    assert len(names) == len(set(names))


def test_quick_timed_case_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    table = run("--quick", "--only", ALONE, "--json", str(out))
    assert "atmosphere client alone" in table.splitlines()[1]
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    assert payload["machine"]["python"]
    (row,) = payload["results"]
    assert row["case"].startswith("1 atmosphere client alone")
    assert row["unit"] == "us/msg"
    assert row["baseline"] == "json.loads"
    assert row["ours"] > 0
    assert row["base"] > 0
    assert row["ratio"] == sorted([*row["ratio_range"], row["ratio"]])[1]
    assert row["verdict"] in VERDICTS


def test_markdown_renders_a_saved_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run("--quick", "--only", ALONE, "--json", str(out))
    lines = run("--markdown", str(out)).splitlines()
    assert lines[0] == "| case | ours | baseline | base | ratio | target | verdict |"
    (row,) = lines[2:]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "1 atmosphere client alone (no JSON): 1 msg/frame, TMS on"
    assert cells[1].endswith(" µs")
    assert cells[2] == "json.loads"
    assert cells[5] == "<=1.15×"
    assert cells[6] in {"ok", "**missed**"}


def test_quick_memory_case_reports_bytes_per_connection(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run("--quick", "--only", "ServerStack + FleetFreedomServer", "--json", str(out))
    (row,) = json.loads(out.read_text())["results"]
    assert row["unit"] == "B/conn"
    assert row["target"] == "<=16384"
    assert row["verdict"] in {"ok", "MISSED"}
    assert 0 < row["ours"] < 1 << 20
    assert row["base"] > 0


def test_only_matching_nothing_writes_an_empty_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run("--quick", "--only", "no such case", "--json", str(out))
    assert json.loads(out.read_text())["results"] == []


def test_fanout_delivers_every_update_to_every_connection_on_both_servers() -> None:
    script = RUN.with_name("fanout.py")
    done = subprocess.run(
        [sys.executable, str(script), "--connections", "20", "--updates", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    runs = json.loads(done.stdout)
    for kind in ("ours", "websockets"):
        (figures,) = runs[kind]
        assert figures["connections"] == 20
        assert figures["delivered"] == 60  # 3 updates x 20 connections, counted by the clients
        assert figures["msg_per_s"] > 0
        assert figures["cpu_us_per_msg"] > 0
