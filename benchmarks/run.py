"""Benchmarks of the frame-handling path, each a ratio against a baseline of the same run.

    python benchmarks/run.py [--quick] [--json FILE] [--only SUBSTRING] [--list]
                             [--profile SUBSTRING]

Every timed case runs "ours" and each of its baselines alternately, several rounds each, and
reports the median cost per message; the ratio is the median of the per-round ratios, so a
slow patch of the (shared, noisy) machine hits both sides.  Only ratios are judged; absolute
figures are printed for orientation.  The loopback and memory cases (6, 7) report messages
per second and bytes per connection.  See README.md for what each case measures.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

Body = Callable[[], object]


@dataclass
class Target:
    """What a figure must reach: ``ratio <= value`` (``max-ratio``), ``ratio >= value``
    (``min-ratio``), or the figure itself (``max-value``, ``min-value``)."""

    kind: str
    value: float

    def __str__(self) -> str:
        sign = "<=" if self.kind.startswith("max") else ">="
        if self.kind.endswith("ratio"):
            return f"{sign}{self.value:.2f}x"
        return f"{sign}{self.value:g}"

    def met(self, ours: float, ratio: float | None) -> bool:
        figure = ratio if self.kind.endswith("ratio") else ours
        assert figure is not None
        return figure <= self.value if self.kind.startswith("max") else figure >= self.value


def at_most(ratio: float) -> Target:
    return Target("max-ratio", ratio)


@dataclass
class Baseline:
    name: str
    body: Body
    target: Target | None = None


@dataclass
class Case:
    """A timed case: ``ours`` and its baselines each handle ``messages`` messages per call."""

    name: str
    ours: Body
    baselines: list[Baseline]
    messages: int


@dataclass
class Result:
    case: str
    baseline: str
    unit: str
    ours: float
    base: float | None
    ratio: float | None
    target: str
    verdict: str
    ratio_range: tuple[float, float] | None = None
    """Lowest and highest per-round ratio (a feel for the noise)."""
    note: str = ""


def result(
    case: str,
    baseline: str,
    unit: str,
    ours: float,
    base: float | None,
    ratio: float | None,
    target: Target | None,
    ratio_range: tuple[float, float] | None = None,
    note: str = "",
) -> Result:
    verdict = "info" if target is None else ("ok" if target.met(ours, ratio) else "MISSED")
    return Result(
        case,
        baseline,
        unit,
        ours,
        base,
        ratio,
        "" if target is None else str(target),
        verdict,
        ratio_range,
        note,
    )


@dataclass
class Settings:
    quick: bool
    rounds: int
    seconds: float
    """Each sample runs the body for at least this long."""
    stream_messages: int
    stream_rounds: int
    idle_connections: int
    concurrent_connections: int

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 3, 0.02, 5_000, 2, 200, 2_000)
        return cls(False, 9, 0.1, 20_000, 5, 1_000, 2_000)


@dataclass
class Item:
    """Something to run: a lazily built timed case, or a runner of its own (loopback,
    memory); ``--only`` matches ``name``."""

    name: str
    run: Callable[[Settings], list[Result]]
    build: Callable[[], Case] | None = field(default=None, repr=False)


def _per_call(body: Body, seconds: float) -> float:
    """Seconds per call, over enough calls to last about ``seconds``."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            body()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls
        calls *= 2


def measure(case: Case, settings: Settings) -> list[Result]:
    """Alternate ours and every baseline, ``rounds`` times; one result per baseline."""
    case.ours()
    for baseline in case.baselines:
        baseline.body()
    ours: list[float] = []
    bases: list[list[float]] = [[] for _ in case.baselines]
    gc.collect()
    gc.disable()
    try:
        for _ in range(settings.rounds):
            ours.append(_per_call(case.ours, settings.seconds))
            for samples, baseline in zip(bases, case.baselines, strict=True):
                samples.append(_per_call(baseline.body, settings.seconds))
    finally:
        gc.enable()
    per = 1e6 / case.messages
    out = []
    for samples, baseline in zip(bases, case.baselines, strict=True):
        ratios = [o / b for o, b in zip(ours, samples, strict=True)]
        out.append(
            result(
                case.name,
                baseline.name,
                "us/msg",
                statistics.median(ours) * per,
                statistics.median(samples) * per,
                statistics.median(ratios),
                baseline.target,
                (min(ratios), max(ratios)),
            )
        )
    return out


