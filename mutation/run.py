"""The mutation campaign: how many single-point faults of a core the conformance kit catches.

::

    python mutation/run.py --core atmosphere-server [--jobs 8]   # judge every mutant
    python mutation/run.py --core all --survivors                # judge again what survived
    python mutation/run.py --core itrack-server --only 12,40     # judge these mutants
    python mutation/run.py --list atmosphere-server              # the mutants, numbered
    python mutation/run.py --summary                             # the table, from the results
    python mutation/run.py --write-docs                          # that table into README.md

mutmut 2 (``pip install -e '.[mutation]'``) makes the mutants with its own operators; each
is judged in a process of its own (``judge.py``) where the mutated source stands in for the
core's module, and nothing on disk is changed.  A mutant is *killed* when a MUST case of the
kit FAILED.  Results go to ``mutation/results/<core>.json``; mutants that are no fault on the
wire (equivalent, allowed by the spec, or visible to the application only) are listed with the
reason in ``mutation/classified/<core>.json`` and left out of the score.  Every
``--controls`` jobs the unmutated core is judged too: a control with a FAILED case would be
a false verdict of the kit on a loaded machine, and is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cores import CORES, Core  # noqa: E402

RESULTS = HERE / "results"
CLASSIFIED = HERE / "classified"
DOCS = HERE / "README.md"
BEGIN, END = "<!-- begin: mutation table -->", "<!-- end: mutation table -->"
CAUGHT = ("killed", "broken", "hung")


def _judge(core: Core, index: int, timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "judge.py"), core.name, str(index)]
    env = dict(os.environ, TRACKWIRE_DECODER="default", PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "hung", "error": f"no verdict within {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": "broken", "error": tail[:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _classify(result: dict[str, Any], control: dict[str, str]) -> dict[str, Any]:
    if result["status"] != "judged":
        return result
    verdicts: dict[str, str] = result.pop("verdicts")
    changed = {k: v for k, v in verdicts.items() if control.get(k) != v}
    if result["must_failed"]:
        status = "killed"
    elif changed:
        status = "changed"
    else:
        status = "survived"
    return {**result, "status": status, "changed": changed}


def digest(core: Core) -> str:
    """The SHA-256 of the core's text: results are only valid for the text they judged."""
    return hashlib.sha256(core.file.read_bytes()).hexdigest()


def load(core: Core) -> dict[str, Any]:
    path = RESULTS / f"{core.name}.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    return {"core": core.name, "file": core.path, "mutants": {}, "controls": []}


def save(core: Core, data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    mutants = sorted(data["mutants"].items(), key=lambda kv: int(kv[0]))
    head = {k: v for k, v in data.items() if k != "mutants"}
    # One mutant a line: a later campaign's changes read as a diff of the mutants that moved.
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in mutants]
    body = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    text = body + ',\n "mutants": {\n' + ",\n".join(lines) + "\n }\n}\n"
    json.loads(text)  # still one JSON document
    (RESULTS / f"{core.name}.json").write_text(text, encoding="utf-8")


def campaign(
    core: Core, wanted: list[int] | None, jobs: int, controls: int, timeout: float
) -> None:
    from mutants import mutants

    everything = mutants(core)
    data = load(core)
    source = digest(core)
    if data.get("source") != source:
        # Judged on another text of the core: mutmut's numbers now mean other mutants.
        if data["mutants"]:
            print(f"{core.name}: the core changed since its results; judging afresh")
        data = {"core": core.name, "file": core.path, "mutants": {}, "controls": []}
        wanted = None
    data["source"] = source
    data["total"] = len(everything)
    chosen = [m for m in everything if wanted is None or m.index in wanted]
    control = _judge(core, -1, timeout)
    if control["status"] != "judged" or control["must_failed"]:
        sys.exit(f"{core.name}: the unmutated core is not clean: {control}")
    baseline: dict[str, str] = control["verdicts"]
    data["baseline"] = baseline
    plan: list[int] = []
    for n, mutant in enumerate(chosen):
        if controls and n % controls == controls - 1:
            plan.append(-1)
        plan.append(mutant.index)
    by_index = {m.index: m for m in everything}
    started = time.monotonic()
    done = 0

    def one(index: int) -> tuple[int, dict[str, Any]]:
        return index, _classify(_judge(core, index, timeout), baseline)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for index, result in pool.map(one, plan):
            if index < 0:
                data["controls"].append(
                    {"status": result["status"], "failed": result.get("must_failed", [])}
                )
                continue
            mutant = by_index[index]
            entry = {
                "line": mutant.line_number,
                "before": mutant.before,
                "after": mutant.after,
                "status": result["status"],
            }
            for field in ("must_failed", "changed", "error"):
                if result.get(field):
                    entry[field] = result[field]
            data["mutants"][str(index)] = entry
            done += 1
            if done % 20 == 0 or done == len(chosen):
                save(core, data)
                rate = (time.monotonic() - started) / done
                print(f"{core.name}: {done}/{len(chosen)} ({rate:.1f} s each)", flush=True)
    save(core, data)


