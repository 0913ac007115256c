"""Run the fuzz targets with atheris (libFuzzer), each in its own subprocess, and report.

    python fuzz/run.py                      # every target, 5 seconds each
    python fuzz/run.py --seconds 600        # ten minutes each
    python fuzz/run.py --target itrack_auth --seconds 60 --jobs 2

Each target starts from its seed corpus (``fuzz/corpus/<target>/``, never written to) and
keeps what it learns in ``fuzz/work/<target>/`` (ignored by git).  A finding (an exception,
a failed assertion, a timeout or running out of memory) is saved as
``fuzz/findings/<target>/crash-…`` (or ``timeout-…``/``oom-…``); replay it with
``python fuzz/targets/<target>.py fuzz/findings/<target>/<file>``.  The exit status is 1 when
any target found something or failed to run, 0 otherwise.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TARGETS = ROOT / "targets"
CORPUS = ROOT / "corpus"
WORK = ROOT / "work"
FINDINGS = ROOT / "findings"
DICTIONARY = ROOT / "hostile.dict"
"""Hostile values (huge digit runs, ², NaN, lone surrogates, ``//[``) every target is given."""

PER_INPUT_TIMEOUT = 5
"""Seconds one input may take before libFuzzer reports it as a hang."""
RSS_LIMIT_MB = 2048
MAX_LEN = 4096

_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STATS = re.compile(r"^#(\d+)\s", re.MULTILINE)
_COVERAGE = re.compile(r"cov: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class Result:
    target: str
    executions: int
    seconds: float
    coverage: int
    findings: list[str]
    status: int

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.findings


def targets() -> list[str]:
    return sorted(p.stem for p in TARGETS.glob("*.py") if not p.stem.startswith("_"))


def run_target(name: str, seconds: int, jobs: int = 1) -> Result:
    """Fuzz one target for ``seconds`` and read libFuzzer's report."""
    work = WORK / name
    found = FINDINGS / name
    work.mkdir(parents=True, exist_ok=True)
    found.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(ROOT / "launch.py"),
        name,
        f"-max_total_time={seconds}",
        f"-timeout={PER_INPUT_TIMEOUT}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={MAX_LEN}",
        f"-artifact_prefix={found}/",
        "-print_final_stats=1",
        f"-dict={DICTIONARY}",
    ]
    if jobs > 1:
        command += [f"-fork={jobs}", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]
    command += [str(work), str(CORPUS / name)]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
        timeout=seconds * 3 + 120,
    )
    elapsed = time.monotonic() - started
    log = proc.stdout
    (work.parent / f"{name}.log").write_text(log)
    done = _DONE.search(log)
    if done:
        executions = int(done.group(1))
        elapsed = max(float(done.group(2)), 1.0)  # fuzzing time, without the start-up
    else:
        counts = _STATS.findall(log)
        executions = int(counts[-1]) if counts else 0
    coverage = max((int(c) for c in _COVERAGE.findall(log)), default=0)
    artifacts = _ARTIFACT.findall(log)
    artifacts += [str(p) for p in found.iterdir() if str(p) not in artifacts]
    return Result(name, executions, elapsed, coverage, artifacts, proc.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="time per target (default 5)")
    parser.add_argument(
        "--target", action="append", choices=targets(), help="run only this target (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="parallel libFuzzer jobs per target")
    parser.add_argument(
        "--parallel", type=int, default=1, help="targets run at once (default 1; CI uses 2)"
    )
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    names = args.target or targets()
    results: list[Result] = []
    print(f"{'target':<22}{'executions':>12}{'exec/s':>9}{'cov':>7}  findings")
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        runs = [pool.submit(run_target, name, args.seconds, args.jobs) for name in names]
        for run in runs:
            result = run.result()
            results.append(result)
            _report(result)
    total = sum(r.executions for r in results)
    bad = [r.target for r in results if not r.ok]
    print(f"{'total':<22}{total:>12}  {len(bad)} target(s) with findings or errors")
    return 1 if bad else 0


def _report(result: Result) -> None:
    name = result.target
    rate = result.executions / max(result.seconds, 1e-9)
    shown = ", ".join(result.findings) or ("none" if result.status == 0 else "")
    if result.status != 0 and not result.findings:
        shown = f"exit status {result.status}; see {WORK / (name + '.log')}"
    print(
        f"{name:<22}{result.executions:>12}{rate:>9.0f}{result.coverage:>7}  {shown}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
