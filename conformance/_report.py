"""What a conformance run produced: per-case results with their wire logs, and the renderers.

A :class:`Report` holds one :class:`CaseResult` per selected case, in catalogue order.
:func:`render_text` is the terminal summary, :func:`render_json` the machine-readable report
(``--json``) and :func:`render_junit` a JUnit XML document (``--junit``) that CI servers read.
Every renderer shows each case's spec sentence (``Case.quote``).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from trackwire._redact import redact

from ._catalogue import Case, Verdict, exit_code, get

__all__ = [
    "MAX_RECORD_CHARS",
    "CaseResult",
    "Report",
    "WireRecord",
    "mask",
    "render_json",
    "render_junit",
    "render_text",
]

MAX_RECORD_CHARS = 2000
"""Characters of one frame kept in a wire log (the rest is summarised), so that an oversize
probe line or a large list does not blow the report up."""

Direction = Literal["sent", "received", "info"]
"""``sent``: from the kit to the subject; ``received``: from the subject; ``info``: what the
kit observed or decided (a connection opened, closed, refused, a timeout)."""


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One line of a wire log: a frame (or HTTP exchange, close, note) with its time."""

    time: float
    """Seconds since the case started."""
    connection: int
    """Which connection of the case (1, 2, ...; 0 for notes about no connection)."""
    direction: Direction
    kind: str
    """``text``, ``binary``, ``http``, ``close`` or ``note``."""
    data: str

    def as_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 6),
            "connection": self.connection,
            "direction": self.direction,
            "kind": self.kind,
            "data": self.data,
        }


_USER_OBJECT = re.compile(r"""(["']user["']\s*:\s*)\{""")


def mask(details: str) -> str:
    """``details`` without secrets: passwords, hashes and ghostIds as everywhere
    (:func:`trackwire._redact.redact`), and the ``user`` object of a session (a person's
    data) replaced by ``{***}``."""
    text = redact(details)
    out: list[str] = []
    position = 0
    for match in _USER_OBJECT.finditer(text):
        if match.start() < position:
            continue
        out.append(text[position : match.end() - 1])
        depth, end = 0, len(text)
        for index in range(match.end() - 1, len(text)):
            char = text[index]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    end = index + 1
                    break
        out.append("{***}")
        position = end
    out.append(text[position:])
    return "".join(out)


def clip(text: str) -> str:
    """``text`` cut to :data:`MAX_RECORD_CHARS` with a note of how long it was."""
    if len(text) <= MAX_RECORD_CHARS:
        return text
    return f"{text[:MAX_RECORD_CHARS]}... ({len(text)} characters in all)"


@dataclass(slots=True)
class CaseResult:
    """The verdict on one case, why, how long it took, and every frame both ways."""

    case: Case
    verdict: Verdict
    details: str = ""
    duration: float = 0.0
    """This case's share of the time its probe took: a probe that judged ``n`` cases in ``t``
    seconds gives each ``t / n``, so the durations of a report add up to its running time."""
    wire: list[WireRecord] = field(default_factory=list)
    """The probe's wire log (cases judged together share it)."""
    blocked_by: str | None = None
    """For an ERROR whose cause is another case's fault (a login refused because the
    ``loginResponse`` breaks a rule): the id of that case.  The run cannot judge this case
    until that one passes."""

    @property
    def id(self) -> str:
        return self.case.id

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "level": self.case.level.value,
            "section": self.case.section,
            "description": self.case.description,
            "quote": self.case.quote,
            "expectation": self.case.expectation,
            "verdict": self.verdict.value,
            "blocked_by": self.blocked_by,
            "duration": round(self.duration, 6),
            "details": self.details,
            "wire": [record.as_json() for record in self.wire],
        }


@dataclass(slots=True)
class Report:
    """A whole run: the subject, the role it played, and one result per selected case."""

    protocol: str
    role: Literal["server", "client"]
    subject: str
    """The server URL, or the address the kit served clients on."""
    results: list[CaseResult] = field(default_factory=list)
    strict: bool = False

    def counts(self) -> dict[Verdict, int]:
        """How many cases got each verdict (every verdict present, zeros included)."""
        found = Counter(result.verdict for result in self.results)
        return {verdict: found.get(verdict, 0) for verdict in Verdict}

    def result(self, case_id: str) -> CaseResult:
        """The result of one case; ``KeyError`` when it was not run."""
        for result in self.results:
            if result.case.id == case_id:
                return result
        get(case_id)  # an unknown id raises its own KeyError
        raise KeyError(f"case {case_id!r} was not selected in this run")

    def verdicts(self) -> dict[str, Verdict]:
        return {result.case.id: result.verdict for result in self.results}

    @property
    def exit_code(self) -> int:
        """0 when no MUST case failed or erred (with ``strict``, no SHOULD case either)."""
        return exit_code(self.verdicts(), strict=self.strict)

    def as_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "role": self.role,
            "subject": self.subject,
            "strict": self.strict,
            "summary": {verdict.value: n for verdict, n in self.counts().items()},
            "exit_code": self.exit_code,
            "cases": [result.as_json() for result in self.results],
        }


