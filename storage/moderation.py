"""A server's prompt blocklist."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.core.blocklist import BlockEntry
from storage.db import Database


class BlocklistRepo:
    """All SQL about `prompt_blocklist`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def entries(self, guild_id: int) -> list[BlockEntry]:
        rows = await self.db.fetchall(
            "SELECT kind, pattern FROM prompt_blocklist WHERE guild_id = ? ORDER BY kind DESC, pattern", (guild_id,)
        )
        return [BlockEntry(row["kind"], row["pattern"]) for row in rows]

    async def add(
        self, guild_id: int, entry: BlockEntry, *, limit: int, actor_id: int | None, now: datetime
    ) -> Literal["added", "present", "full"]:
        """Add an entry unless it is there already or the list holds `limit` entries (checked in one transaction)."""
        async with self.db.transaction() as conn:
            rows = await conn.execute_fetchall("SELECT COUNT(*) FROM prompt_blocklist WHERE guild_id = ?", (guild_id,))
            if int(next(iter(rows))[0]) >= limit:
                return "full"
            cursor = await conn.execute(
                """INSERT INTO prompt_blocklist (guild_id, kind, pattern, actor_id, created_at) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT DO NOTHING""",
                (guild_id, entry.kind, entry.pattern, actor_id, now.isoformat()),
            )
            return "added" if cursor.rowcount == 1 else "present"

    async def remove(self, guild_id: int, entry: BlockEntry) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM prompt_blocklist WHERE guild_id = ? AND kind = ? AND pattern = ?",
                (guild_id, entry.kind, entry.pattern),
            )
            return cursor.rowcount == 1
