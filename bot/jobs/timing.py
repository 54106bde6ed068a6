"""Backoff for retries, and when to poll: learned from how long recent jobs took at the provider."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.requests import GenerationSpec, ModelId

# Provider-published averages, used until this deployment has its own history.
DEFAULT_EXPECTED_SECONDS: dict[ModelId, float] = {
    ModelId.REDUX_SCHNELL: 7.6,
    ModelId.REDUX_DEV: 15.8,
    ModelId.SCHNELL: 10.1,
}
#: recent durations needed before their spread is trusted
MIN_HISTORY = 5


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry; a provider's Retry-After wins if longer."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1)) * rng.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending sequence."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Expectation:
    """How long a job is expected to take: the median and, once learned, the spread."""

    median: float
    soon: float  # 40th percentile: past it, most jobs finish within a short interval of a poll
    mostly: float  # 80th percentile: by then most jobs are done
    late: float  # 95th percentile: beyond it a job is running long
    learned: bool


@dataclass
class PollPlanner:
    """When to ask a provider about a job.

    With no request budget the aim is a short detection delay for few requests: the first poll goes at
    the 40th percentile of recent durations, then one every `min_interval`, so most jobs are seen within
    one interval of finishing and the median job takes two status requests. Under a request budget the
    first poll goes at the 80th percentile and later ones are spaced by what the budget leaves per
    running job. Jobs running past the 95th percentile are polled less and less often.
    """

    min_interval: float
    max_interval: float
    defaults: dict[ModelId, float] = field(default_factory=lambda: dict(DEFAULT_EXPECTED_SECONDS))

    def expectation(self, spec: GenerationSpec, history: Sequence[float]) -> Expectation:
        if len(history) >= MIN_HISTORY:
            ordered = sorted(history)
            return Expectation(
                median=statistics.median(ordered),
                soon=quantile(ordered, 0.4),
                mostly=quantile(ordered, 0.8),
                late=quantile(ordered, 0.95),
                learned=True,
            )
        median = statistics.median(history) if history else self.defaults[spec.model]
        return Expectation(median=median, soon=median * 0.9, mostly=median * 1.2, late=median * 1.5, learned=False)

    def expected(self, spec: GenerationSpec, history: Sequence[float]) -> float:
        return self.expectation(spec, history).median

    def next_delay(
        self, *, elapsed: float, expect: Expectation, polls: int, budget_interval: float | None = None
    ) -> float:
        """Seconds to wait before the next status request."""
        if not expect.learned:
            # A published average may not fit this deployment: probe in quarters of it.
            first = expect.median * 0.9
            if elapsed < first:
                return min(first - elapsed, max(self.min_interval, expect.median / 4))
            return self._late(elapsed, expect, self.min_interval)
        if budget_interval is None:
            first, interval = expect.soon, self.min_interval
        else:
            first, interval = expect.mostly, max(self.min_interval, budget_interval)
        if polls == 0:
            return max(0.0, first - elapsed)
        if elapsed < expect.late:
            # On a fixed grid from the first poll, so request round trips do not stretch the interval.
            steps = math.floor((elapsed - first) / interval) + 1
            return max(0.0, first + steps * interval - elapsed)
        return self._late(elapsed, expect, interval)

    def _late(self, elapsed: float, expect: Expectation, interval: float) -> float:
        overdue = max(0.0, elapsed - expect.late)
        return min(self.max_interval, max(interval, interval + overdue * 0.25))
