"""Start one fuzz target under libFuzzer with only trackwire instrumented.

    python fuzz/launch.py TARGET [libFuzzer flags…]

``atheris.instrument_all()`` instruments every loaded module (the standard library
included), which costs about 15 s per start; coverage is only wanted in trackwire, so the
target is imported inside ``atheris.instrument_imports`` instead.  ``fuzz/run.py`` uses this.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent / "targets"))


def main() -> None:
    name = sys.argv[1]
    with atheris.instrument_imports(include=["trackwire"]):
        target = importlib.import_module(name)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
