"""Reconnect backoff: the sequence, the cap, jitter bounds, exhaustion and reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackwire import Backoff, ReconnectPolicy


def test_default_doubles_from_one_second_to_five_minutes() -> None:
    backoff = Backoff(ReconnectPolicy(jitter=0))
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_max_attempts_and_reset() -> None:
    backoff = Backoff(ReconnectPolicy(initial=0.5, jitter=0, max_attempts=2))
    assert [backoff.next_delay(), backoff.next_delay(), backoff.next_delay()] == [0.5, 1.0, None]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_zero_attempts_never_retries() -> None:
    assert Backoff(ReconnectPolicy(max_attempts=0)).next_delay() is None


@given(st.integers(1, 10_000), st.floats(0, 1), st.floats(0, 1))
def test_jitter_stays_within_its_fraction(attempt: int, jitter: float, draw: float) -> None:
    policy = ReconnectPolicy(jitter=jitter)
    backoff = Backoff(policy, rng=lambda: draw)
    backoff.attempts = attempt - 1
    delay = backoff.next_delay()
    base = policy.base_delay(attempt)
    assert delay is not None
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1}, {"factor": 0.5}, {"jitter": 2}, {"max_attempts": -1}, {"cap": -1}],
)
def test_policy_checks(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]
