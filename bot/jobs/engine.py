"""The job engine: idempotent submit, fair dispatch within provider budgets, polling, retries, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.core.errors import JobNotFoundError, ProviderError, UserError
from bot.core.images import NormalizedImage
from bot.core.jobs import AT_PROVIDER, Clock, Job, JobState, SystemClock
from bot.core.limits import UNLIMITED, Limits, Policy
from bot.core.pricing import PriceList
from bot.core.requests import GenerationSpec, ModelId
from bot.jobs.balances import BalanceBook
from bot.jobs.delivery import Delivery, DeliveryHooks
from bot.jobs.notifier import JobNotifier, Progress
from bot.jobs.outcomes import UNCONFIRMED, ending
from bot.jobs.outputs import timings_ms, usable_outputs
from bot.jobs.polling import ProviderRun, RunTimes
from bot.jobs.pool import JobCancelledError, NoProviderFreeError, ProviderPool, ProviderSlot
from bot.jobs.scheduler import FairQueue
from bot.jobs.timing import PollPlanner
from bot.providers.base import ProviderResult
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
    #: seconds from a job's submit (as stored, so across restarts) until it is given up
    job_deadline: float = 900.0
    #: extra seconds to fetch the outputs of a job that finished just before its deadline
    result_grace: float = 300.0
    #: a provider that says it does not know a job this soon after accepting it is trusted only after this
    expired_grace: float = 60.0
    #: seconds a stop waits for submits in flight to be answered and recorded
    stop_grace: float = 10.0
    poll_min_interval: float = 0.25
    poll_max_interval: float = 30.0
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
        self.runner = ProviderRun(
            jobs=jobs,
            pool=self.pool,
            planner=self.planner,
            clock=self.clock,
            times=RunTimes(
                deadline=self.config.job_deadline,
                result_grace=self.config.result_grace,
                expired_grace=self.config.expired_grace,
                retry_base_delay=self.config.retry_base_delay,
                retry_max_delay=self.config.retry_max_delay,
            ),
            rng=self.rng,
            shielded=self._shielded,
            progress=self.delivery.tell,
            transitioned=lambda job, state: self._log(job, state),
            expected=self._expected,
            backlog=lambda: len(self.queue),
        )

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
        await self.runner.settle(self.config.stop_grace)
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
            if job.submitting_to is not None:
                # The last process died with this job's submit in flight: the provider may have it, under an
                # id nobody knows. Sending it again could bill twice, so it ends here, refunded.
                log.error(
                    "job=%s provider=%s a submit was in flight when the process stopped; "
                    "one provider job may have been billed without a result",
                    job.id,
                    job.submitting_to,
                )
                await self._end(job, JobState.FAILED, UNCONFIRMED)  # delivered with the other undelivered below
                continue
            self.queue.push(job)
        for job in await self.jobs.undelivered():
            self._spawn(self._deliver(job.id))
        self._wake.set()

    # ----------------------------------------------------------------- submit and cancel

    async def submit(self, order: JobOrder, policy: Policy | None = None) -> Job:
        """Check limits, hold the price and queue the job; a repeated request id returns the first job."""
        if not any(order.spec.model in slot.provider.models for slot in self.pool.slots):
            raise UserError(f"No configured provider serves {order.spec.model.label}.")
        if not self.pool.runs(order.spec):
            raise UserError(f"No configured provider can run {order.spec.model.label} with these options.")
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
            outcome = await self.runner.run(job, slot, lambda old, new: self._move(job, old, new))
            if outcome is not None:
                delivered_by, result = outcome
                await self._succeed(job, delivered_by, result)
                if self.balances is not None and result.remaining_balance is not None:
                    await self._shielded(self.balances.record(delivered_by.name, result.remaining_balance))
        except asyncio.CancelledError:
            raise
        except NoProviderFreeError:
            self._requeue.add(job.id)
            return
        except JobCancelledError:
            pass
        except Exception as exc:
            await self._fail(job, exc)
        await self._deliver(job.id)

    async def _fail(self, job: Job, exc: Exception) -> None:
        await self._end(job, *ending(job, exc))

    def _move(self, job: Job, old: ProviderSlot, new: ProviderSlot) -> None:
        old.gate.free_slot()
        new.gate.take_slot()
        new.breaker.begin()
        self._slot_of[job.id] = new

    async def _reload(self, job_id: str) -> Job:
        job = await self.jobs.get(job_id)
        assert job is not None
        return job

    async def _succeed(self, job: Job, slot: ProviderSlot, result: ProviderResult) -> None:
        job = await self._reload(job.id)
        outputs = await usable_outputs(job, result, max_pixels=self.config.output_max_pixels)
        inference_ms, provider_ms = timings_ms(result)
        spec = None
        if result.seed is not None and result.seed != job.spec.seed:
            # The provider picked its own (it does for seed 0): show the one that reproduces these images.
            spec = job.spec.with_seed(result.seed)
            log.info("job=%s provider=%s used seed %d for seed %d", job.id, slot.name, result.seed, job.spec.seed)
        if await self._shielded(
            self.jobs.finish(
                job.id,
                [JobState.QUEUED, *AT_PROVIDER],
                JobState.SUCCEEDED,
                now=self.clock.now(),
                outputs=outputs,
                inference_ms=inference_ms,
                provider_ms=provider_ms,
                spec=spec,
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
