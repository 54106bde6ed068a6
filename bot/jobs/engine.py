"""The job engine: idempotent submit, fair dispatch within provider budgets, polling, retries, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from bot.core.errors import (
    JobNotFoundError,
    ProviderBlockedError,
    ProviderError,
    ProviderJobExpiredError,
    ProviderPermanentError,
    ProviderTransientError,
    UserError,
)
from bot.core.images import NormalizedImage
from bot.core.jobs import AT_PROVIDER, Clock, Job, JobState, SystemClock
from bot.core.limits import UNLIMITED, Limits, Policy
from bot.core.pricing import PriceList
from bot.core.requests import GenerationSpec, ModelId
from bot.jobs.balances import BalanceBook
from bot.jobs.delivery import Delivery, DeliveryHooks
from bot.jobs.notifier import JobNotifier, Progress
from bot.jobs.outputs import timings_ms, usable_outputs
from bot.jobs.pool import NoProviderFreeError, ProviderPool, ProviderSlot
from bot.jobs.scheduler import FairQueue
from bot.jobs.timing import MIN_HISTORY, PollPlanner
from bot.providers.base import ProviderResult, ProviderState, Submission
from storage.jobs import JobRepo, NewJob

log = logging.getLogger(__name__)

T = TypeVar("T")

#: queue positions shift with every dispatch; members are told at most this often (seconds)
ANNOUNCE_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Knobs of the engine; the composition root fills them from Settings."""

    daily_allowance: int = 20
    max_attempts: int = 5
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    job_deadline: float = 900.0
    poll_min_interval: float = 0.25
    poll_max_interval: float = 3.0
    delivery_attempts: int = 3
    disabled_provider_seconds: float = 600.0
    output_max_pixels: int = 40_000_000
    #: concurrency for servers that submitted nothing since the start (their recovered jobs)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class JobOrder:
    """A member's request to run one job."""

    request_id: str
    guild_id: int
    user_id: int
    spec: GenerationSpec
    channel_id: int | None = None
    input_image: NormalizedImage | None = None
    input_sha256: str | None = None
    origin: str = "command"
    parent_job_id: str | None = None
    parent_index: int | None = None
    free: bool = False
    #: the largest upload the channel accepts, when the front end knows it
    upload_limit: int | None = None
    #: post the images as spoilers
    spoiler: bool = False


