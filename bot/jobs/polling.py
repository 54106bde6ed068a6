"""A job at its provider: a submit recorded before it is sent, polls that follow the budget, and the result.

The job's deadline counts from the stored submit time, so a restart neither extends nor resets it. Once a
provider has accepted a job, transient errors are waited out with backoff until that deadline: a finished,
billed job is not given up after a handful of failed polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.jobs import Clock, Job, JobState
from bot.jobs.notifier import Progress
from bot.jobs.pool import ProviderPool, ProviderSlot
from bot.jobs.timing import MIN_HISTORY, Expectation, PollPlanner, backoff
from bot.providers.base import ProviderResult, ProviderState, Submission
from storage.jobs import JobRepo

log = logging.getLogger(__name__)


class DeadlinePassedError(Exception):
    """The job ran past its deadline at the provider."""


@dataclass(frozen=True, slots=True)
class RunTimes:
    """The time limits of a job at its provider."""

    #: seconds from the submit until the job is given up
    deadline: float
    #: extra seconds to fetch the outputs of a job that finished just before its deadline
    result_grace: float
    #: a provider that forgets a job this soon after accepting it is more likely slow to record it
    expired_grace: float
    retry_base_delay: float
    retry_max_delay: float


class ProviderRun:
    """Drives one job through its provider: submit (recorded first), polls, result. The engine settles it."""

    def __init__(
        self,
        *,
        jobs: JobRepo,
        pool: ProviderPool,
        planner: PollPlanner,
        clock: Clock,
        times: RunTimes,
        rng: random.Random,
        shielded: Callable[[Awaitable[Any]], Awaitable[Any]],
        progress: Callable[[Job, Progress], None],
        transitioned: Callable[[Job, JobState], None],
        expected: dict[Any, float],
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.jobs = jobs
        self.pool = pool
        self.planner = planner
        self.clock = clock
        self.times = times
        self.rng = rng
        self._shielded = shielded
        self._progress = progress
        self._transitioned = transitioned
        self._expected = expected
        self._backlog = backlog
        #: jobs between "a submit may go out" and its recorded outcome: a stop waits for them (see `settle`)
        self._submitting: set[str] = set()
        self._settled = asyncio.Event()
        self._settled.set()

    async def run(
        self, job: Job, slot: ProviderSlot, move: Callable[[ProviderSlot, ProviderSlot], None]
    ) -> tuple[ProviderSlot, ProviderResult] | None:
        """Submit a queued job (or resume one at its provider) and wait for its outputs; None if cancelled."""
        if job.state is JobState.QUEUED:
            accepted = await self._submit(job, slot, move)
            if accepted is None:
                return None
            job, slot, submission = accepted
            if submission.result is not None:
                return slot, submission.result
        return slot, await self._poll(job, slot)

    # ----------------------------------------------------------------- submit

    async def _submit(
        self, job: Job, slot: ProviderSlot, move: Callable[[ProviderSlot, ProviderSlot], None]
    ) -> tuple[Job, ProviderSlot, Submission] | None:
        self._submitting.add(job.id)
        self._settled.clear()
        try:
            return await self._send(job, slot, move)
        finally:
            self._submitting.discard(job.id)
            if not self._submitting:
                self._settled.set()

    async def settle(self, grace: float) -> None:
        """Wait (up to `grace` seconds) until no submit is in flight, so a stop makes no unknown outcome.

        Cancelled between its record and its answer, a submit could have been accepted and billed with nobody
        knowing its id; the next start would then have to fail the job. A clean stop lets it finish instead.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._settled.wait()

    async def _send(
        self, job: Job, slot: ProviderSlot, move: Callable[[ProviderSlot, ProviderSlot], None]
    ) -> tuple[Job, ProviderSlot, Submission] | None:
        image = await self.jobs.input_image(job.input_sha256) if job.input_sha256 else None

        async def record(attempt: int, target: ProviderSlot | None) -> bool:
            fields: dict[str, Any] = {"submitting_to": target.name if target else None}
            if target is not None:
                fields["attempts"] = job.attempts + attempt
            return bool(
                await self._shielded(self.jobs.update(job.id, [JobState.QUEUED], now=self.clock.now(), **fields))
            )

        slot, submission, sent_at = await self.pool.submit(job, slot, image, clock=self.clock, record=record, move=move)
        moved = await self._shielded(
            self.jobs.transition(
                job.id,
                [JobState.QUEUED],
                JobState.SUBMITTED,
                now=self.clock.now(),
                provider=slot.name,
                provider_job_id=submission.job_id,
                provider_handle=json.dumps(submission.handle),
                submitted_at=sent_at.isoformat(),
                submitting_to=None,
            )
        )
        if not moved:
            # Cancelled while the submit was in flight: the provider has the job anyway.
            log.warning(
                "job=%s provider=%s accepted provider job %s after the job was cancelled; it may be billed",
                job.id,
                slot.name,
                submission.job_id,
            )
            if slot.provider.can_cancel:
                await self._quietly(slot.provider.cancel(submission.job_id))
            return None
        job = await self._reload(job.id)
        self._transitioned(job, JobState.SUBMITTED)
        return job, slot, submission

    # ----------------------------------------------------------------- polls

    async def _poll(self, job: Job, slot: ProviderSlot) -> ProviderResult:
        assert job.provider_job_id is not None and job.submitted_at is not None
        provider, submitted_at = slot.provider, job.submitted_at
        expect = await self._expectation(job, provider.name)
        self._expected[job.spec.model] = expect.median
        polls = failures = 0
        while True:
            elapsed = self._age(submitted_at)
            remaining = self.times.deadline - elapsed
            self._progress(
                job,
                Progress(job.state, provider=provider.name, elapsed_seconds=elapsed, expected_seconds=expect.median),
            )
            if failures:
                delay = 0.0  # the backoff was already waited
            elif remaining <= 0:
                # Past the deadline, e.g. after a long downtime: one last look before giving up.
                delay = 0.0
            else:
                delay = min(
                    remaining,
                    self.planner.next_delay(elapsed=elapsed, expect=expect, polls=polls, headroom=slot.gate.headroom()),
                )
            await asyncio.sleep(delay)
            try:
                status = await self.pool.once(slot, provider.status, job.provider_job_id, job.provider_handle)
            except (ProviderTransientError, ProviderJobExpiredError) as exc:
                if isinstance(exc, ProviderJobExpiredError) and self._age(submitted_at) > self.times.expired_grace:
                    raise
                failures += 1
                await self._back_off(job, slot, exc, failures, self.times.deadline)
                continue
            polls += 1
            failures = 0
            if status.state is ProviderState.RUNNING and job.state is JobState.SUBMITTED:
                now = self.clock.now()
                if await self.jobs.transition(
                    job.id, [JobState.SUBMITTED], JobState.RUNNING, now=now, started_at=now.isoformat()
                ):
                    job = await self._reload(job.id)
                    self._transitioned(job, JobState.RUNNING)
            elif status.state is ProviderState.SUCCEEDED:
                result = await self._result(job, slot)
                if result.inference_seconds is None and status.inference_seconds is not None:
                    result = ProviderResult(result.images, status.inference_seconds, result.queue_seconds, result.seed)
                return result
            elif status.state is ProviderState.FAILED:
                error = status.error or "no reason given"
                if status.blocked:
                    raise ProviderBlockedError(error, provider=provider.name)
                raise ProviderPermanentError(error, provider=provider.name)
            if self._age(submitted_at) >= self.times.deadline:
                raise DeadlinePassedError(job.id)

    async def _result(self, job: Job, slot: ProviderSlot) -> ProviderResult:
        """The outputs of a job the provider reports done: billed, so worth waiting out transient errors for."""
        assert job.provider_job_id is not None and job.submitted_at is not None
        limit = self.times.deadline + self.times.result_grace
        failures = 0
        while True:
            try:
                return await self.pool.once(
                    slot, slot.provider.result, job.provider_job_id, job.spec, job.provider_handle
                )
            except ProviderTransientError as exc:
                failures += 1
                await self._back_off(job, slot, exc, failures, limit)

    async def _back_off(self, job: Job, slot: ProviderSlot, exc: Exception, failures: int, limit: float) -> None:
        """Wait before asking again after a transient error; past `limit` seconds from the submit, give up."""
        assert job.submitted_at is not None
        left = limit - self._age(job.submitted_at)
        if left <= 0:
            raise DeadlinePassedError(job.id) from exc
        retry_after = exc.retry_after if isinstance(exc, ProviderTransientError) else None
        delay = backoff(
            failures,
            base=self.times.retry_base_delay,
            cap=self.times.retry_max_delay,
            rng=self.rng,
            retry_after=retry_after,
        )
        log.warning(
            "job=%s provider=%s transient error %d, asking again in %.2fs: %s",
            job.id,
            slot.name,
            failures,
            min(delay, left),
            getattr(exc, "message", str(exc)),
        )
        await asyncio.sleep(min(delay, left))

    # ----------------------------------------------------------------- helpers

    async def _expectation(self, job: Job, provider: str) -> Expectation:
        # Learned per provider, model and output size; other sizes stand in until a size has its own history.
        history = await self.jobs.recent_durations(
            provider=provider, model=job.spec.model.value, megapixels=job.spec.megapixels
        )
        if len(history) < MIN_HISTORY:
            history = await self.jobs.recent_durations(provider=provider, model=job.spec.model.value)
        return self.planner.expectation(job.spec, history)

    def _age(self, since: datetime) -> float:
        return (self.clock.now() - since).total_seconds()

    async def _reload(self, job_id: str) -> Job:
        job = await self.jobs.get(job_id)
        assert job is not None
        return job

    @staticmethod
    async def _quietly(awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            log.warning("cancel at the provider failed: %s", getattr(exc, "message", exc))
