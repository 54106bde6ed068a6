"""Each server's mod-log channel and the one entry per job posted there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from storage.db import Database, fetchone


@dataclass(frozen=True, slots=True)
class ModLogEntry:
    """The mod-log entry of one job: claimed before the job's outcome is shown, posted after it.

    `posted_at` is set once the entry was posted (`message_id`) or given up on (the channel is gone, say).
    """

    job_id: str
    guild_id: int
    channel_id: int
    claimed_at: datetime
    message_id: int | None = None
    posted_at: datetime | None = None


def _entry(row: aiosqlite.Row) -> ModLogEntry:
    return ModLogEntry(
        job_id=row["job_id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        claimed_at=datetime.fromisoformat(row["claimed_at"]),
        message_id=row["message_id"],
        posted_at=datetime.fromisoformat(row["posted_at"]) if row["posted_at"] else None,
    )


class ModLogRepo:
    """All SQL about `modlog_channels` and `modlog_entries`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def channel(self, guild_id: int) -> int | None:
        row = await self.db.fetchone("SELECT channel_id FROM modlog_channels WHERE guild_id = ?", (guild_id,))
        return int(row["channel_id"]) if row else None

    async def set_channel(self, guild_id: int, channel_id: int | None, *, now: datetime) -> None:
        """Name the server's mod-log channel; None turns the mod-log off."""
        async with self.db.transaction() as conn:
            if channel_id is None:
                await conn.execute("DELETE FROM modlog_channels WHERE guild_id = ?", (guild_id,))
                return
            await conn.execute(
                """INSERT INTO modlog_channels (guild_id, channel_id, updated_at) VALUES (?, ?, ?)
                   ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id,
                   updated_at = excluded.updated_at""",
                (guild_id, channel_id, now.isoformat()),
            )

    async def claim(self, job_id: str, guild_id: int, *, now: datetime) -> tuple[ModLogEntry, bool] | None:
        """The job's entry and whether this call claimed it, while its server has a mod-log; None without one.

        A server without a mod-log costs one read and no write.
        """
        if await self.channel(guild_id) is None:
            return None
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                """INSERT INTO modlog_entries (job_id, guild_id, channel_id, claimed_at)
                   SELECT ?, guild_id, channel_id, ? FROM modlog_channels WHERE guild_id = ?
                   ON CONFLICT (job_id) DO NOTHING""",
                (job_id, now.isoformat(), guild_id),
            )
            created = cursor.rowcount == 1
            row = await fetchone(conn, "SELECT * FROM modlog_entries WHERE job_id = ?", (job_id,))
        return (_entry(row), created) if row else None

    async def entry(self, job_id: str) -> ModLogEntry | None:
        row = await self.db.fetchone("SELECT * FROM modlog_entries WHERE job_id = ?", (job_id,))
        return _entry(row) if row else None

    async def posted(self, job_id: str, message_id: int | None, *, now: datetime) -> None:
        """The entry is in the channel as `message_id` (None: given up on, it will not be tried again)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE modlog_entries SET message_id = ?, posted_at = ? WHERE job_id = ? AND posted_at IS NULL",
                (message_id, now.isoformat(), job_id),
            )

    async def unposted(self) -> list[ModLogEntry]:
        """Entries claimed but not yet posted, oldest first (their jobs may not be shown yet either)."""
        rows = await self.db.fetchall("SELECT * FROM modlog_entries WHERE posted_at IS NULL ORDER BY claimed_at")
        return [_entry(row) for row in rows]
