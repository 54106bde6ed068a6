"""How the engine shows a job: its status message when created, its progress, its outcome once, each recorded."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from bot.core.jobs import Clock, Job, JobState
from bot.jobs.notifier import JobNotifier, Progress
from bot.jobs.timing import backoff
from storage.jobs import JobRepo

log = logging.getLogger(__name__)


class DeliveryHooks(Protocol):
    """What follows a job's outcome (its mod-log entry): recorded before the outcome is shown, made after it.

    Neither may fail the delivery; `shown` runs in the background, so nothing waits for it.
    """

    async def showing(self, job: Job) -> None: ...

    async def shown(self, job_id: str) -> None: ...


class Delivery:
    """The engine's side of the JobNotifier port: it calls each step and stores the message ids returned.

    An outcome is marked delivered only after the notifier showed it; one that keeps failing stays
    undelivered and is shown by the next start (the notifier makes that repeat idempotent).
    """

    def __init__(
        self,
        *,
        jobs: JobRepo,
        notifier: JobNotifier,
        clock: Clock,
        shielded: Callable[[Awaitable[Any]], Awaitable[Any]],
        attempts: int,
        retry_base_delay: float,
        retry_max_delay: float,
        rng: random.Random,
        hooks: DeliveryHooks | None = None,
        spawn: Callable[[Coroutine[Any, Any, Any]], None] | None = None,
    ) -> None:
        if hooks is not None and spawn is None:
            raise ValueError("delivery hooks need a way to run in the background")
        self.hooks = hooks
        self._spawn = spawn or (lambda coro: coro.close())
        self.jobs = jobs
        self.notifier = notifier
        self.clock = clock
        self._shielded = shielded
        self.attempts = attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.rng = rng
        self._delivering: set[str] = set()  # one delivery at a time per job

    async def announce(self, job: Job) -> None:
        """Show a new job and remember the message that shows it."""
        try:
            message_id = await self.notifier.queued(job)
            if message_id is not None:
                await self._shielded(self.jobs.set_message(job.id, message_id, now=self.clock.now()))
        except Exception:  # no status message is no reason to fail the job; the result still comes
            log.warning("job=%s status message could not be shown or recorded", job.id, exc_info=True)

    def tell(self, job: Job, progress: Progress) -> None:
        """A newer status line; the notifier only notes it, so this never waits."""
        try:
            self.notifier.progress(job, progress)
        except Exception:  # a status line must never fail the job
            log.warning("job=%s progress notification failed", job.id, exc_info=True)

    async def deliver(self, job_id: str) -> None:
        """Show the terminal outcome once; left undelivered (and retried at the next start) if it keeps failing."""
        if job_id in self._delivering:  # a cancel and the job's own end both ask; one delivery is enough
            return
        self._delivering.add(job_id)
        try:
            await self._deliver(job_id)
        finally:
            self._delivering.discard(job_id)

    async def _deliver(self, job_id: str) -> None:
        for attempt in range(1, self.attempts + 1):
            job = await self.jobs.get(job_id)
            if job is None or job.delivered or not job.state.terminal:
                return
            if attempt == 1:
                await self._showing(job)
            try:
                if job.state is JobState.SUCCEEDED:
                    message_id = await self.notifier.done(job, await self.jobs.outputs(job.id))
                else:
                    message_id = await self.notifier.failed(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("job=%s delivery attempt %d failed", job.id, attempt, exc_info=True)
                await asyncio.sleep(
                    backoff(attempt, base=self.retry_base_delay, cap=self.retry_max_delay, rng=self.rng)
                )
                continue
            await self._shielded(self.jobs.mark_delivered(job.id, now=self.clock.now(), message_id=message_id))
            log.info("job=%s user=%s delivered", job.id, job.user_id)
            if self.hooks is not None:
                self._spawn(self._shown(job.id))
            return

    async def _showing(self, job: Job) -> None:
        if self.hooks is None:
            return
        try:
            await self._shielded(self.hooks.showing(job))
        except asyncio.CancelledError:
            raise
        except Exception:  # what follows an outcome never holds the outcome back
            log.warning("job=%s could not be prepared for the mod-log", job.id, exc_info=True)

    async def _shown(self, job_id: str) -> None:
        assert self.hooks is not None
        try:
            await self.hooks.shown(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # left unposted: the next start posts it
            log.warning("job=%s mod-log entry could not be posted", job_id, exc_info=True)
