"""The policy both server drivers share (``trackwire.drivers._serving``), without sockets."""

from __future__ import annotations

import logging

import pytest

from trackwire import LocalProtocolError
from trackwire.drivers._serving import MAX_REFUSING, AdmissionControl, RefusedHead, log_failure


def test_admission_counts_overall_and_per_address_and_forgets_idle_addresses() -> None:
    admission = AdmissionControl(3, 2)
    assert admission.admit("a")
    assert admission.admit("a")
    assert not admission.admit("a")  # per address
    assert admission.admit("b")
    assert not admission.admit("c")  # overall
    assert admission.refused == 2
    admission.release("a")
    assert admission.count("a") == 1
    assert admission.admit("c")
    admission.release("b")
    assert admission.count("b") == 0
    assert "b" not in admission._by_address
    unlimited = AdmissionControl(10, None)
    assert all(unlimited.admit("a") for _ in range(10))
    with pytest.raises(ValueError, match="max_connections"):
        AdmissionControl(1, 0)


def test_a_refused_request_is_answered_after_its_head_even_split() -> None:
    head = RefusedHead()
    assert not head.feed(b"GET / HTTP/1.1\r\nHost: x\r")
    assert not head.feed(b"\n\r")
    assert head.feed(b"\n")
    long_head = RefusedHead()
    assert long_head.feed(b"x" * 9000)  # long enough to answer anyway


def test_the_failure_log_has_no_secret_and_survives_odd_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    caplog.set_level(logging.ERROR, logger="trackwire.server")
    try:
        raise ValueError('bad frame {"password":"hunter2","hash":"abc"} \ud800')
    except ValueError as exc:
        error = log_failure("10.0.0.1:5000", exc)
    assert isinstance(error, LocalProtocolError)
    assert log_failure("", Unprintable()).args[0] == "internal error (Unprintable: ?)"
    text = caplog.text
    assert "10.0.0.1:5000" in text
    assert "ValueError" in text
    assert "hunter2" not in text
    assert '"hash":"abc"' not in text
    assert "test_serving_policy.py" in text  # where it was raised


def test_refusals_kept_to_answer_503_are_bounded() -> None:
    admission = AdmissionControl(1, None)
    assert all(admission.start_refusal() for _ in range(MAX_REFUSING))
    assert not admission.start_refusal()
    admission.end_refusal()
    assert admission.start_refusal()
