"""`python -m bot backup FILE` while another task keeps writing: every copy is whole and its ledger adds up."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.errors import StorageError
from storage.backup import backup_database
from storage.db import Database
from storage.ledger import LedgerRepo
from storage.migrations import MIGRATIONS
from tests.cli.support import DEADLINE, clean_env


def ledger_adds_up(path: Path) -> int:
    """Check a copy: integrity, schema version, every account equal to the sum of its ledger rows."""
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        mismatched = conn.execute(
            """SELECT COUNT(*) FROM accounts a WHERE granted != (
                   SELECT COALESCE(SUM(d_granted), 0) FROM ledger l
                   WHERE l.guild_id = a.guild_id AND l.user_id = a.user_id)"""
        ).fetchone()[0]
        assert mismatched == 0
        return int(conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])


async def test_backups_taken_while_the_bot_writes_are_consistent(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    db = await Database.open(source)
    ledger = LedgerRepo(db)
    stop = asyncio.Event()
    progress = asyncio.Condition()
    written = 0

    async def keep_writing() -> None:
        nonlocal written
        while not stop.is_set():
            await ledger.grant(
                guild_id=1, user_id=written % 7, amount=3, daily=20, now=datetime.now(UTC), key=f"g{written}"
            )
            async with progress:
                written += 1
                progress.notify_all()

    writer = asyncio.create_task(keep_writing())
    try:
        sizes = []
        env = clean_env(FLUXCORD_DATABASE=str(source))
        for n in range(3):
            async with progress:
                await progress.wait_for(lambda n=n: written >= 50 * (n + 1))
            copy = tmp_path / f"copy-{n}.db"
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "backup",
                str(copy),
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
            assert process.returncode == 0, err.decode()
            assert f"to {copy}" in out.decode()
            sizes.append(await asyncio.to_thread(ledger_adds_up, copy))
    finally:
        stop.set()
        await writer
        await db.close()
    assert sizes == sorted(sizes) and sizes[0] > 0 and written > 150


def test_a_backup_never_replaces_a_file_unasked_nor_the_live_database(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE t (x)")
    (tmp_path / "old.db").write_text("keep me")
    with pytest.raises(StorageError, match="already exists"):
        backup_database(source, tmp_path / "old.db")
    assert (tmp_path / "old.db").read_text() == "keep me"
    with pytest.raises(StorageError, match="live database"):
        backup_database(source, source, overwrite=True)
    assert backup_database(source, tmp_path / "old.db", overwrite=True).path == tmp_path / "old.db"
    dated = backup_database(source, tmp_path)
    assert dated.path.parent == tmp_path and dated.path.name.startswith("fluxcord-")
    assert not list(tmp_path.glob(".*.partial"))
