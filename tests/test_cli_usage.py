"""The command line's contract: usage errors, help text, stdout for data and stderr for
status, credentials, iTrack names and ids, ``--batch``, and the missing ``cli`` extra; through
the real ``trackwire`` command in subprocesses (loopback only)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_helpers import CLI, records, run

from trackwire.drivers._cli import main
from trackwire.drivers._cli.main import INSTALL_HINT
from trackwire.itrack import TrackerListError, TrackerListRefused

HASH = "a" * 32


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["watch", "itrack", "--trackers", "abc"], "--trackers"),
        (["watch", "itrack", "--trackers", "1,,2"], "--trackers"),
        (["watch", "itrack", "--count", "0"], "--count"),
        (["watch", "itrack", "--count", "-1"], "--count"),
        (["watch", "fleetfreedom", "--count", "many"], "--count"),
        (["watch", "itrack", "--duration", "-5"], "--duration"),
        (["watch", "itrack", "--duration", "nan"], "--duration"),
        (["watch", "itrack", "--vehicles", "0"], "--vehicles"),
        (["watch", "fleetfreedom", "--rate", "0"], "--rate"),
        (["watch", "itrack", "--port", "70000"], "--port"),
        (["watch", "itrack", "--heartbeat-ms", "-1"], "--heartbeat-ms"),
        (["watch", "fleetfreedom", "--heartbeat-ms", "100"], "--heartbeat-ms"),
        (["watch", "fleetfreedom", "--company", "0"], "--company"),
        (["watch", "fleetfreedom", "--types", "asset general"], "--types"),
        (["watch", "itrack", "--url", "ws://h/v2/", "--hash", HASH], "--url"),
        (["watch", "fleetfreedom", "--url", "https://h/", "--ghost-id", "g"], "--url"),
        (["watch", "itrack", "--hash", "abc"], "--hash"),
        (["watch", "itrack", "--stall-timeout", "-1"], "--stall-timeout"),
        (["serve", "itrack", "--session-ttl", "0"], "--session-ttl"),
        (["serve", "itrack", "--loop", "gevent"], "--loop"),
        (
            ["serve", "fleetfreedom", "--loop", "asyncio", "--redis", "redis://127.0.0.1/0"],
            "--redis runs under --loop trio only",
        ),
        # credentials
        (["watch", "itrack", "--url", "http://127.0.0.1:9/v2/"], "--url needs --login"),
        (["watch", "fleetfreedom", "--url", "ws://127.0.0.1:9/"], "--url needs --username"),
        (["watch", "itrack", "--url", "http://h/", "--login", "a"], "--password go together"),
        (["watch", "itrack", "--password", "p"], "--password go together"),
        (
            [
                "watch",
                "itrack",
                "--url",
                "http://h/",
                "--hash",
                HASH,
                "--login",
                "a",
                "--password",
                "p",
            ],
            "--hash replaces",
        ),
        (
            [
                "watch",
                "fleetfreedom",
                "--url",
                "ws://h/",
                "--ghost-id",
                "g",
                "--username",
                "u",
                "--password",
                "p",
            ],
            "--ghost-id replaces",
        ),
        (["watch", "itrack", "--hash", HASH], "--hash needs --url"),
        (["watch", "fleetfreedom", "--ghost-id", "g"], "--ghost-id needs --url"),
        # embedded-server options with a real server
        (
            ["watch", "itrack", "--url", "http://h/", "--hash", HASH, "--vehicles", "3"],
            "--vehicles shapes the embedded server",
        ),
        (
            ["watch", "fleetfreedom", "--url", "ws://h/", "--ghost-id", "g", "--port", "1"],
            "--port shapes the embedded server",
        ),
        (["serve", "fleetfreedom", "--heartbeat-ms", "100"], "--heartbeat-ms"),
        (["serve", "itrack", "--duration", "0"], "--duration"),
        (["serve"], "PLATFORM"),
        (["watch", "nowhere"], "nowhere"),
        (["conformance", "server"], "required"),
    ],
)
def test_bad_values_are_one_line_usage_errors(argv: list[str], complaint: str) -> None:
    done = run(*argv, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("trackwire")
    assert ": error: " in lines[0]
    assert complaint in lines[0]


def help_groups(text: str) -> dict[str, list[str]]:
    """The options of each group of an argparse help text (``options`` for the main one)."""
    groups: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            groups[current] = []
        elif current and (match := re.match(r"  (-\w|--[\w-]+)", line)):
            groups[current].append(match.group(1))
    return groups


def test_help_groups_the_embedded_server_options() -> None:
    itrack = run("watch", "itrack", "--help").stdout
    ff = run("watch", "fleetfreedom", "--help").stdout
    serve_itrack = run("serve", "itrack", "--help").stdout
    serve_ff = run("serve", "fleetfreedom", "--help").stdout
    assert help_groups(itrack) == {
        "options": ["-h", "--url", "--login", "--password", "--hash", "--trackers", "--batch",
                    "--track-message-length", "--stall-timeout"],
        "output": ["--json", "--count", "--duration"],
        "embedded server (without --url)": ["--vehicles", "--rate", "--seed", "--heartbeat-ms",
                                            "--port"],
    }  # fmt: skip
    assert help_groups(ff) == {
        "options": ["-h", "--url", "--username", "--password", "--ghost-id", "--company",
                    "--types", "--stall-timeout"],
        "output": ["--json", "--count", "--duration"],
        "embedded server (without --url)": ["--vehicles", "--rate", "--seed", "--port"],
    }  # fmt: skip
    assert help_groups(serve_itrack) == {
        "options": ["-h", "--host", "--port", "--duration", "--session-ttl", "--loop", "--redis"],
        "simulated fleet": ["--vehicles", "--rate", "--seed", "--heartbeat-ms"],
    }
    assert help_groups(serve_ff)["simulated fleet"] == ["--vehicles", "--rate", "--seed"]
    for text in (itrack, ff, serve_itrack, serve_ff):
        # every option says what it does: text after it, or on the next line
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if re.match(r"  --[\w-]+", line):
                rest = re.sub(r"^  --[\w-]+( \S+)?", "", line).strip()
                assert rest or lines[index + 1].startswith(" " * 10), line
    assert "stop after N application events" in itrack
    assert "state_batch" in itrack
    assert "the company whose assets to watch" in ff
    assert "subscription types" in ff


ROW = re.compile(
    r"^ +(?P<tracker>\d+|-) +(?P<source>\d+) (?P<name>.{24}) +-?\d+\.\d{6} +-?\d+\.\d{6} "
    r"+\d+\.\d km/h +\d+° \w+$"
)


def test_stdout_holds_data_and_stderr_status_with_names_and_both_ids() -> None:
    done = run("watch", "itrack", "--count", "6", "--vehicles", "2", "--duration", "30")
    assert done.returncode == 0, done.stderr
    rows = [ROW.match(line) for line in done.stdout.splitlines()]
    assert len(rows) == 5  # the sixth event is the subscription's answer: status
    for row in rows:
        assert row is not None
        tracker, source, name = row["tracker"], row["source"], row["name"].strip()
        assert int(source) == int(tracker) * 10  # the reference server's source ids
        assert re.fullmatch(r"Demo (vehicle|trailer|person) 0[12]", name), name
    assert {r["tracker"] for r in rows if r} == {"1001", "1002"}
    status = done.stderr.splitlines()
    assert all(line.startswith("# ") for line in status), status
    assert "# connected" in status
    assert "# subscribed: 2 normal" in status

    ff = run("watch", "fleetfreedom", "--count", "10", "--vehicles", "2", "--duration", "30")
    assert ff.returncode == 0, ff.stderr
    assert ff.stdout.splitlines()
    assert all("km/h" in line and "Demo" in line for line in ff.stdout.splitlines())
    status = ff.stderr.splitlines()
    assert all(line.startswith("# ") for line in status), status
    assert "# logged in" in status
    assert "# subscribeResponse 0 OK" in status

    as_json = run("watch", "itrack", "--json", "--count", "4", "--vehicles", "2")
    assert next(r["kind"] for r in records(as_json.stdout)) == "subscribed"
    assert all(line.startswith("# ") for line in as_json.stderr.splitlines())


def test_batch_chooses_state_batch() -> None:
    single = records(run("watch", "itrack", "--json", "--count", "5", "--vehicles", "2").stdout)
    batch = records(
        run("watch", "itrack", "--json", "--count", "3", "--vehicles", "2", "--batch").stdout
    )
    chosen = records(
        run(
            "watch",
            "itrack",
            "--json",
            "--count",
            "3",
            "--vehicles",
            "2",
            "--batch",
            "--trackers",
            "1002",
        ).stdout
    )
    assert [r["kind"] for r in single] == ["subscribed"] + ["state"] * 4
    assert single[0]["trackers"] == {"1001": "normal", "1002": "normal"}
    assert [r["kind"] for r in batch] == ["subscribed"] + ["state_batch"] * 2
    assert [r["kind"] for r in chosen] == ["subscribed"] + ["state_batch"] * 2
    assert {s["source_id"] for r in chosen[1:] for s in r["states"]} == {10020}  # type: ignore[attr-defined]


@pytest.fixture
def served_itrack() -> Iterator[str]:
    """``trackwire serve itrack`` in its own process; yields its port."""
    proc = subprocess.Popen(
        [*CLI, "serve", "itrack", "--vehicles", "2", "--duration", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match
        yield match.group(1)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_refused_upgrade_and_hash_are_one_error_line(served_itrack: str) -> None:
    port = served_itrack
    refused = run("watch", "fleetfreedom", "--url", f"ws://127.0.0.1:{port}/nowhere",
                  "--username", "u", "--password", "p", "--count", "1")  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"trackwire: cannot connect to ws://127.0.0.1:{port}/nowhere: the server refused the "
        "upgrade with HTTP 404"
    ]
    dead_hash = run("watch", "itrack", "--url", f"http://127.0.0.1:{port}/v2/", "--hash", HASH)
    assert dead_hash.returncode == 1
    assert dead_hash.stderr.splitlines() == [
        "trackwire: the server refused the session: 4 User not found or session ended"
    ]
    unreachable = run("watch", "itrack", "--url", "http://127.0.0.1:9/v2/", "--hash", HASH)
    assert unreachable.returncode == 1
    assert len(unreachable.stderr.splitlines()) == 1
    assert unreachable.stderr.startswith("trackwire: cannot reach http://127.0.0.1:9/v2/: ")
    named = run("watch", "itrack", "--url", f"http://127.0.0.1:{port}/v2/", "--login", "other",
                "--password", "other", "--count", "2")  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert re.match(r" +1003 +10030 Other \w+ 01 ", named.stdout)


def test_without_the_tracker_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment that does not list trackers: source ids only, unless the subscription
    needs the list (``state`` for all trackers); a refused hash ends the watch."""
    import trackwire.drivers._cli.watch as watch

    async def unlisted(base: str, session_hash: str) -> list[object]:
        raise TrackerListError("tracker/list answered HTTP 404")

    monkeypatch.setattr(watch, "itrack_tracker_list", unlisted)
    out, err = io.StringIO(), io.StringIO()
    argv = ["watch", "itrack", "--vehicles", "2", "--count", "3", "--duration", "30"]
    assert main([*argv, "--batch"], out, err) == 0
    assert "# no tracker list (tracker/list answered HTTP 404): names unknown" in err.getvalue()
    assert re.match(r" +- +100[12]0 {25}", out.getvalue())
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, out, err) == 1
    assert err.getvalue().splitlines()[-1] == (
        "trackwire: cannot list the trackers to subscribe to; use --batch or --trackers ID,…"
    )
    out, err = io.StringIO(), io.StringIO()
    assert main([*argv, "--trackers", "1001"], out, err) == 0
    assert re.search(r"^ +- +10010 ", out.getvalue(), re.MULTILINE)

    async def refused(base: str, session_hash: str) -> list[object]:
        raise TrackerListRefused(11, "Access denied")

    monkeypatch.setattr(watch, "itrack_tracker_list", refused)
    out, err = io.StringIO(), io.StringIO()
    assert main([*argv, "--batch"], out, err) == 0
    assert "# no tracker list (11 Access denied): names unknown" in err.getvalue()


