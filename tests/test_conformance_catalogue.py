"""The conformance case catalogue: ids, traceability to the spec, selection and verdicts."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackwire.conformance._catalogue import (
    CATALOGUE,
    ID_PATTERN,
    PROTOCOLS,
    Case,
    Level,
    Verdict,
    exit_code,
    get,
    select,
    verdict_for,
)

PROTOCOL_DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocols"
"""The protocol reference inside the repository, which every case's quote comes from."""


def _normalise(text: str) -> str:
    """Reference text without Markdown markup: no backticks or emphasis, ``\\|`` as ``|``,
    whitespace collapsed."""
    return " ".join(text.replace("\\|", "|").replace("`", "").replace("*", "").split())


@pytest.fixture(scope="module")
def spec_sections() -> dict[tuple[str, str], str]:
    """``(protocol, "§N")`` → the normalised text of that section of docs/protocols/."""
    sections: dict[tuple[str, str], str] = {}
    for protocol in PROTOCOLS:
        path = PROTOCOL_DOCS / f"{protocol}.md"
        if not path.is_file():
            pytest.fail(f"protocol reference page missing: {path}")
        parts = re.split(r"^## (\d+)\.", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
        for number, body in zip(parts[1::2], parts[2::2], strict=True):
            sections[(protocol, f"§{number}")] = _normalise(body)
    return sections


# -- the cases -------------------------------------------------------------------------------


def test_ids_are_unique() -> None:
    ids = [case.id for case in CATALOGUE]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.id)
def test_case_is_well_formed(case: Case) -> None:
    assert ID_PATTERN.fullmatch(case.id), case.id
    assert case.id == case.id.lower()
    assert case.id.split(".")[0] == case.protocol
    assert case.id.count(".") >= 2
    assert re.fullmatch(r"§\d+", case.section)
    assert isinstance(case.level, Level)
    assert case.role in ("server", "client", "both")
    for text in (case.description, case.expectation, case.quote):
        assert text.strip() == text
        assert text
        assert "\n" not in text
    assert case.description.endswith(".")
    assert case.expectation.endswith(".")


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.id)
def test_case_traces_to_its_spec_section(
    case: Case, spec_sections: dict[tuple[str, str], str]
) -> None:
    section = spec_sections.get((case.protocol, case.section))
    assert section is not None, f"{case.id}: {case.protocol}.md has no section {case.section}"
    assert _normalise(case.quote) in section, f"{case.id}: quote not found in {case.section}"


def test_id_pattern_rejects_malformed_ids() -> None:
    for bad in (
        "atmosphere",
        "atmosphere.handshake",
        "Atmosphere.handshake.first-frame",
        "atmosphere.handshake.First-Frame",
        "atmosphere.handshake.first_frame",
        "atmosphere.handshake.-first",
        "atmosphere.handshake.first-",
        "http2.frames.size",
        "atmosphere..first-frame",
    ):
        assert ID_PATTERN.fullmatch(bad) is None, bad


def test_every_protocol_has_both_levels_and_both_roles() -> None:
    for protocol in PROTOCOLS:
        cases = [case for case in CATALOGUE if case.protocol == protocol]
        assert {case.level for case in cases} == {Level.MUST, Level.SHOULD}, protocol
        assert {"server", "client"} <= {case.role for case in cases}, protocol


def test_the_case_count_the_docs_give_is_the_catalogue_s() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    changelog = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    said = re.findall(r"(\d+) cases \(every MUST", readme)
    said += re.findall(r"conformance kit of (\d+) cases", changelog)
    assert said == [str(len(CATALOGUE))] * 2


def test_catalogue_size_and_order() -> None:
    assert 60 <= len(CATALOGUE) <= 200
    protocols = [case.protocol for case in CATALOGUE]
    # Grouped by protocol, atmosphere first, in spec-section order within each.
    assert protocols == sorted(protocols, key=PROTOCOLS.index)
    for protocol in PROTOCOLS:
        numbers = [int(c.section[1:]) for c in CATALOGUE if c.protocol == protocol]
        assert numbers == sorted(numbers), protocol


