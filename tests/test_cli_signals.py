"""Ctrl-C and SIGTERM end every command quietly: real signals sent to the real ``trackwire``
command in subprocesses, off a terminal (pipes) and on one (a pseudo-terminal, where Ctrl-C
is the ^C character the terminal turns into SIGINT)."""

from __future__ import annotations

import os
import pty
import selectors
import signal
import subprocess
import time

import pytest
from _cli_helpers import CLI

DEADLINE = 30.0
"""Seconds a command may take to get ready or to end (a bound, never asserted)."""

COMMANDS = {
    "watch itrack": (["watch", "itrack", "--vehicles", "2"], b"km/h"),
    "watch fleetfreedom": (["watch", "fleetfreedom", "--vehicles", "2"], b"km/h"),
    "serve itrack": (["serve", "itrack"], b"reference server on"),
    "serve fleetfreedom": (["serve", "fleetfreedom"], b"reference server on"),
    "serve itrack --loop asyncio": (["serve", "itrack", "--loop", "asyncio"], b"server on"),
    "conformance client": (["conformance", "client", "--protocol", "atmosphere"], b"serving"),
}
"""Each command, and what its stdout shows once it runs (after that, a signal must end it)."""

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def read_until(fd: int, marker: bytes) -> bytes:
    """Read ``fd`` until ``marker`` shows up (fails after :data:`DEADLINE`)."""
    seen = b""
    deadline = time.monotonic() + DEADLINE
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while marker not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {marker!r} in {seen[-500:]!r}"
            if selector.select(left):
                chunk = os.read(fd, 65536)
                assert chunk, f"the command ended before {marker!r}: {seen[-500:]!r}"
                seen += chunk
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_signal_off_a_terminal(command: str, sig: signal.Signals) -> None:
    argv, ready = COMMANDS[command]
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), ready)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT[sig]
    # quietly: nothing but the status lines it printed while running
    assert b"Traceback" not in err
    assert all(line.startswith(b"# ") for line in err.splitlines()), err


@pytest.mark.parametrize("how", ["ctrl-c", "SIGTERM"])
@pytest.mark.parametrize("command", ["watch itrack", "serve fleetfreedom", "conformance client"])
def test_signal_on_a_terminal(command: str, how: str) -> None:
    argv, ready = COMMANDS[command]
    if command.startswith("watch"):
        ready = b"events/s"  # the live table is up
    pid, leader = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pseudo-terminal
        try:
            os.execv(CLI[0], [*CLI, *argv])
        finally:
            os._exit(127)
    screen = b""
    try:
        screen = read_until(leader, ready)
        if how == "ctrl-c":
            os.write(leader, b"\x03")  # the terminal sends SIGINT to its foreground group
        else:
            os.kill(pid, signal.SIGTERM)
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child is gone: the terminal has no other end
                break
            if not chunk:
                break
            screen += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(leader)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert os.waitstatus_to_exitcode(status) == (130 if how == "ctrl-c" else 143)
    assert b"Traceback" not in screen
    assert b"Error" not in screen


@pytest.mark.parametrize("gap", [0.0, 0.05])
@pytest.mark.parametrize("command", ["watch itrack", "conformance client"])
def test_a_second_signal_while_ending_changes_nothing(command: str, gap: float) -> None:
    argv, ready = COMMANDS[command]
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), ready)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err
