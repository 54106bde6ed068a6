"""The writer connection's transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.db import Database


async def test_a_transaction_cancelled_while_it_begins_leaves_the_database_unlocked(tmp_path: Path) -> None:
    """A stopping engine cancels its tasks: one waiting for BEGIN IMMEDIATE must not keep the write lock."""
    first = await Database.open(tmp_path / "f.db")
    second = await Database.open(tmp_path / "f.db")
    try:

        async def write() -> None:
            async with first.transaction() as conn:
                await conn.execute("INSERT INTO meta (key, value, updated_at) VALUES ('a', '1', 'x')")

        task = asyncio.create_task(write())
        await asyncio.sleep(0)  # BEGIN IMMEDIATE is on its way to the connection's thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(2):
            async with second.transaction() as conn:
                await conn.execute("INSERT INTO meta (key, value, updated_at) VALUES ('b', '2', 'x')")
        assert await first.fetchone("SELECT value FROM meta WHERE key = 'a'") is None
    finally:
        await second.close()
        await first.close()
