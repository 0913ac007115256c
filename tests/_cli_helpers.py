"""Running the real ``trackwire`` command in subprocesses (shared by the ``test_cli*`` files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("trackwire")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "trackwire.drivers"]
"""The installed ``trackwire`` console script (``python -m trackwire.drivers`` without it)."""


def run(*args: str, timeout: float = 60, **options: object) -> subprocess.CompletedProcess[str]:
    """``trackwire *args`` to its end; its output as text."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,  # type: ignore[call-overload]
    )


def records(text: str) -> list[dict[str, object]]:
    """The JSON objects of ``--json`` output, one a line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