def timed(name: str, build: Callable[[], Case]) -> Item:
    def run(settings: Settings) -> list[Result]:
        case = build()
        assert case.name == name, (case.name, name)
        return measure(case, settings)

    return Item(name, run, build)


def profile(item: Item, seconds: float = 1.0, top: int = 15) -> None:
    """cProfile ``ours`` of a timed case for about ``seconds``; print the top functions."""
    assert item.build is not None
    case = item.build()
    case.ours()
    calls = max(1, int(seconds / _per_call(case.ours, 0.05)))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        case.ours()
    profiler.disable()
    print(f"\n== {case.name}: {calls * case.messages} messages under cProfile")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)


# -- the table ------------------------------------------------------------------------------


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us/msg":
        return f"{value:.3f}"
    return f"{value:,.0f}"


def format_table(results: Sequence[Result]) -> str:
    rows = [("case", "unit", "ours", "baseline", "base", "ratio", "target", "verdict")]
    for r in results:
        rows.append(
            (
                r.case,
                r.unit,
                _figure(r.ours, r.unit),
                r.baseline,
                _figure(r.base, r.unit),
                "-" if r.ratio is None else f"{r.ratio:.3f}",
                r.target or "-",
                r.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 4, 5}
    lines = []
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


_UNIT_SUFFIX = {"us/msg": " µs", "msg/s": " msg/s", "B/conn": " B", "conns": ""}


def format_markdown(results: Sequence[dict[str, Any]]) -> str:
    """The table of a ``--json`` file as the benchmark README shows it."""
    lines = [
        "| case | ours | baseline | base | ratio | target | verdict |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for r in results:
        unit = r["unit"]
        digits = 2 if unit == "us/msg" else 0
        suffix = _UNIT_SUFFIX.get(unit, f" {unit}")

        def figure(value: float | None, digits: int = digits, suffix: str = suffix) -> str:
            return "-" if value is None else f"{value:,.{digits}f}{suffix}"

        target = r["target"] or "-"
        if target.endswith("x"):
            target = target[:-1] + "×"
        verdict = {"MISSED": "**missed**"}.get(r["verdict"], r["verdict"])
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        baseline = r["baseline"].replace("|", "\\|")
        row = [r["case"].replace("|", "\\|"), figure(r["ours"]), baseline, figure(r["base"])]
        lines.append("| " + " | ".join([*row, ratio, target, verdict]) + " |")
    return "\n".join(lines)


def machine() -> dict[str, object]:
    import os

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    libraries = {}
    for name in ("wsproto", "h11", "trio", "websockets", "orjson"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            libraries[name] = None
    return {
        "libraries": libraries,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def all_items() -> list[Item]:
    # Every case runs on the default decoder but those named "fast decoder", which select
    # trackwire[fast] themselves; the child processes of the loopback cases too.
    os.environ["TRACKWIRE_DECODER"] = "default"
    import fanout
    import loopback
    import sansio_cases

    from trackwire import set_decoder

    set_decoder("default")

    return sansio_cases.items() + loopback.items() + fanout.items()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the case names and stop")
    parser.add_argument(
        "--profile", metavar="SUBSTRING", help="cProfile the matching timed cases instead"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="JSON", help="print a --json file's table as Markdown"
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(format_markdown(json.loads(args.markdown.read_text())["results"]))
        return 0
    items = [i for i in all_items() if args.only.lower() in i.name.lower()]
    if args.list:
        print("\n".join(i.name for i in items))
        return 0
    if args.profile is not None:
        for item in items:
            if item.build is not None and args.profile.lower() in item.name.lower():
                profile(item)
        return 0
    settings = Settings.make(args.quick)
    started = time.perf_counter()
    results: list[Result] = []
    for item in items:
        print(f"... {item.name}", file=sys.stderr, flush=True)
        results.extend(item.run(settings))
    elapsed = time.perf_counter() - started
    print(format_table(results))
    notes = [f"- {r.case}: {r.note}" for r in results if r.note]
    if notes:
        print("\n".join(["", "notes:", *notes]))
    print(f"\n{len(results)} figures in {elapsed:.0f} s ({'quick' if args.quick else 'full'} run)")
    if args.json:
        payload = {
            "machine": machine(),
            "quick": args.quick,
            "seconds": round(elapsed, 1),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
