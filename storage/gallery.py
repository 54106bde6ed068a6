"""Results shown again: `/history` pages, messages that re-post a job, and each server's showcase."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.jobs import Job
from storage.db import Database, fetchone
from storage.jobs import _job


@dataclass(frozen=True, slots=True)
class Showcase:
    """Where a server's showcase is, and how many ⭐ reactions put a result there (None: the button only)."""

    channel_id: int
    stars: int | None = None


@dataclass(frozen=True, slots=True)
class ShowcaseClaim:
    """The one showcase post of a job: `created` when this call claimed it; `message_id` once it was posted."""

    job_id: str
    channel_id: int
    message_id: int | None
    created: bool


class GalleryRepo:
    """All SQL about `job_posts`, `showcases`, `showcase_posts` and `showcase_votes`, and members' result pages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ history

    async def results(self, guild_id: int, user_id: int, *, offset: int, limit: int) -> tuple[list[Job], int]:
        """One page of the member's succeeded jobs on the server, newest first, and how many there are."""
        total = await self.db.fetchone(
            "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND user_id = ? AND state = 'succeeded'", (guild_id, user_id)
        )
        rows = await self.db.fetchall(
            """SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? AND state = 'succeeded'
               ORDER BY created_at DESC, id LIMIT ? OFFSET ?""",
            (guild_id, user_id, limit, offset),
        )
        return [_job(row) for row in rows], int(total[0]) if total else 0

    # ------------------------------------------------------------------ re-posts

    async def add_post(
        self, job_id: str, *, message_id: int, channel_id: int, actor_id: int | None, now: datetime
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                """INSERT INTO job_posts (message_id, job_id, channel_id, actor_id, created_at) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT DO NOTHING""",
                (message_id, job_id, channel_id, actor_id, now.isoformat()),
            )

    async def shows(self, job_id: str, message_id: int) -> bool:
        """Whether `message_id` is a re-post (by `/show` or in the showcase) of the job."""
        row = await self.db.fetchone(
            """SELECT 1 FROM job_posts WHERE message_id = ? AND job_id = ?
               UNION ALL SELECT 1 FROM showcase_posts WHERE message_id = ? AND job_id = ?""",
            (message_id, job_id, message_id, job_id),
        )
        return row is not None

    async def posts_of(self, job_id: str) -> list[tuple[int, int]]:
        """(channel id, message id) of every recorded re-post of the job (by `/show` or in the showcase)."""
        rows = await self.db.fetchall(
            """SELECT channel_id, message_id FROM job_posts WHERE job_id = ?
               UNION ALL
               SELECT channel_id, message_id FROM showcase_posts WHERE job_id = ? AND message_id IS NOT NULL""",
            (job_id, job_id),
        )
        return [(row["channel_id"], row["message_id"]) for row in rows]

    async def job_by_message(self, message_id: int) -> Job | None:
        """The job a message shows: its own result, or a re-post."""
        row = await self.db.fetchone(
            """SELECT * FROM jobs WHERE id = COALESCE(
                   (SELECT id FROM jobs WHERE message_id = ?),
                   (SELECT job_id FROM job_posts WHERE message_id = ?),
                   (SELECT job_id FROM showcase_posts WHERE message_id = ?))""",
            (message_id, message_id, message_id),
        )
        return _job(row) if row else None

    # ------------------------------------------------------------------ showcase

    async def showcase(self, guild_id: int) -> Showcase | None:
        row = await self.db.fetchone("SELECT channel_id, stars FROM showcases WHERE guild_id = ?", (guild_id,))
        return Showcase(row["channel_id"], row["stars"]) if row else None

    async def set_showcase(self, guild_id: int, showcase: Showcase | None, *, now: datetime) -> None:
        async with self.db.transaction() as conn:
            if showcase is None:
                await conn.execute("DELETE FROM showcases WHERE guild_id = ?", (guild_id,))
                return
            await conn.execute(
                """INSERT INTO showcases (guild_id, channel_id, stars, updated_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id, stars = excluded.stars,
                   updated_at = excluded.updated_at""",
                (guild_id, showcase.channel_id, showcase.stars, now.isoformat()),
            )

    async def claim(self, job: Job, *, channel_id: int, actor_id: int | None, now: datetime) -> ShowcaseClaim:
        """Claim the job's showcase post before it is made; a second claim gets the first one back."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                """INSERT INTO showcase_posts (job_id, guild_id, channel_id, actor_id, claimed_at)
                   VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING""",
                (job.id, job.guild_id, channel_id, actor_id, now.isoformat()),
            )
            created = cursor.rowcount == 1
            row = await fetchone(conn, "SELECT channel_id, message_id FROM showcase_posts WHERE job_id = ?", (job.id,))
        assert row is not None
        return ShowcaseClaim(job.id, row["channel_id"], row["message_id"], created)

    async def posted(self, job_id: str, message_id: int, *, now: datetime) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE showcase_posts SET message_id = ?, posted_at = ? WHERE job_id = ? AND message_id IS NULL",
                (message_id, now.isoformat(), job_id),
            )

    async def unposted(self) -> list[ShowcaseClaim]:
        """Claims whose post was never recorded (the process stopped in between)."""
        rows = await self.db.fetchall(
            "SELECT job_id, channel_id FROM showcase_posts WHERE message_id IS NULL ORDER BY claimed_at"
        )
        return [ShowcaseClaim(row["job_id"], row["channel_id"], None, False) for row in rows]

    async def vote(self, job_id: str, user_id: int, *, add: bool, now: datetime) -> int:
        """Record or withdraw a member's ⭐ on a job; the job's ⭐ count afterwards."""
        async with self.db.transaction() as conn:
            if add:
                await conn.execute(
                    "INSERT INTO showcase_votes (job_id, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (job_id, user_id, now.isoformat()),
                )
            else:
                await conn.execute("DELETE FROM showcase_votes WHERE job_id = ? AND user_id = ?", (job_id, user_id))
            row = await fetchone(conn, "SELECT COUNT(*) FROM showcase_votes WHERE job_id = ?", (job_id,))
        return int(row[0]) if row else 0
