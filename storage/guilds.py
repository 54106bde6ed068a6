"""Server administration: settings, allowed channels, role bonuses, blocked members, usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.core.limits import GuildSettings
from storage.db import Database

SETTABLE = frozenset({"allowance", "budget", "jobs_per_minute", "max_active", "max_queued", "nsfw_allowed", "provider"})


@dataclass(frozen=True, slots=True)
class DayUsage:
    """Credits charged and jobs run on one UTC day."""

    day: str
    spent: int
    jobs: int


class GuildRepo:
    """All SQL about server settings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def settings(self, guild_id: int) -> GuildSettings:
        row = await self.db.fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        channels = await self.db.fetchall("SELECT channel_id FROM guild_channels WHERE guild_id = ?", (guild_id,))
        bonuses = await self.db.fetchall(
            "SELECT role_id, amount FROM role_bonuses WHERE guild_id = ? ORDER BY role_id", (guild_id,)
        )
        values: dict[str, Any] = {}
        if row is not None:
            values = {name: row[name] for name in SETTABLE}
            values["nsfw_allowed"] = bool(values["nsfw_allowed"])
        return GuildSettings(
            **values,
            channels=frozenset(r["channel_id"] for r in channels),
            role_bonuses=tuple((r["role_id"], r["amount"]) for r in bonuses),
        )

    async def update(self, guild_id: int, *, now: datetime, **fields: Any) -> GuildSettings:
        """Set some settings (None restores the operator's default)."""
        unknown = set(fields) - SETTABLE
        if unknown:
            raise ValueError(f"unknown guild settings: {sorted(unknown)}")
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (guild_id, now.isoformat()),
            )
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)
                await conn.execute(
                    f"UPDATE guild_settings SET {assignments}, updated_at = ? WHERE guild_id = ?",
                    (*fields.values(), now.isoformat(), guild_id),
                )
        return await self.settings(guild_id)

    async def set_channel(self, guild_id: int, channel_id: int, *, allowed: bool) -> None:
        async with self.db.transaction() as conn:
            if allowed:
                await conn.execute(
                    "INSERT INTO guild_channels (guild_id, channel_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, channel_id),
                )
            else:
                await conn.execute(
                    "DELETE FROM guild_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
                )

    async def clear_channels(self, guild_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM guild_channels WHERE guild_id = ?", (guild_id,))

    async def set_role_bonus(self, guild_id: int, role_id: int, amount: int) -> None:
        """A daily bonus for members with the role; 0 removes it."""
        async with self.db.transaction() as conn:
            if amount > 0:
                await conn.execute(
                    """INSERT INTO role_bonuses (guild_id, role_id, amount) VALUES (?, ?, ?)
                       ON CONFLICT (guild_id, role_id) DO UPDATE SET amount = excluded.amount""",
                    (guild_id, role_id, amount),
                )
            else:
                await conn.execute("DELETE FROM role_bonuses WHERE guild_id = ? AND role_id = ?", (guild_id, role_id))

    async def block(
        self, guild_id: int, user_id: int, *, actor_id: int | None, reason: str | None, now: datetime
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                """INSERT INTO blocked_members (guild_id, user_id, actor_id, reason, created_at) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id, user_id) DO UPDATE SET actor_id = excluded.actor_id,
                   reason = excluded.reason""",
                (guild_id, user_id, actor_id, reason, now.isoformat()),
            )

    async def unblock(self, guild_id: int, user_id: int) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM blocked_members WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            return cursor.rowcount == 1

    async def is_blocked(self, guild_id: int, user_id: int) -> bool:
        row = await self.db.fetchone(
            "SELECT 1 FROM blocked_members WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return row is not None

    async def usage(self, guild_id: int, *, days: int, now: datetime) -> list[DayUsage]:
        """Credits charged and jobs finished per UTC day, oldest first, including days with nothing."""
        first = (now - timedelta(days=days - 1)).date()
        rows = await self.db.fetchall(
            """SELECT substr(created_at, 1, 10) AS day, COALESCE(SUM(charged), 0) AS spent, COUNT(*) AS jobs
               FROM jobs WHERE guild_id = ? AND created_at >= ? AND state = 'succeeded'
               GROUP BY day""",
            (guild_id, first.isoformat()),
        )
        found = {row["day"]: DayUsage(row["day"], row["spent"], row["jobs"]) for row in rows}
        result = []
        for offset in range(days):
            day = (first + timedelta(days=offset)).isoformat()
            result.append(found.get(day, DayUsage(day, 0, 0)))
        return result
