from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from bot.core.errors import StorageError
from storage.db import Database
from storage.migrations import MIGRATIONS, migrate, schema_version


async def _schema(path: Path) -> list[tuple[str, str]]:
    async with aiosqlite.connect(path) as conn:
        cursor = await conn.execute("SELECT type, name FROM sqlite_master ORDER BY type, name")
        return [(row[0], row[1]) for row in await cursor.fetchall()]


async def test_migrations_run_twice_are_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    db = await Database.open(path)
    await db.close()
    first = await _schema(path)
    db = await Database.open(path)
    await db.close()
    assert await _schema(path) == first
    assert ("table", "jobs") in first and ("table", "ledger") in first
    async with aiosqlite.connect(path) as conn:
        assert await schema_version(conn) == len(MIGRATIONS)
        assert await migrate(conn) == len(MIGRATIONS)
        assert await schema_version(conn) == len(MIGRATIONS)


async def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "f.db")
    try:
        row = await db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0] == "wal"
    finally:
        await db.close()


async def test_a_database_from_newer_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    async with aiosqlite.connect(path) as conn:
        await conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        await conn.commit()
    with pytest.raises(StorageError, match="written by a newer Fluxcord"):
        await Database.open(path)


async def test_the_ledger_is_append_only(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO ledger (guild_id, user_id, kind, amount, idempotency_key, created_at)"
            " VALUES (1, 1, 'grant', 5, 'k', '2026-01-01')"
        )
    with pytest.raises(aiosqlite.IntegrityError, match="append-only"):
        async with db.transaction() as conn:
            await conn.execute("UPDATE ledger SET amount = 50")
    with pytest.raises(aiosqlite.IntegrityError, match="append-only"):
        async with db.transaction() as conn:
            await conn.execute("DELETE FROM ledger")
