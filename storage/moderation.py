"""A server's prompt blocklist and spoiler policy."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.core.blocklist import BlockEntry
from bot.core.spoilers import SpoilerPolicy
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


class SpoilerRepo:
    """All SQL about `spoiler_targets`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def policy(self, guild_id: int) -> SpoilerPolicy:
        rows = await self.db.fetchall("SELECT kind, target_id FROM spoiler_targets WHERE guild_id = ?", (guild_id,))
        return SpoilerPolicy(
            channels=frozenset(row["target_id"] for row in rows if row["kind"] == "channel"),
            roles=frozenset(row["target_id"] for row in rows if row["kind"] == "role"),
        )

    async def set(self, guild_id: int, kind: Literal["channel", "role"], target_id: int, *, on: bool) -> bool:
        """Add (`on`) or remove one channel or role; False when there was nothing to change."""
        async with self.db.transaction() as conn:
            if on:
                cursor = await conn.execute(
                    "INSERT INTO spoiler_targets (guild_id, kind, target_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, kind, target_id),
                )
            else:
                cursor = await conn.execute(
                    "DELETE FROM spoiler_targets WHERE guild_id = ? AND kind = ? AND target_id = ?",
                    (guild_id, kind, target_id),
                )
            return cursor.rowcount == 1

    async def clear(self, guild_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM spoiler_targets WHERE guild_id = ?", (guild_id,))