@pytest.mark.parametrize(
    "case_id",
    [
        "atmosphere.handshake.tracking-id-zero",
        "atmosphere.handshake.once",
        "atmosphere.reconnect.no-handshake",
        "atmosphere.reconnect.tracking-id-reuse",
        "atmosphere.tms.utf16-length",
        "atmosphere.tms.client-carry-over",
        "atmosphere.heartbeat.client-cadence",
        "atmosphere.close.http-request",
        "itrack.errors.wrong-hash",
        "itrack.errors.bad-json",
        "itrack.responses.tracker-statuses",
        "itrack.events.state-after-subscribe",
        "itrack.events.logout",
        "fleetfreedom.session.no-command-before-connection-response",
        "fleetfreedom.commands.req-id-echo",
        "fleetfreedom.commands.unknown-command",
        "fleetfreedom.subscriptions.only-subscribed",
        "fleetfreedom.versions.piece-single-v",
        "fleetfreedom.errors.bad-json",
        "fleetfreedom.errors.oversize-line",
    ],
)
def test_cases_the_kit_relies_on_exist(case_id: str) -> None:
    assert get(case_id).id == case_id


def test_key_expectations_name_the_wire_values() -> None:
    assert '"code": 3' in get("itrack.errors.wrong-hash").expectation
    assert "61" in get("fleetfreedom.commands.unknown-command").expectation
    assert "unknownCommandResponse" in get("fleetfreedom.commands.unknown-command").expectation
    assert "errorCode 3" in get("fleetfreedom.errors.bad-json").expectation
    assert "X-Atmosphere-tracking-id=0" in get("atmosphere.open.tracking-id-zero-first").expectation


