"""Members' defaults and servers' presets."""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite

from bot.core.preferences import OPTION_NAMES, OptionSet, Preset
from storage.db import Database


def _preset(row: aiosqlite.Row) -> Preset:
    return Preset(
        name=row["name"], template=row["template"], options=OptionSet.from_mapping(json.loads(row["options"]))
    )


class PreferenceRepo:
    """All SQL about `member_defaults` and `presets`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def defaults(self, guild_id: int, user_id: int) -> OptionSet:
        row = await self.db.fetchone(
            "SELECT * FROM member_defaults WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return OptionSet.from_mapping({name: row[name] for name in OPTION_NAMES}) if row else OptionSet()

    async def set_defaults(self, guild_id: int, user_id: int, options: OptionSet, *, now: datetime) -> OptionSet:
        """Replace the member's defaults (fields left None are cleared)."""
        values = [getattr(options, name) for name in OPTION_NAMES]
        columns = ", ".join(OPTION_NAMES)
        updates = ", ".join(f"{name} = excluded.{name}" for name in OPTION_NAMES)
        async with self.db.transaction() as conn:
            await conn.execute(
                f"""INSERT INTO member_defaults (guild_id, user_id, {columns}, updated_at)
                    VALUES (?, ?, {", ".join("?" for _ in OPTION_NAMES)}, ?)
                    ON CONFLICT (guild_id, user_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at""",
                (guild_id, user_id, *values, now.isoformat()),
            )
        return options

    async def presets(self, guild_id: int) -> list[Preset]:
        rows = await self.db.fetchall("SELECT * FROM presets WHERE guild_id = ? ORDER BY name", (guild_id,))
        return [_preset(row) for row in rows]

    async def preset(self, guild_id: int, name: str) -> Preset | None:
        row = await self.db.fetchone("SELECT * FROM presets WHERE guild_id = ? AND name = ?", (guild_id, name))
        return _preset(row) if row else None

    async def save_preset(self, guild_id: int, preset: Preset, *, actor_id: int | None, now: datetime) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                """INSERT INTO presets (guild_id, name, template, options, actor_id, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id, name) DO UPDATE SET template = excluded.template,
                   options = excluded.options, actor_id = excluded.actor_id, updated_at = excluded.updated_at""",
                (
                    guild_id,
                    preset.name,
                    preset.template,
                    json.dumps(preset.options.as_dict()),
                    actor_id,
                    now.isoformat(),
                ),
            )

    async def remove_preset(self, guild_id: int, name: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM presets WHERE guild_id = ? AND name = ?", (guild_id, name))
            return cursor.rowcount == 1
