"""Backoff for retries, and when to poll: learned from how long recent jobs took at the provider."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.requests import GenerationSpec, ModelId
from bot.jobs.gate import Headroom

# Provider-published averages, used until this deployment has its own history.
DEFAULT_EXPECTED_SECONDS: dict[ModelId, float] = {
    ModelId.REDUX_SCHNELL: 7.6,
    ModelId.REDUX_DEV: 15.8,
    ModelId.SCHNELL: 10.1,
}
#: recent durations needed before their spread is trusted (until then, their median with a typical spread)
MIN_HISTORY = 20


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
    soon: float  # 45th percentile: the first poll when requests are cheap (earlier jobs wait for it)
    mostly: float  # 80th percentile: by then most jobs are done
    late: float  # 95th percentile: beyond it a job is running long
    learned: bool


#: beyond the late bound, a poll waits this share of the job's age: a 60 s job is asked about ~8 times, not 20
LATE_GROWTH = 0.2


def _between(low: float, high: float, t: float) -> float:
    return low + (high - low) * t


@dataclass
class PollPlanner:
    """When to ask a provider about a job, spending the request budget's spare room and no more.

    With room to spare (or no budget) the aim is a short detection delay: the first poll at the 45th
    percentile of recent durations, then one every `min_interval` on a fixed grid, so most jobs are seen
    within one interval of finishing. As the budget fills the plan turns thrifty: the interval grows
    towards each running job's equal share of the rate and, while jobs wait for the budget, the first
    poll moves towards the 95th percentile (one status request for most jobs), so the requests go to new
    jobs instead. Past the 95th percentile a job is running long and polls space out with its age.
    """

    min_interval: float
    max_interval: float
    defaults: dict[ModelId, float] = field(default_factory=lambda: dict(DEFAULT_EXPECTED_SECONDS))

    def expectation(self, spec: GenerationSpec, history: Sequence[float]) -> Expectation:
        if len(history) >= MIN_HISTORY:
            ordered = sorted(history)
            return Expectation(
                median=statistics.median(ordered),
                soon=quantile(ordered, 0.45),
                mostly=quantile(ordered, 0.8),
                late=quantile(ordered, 0.95),
                learned=True,
            )
        # Until then, a published (or barely learned) median with the spread such jobs typically have: the
        # 45th, 80th and 95th percentiles of a lognormal with sigma 0.3.
        median = statistics.median(history) if history else self.defaults[spec.model]
        return Expectation(median=median, soon=median * 0.96, mostly=median * 1.29, late=median * 1.64, learned=False)

    def next_delay(self, *, elapsed: float, expect: Expectation, polls: int, headroom: Headroom | None = None) -> float:
        """Seconds to wait before the next status request."""
        thrift = headroom.pressure if headroom is not None else 0.0
        fast = self.min_interval
        share = headroom.share_interval if headroom is not None else 0.0
        interval = min(self.max_interval, max(fast, _between(fast, share, thrift)))
        # Only jobs waiting for the budget make it worth asking each running job once, late: then requests
        # are throughput. Without a backlog, a full budget only spaces the polls out.
        delay_first = thrift if headroom is not None and headroom.waiting else 0.0
        first = _between(expect.soon, max(expect.soon, expect.late), delay_first)
        if polls == 0:
            return max(0.0, first - elapsed)
        if elapsed < expect.late:
            # On a fixed grid from the first poll, so request round trips do not stretch the interval.
            # (A poll that lands on a grid point waits for the next one, rounding errors notwithstanding.)
            steps = math.floor((elapsed - first) / interval + 1e-6) + 1
            return max(0.0, first + steps * interval - elapsed)
        return min(self.max_interval, max(interval, LATE_GROWTH * elapsed))