KINDS = {
    "equivalent": "nothing a peer or the application can observe changes",
    "allowed": "the wire changes, within what the spec allows (both behaviours conform)",
    "application": "only what the core hands its application changes, nothing on the wire",
}


def classified(core: Core) -> dict[str, dict[str, str]]:
    """The mutants of ``core`` that are not faults on the wire: ``"before => after"``
    (stripped lines) → ``{"kind": one of KINDS, "reason": why}``."""
    path = CLASSIFIED / f"{core.name}.json"
    if not path.exists():
        return {}
    data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    unknown = {k: v["kind"] for k, v in data.items() if v.get("kind") not in KINDS}
    if unknown:
        sys.exit(f"{path}: unknown kinds {unknown}")
    return data


def key(entry: dict[str, Any]) -> str:
    return f"{entry['before']} => {entry['after']}"


def classification(
    mine: dict[str, dict[str, str]], entries: dict[str, dict[str, Any]]
) -> dict[str, dict[str, str]]:
    """Each mutant's classification, by mutant number.  A key ``"<before> => <after>"``
    covers every mutant making that change; when the same change is made on several lines,
    ``"<before> => <after> #2"`` names the second of them in file order (and wins)."""
    found: dict[str, dict[str, str]] = {}
    seen: dict[str, int] = {}
    for number, entry in sorted(entries.items(), key=lambda kv: int(kv[0])):
        base = key(entry)
        seen[base] = seen.get(base, 0) + 1
        chosen = mine.get(f"{base} #{seen[base]}") or mine.get(base)
        if chosen is not None:
            found[number] = chosen
    return found


def _not_python(entry: dict[str, Any]) -> bool:
    return entry["status"] == "broken" and str(entry.get("error", "")).startswith("SyntaxError")


def summary_rows() -> list[dict[str, Any]]:
    rows = []
    for core in CORES.values():
        data = load(core)
        if not data["mutants"]:
            continue
        mine = classification(classified(core), data["mutants"])
        # mutmut sometimes writes a program Python cannot read (``**{…}`` → ``*{…}``): no
        # fault at all, so neither caught nor in the score.
        invalid = {n for n, e in data["mutants"].items() if _not_python(e)}
        entries = [e for n, e in data["mutants"].items() if n not in invalid]
        statuses = (*CAUGHT, "changed", "survived")
        count = {s: sum(e["status"] == s for e in entries) for s in statuses}
        missed = {
            n: e
            for n, e in data["mutants"].items()
            if e["status"] not in CAUGHT and n not in invalid
        }
        kinds = {k: sum(mine.get(n, {}).get("kind") == k for n in missed) for k in KINDS}
        live = [e for n, e in missed.items() if n not in mine]
        caught = sum(count[s] for s in CAUGHT)
        faults = len(entries) - sum(kinds.values())
        non_equivalent = len(entries) - kinds["equivalent"]
        # A control that FAILED a MUST case, hung or could not run is a false verdict.
        bad_controls = [c for c in data["controls"] if c["failed"] or c["status"] in CAUGHT]
        rows.append(
            {
                "core": core,
                "total": data.get("total", len(entries)),
                "judged": len(entries) + len(invalid),
                "invalid": len(invalid),
                **count,
                **kinds,
                "caught": caught,
                "score": caught / faults if faults else 1.0,
                "strict": count["killed"] / faults if faults else 1.0,
                "broad": caught / non_equivalent if non_equivalent else 1.0,
                "live": live,
                "controls": len(data["controls"]),
                "false": len(bad_controls),
                "unsteady": sum(c["status"] == "changed" for c in data["controls"]),
            }
        )
    return rows


