"""Judge one mutant: ``python mutation/judge.py CORE INDEX`` (INDEX -1: the core unmutated).

The mutated source replaces the core's module before anything imports it; the kit itself
imports nothing from the module under test in the mode it judges (the server cases use no
server core, the client cases no client core), so it judges the mutant unmodified.
Prints one JSON object: every case's verdict, and which MUST cases FAILED.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cores import CORES, Core


class _MutantFinder(importlib.abc.MetaPathFinder):
    """Finds the mutated file under the core's module name (ahead of the editable install)."""

    def __init__(self, module: str, path: Path) -> None:
        self.module = module
        self.path = path

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.module:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path)


def _install(core: Core, index: int, folder: Path) -> None:
    from mutants import mutated_source

    path = folder / Path(core.path).name
    path.write_text(mutated_source(core, index), encoding="utf-8")
    sys.meta_path.insert(0, _MutantFinder(core.module, path))


def judge(core: Core, index: int) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="trackwire-mutant-") as folder:
        if index >= 0:
            _install(core, index, Path(folder))
        try:
            import compose
            import trio

            from trackwire.conformance import Level, Verdict

            report = trio.run(getattr(compose, core.judge))
        except BaseException as exc:  # the mutant broke the subject before any verdict
            if isinstance(exc, KeyboardInterrupt):
                raise
            return {"status": "broken", "error": _innermost(exc), "seconds": _since(started)}
    verdicts = {r.id: r.verdict.value for r in report.results}
    failed = sorted(
        r.id for r in report.results if r.verdict is Verdict.FAILED and r.case.level is Level.MUST
    )
    return {
        "status": "judged",
        "verdicts": verdicts,
        "must_failed": failed,
        "details": {r.id: r.details[:300] for r in report.results if r.id in failed},
        "seconds": _since(started),
    }


def _innermost(exc: BaseException) -> str:
    """The exception at the bottom of trio's single-member groups, and where it was raised:
    what tells a crash of the subject from one of the kit."""
    inner = getattr(exc, "exceptions", None)  # an exception group (or its 3.10 backport)
    while isinstance(inner, tuple) and len(inner) == 1:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = "".join(f" at {Path(f.filename).name}:{f.lineno} in {f.name}" for f in where)
    text = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"{text}{place}"[:300]


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)


def main() -> None:
    name, index = sys.argv[1], int(sys.argv[2])
    print(json.dumps(judge(CORES[name], index)))


if __name__ == "__main__":
    main()
