"""The configured providers as the engine uses them: choice, budgets, circuit breakers, retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bot.core.errors import ProviderError, ProviderPermanentError, ProviderTransientError
from bot.core.jobs import Clock, Job
from bot.core.requests import GenerationSpec
from bot.jobs.circuit import CircuitBreaker
from bot.jobs.gate import ProviderGate
from bot.jobs.timing import backoff
from bot.providers.base import Provider, Submission, honours
from bot.providers.http import HttpClient

log = logging.getLogger(__name__)

T = TypeVar("T")


class NoProviderFreeError(Exception):
    """The job was accepted nowhere and should wait in the queue for a provider with room."""


class JobCancelledError(Exception):
    """The job left the queue (cancelled) before its submit was sent: nothing was sent."""


@dataclass(slots=True)
class ProviderSlot:
    """A configured provider, its request budget and its circuit breaker."""

    provider: Provider
    gate: ProviderGate
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    def __post_init__(self) -> None:
        # Every API request the adapter makes (submit, poll, result, upload) is counted against the budget.
        http = getattr(self.provider, "http", None)
        if isinstance(http, HttpClient):
            http.before_request = self.gate.request

    @property
    def name(self) -> str:
        return self.provider.name


class ProviderPool:
    """Picks a provider for a job, submits it (with failover) and makes single calls that keep the breaker."""

    def __init__(
        self,
        slots: Sequence[ProviderSlot],
        *,
        max_attempts: int,
        retry_base_delay: float,
        retry_max_delay: float,
        disabled_seconds: float,
        rng: random.Random,
    ) -> None:
        self.slots = list(slots)
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.disabled_seconds = disabled_seconds
        self.rng = rng
        self._disabled_reported: set[str] = set()

    def named(self, name: str | None) -> ProviderSlot | None:
        return next((slot for slot in self.slots if slot.name == name), None)

    def runs(self, spec: GenerationSpec) -> bool:
        """Whether some configured provider can run `spec`, honouring every field it tunes."""
        return any(honours(slot.provider, spec) for slot in self.slots)

    def pick(self, job: Job, exclude: frozenset[str] = frozenset()) -> ProviderSlot | None:
        """A healthy provider with room for the job: the server's chosen one first, then the operator's order."""
        serving = [slot for slot in self.slots if honours(slot.provider, job.spec) and slot.name not in exclude]
        serving.sort(key=lambda slot: slot.name != job.preferred_provider)  # stable: keeps the operator's order
        return next((slot for slot in serving if slot.gate.has_slot and slot.breaker.available()), None)

    def reopens_in(self) -> float | None:
        """Seconds until the first open circuit half-opens, if any is open."""
        waits = [slot.breaker.reopens_in for slot in self.slots if slot.breaker.reopens_in > 0]
        return min(waits) if waits else None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        return backoff(
            attempt, base=self.retry_base_delay, cap=self.retry_max_delay, rng=self.rng, retry_after=retry_after
        )

    async def once(self, slot: ProviderSlot, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """One provider call, keeping the circuit breaker and the 429 pause up to date."""
        try:
            answer = await call(*args)
        except ProviderTransientError as exc:
            slot.breaker.failure()
            if exc.rate_limited:  # the whole provider waits, not just this job
                slot.gate.pause(exc.retry_after if exc.retry_after is not None else 5.0)
            raise
        slot.breaker.success()
        return answer

    async def submit(
        self,
        job: Job,
        slot: ProviderSlot,
        image: bytes | None,
        *,
        clock: Clock,
        record: Callable[[int, ProviderSlot | None], Awaitable[bool]],
        move: Callable[[ProviderSlot, ProviderSlot], None],
    ) -> tuple[ProviderSlot, Submission, datetime]:
        """Submit, failing over to the next provider that serves the job until one has accepted it.

        `record(attempt, slot)` stores, durably and before anything is sent, that a submit to `slot` is
        about to go out (False: the job was cancelled, send nothing); `record(attempt, None)` clears it once
        the provider refused. Only a refusal (a transient error: nothing was accepted, or an operator
        problem) is retried or failed over; an unknown outcome propagates at once, as resending could bill
        twice. Returns the provider that accepted it, its answer, and when the accepted request was sent.
        """
        tried = {slot.name}
        for attempt in range(1, self.max_attempts + 1):
            if not await record(attempt, slot):
                raise JobCancelledError(job.id)
            try:
                # The job's age counts from when the request left (after any wait for the budget): the
                # provider's clock starts no earlier, so polls are never late even when answers queue up.
                before, real = clock.now(), datetime.now(UTC)
                submission = await self.once(slot, slot.provider.submit, job.spec, image)
                waited = (submission.sent_at - real) if submission.sent_at else timedelta(0)
                return slot, submission, before + max(waited, timedelta(0))
            except ProviderTransientError as exc:
                error: ProviderError = exc
                retry_after = exc.retry_after
            except ProviderPermanentError as exc:
                if not exc.operator:
                    raise
                self.disable(slot, exc)
                error, retry_after = exc, None
            await record(attempt, None)
            alternative = self.pick(job, exclude=frozenset(tried))
            if alternative is not None:
                log.warning("job=%s failing over from %s to %s: %s", job.id, slot.name, alternative.name, error.message)
                move(slot, alternative)
                slot = alternative
                tried.add(slot.name)
                continue
            if isinstance(error, ProviderPermanentError):
                if any(honours(other.provider, job.spec) for other in self.slots if other.name not in tried):
                    raise NoProviderFreeError  # another provider serves the job but is busy right now
                raise error
            if attempt == self.max_attempts:
                raise error
            tried = {slot.name}
            delay = self.delay(attempt, retry_after)
            log.warning(
                "job=%s provider=%s attempt=%d refused, retrying in %.2fs: %s",
                job.id,
                slot.name,
                attempt,
                delay,
                error.message,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def disable(self, slot: ProviderSlot, exc: ProviderPermanentError) -> None:
        """A provider that needs the operator (bad key, out of credits) is skipped for a while, said loudly once."""
        slot.breaker.open(self.disabled_seconds)
        if slot.name not in self._disabled_reported:
            self._disabled_reported.add(slot.name)
            log.error("provider=%s is skipped until the operator fixes it: %s", slot.name, exc.message)
