"""Mod-log entries: claimed before a job's outcome, posted once after it, recovered after a stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from bot.core.jobs import Job, SystemClock
from bot.core.limits import UNLIMITED, Policy
from bot.core.requests import ImagineOptions
from bot.jobs.modlog import ModLogService
from storage.db import Database
from storage.gallery import GalleryRepo
from storage.jobs import JobRepo, NewJob
from storage.ledger import LedgerRepo
from storage.modlog import ModLogEntry, ModLogRepo

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass
class Writer:
    """Records each post; `answers` are returned (or raised) in order, then message ids count up from 1000."""

    answers: list[int | Exception | None] = field(default_factory=list)
    posts: list[tuple[str, bool]] = field(default_factory=list)

    async def log(self, job: Job, entry: ModLogEntry, *, look_first: bool) -> int | None:
        self.posts.append((job.id, look_first))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return 1000 + len(self.posts)


async def new_job(jobs: JobRepo, request_id: str, guild_id: int = 1) -> Job:
    spec = ImagineOptions.parse(prompt="a fox", megapixels="0.25").resolve()
    job, _ = await jobs.create(
        NewJob(request_id=request_id, guild_id=guild_id, user_id=2, spec=spec, cost=1),
        policy=Policy(daily_allowance=20, limits=UNLIMITED),
        now=NOW,
    )
    return job


def service(db: Database, jobs: JobRepo, writer: Writer) -> ModLogService:
    return ModLogService(
        ModLogRepo(db), jobs=jobs, ledger=jobs.ledger, gallery=GalleryRepo(db), clock=SystemClock(), writer=writer
    )


@pytest.fixture
def jobs(db: Database) -> JobRepo:
    return JobRepo(db, LedgerRepo(db))


async def test_a_server_without_a_mod_log_gets_no_entries(db: Database, jobs: JobRepo) -> None:
    writer = Writer()
    modlog = service(db, jobs, writer)
    job = await new_job(jobs, "r1")
    await modlog.showing(job)
    await modlog.shown(job.id)
    assert writer.posts == [] and await modlog.repo.entry(job.id) is None


async def test_an_entry_is_claimed_before_the_outcome_and_posted_once_after_it(db: Database, jobs: JobRepo) -> None:
    writer = Writer()
    modlog = service(db, jobs, writer)
    await modlog.set_channel(1, 77)
    job = await new_job(jobs, "r1")
    await modlog.showing(job)
    entry = await modlog.repo.entry(job.id)
    assert entry is not None and (entry.channel_id, entry.posted_at) == (77, None)
    await asyncio.gather(modlog.shown(job.id), modlog.shown(job.id), modlog.recover())
    # Claimed by this process: nobody can have posted it, so nothing was looked for.
    assert writer.posts == [(job.id, False)]
    entry = await modlog.repo.entry(job.id)
    assert entry is not None and entry.message_id == 1001 and entry.posted_at is not None
    await modlog.showing(job)  # a repeated delivery finds the entry posted
    await modlog.shown(job.id)
    assert writer.posts == [(job.id, False)]


async def test_an_entry_left_unposted_is_looked_for_then_posted_at_the_next_start(db: Database, jobs: JobRepo) -> None:
    failing = Writer(answers=[ConnectionError("Discord is down")])
    first = service(db, jobs, failing)
    await first.set_channel(1, 77)
    shown, unshown = await new_job(jobs, "r1"), await new_job(jobs, "r2")
    for job in (shown, unshown):
        await first.showing(job)
    await jobs.mark_delivered(shown.id, now=NOW, message_id=5)
    with pytest.raises(ConnectionError):
        await first.shown(shown.id)

    writer = Writer()
    second = service(db, jobs, writer)
    assert await second.recover() == 1
    # Only the job whose outcome was shown; the other's delivery posts it once its outcome is shown.
    assert writer.posts == [(shown.id, True)]
    assert [entry.job_id for entry in await second.repo.unposted()] == [unshown.id]


async def test_an_entry_that_can_never_be_posted_is_given_up(db: Database, jobs: JobRepo) -> None:
    writer = Writer(answers=[None])
    modlog = service(db, jobs, writer)
    await modlog.set_channel(1, 77)
    gone, off = await new_job(jobs, "r1"), await new_job(jobs, "r2")
    for job in (gone, off):
        await modlog.showing(job)
        await jobs.mark_delivered(job.id, now=NOW, message_id=5)
    await modlog.shown(gone.id)  # the channel is gone: not tried again
    await modlog.set_channel(1, None)
    await modlog.shown(off.id)  # the mod-log was turned off since the claim: not posted
    assert writer.posts == [(gone.id, False)]
    assert await modlog.repo.unposted() == []
    assert await modlog.recover() == 0 and writer.posts == [(gone.id, False)]


async def test_re_posts_are_listed_for_deletion(db: Database, jobs: JobRepo) -> None:
    job = await new_job(jobs, "r1")
    gallery = GalleryRepo(db)
    await gallery.add_post(job.id, message_id=11, channel_id=3, actor_id=2, now=NOW)
    await gallery.claim(job, channel_id=4, actor_id=2, now=NOW)
    assert await gallery.posts_of(job.id) == [(3, 11)]  # a showcase claim not yet posted has no message
    await gallery.posted(job.id, 12, now=NOW)
    assert sorted(await gallery.posts_of(job.id)) == [(3, 11), (4, 12)]
