"""Small key/value facts kept between runs."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.db import Database


class MetaRepo:
    """Reads and writes the `meta` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    async def set(self, key: str, value: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                """INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
                (key, value, datetime.now(UTC).isoformat()),
            )

    async def with_prefix(self, prefix: str) -> dict[str, str]:
        """Every key starting with `prefix`, with its value."""
        rows = await self.db.fetchall(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        )
        return {str(row["key"]): str(row["value"]) for row in rows}