class JobEngine:
    """Runs jobs from queued to a terminal state and delivers each result once. Never imports discord."""

    def __init__(
        self,
        *,
        jobs: JobRepo,
        providers: Sequence[ProviderSlot],
        notifier: JobNotifier,
        prices: PriceList,
        config: EngineConfig | None = None,
        planner: PollPlanner | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        balances: BalanceBook | None = None,
        hooks: DeliveryHooks | None = None,
    ) -> None:
        self.jobs = jobs
        self.balances = balances
        self.prices = prices
        self.config = config or EngineConfig()
        self.planner = planner or PollPlanner(self.config.poll_min_interval, self.config.poll_max_interval)
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.pool = ProviderPool(
            providers,
            max_attempts=self.config.max_attempts,
            retry_base_delay=self.config.retry_base_delay,
            retry_max_delay=self.config.retry_max_delay,
            disabled_seconds=self.config.disabled_provider_seconds,
            rng=self.rng,
        )
        self.queue = FairQueue()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._bookkeeping: set[asyncio.Future[Any]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._expected: dict[ModelId, float] = {}  # latest learned duration per model, for queue ETAs
        self._limits: dict[int, Limits] = {}  # per server, from the latest submit
        self._active: Counter[tuple[int, int]] = Counter()  # jobs at a provider per (server, member)
        self._active_servers: Counter[int] = Counter()
        self._slot_of: dict[str, ProviderSlot] = {}  # the provider each running job holds a slot at
        self._requeue: set[str] = set()
        self.delivery = Delivery(
            jobs=jobs,
            notifier=notifier,
            clock=self.clock,
            shielded=self._shielded,
            attempts=self.config.delivery_attempts,
            retry_base_delay=self.config.retry_base_delay,
            retry_max_delay=self.config.retry_max_delay,
            rng=self.rng,
            hooks=hooks,
            spawn=self._spawn,
        )
        self._announcement: asyncio.TimerHandle | None = None
        self._announced_at = float("-inf")

    # ----------------------------------------------------------------- lifecycle

    async def start(self, *, recover: bool = True) -> None:
        """Recover what a previous process left (unless told not to), then start dispatching."""
        if recover:
            await self.recover()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="fluxcord-dispatch")

    async def stop(self) -> None:
        """Stop working; jobs at a provider stay `submitted` and resume on the next start."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        if self._announcement is not None:
            self._announcement.cancel()
            self._announcement = None
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        dispatcher = [self._dispatcher] if self._dispatcher else []
        await asyncio.gather(*tasks, *dispatcher, return_exceptions=True)
        # Bookkeeping is never cancelled: a half-written settlement is worse than a slower stop.
        await asyncio.gather(*self._bookkeeping, return_exceptions=True)
        self._dispatcher = None
        await self.notifier.close()

    async def run_until_idle(self) -> None:
        """Wait until no job is queued, running or waiting for delivery (tests and the CLI)."""
        while self.queue or self._tasks or self._background or self._bookkeeping:
            self._idle.clear()
            await self._idle.wait()

    async def recover(self) -> None:
        """Resume polling jobs a provider accepted, re-queue queued ones, deliver finished ones not yet posted."""
        for job in await self.jobs.in_states(AT_PROVIDER):
            slot = self.pool.named(job.provider)
            if slot is None:
                await self._end(job, JobState.FAILED, f"The provider {job.provider} is no longer configured.")
                continue
            log.info("job=%s user=%s provider=%s state=%s resuming", job.id, job.user_id, job.provider, job.state)
            slot.gate.take_slot()
            self._start(job, slot)
        for job in await self.jobs.in_states([JobState.QUEUED]):
            self.queue.push(job)
        for job in await self.jobs.undelivered():
            self._spawn(self._deliver(job.id))
        self._wake.set()

    # ----------------------------------------------------------------- submit and cancel

    async def submit(self, order: JobOrder, policy: Policy | None = None) -> Job:
        """Check limits, hold the price and queue the job; a repeated request id returns the first job."""
        if not self.pool.runs(order.spec):
            raise UserError(f"No configured provider serves {order.spec.model.label}.")
        cost = 0 if order.free else self.prices.price(order.spec)
        # Without a policy (operator jobs from the command line) nothing is limited.
        policy = policy or Policy(daily_allowance=self.config.daily_allowance, limits=UNLIMITED)
        self._limits[order.guild_id] = policy.limits
        job, created = await self.jobs.create(
            NewJob(
                request_id=order.request_id,
                guild_id=order.guild_id,
                user_id=order.user_id,
                spec=order.spec,
                cost=cost,
                channel_id=order.channel_id,
                origin=order.origin,
                input_image=order.input_image,
                input_sha256=order.input_sha256,
                parent_job_id=order.parent_job_id,
                parent_index=order.parent_index,
                preferred_provider=policy.provider,
                upload_limit=order.upload_limit,
                spoiler=order.spoiler,
            ),
            policy=policy,
            now=self.clock.now(),
        )
        if created:
            self._log(job, JobState.QUEUED)
            self.queue.push(job)
            # Announced before the queue position below, so the status message exists for it to update.
            self._spawn(self.delivery.announce(job))
            self._announce_queue()
            self._wake.set()
        return job

    async def cancel(self, job_id: str, *, user_id: int | None = None, reason: str = "Cancelled.") -> Job:
        """Cancel a queued or running job and release its hold; cancels at the provider where possible.

        `user_id` limits it to that member's job; `reason` is what the job's message says.
        """
        job = await self.jobs.get(job_id)
        if job is None or (user_id is not None and job.user_id != user_id):
            raise JobNotFoundError(f"You have no job `{job_id}`.")
        if job.state.terminal:
            raise UserError(f"Job `{job_id}` has already {job.state.value}.")
        if not await self._end(job, JobState.CANCELLED, reason):
            raise UserError(f"Job `{job_id}` finished before it could be cancelled.")
        self.queue.remove(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
        self._spawn(self._deliver(job_id))
        slot = self.pool.named(job.provider)
        if slot is not None and job.provider_job_id and slot.provider.can_cancel:
            try:
                await slot.provider.cancel(job.provider_job_id)
            except ProviderError as exc:
                log.warning("job=%s provider=%s cancel at provider failed: %s", job.id, job.provider, exc)
        cancelled = await self.jobs.get(job_id)
        assert cancelled is not None
        return cancelled

    # ----------------------------------------------------------------- dispatch

    def _may_start(self, job: Job) -> bool:
        """Within the member's and the server's concurrency, and a provider has room."""
        limits = self._limits.get(job.guild_id, self.config.limits)
        if self._active[(job.guild_id, job.user_id)] >= limits.max_active:
            return False
        if self._active_servers[job.guild_id] >= limits.server_concurrency:
            return False
        return self.pool.pick(job) is not None

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            dispatched = False
            while (job := self.queue.pop(self._may_start)) is not None:
                slot = self.pool.pick(job)
                assert slot is not None
                slot.gate.take_slot()
                slot.breaker.begin()
                self._start(job, slot)
                dispatched = True
            if dispatched:
                self._announce_queue()
            if not self.queue and not self._tasks and not self._background:
                self._idle.set()
            # Jobs held back only by open circuits must be looked at again when one half-opens.
            reopen = self.pool.reopens_in() if self.queue else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(reopen + 0.01 if reopen is not None else None):
                    await self._wake.wait()

    def _announce_queue(self) -> None:
        """Soon tell queued jobs their place in line; at most once per ANNOUNCE_INTERVAL, so it costs O(queue)
        per interval rather than per dispatch."""
        if self._announcement is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._announced_at + ANNOUNCE_INTERVAL - loop.time())
        self._announcement = loop.call_later(delay, self._announce_positions)

    def _announce_positions(self) -> None:
        self._announcement = None
        self._announced_at = asyncio.get_running_loop().time()
        lanes = max(1, sum(slot.gate.concurrency for slot in self.pool.slots))
        for position, job in enumerate(self.queue.order(), start=1):
            expected = self._expected.get(job.spec.model, self.planner.defaults.get(job.spec.model, 10.0))
            eta = expected * ((position - 1) // lanes + 1)
            self._tell(job, Progress(JobState.QUEUED, position=position, eta_seconds=eta))

    def _start(self, job: Job, slot: ProviderSlot) -> None:
        task = asyncio.create_task(self._run(job, slot), name=f"fluxcord-job-{job.id}")
        self._tasks[job.id] = task
        self._slot_of[job.id] = slot
        member = (job.guild_id, job.user_id)
        self._active[member] += 1
        self._active_servers[job.guild_id] += 1

        def finished(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job.id, None)
            self._active[member] -= 1
            self._active_servers[job.guild_id] -= 1
            self._slot_of.pop(job.id, slot).gate.free_slot()
            if job.id in self._requeue:  # never accepted anywhere: back in line for another provider
                self._requeue.discard(job.id)
                self.queue.push(job)
            self._wake.set()
            self._idle.set()

        task.add_done_callback(finished)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)

        def finished(done: asyncio.Task[Any]) -> None:
            self._background.discard(done)
            self._wake.set()
            self._idle.set()

        task.add_done_callback(finished)

    async def _shielded(self, awaitable: Awaitable[T]) -> T:
        """Bookkeeping that must finish even if the job task is cancelled mid-way."""
        inner = asyncio.ensure_future(awaitable)
        self._bookkeeping.add(inner)

        def finished(done: asyncio.Future[Any]) -> None:
            self._bookkeeping.discard(done)
            self._idle.set()

        inner.add_done_callback(finished)
        return await asyncio.shield(inner)

    # ----------------------------------------------------------------- one job

    async def _run(self, job: Job, slot: ProviderSlot) -> None:
        try:
            async with asyncio.timeout(self.config.job_deadline):
                result = await self._at_provider(job, slot)
            if result is not None:
                await self._succeed(job, result)
                if self.balances is not None and result.remaining_balance is not None:
                    # The provider that delivered it: failover may have moved the job off `slot`.
                    provider = self._slot_of.get(job.id, slot).name
                    await self._shielded(self.balances.record(provider, result.remaining_balance))
        except asyncio.CancelledError:
            raise
        except NoProviderFreeError:
            self._requeue.add(job.id)
            return
        except TimeoutError:
            await self._end(
                job, JobState.EXPIRED, "The job took longer than the time limit; your credits were refunded."
            )
        except ProviderJobExpiredError:
            await self._end(job, JobState.EXPIRED, "The provider lost track of the job; your credits were refunded.")
        except ProviderBlockedError as exc:
            await self._end(job, JobState.FAILED, f"The provider's safety filter blocked this job ({exc.message}).")
        except ProviderPermanentError as exc:
            if exc.operator:
                log.error("provider=%s needs the operator's attention: %s", exc.provider, exc.message)
                reason = "The image provider is not available right now (a configuration problem on our side)."
            else:
                reason = f"The provider refused the job: {exc.message}"
            await self._end(job, JobState.FAILED, reason)
        except ProviderTransientError as exc:
            await self._end(job, JobState.FAILED, f"The provider kept failing ({exc.message}); try again later.")
        except Exception:
            log.exception("job=%s failed unexpectedly", job.id)
            await self._end(job, JobState.FAILED, "Something went wrong while running the job.")
        await self._deliver(job.id)

    def _move(self, job: Job, old: ProviderSlot, new: ProviderSlot) -> None:
        old.gate.free_slot()
        new.gate.take_slot()
        new.breaker.begin()
        self._slot_of[job.id] = new

    async def _submit(
        self, job: Job, slot: ProviderSlot, image: bytes | None
    ) -> tuple[ProviderSlot, Submission, datetime]:
        async def count_attempt(attempt: int) -> None:
            await self.jobs.update(job.id, [JobState.QUEUED], now=self.clock.now(), attempts=job.attempts + attempt)

        def move(old: ProviderSlot, new: ProviderSlot) -> None:
            self._move(job, old, new)

        return await self.pool.submit(job, slot, image, clock=self.clock, count_attempt=count_attempt, move=move)

    async def _at_provider(self, job: Job, slot: ProviderSlot) -> ProviderResult | None:
        if job.state is JobState.QUEUED:
            image = await self.jobs.input_image(job.input_sha256) if job.input_sha256 else None
            slot, submission, sent_at = await self._submit(job, slot, image)
            now = self.clock.now()
            moved = await self._shielded(
                self.jobs.transition(
                    job.id,
                    [JobState.QUEUED],
                    JobState.SUBMITTED,
                    now=now,
                    provider=slot.name,
                    provider_job_id=submission.job_id,
                    submitted_at=sent_at.isoformat(),
                )
            )
            if not moved:  # cancelled while we were submitting
                return None
            job = await self._reload(job.id)
            self._log(job, JobState.SUBMITTED)
            if submission.result is not None:
                return submission.result
        assert job.provider_job_id is not None and job.submitted_at is not None
        provider = slot.provider
        # Learned per provider, model and output size; other sizes stand in until a size has its own history.
        history = await self.jobs.recent_durations(
            provider=provider.name, model=job.spec.model.value, megapixels=job.spec.megapixels
        )
        if len(history) < MIN_HISTORY:
            history = await self.jobs.recent_durations(provider=provider.name, model=job.spec.model.value)
        expect = self.planner.expectation(job.spec, history)
        expected = expect.median
        self._expected[job.spec.model] = expected
        polls = 0
        while True:
            elapsed = (self.clock.now() - job.submitted_at).total_seconds()
            self._spawn(
                self._progress(
                    job,
                    Progress(job.state, provider=provider.name, elapsed_seconds=elapsed, expected_seconds=expected),
                )
            )
            gate = slot.gate
            budget_interval = gate.in_flight / gate.rate if gate.rate else None
            await asyncio.sleep(
                self.planner.next_delay(elapsed=elapsed, expect=expect, polls=polls, budget_interval=budget_interval)
            )
            polls += 1
            status = await self.pool.call(job, slot, provider.status, job.provider_job_id)
            if status.state is ProviderState.RUNNING and job.state is JobState.SUBMITTED:
                now = self.clock.now()
                if await self.jobs.transition(
                    job.id, [JobState.SUBMITTED], JobState.RUNNING, now=now, started_at=now.isoformat()
                ):
                    job = await self._reload(job.id)
                    self._log(job, JobState.RUNNING)
            elif status.state is ProviderState.SUCCEEDED:
                result: ProviderResult = await self.pool.call(job, slot, provider.result, job.provider_job_id, job.spec)
                if result.inference_seconds is None and status.inference_seconds is not None:
                    result = ProviderResult(result.images, status.inference_seconds, result.queue_seconds)
                return result
            elif status.state is ProviderState.FAILED:
                error = status.error or "no reason given"
                if status.blocked:
                    raise ProviderBlockedError(error, provider=provider.name)
                raise ProviderPermanentError(error, provider=provider.name)

    async def _reload(self, job_id: str) -> Job:
        job = await self.jobs.get(job_id)
        assert job is not None
        return job

    async def _succeed(self, job: Job, result: ProviderResult) -> None:
        outputs = await usable_outputs(job, result, max_pixels=self.config.output_max_pixels)
        inference_ms, provider_ms = timings_ms(result)
        if await self._shielded(
            self.jobs.finish(
                job.id,
                [JobState.QUEUED, *AT_PROVIDER],
                JobState.SUCCEEDED,
                now=self.clock.now(),
                outputs=outputs,
                inference_ms=inference_ms,
                provider_ms=provider_ms,
            )
        ):
            self._log(await self._reload(job.id), JobState.SUCCEEDED)

    async def _end(self, job: Job, state: JobState, reason: str) -> bool:
        """Move a job to a terminal state without outputs, releasing its whole hold."""
        ended = await self._shielded(
            self.jobs.finish(job.id, [JobState.QUEUED, *AT_PROVIDER], state, now=self.clock.now(), error=reason)
        )
        if ended:
            self._log(job, state, reason)
        return ended

    # ----------------------------------------------------------------- telling the world

    @property
    def notifier(self) -> JobNotifier:
        return self.delivery.notifier

    @notifier.setter
    def notifier(self, notifier: JobNotifier) -> None:
        self.delivery.notifier = notifier

    def _tell(self, job: Job, progress: Progress) -> None:
        self.delivery.tell(job, progress)

    async def _progress(self, job: Job, progress: Progress) -> None:
        self.delivery.tell(job, progress)

    async def _deliver(self, job_id: str) -> None:
        await self.delivery.deliver(job_id)

    def _log(self, job: Job, state: JobState, reason: str | None = None) -> None:
        log.info(
            "job=%s user=%s provider=%s state=%s attempt=%d%s",
            job.id,
            job.user_id,
            job.provider or "-",
            state.value,
            job.attempts,
            f" reason={reason!r}" if reason else "",
        )
