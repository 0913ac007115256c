"""The mutation campaign's tool (``mutation/``): its mutants are mutmut's, a mutant stands in
for its core in the judge's own process, the kit judges it, and the published table is the
one the committed results make."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mutmut import Context, list_mutations

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "mutation"
CORES = (
    "atmosphere-server",
    "itrack-server",
    "fleetfreedom-server",
    "atmosphere-client",
    "itrack-client",
    "fleetfreedom-client",
)


def _tool(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, str(TOOL / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def _results(core: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TOOL / "results" / f"{core}.json").read_text("utf-8"))
    return data


def test_the_mutants_are_mutmut_s_one_line_each() -> None:
    listed = _tool("run.py", "--list", "atmosphere-server").splitlines()
    path = ROOT / "sansio" / "atmosphere" / "_server.py"
    source = path.read_text(encoding="utf-8")
    expected = list_mutations(Context(source=source, filename="sansio/atmosphere/_server.py"))
    assert len(listed) == len(expected) > 50
    first = listed[0]
    assert first.split()[0] == "0"
    assert " => " in first  # the changed line before and after


@pytest.mark.parametrize("core", ["atmosphere-server", "itrack-client"])
def test_the_unmutated_core_passes_every_must_case(core: str) -> None:
    verdict = json.loads(_tool("judge.py", core, "-1"))
    assert verdict["status"] == "judged"
    assert verdict["must_failed"] == []
    assert "OK" in verdict["verdicts"].values()


@pytest.mark.parametrize("core", ["atmosphere-server", "atmosphere-client"])
def test_a_recorded_kill_is_reproduced(core: str) -> None:
    # A killed mutant judged again in a fresh process (the one that failed most MUST cases,
    # so the least dependent on timing): the mutant, not the file on disk, is what the kit
    # judged (the file is never changed), and a MUST case it failed fails again.
    killed = [(int(n), e) for n, e in _results(core)["mutants"].items() if e["status"] == "killed"]
    assert killed
    index, entry = min(killed, key=lambda item: (-len(item[1]["must_failed"]), item[0]))
    source = ROOT / "sansio" / "atmosphere" / f"_{core.split('-')[1]}.py"
    before = source.read_bytes()
    verdict = json.loads(_tool("judge.py", core, str(index)))
    assert set(entry["must_failed"]) & set(verdict["must_failed"])
    assert source.read_bytes() == before


def test_every_core_has_results_and_every_classification_names_a_mutant() -> None:
    for core in CORES:
        data = _results(core)
        assert len(data["mutants"]) == data["total"] > 0, core
        made = Counter(f"{e['before']} => {e['after']}" for e in data["mutants"].values())
        path = TOOL / "classified" / f"{core}.json"
        if path.exists():
            classified = json.loads(path.read_text(encoding="utf-8"))
            for key in classified:  # no stale entry: each names a change made, a line of it
                base, hash_, nth = (
                    key.rpartition(" #") if re.search(r" #\d+$", key) else (key, "", "")
                )
                assert made[base] >= (int(nth) if hash_ else 1), (core, key)
            assert {v["kind"] for v in classified.values()} <= {
                "equivalent",
                "allowed",
                "application",
            }
            assert all(len(v["reason"]) > 20 for v in classified.values())


def _run_module() -> Any:
    spec = importlib.util.spec_from_file_location("trackwire_mutation_run", TOOL / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_classification_names_every_line_of_a_change_or_the_kth() -> None:
    run = _run_module()
    same = {"before": "@property", "after": ""}
    entries = {"3": same, "9": same, "12": {"before": "x = 1", "after": "x = 2"}}
    shared = {"@property => ": {"kind": "equivalent", "reason": "r"}}
    assert set(run.classification(shared, entries)) == {"3", "9"}
    second = {"@property =>  #2": {"kind": "application", "reason": "r"}}
    assert set(run.classification(second, entries)) == {"9"}


def test_the_results_are_those_of_the_cores_as_they_are_and_no_control_failed() -> None:
    for core in CORES:
        data = _results(core)
        path = ROOT / data["file"]
        assert data["source"] == hashlib.sha256(path.read_bytes()).hexdigest(), core
        assert data["controls"], core
        assert [c for c in data["controls"] if c["failed"]] == [], core


def test_the_published_table_is_the_one_the_results_make() -> None:
    table = _tool("run.py", "--summary")
    readme = (TOOL / "README.md").read_text(encoding="utf-8")
    published = readme.split("<!-- begin: mutation table -->\n", 1)[1].split("<!-- end", 1)[0]
    assert published == table
    assert "| `sansio/fleetfreedom/_client.py` |" in table
