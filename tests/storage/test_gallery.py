"""The showcase claim: one post per job, however many claims race; ⭐ votes are counted once per member."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.limits import UNLIMITED, Policy
from bot.core.requests import ImagineOptions
from storage.db import Database
from storage.gallery import GalleryRepo
from storage.jobs import JobRepo, NewJob
from storage.ledger import LedgerRepo

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "f.db")
    yield database
    await database.close()


async def test_concurrent_claims_make_one_post_and_votes_count_members(db: Database) -> None:
    jobs = JobRepo(db, LedgerRepo(db))
    spec = ImagineOptions.parse(prompt="a fox", megapixels="0.25").resolve()
    job, _ = await jobs.create(
        NewJob(request_id="r", guild_id=1, user_id=2, spec=spec, cost=1),
        policy=Policy(daily_allowance=20, limits=UNLIMITED),
        now=NOW,
    )
    gallery = GalleryRepo(db)
    claims = await asyncio.gather(*(gallery.claim(job, channel_id=9, actor_id=n, now=NOW) for n in range(20)))
    assert sum(claim.created for claim in claims) == 1
    assert [c.job_id for c in await gallery.unposted()] == [job.id]
    await gallery.posted(job.id, 555, now=NOW)
    await gallery.posted(job.id, 666, now=NOW)  # a late second record changes nothing
    again = await gallery.claim(job, channel_id=9, actor_id=None, now=NOW)
    assert (again.created, again.message_id) == (False, 555)
    assert await gallery.unposted() == []
    assert await gallery.shows(job.id, 555) and not await gallery.shows(job.id, 666)

    counts = [await gallery.vote(job.id, user, add=True, now=NOW) for user in (3, 3, 4)]
    assert counts == [1, 1, 2]
    assert await gallery.vote(job.id, 3, add=False, now=NOW) == 1