_MARK = {
    Verdict.OK: "ok",
    Verdict.NON_STRICT: "non-strict",
    Verdict.FAILED: "FAILED",
    Verdict.UNSUPPORTED: "unsupported",
    Verdict.ERROR: "ERROR",
}


def render_text(report: Report, *, verbose: bool = False) -> str:
    """The terminal summary: one line per case with the spec sentence it comes from, the
    reasons of every case that did not pass, and the totals.  ``verbose`` adds the reasons of
    passing and unsupported cases too.

    Cases blocked by another case's fault (:attr:`CaseResult.blocked_by`) show ``blocked``
    and the root case's id; the reason is printed once, under the first of them."""
    lines = [f"trackwire conformance: {report.protocol} {report.role} {report.subject}"]
    width = max((len(r.case.id) for r in report.results), default=0)
    explained: set[str] = set()
    blocked: Counter[str] = Counter()
    for result in report.results:
        case = result.case
        mark = "blocked" if result.blocked_by is not None else _MARK[result.verdict]
        lines.append(
            f"  {mark:<11} {case.id:<{width}}  {case.level.value:<6} {result.duration:6.2f}s"
        )
        lines.append(f"      spec {case.section}: {case.quote}")
        if result.blocked_by is not None:
            blocked[result.blocked_by] += 1
            lines.append(f"      blocked by {result.blocked_by}")
            if result.blocked_by in explained and not verbose:
                continue
            explained.add(result.blocked_by)
        shown = result.verdict not in (Verdict.OK, Verdict.UNSUPPORTED) or verbose
        if shown and result.details:
            for detail in result.details.splitlines():
                lines.append(f"      {detail}")
    counts = report.counts()
    summary = ", ".join(f"{n} {verdict.value}" for verdict, n in counts.items() if n)
    lines.append(f"{len(report.results)} cases: {summary or 'none'}")
    for root, n in blocked.items():
        lines.append(f"{n} case(s) could not run because of one fault: fix {root} first")
    lines.append(
        "result: "
        + ("PASS" if report.exit_code == 0 else "FAIL")
        + (" (strict: SHOULD failures count)" if report.strict else "")
    )
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    """The JSON report: summary, then per case id, verdict, duration, details and wire log."""
    return json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n"


def _wire_text(records: Iterable[WireRecord]) -> str:
    arrows = {"sent": "->", "received": "<-", "info": "**"}
    return "\n".join(
        f"{r.time:9.4f} #{r.connection} {arrows[r.direction]} {r.kind}: {r.data}" for r in records
    )


_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """Characters XML 1.0 cannot hold (control characters, lone surrogates) as ``\\uXXXX``."""
    return _XML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render_junit(report: Report) -> str:
    """A JUnit XML document: one ``testsuite`` per run, one ``testcase`` per case.

    FAILED cases (and NON-STRICT ones in a strict run) are ``failure``, ERROR is ``error``,
    UNSUPPORTED is ``skipped``; the wire log goes to ``system-out``.
    """
    counts = report.counts()
    failures = counts[Verdict.FAILED] + (counts[Verdict.NON_STRICT] if report.strict else 0)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"trackwire.conformance.{report.protocol}.{report.role}",
            "tests": str(len(report.results)),
            "failures": str(failures),
            "errors": str(counts[Verdict.ERROR]),
            "skipped": str(counts[Verdict.UNSUPPORTED]),
            "time": f"{sum(r.duration for r in report.results):.6f}",
        },
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "subject", "value": _xml_safe(report.subject)})
    for result in report.results:
        case = result.case
        element = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": case.id.rsplit(".", 1)[0],
                "name": case.id,
                "time": f"{result.duration:.6f}",
            },
        )
        message = _xml_safe(f"{result.verdict.value}: {result.details}".strip())
        if result.blocked_by is not None:
            message = _xml_safe(f"blocked by {result.blocked_by}: {result.details}")
        verdict = result.verdict
        spec = _xml_safe(f"{case.level.value} {case.section}: {case.quote}")
        case_properties = ET.SubElement(element, "properties")
        ET.SubElement(case_properties, "property", {"name": "spec", "value": spec})
        if verdict is Verdict.FAILED or (verdict is Verdict.NON_STRICT and report.strict):
            failure = ET.SubElement(element, "failure", {"message": message, "type": verdict.value})
            failure.text = _xml_safe(f"{spec}\nexpected: {case.expectation}")
        elif verdict is Verdict.ERROR:
            error = ET.SubElement(element, "error", {"message": message, "type": "ERROR"})
            error.text = spec
        elif verdict is Verdict.UNSUPPORTED:
            ET.SubElement(element, "skipped", {"message": message})
        elif verdict is Verdict.NON_STRICT:
            ET.SubElement(case_properties, "property", {"name": "verdict", "value": message})
        if result.wire:
            ET.SubElement(element, "system-out").text = _xml_safe(_wire_text(result.wire))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
