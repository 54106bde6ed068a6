"""The mod-log: each job of a server that names a mod-log channel is logged there once; moderators refund from it.

An entry is claimed in the database before the job's outcome is shown and posted after it, through the same
paced writes as status lines, so it never delays a result. A claim a stopped process left unposted is posted at
the next start, after looking for the entry in the channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

from bot.core.errors import InvalidRequestError
from bot.core.jobs import Clock, Job, JobState
from bot.jobs.access import Action, Actor, authorize_job
from storage.gallery import GalleryRepo
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from storage.modlog import ModLogEntry, ModLogRepo

log = logging.getLogger(__name__)

TEXT: Final = {
    "no_result": "Job `{job}` has no result to delete ({state}).",
    "refund_reason": "deleted from the mod-log",
}


class ModLogWriter(Protocol):
    """Posts entries in mod-log channels (the Discord front end implements it)."""

    async def log(self, job: Job, entry: ModLogEntry, *, look_first: bool) -> int | None:
        """Post the job's entry and return its message id (after looking for an earlier post, when asked).

        None when the entry can never be posted (the channel is gone or closed to the bot); raises when a later
        attempt may succeed.
        """
        ...


@dataclass(frozen=True, slots=True)
class Refund:
    """A moderator's delete-and-refund of a job: what it gave back and the messages that show the job."""

    job: Job
    #: credits returned (by this click, or by an earlier one when `again`)
    amount: int
    #: the job had been refunded before; nothing moved this time
    again: bool
    #: (channel id, message id) of the result and of every re-post of it
    messages: tuple[tuple[int, int], ...]
    #: the job's mod-log entry, if it has one
    entry: ModLogEntry | None = None


class ModLogService:
    """Claims, posts and recovers mod-log entries, and refunds a job for a moderator."""

    def __init__(
        self,
        repo: ModLogRepo,
        *,
        jobs: JobRepo,
        ledger: LedgerRepo,
        gallery: GalleryRepo,
        clock: Clock,
        writer: ModLogWriter | None = None,
    ) -> None:
        self.repo = repo
        self.jobs = jobs
        self.ledger = ledger
        self.gallery = gallery
        self.clock = clock
        self.writer = writer
        #: jobs being shown whose entry is still to post, and whether to look for an earlier post first (the
        #: claim is an earlier process's); a claim made here cannot have been posted by anybody yet
        self._pending: dict[str, bool] = {}
        self._posting: set[str] = set()

    # ------------------------------------------------------------------ settings

    async def channel(self, guild_id: int) -> int | None:
        return await self.repo.channel(guild_id)

    async def set_channel(self, guild_id: int, channel_id: int | None) -> int | None:
        """Name the server's mod-log channel (None turns it off); jobs shown from now on are logged there."""
        await self.repo.set_channel(guild_id, channel_id, now=self.clock.now())
        return channel_id

    # ------------------------------------------------------------------ the engine's delivery hooks

    async def showing(self, job: Job) -> None:
        """Before a job's outcome is shown: claim its entry, so a stop after the outcome still logs it."""
        if self.writer is None:
            return
        claimed = await self.repo.claim(job.id, job.guild_id, now=self.clock.now())
        if claimed is not None and claimed[0].posted_at is None:
            self._pending[job.id] = not claimed[1]

    async def shown(self, job_id: str) -> None:
        """After the outcome is shown: post the entry (with the link to the outcome), once."""
        look_first = self._pending.pop(job_id, None)
        if look_first is not None:
            await self._publish(job_id, look_first=look_first)

    async def recover(self) -> int:
        """Post the entries a stopped process claimed but did not post; the number posted."""
        posted = 0
        for entry in await self.repo.unposted():
            job = await self.jobs.get(entry.job_id)
            if job is None or not job.delivered:
                continue  # its outcome is shown first; the delivery hook posts the entry then
            try:
                posted += await self._publish(entry.job_id, look_first=True)
            except Exception:  # Discord is unavailable, say: the next start tries again
                log.warning("job=%s mod-log entry could not be posted", entry.job_id, exc_info=True)
        return posted

    async def _publish(self, job_id: str, *, look_first: bool) -> bool:
        if self.writer is None or job_id in self._posting:
            return False
        self._posting.add(job_id)
        try:
            entry = await self.repo.entry(job_id)
            if entry is None or entry.posted_at is not None:
                return False
            job = await self.jobs.get(job_id)
            if job is None:
                return False
            if await self.repo.channel(entry.guild_id) is None:  # turned off since the claim
                await self.repo.posted(job_id, None, now=self.clock.now())
                return False
            message_id = await self.writer.log(job, entry, look_first=look_first)
            await self.repo.posted(job_id, message_id, now=self.clock.now())
            return message_id is not None
        finally:
            self._posting.discard(job_id)

    # ------------------------------------------------------------------ moderators

    async def refund(self, who: Actor, job_id: str) -> Refund:
        """Give back what the job was charged (once) and list the messages to delete; for moderators only."""
        job = authorize_job(who, Action.REFUND, await self.jobs.get(job_id.strip()), job_id)
        if job.state is not JobState.SUCCEEDED:
            raise InvalidRequestError(TEXT["no_result"].format(job=job.id, state=job.state.value))
        amount, refunded = await self.ledger.refund(
            job_id=job.id, actor_id=who.user_id, reason=TEXT["refund_reason"], now=self.clock.now()
        )
        messages = await self.gallery.posts_of(job.id)
        if job.channel_id is not None and job.message_id is not None:
            messages = [(job.channel_id, job.message_id), *messages]
        log.info("job=%s refunded %d by moderator %s (%s)", job.id, amount, who.user_id, "new" if refunded else "again")
        return Refund(job, amount, not refunded, tuple(messages), await self.repo.entry(job.id))