def test_cases_are_frozen_slots() -> None:
    case = CATALOGUE[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.id = "atmosphere.other.case"  # type: ignore[misc]
    assert not hasattr(case, "__dict__")
    assert hash(case) == hash(dataclasses.replace(case))


# -- get / select ----------------------------------------------------------------------------


def test_get_returns_the_case_and_names_unknown_ids() -> None:
    case = get("atmosphere.handshake.tracking-id-zero")
    assert case.protocol == "atmosphere"
    assert case.section == "§1"
    assert case.level is Level.MUST
    assert case.role == "server"
    with pytest.raises(KeyError, match=r"atmosphere\.handshake\.nope"):
        get("atmosphere.handshake.nope")


def test_select_without_criteria_is_everything() -> None:
    assert select() == CATALOGUE


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_select_by_protocol(protocol: str) -> None:
    chosen = select(protocol=protocol)
    assert chosen
    assert all(case.protocol == protocol for case in chosen)
    assert len(chosen) == sum(case.protocol == protocol for case in CATALOGUE)


def test_select_by_role_takes_cases_for_both_roles() -> None:
    servers = select(role="server")
    clients = select(role="client")
    both = [case for case in CATALOGUE if case.role == "both"]
    assert both
    assert all(case.role in ("server", "both") for case in servers)
    assert all(case.role in ("client", "both") for case in clients)
    for case in both:
        assert case in servers
        assert case in clients
    assert len(servers) + len(clients) == len(CATALOGUE) + len(both)
    assert select(role="both") == CATALOGUE


def test_select_by_glob() -> None:
    handshake = select(pattern="atmosphere.handshake.*")
    assert handshake
    assert all(case.id.startswith("atmosphere.handshake.") for case in handshake)
    reconnects = select(pattern="*.reconnect.*")
    assert {case.protocol for case in reconnects} == {"atmosphere"}
    assert select(pattern="itrack.errors.wrong-hash") == (get("itrack.errors.wrong-hash"),)
    assert select(pattern="*.client-*", role="server") == tuple(
        case for case in select(pattern="*.client-*") if case.role != "client"
    )
    assert select(pattern="no.such.*") == ()
    # Globs are case-sensitive, like the ids.
    assert select(pattern="ATMOSPHERE.*") == ()


def test_select_combines_criteria_in_catalogue_order() -> None:
    chosen = select(protocol="fleetfreedom", role="client", pattern="*.session.*")
    assert chosen
    assert all(
        case.protocol == "fleetfreedom" and case.role != "server" and ".session." in case.id
        for case in chosen
    )
    positions = [CATALOGUE.index(case) for case in chosen]
    assert positions == sorted(positions)


def test_select_rejects_unknown_protocol_or_role() -> None:
    with pytest.raises(ValueError, match="protocol"):
        select(protocol="http2")
    with pytest.raises(ValueError, match="role"):
        select(role="proxy")


# -- verdicts --------------------------------------------------------------------------------


def test_verdict_names() -> None:
    assert [v.value for v in Verdict] == ["OK", "NON-STRICT", "FAILED", "UNSUPPORTED", "ERROR"]


@pytest.mark.parametrize(
    ("level", "passed", "verdict"),
    [
        (Level.MUST, True, Verdict.OK),
        (Level.SHOULD, True, Verdict.OK),
        (Level.MUST, False, Verdict.FAILED),
        (Level.SHOULD, False, Verdict.NON_STRICT),
    ],
)
def test_verdict_for(level: Level, passed: bool, verdict: Verdict) -> None:
    assert verdict_for(level, passed) is verdict
    case = next(case for case in CATALOGUE if case.level is level)
    assert verdict_for(case, passed) is verdict


MUST_ID = "atmosphere.handshake.tracking-id-zero"
SHOULD_ID = "atmosphere.open.atmo-protocol"


def test_exit_code_rules() -> None:
    assert get(SHOULD_ID).level is Level.SHOULD
    assert exit_code({}) == 0
    assert exit_code({MUST_ID: Verdict.OK, SHOULD_ID: Verdict.OK}) == 0
    assert exit_code({MUST_ID: Verdict.UNSUPPORTED}) == 0
    assert exit_code({MUST_ID: Verdict.FAILED}) == 1
    assert exit_code({MUST_ID: Verdict.ERROR}) == 1
    assert exit_code({SHOULD_ID: Verdict.NON_STRICT}) == 0
    assert exit_code({SHOULD_ID: Verdict.ERROR}) == 0
    assert exit_code({SHOULD_ID: Verdict.NON_STRICT}, strict=True) == 1
    assert exit_code({SHOULD_ID: Verdict.UNSUPPORTED}, strict=True) == 0
    assert exit_code([(get(MUST_ID), Verdict.FAILED)]) == 1
    assert exit_code([(SHOULD_ID, Verdict.OK), (get(MUST_ID), Verdict.OK)]) == 0
    with pytest.raises(KeyError):
        exit_code({"atmosphere.no.such-case": Verdict.OK})


@given(st.dictionaries(st.sampled_from(CATALOGUE), st.sampled_from(Verdict)), st.booleans())
def test_exit_code_is_zero_only_without_failed_must(
    verdicts: dict[Case, Verdict], strict: bool
) -> None:
    bad = {Verdict.FAILED, Verdict.ERROR, Verdict.NON_STRICT}
    failing = any(
        verdict in bad and (case.level is Level.MUST or strict)
        for case, verdict in verdicts.items()
    )
    by_id = {case.id: verdict for case, verdict in verdicts.items()}
    assert exit_code(by_id, strict=strict) == int(failing)
    assert exit_code(list(verdicts.items()), strict=strict) == int(failing)


@given(st.sampled_from(CATALOGUE), st.booleans())
def test_a_judged_case_fails_the_run_exactly_when_a_must_failed(case: Case, passed: bool) -> None:
    verdict = verdict_for(case, passed)
    assert exit_code({case.id: verdict}) == int(not passed and case.level is Level.MUST)
    assert exit_code({case.id: verdict}, strict=True) == int(not passed)