def render() -> str:
    rows = summary_rows()
    out = [
        "| core | mutants | judged | not Python | killed | no load | hung | equivalent | allowed "
        "| application | not caught | score | killed alone | of all non-equivalent |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| `{r['core'].path}` | {r['total']} | {r['judged']} | {r['invalid']} | "
            f"{r['killed']} | {r['broken']} | {r['hung']} | {r['equivalent']} | {r['allowed']} | "
            f"{r['application']} | {len(r['live'])} | {r['score']:.1%} | {r['strict']:.1%} | "
            f"{r['broad']:.1%} |"
        )
    out += ["", "How each core is judged (`mutation/compose.py`):", ""]
    out += [f"- `{r['core'].name}`: {r['core'].cases}." for r in rows]
    caught = sum(r["caught"] for r in rows)
    killed = sum(r["killed"] for r in rows)
    faults = sum(
        r["judged"] - r["invalid"] - r["equivalent"] - r["allowed"] - r["application"] for r in rows
    )
    controls = sum(r["controls"] for r in rows)
    false = sum(r["false"] for r in rows)
    unsteady = sum(r["unsteady"] for r in rows)
    if rows:
        out += [
            "",
            f"All cores: {caught} of {faults} wire faults caught ({caught / max(1, faults):.1%}); "
            f"{killed} ({killed / max(1, faults):.1%}) by a MUST case FAILED.",
            f"Controls (the unmutated core judged between the mutants, on the same loaded "
            f"machine): {controls}, of which {false} had a MUST case FAILED, hung or could "
            f"not run, and {unsteady} differed from the first judgment in another verdict "
            f"(which is why a mutant that only changes verdicts is not counted as caught).",
        ]
    for r in rows:
        if not r["live"]:
            continue
        out += ["", f"Not caught in `{r['core'].path}`:", ""]
        for e in sorted(r["live"], key=lambda e: e["line"]):
            changed = ", ".join(f"{k} {v}" for k, v in sorted(e.get("changed", {}).items()))
            note = f" ({e['status']}: {changed})" if changed else ""
            out.append(f"- line {e['line']}: `{e['before']}` → `{e['after']}`{note}")
    return "\n".join(out) + "\n"


def write_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{render()}{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", action="append", default=[], help="a core, or all")
    parser.add_argument("--only", help="comma-separated mutant numbers")
    parser.add_argument("--survivors", action="store_true", help="only mutants not caught")
    parser.add_argument("--jobs", type=int, default=8, help="mutants judged at once")
    parser.add_argument("--controls", type=int, default=25, help="a control every N mutants")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    parser.add_argument("--list", metavar="CORE", help="print the mutants of CORE")
    parser.add_argument("--summary", action="store_true", help="print the table")
    parser.add_argument("--write-docs", action="store_true", help="update mutation/README.md")
    args = parser.parse_args()
    if args.list:
        from mutants import mutants

        for m in mutants(CORES[args.list]):
            print(f"{m.index:4} line {m.line_number}: {m.before}  =>  {m.after}")
        return
    names = list(CORES) if "all" in args.core else args.core
    for name in names:
        core = CORES[name]
        wanted = None
        if args.only:
            wanted = [int(n) for n in args.only.split(",")]
        elif args.survivors:
            data = load(core)
            wanted = [int(k) for k, e in data["mutants"].items() if e["status"] not in CAUGHT]
        campaign(core, wanted, args.jobs, args.controls, args.timeout)
    if args.write_docs:
        write_docs()
    if args.summary or names:
        print(render(), end="")


if __name__ == "__main__":
    main()