def test_without_trio_one_line_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class NoTrio:
                def find_spec(self, name, path=None, target=None):
                    if name == "trio" or name.startswith("trio."):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, NoTrio())
            """
        )
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for argv in (["--help"], ["watch", "itrack"], ["serve", "itrack"], []):
        done = run(*argv, env=env, timeout=30)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines() == [INSTALL_HINT]
        assert done.stdout == ""
    assert INSTALL_HINT.endswith("pip install 'trackwire[cli]'")
    # the same interpreter with trio importable runs
    assert run("--help", timeout=30).returncode == 0


def test_status_lines_of_a_connection_are_readable() -> None:
    from trackwire.drivers._cli.view import View
    from trackwire.drivers._cli.watch import Watch
    from trackwire.ws import Connected, ConnectionClosed, Rejected

    out, err = io.StringIO(), io.StringIO()
    view = View(out, live=False, as_json=False, clock=lambda: 0.0, err=err)
    watch = Watch(view, "ws://127.0.0.1:1/")
    watch.transport(Rejected(404, [], b"Not Found\n"))  # the failure line says it
    watch.transport(Connected("/"))
    watch.transport(ConnectionClosed(1001, "going\naway"))
    watch.transport(Rejected(503, [("content-length", "10")], b"Later\n"))
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "# connected",
        "# disconnected (1001 going away)",
        "# the server refused the WebSocket upgrade: HTTP 503",
    ]


def test_json_records_are_strict_json_whatever_the_peer_sent() -> None:
    """A peer's ``1e999999`` or lone surrogate escape must not make ``--json`` print
    ``Infinity`` (which strict parsers refuse) or crash on an unencodable character."""
    from trackwire.drivers._cli.view import View

    out, err = io.StringIO(), io.StringIO()
    view = View(out, live=False, as_json=True, clock=lambda: 0.0, err=err)
    view.record({"kind": "state", "speed": json.loads("1e999999"), "label": "\ud800x"})
    view.notice({"kind": "stalled", "idle": float("nan")}, "stalled")

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    lines = out.getvalue().splitlines()
    records = [json.loads(line, parse_constant=refuse) for line in lines]
    assert records == [
        {"kind": "state", "speed": None, "label": "\ufffdx"},
        {"kind": "stalled", "idle": None},
    ]
    for line in lines:
        line.encode("utf-8")


def test_a_reader_that_goes_away_ends_the_watch_quietly() -> None:
    proc = subprocess.Popen(
        [*CLI, "watch", "itrack", "--vehicles", "2", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert b"km/h" in proc.stdout.readline()
    proc.stdout.close()  # as `trackwire watch itrack | head -1` does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"Traceback" not in err
    assert all(line.startswith(b"# ") for line in err.splitlines()), err
