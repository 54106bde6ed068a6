"""Results shown again without a provider call: `/history`, `/show`, and each server's showcase."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from bot.core.errors import InvalidRequestError, UserError
from bot.core.jobs import Clock, Job, JobState, StoredOutput
from bot.jobs.access import Action, Actor, authorize_job
from storage.gallery import GalleryRepo, Showcase, ShowcaseClaim
from storage.jobs import JobRepo

log = logging.getLogger(__name__)

HISTORY_PAGE: Final = 8
MAX_STARS: Final = 100

TEXT: Final = {
    "no_images": "Job `{job}` has no images to show ({state}).",
    "no_showcase": "This server has no showcase channel yet; an admin can name one with `/fluxadmin showcase`.",
    "bad_stars": "The ⭐ threshold must be between 1 and {limit} (got {stars}).",
}


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a member's results; `page` counts from 1."""

    jobs: list[Job]
    page: int
    pages: int
    total: int


class GalleryService:
    """Everything that re-posts stored results; it reads outputs from the database and never calls a provider."""

    def __init__(self, *, jobs: JobRepo, gallery: GalleryRepo, clock: Clock) -> None:
        self.jobs = jobs
        self.gallery = gallery
        self.clock = clock

    async def history(self, guild_id: int, user_id: int, page: int) -> HistoryPage:
        """The member's results on the server, newest first; a page past the end shows the last one."""
        _, total = await self.gallery.results(guild_id, user_id, offset=0, limit=0)
        pages = max(1, -(-total // HISTORY_PAGE))
        page = min(max(1, page), pages)
        jobs, total = await self.gallery.results(
            guild_id, user_id, offset=(page - 1) * HISTORY_PAGE, limit=HISTORY_PAGE
        )
        return HistoryPage(jobs, page, pages, total)

    async def _with_outputs(self, job: Job) -> tuple[Job, list[StoredOutput]]:
        outputs = await self.jobs.outputs(job.id) if job.state is JobState.SUCCEEDED else []
        if not outputs:
            raise InvalidRequestError(TEXT["no_images"].format(job=job.id, state=job.state.value))
        return job, outputs

    async def show(self, who: Actor, job_id: str) -> tuple[Job, list[StoredOutput]]:
        """A finished job and its stored images, if `who` may show it here."""
        job = authorize_job(who, Action.SHOW, await self.jobs.get(job_id.strip()), job_id)
        return await self._with_outputs(job)

    async def shown(self, job: Job, *, message_id: int, channel_id: int, actor_id: int | None) -> None:
        """Remember a message that re-posts the job, so its buttons (🗑️ too) work there."""
        await self.gallery.add_post(
            job.id, message_id=message_id, channel_id=channel_id, actor_id=actor_id, now=self.clock.now()
        )

    async def reposted(self, job_id: str, message_id: int) -> bool:
        return await self.gallery.shows(job_id, message_id)

    # ------------------------------------------------------------------ showcase

    async def showcase(self, guild_id: int) -> Showcase | None:
        return await self.gallery.showcase(guild_id)

    async def set_showcase(self, guild_id: int, channel_id: int | None, stars: int | None) -> Showcase | None:
        """Name the showcase channel (None turns the showcase off) and the ⭐ reactions that fill it (None: none)."""
        if stars is not None and not 1 <= stars <= MAX_STARS:
            raise UserError(TEXT["bad_stars"].format(limit=MAX_STARS, stars=stars))
        showcase = Showcase(channel_id, stars) if channel_id is not None else None
        await self.gallery.set_showcase(guild_id, showcase, now=self.clock.now())
        return showcase

    async def claim_by_member(self, who: Actor, job_id: str) -> tuple[ShowcaseClaim, Job, list[StoredOutput]]:
        """⭐: the owner or a moderator puts a finished job in the showcase; the claim is made before the post."""
        job, outputs = await self._with_outputs(
            authorize_job(who, Action.SHOWCASE, await self.jobs.get(job_id), job_id)
        )
        return await self._claim(job, actor_id=who.user_id), job, outputs

    async def _claim(self, job: Job, *, actor_id: int | None) -> ShowcaseClaim:
        showcase = await self.gallery.showcase(job.guild_id)
        if showcase is None:
            raise UserError(TEXT["no_showcase"])
        return await self.gallery.claim(job, channel_id=showcase.channel_id, actor_id=actor_id, now=self.clock.now())

    async def star(
        self, guild_id: int, message_id: int, user_id: int, *, add: bool
    ) -> tuple[ShowcaseClaim, Job, list[StoredOutput]] | None:
        """A ⭐ reaction on a message showing a job; the claim when this one reached the server's threshold."""
        showcase = await self.gallery.showcase(guild_id)
        if showcase is None or showcase.stars is None:
            return None
        job = await self.gallery.job_by_message(message_id)
        if job is None or job.guild_id != guild_id or job.state is not JobState.SUCCEEDED:
            return None
        if user_id == job.user_id:  # an author's own ⭐ does not count towards the threshold
            return None
        count = await self.gallery.vote(job.id, user_id, add=add, now=self.clock.now())
        if not add or count < showcase.stars:
            return None
        claim = await self.gallery.claim(job, channel_id=showcase.channel_id, actor_id=None, now=self.clock.now())
        if not claim.created:
            return None
        log.info("job=%s reached %d stars; showcasing", job.id, count)
        return claim, job, await self.jobs.outputs(job.id)

    async def unfinished(self) -> list[tuple[ShowcaseClaim, Job, list[StoredOutput]]]:
        """Showcase posts claimed but never recorded as made (the process stopped in between)."""
        found = []
        for claim in await self.gallery.unposted():
            job = await self.jobs.get(claim.job_id)
            if job is not None:
                found.append((claim, job, await self.jobs.outputs(job.id)))
        return found

    async def posted(self, claim: ShowcaseClaim, message_id: int) -> None:
        await self.gallery.posted(claim.job_id, message_id, now=self.clock.now())
