"""Reconnect backoff, computed here and slept by the driver (no clock, injectable randomness)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "ReconnectPolicy"]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How a client retries: ``initial`` seconds, times ``factor`` per attempt, at most ``cap``.

    ``jitter`` spreads each delay uniformly by ± that fraction, so that a fleet of clients
    does not reconnect in lockstep; ``max_attempts`` (``None`` = forever) bounds the retries
    in a row.  The default is the FleetFreedom clients' 1 s doubling to 5 minutes.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ValueError("delays must be >= 0")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 or None")

    def base_delay(self, attempt: int) -> float:
        """The delay before attempt ``attempt`` (1-based) without jitter."""
        if attempt <= 1:
            return min(self.initial, self.cap)
        # Stop multiplying once past the cap (no float overflow for long outages).
        delay = self.initial
        for _ in range(attempt - 1):
            delay *= self.factor
            if delay >= self.cap:
                return self.cap
        return delay


class Backoff:
    """The running state of a :class:`ReconnectPolicy`: attempts so far and the next delay."""

    __slots__ = ("_random", "attempts", "policy")

    def __init__(
        self, policy: ReconnectPolicy | None = None, rng: Callable[[], float] = random.random
    ) -> None:
        self.policy = policy or ReconnectPolicy()
        self.attempts = 0
        self._random = rng

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when attempts are exhausted."""
        policy = self.policy
        if policy.max_attempts is not None and self.attempts >= policy.max_attempts:
            return None
        self.attempts += 1
        base = policy.base_delay(self.attempts)
        if policy.jitter:
            base *= 1 + policy.jitter * (2 * self._random() - 1)
        return max(0.0, base)

    def reset(self) -> None:
        """A connection succeeded: the next outage starts from ``initial`` again."""
        self.attempts = 0
