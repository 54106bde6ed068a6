"""Backoff for retries and the polling plan learned from recent jobs."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

from bot.core.requests import GenerationSpec, ModelId

# Provider-published averages, used until this deployment has its own history.
DEFAULT_EXPECTED_SECONDS: dict[ModelId, float] = {
    ModelId.REDUX_SCHNELL: 7.6,
    ModelId.REDUX_DEV: 15.8,
    ModelId.SCHNELL: 10.1,
}


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry; a provider's Retry-After wins if longer."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1)) * rng.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


@dataclass
class PollPlanner:
    """When to ask a provider about a job: first near its expected completion, then at short intervals."""

    min_interval: float
    max_interval: float
    defaults: dict[ModelId, float] = field(default_factory=lambda: dict(DEFAULT_EXPECTED_SECONDS))
    first_poll_fraction: float = 0.9

    def expected(self, spec: GenerationSpec, history: list[float]) -> float:
        """Median of recent durations of the same model at the same provider, or the published average."""
        if history:
            return statistics.median(history)
        return self.defaults[spec.model]

    def next_delay(self, *, elapsed: float, expected: float, polls: int, learned: bool = True) -> float:
        """Seconds to wait before the next status request.

        With a learned expectation the first poll goes just before it. Without history (a published
        average that may not fit this deployment) the wait is split into quarters, so a provider much
        faster than advertised is noticed early.
        """
        first = expected * self.first_poll_fraction
        if elapsed < first and (polls == 0 or not learned):
            step = first - elapsed if learned else max(self.min_interval, expected / 4)
            return min(first - elapsed, step)
        # Past the expectation, ask often at first and back off the longer a job runs over.
        overdue = max(0.0, elapsed - first)
        interval = max(self.min_interval, expected * 0.05) + overdue * 0.25
        return min(self.max_interval, interval)
