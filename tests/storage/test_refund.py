"""A moderator's refund: what a job was charged comes back once, and the balances still equal the ledger's sums."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from storage.db import Database
from storage.ledger import LedgerRepo
from storage.migrations import MIGRATIONS

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def _charge(db: Database, ledger: LedgerRepo, job: str, held: int, captured: int, now: datetime = NOW) -> None:
    async with db.transaction() as conn:
        await ledger.hold(conn, guild_id=1, user_id=7, amount=held, job_id=job, daily=20, now=now)
    async with db.transaction() as conn:
        await ledger.settle(conn, job_id=job, capture=captured, now=now)


async def test_a_refund_gives_back_what_was_captured_once(db: Database, ledger: LedgerRepo) -> None:
    await _charge(db, ledger, "a", 8, 6)  # two of four images dropped: 6 captured, 2 released
    before = await ledger.balance(1, 7)
    assert before is not None and before.spendable == 14
    assert await ledger.refund(job_id="a", actor_id=99, now=NOW) == (6, True)
    after = await ledger.balance(1, 7)
    assert after is not None and (after.allowance, after.granted, after.held) == (before.allowance, 6, 0)
    assert await ledger.refund(job_id="a", actor_id=99, now=NOW) == (6, False)
    balance = await ledger.balance(1, 7)
    assert balance == after
    [refund] = [entry for entry in await ledger.entries(1, 7) if entry.kind == "refund"]
    assert (refund.amount, refund.d_granted, refund.d_allowance, refund.d_held) == (6, 6, 0, 0)
    assert (refund.job_id, refund.actor_id) == ("a", 99)
    assert await ledger.mismatches() == []


async def test_a_job_that_was_charged_nothing_refunds_nothing(db: Database, ledger: LedgerRepo) -> None:
    await _charge(db, ledger, "failed", 4, 0)
    assert await ledger.refund(job_id="failed", actor_id=99, now=NOW) == (0, False)
    assert await ledger.refund(job_id="never-existed", actor_id=99, now=NOW) == (0, False)
    assert [e.kind for e in await ledger.entries(1, 7)].count("refund") == 0
    assert await ledger.mismatches() == []


async def test_concurrent_refunds_move_credits_once_and_keep_the_sums(db: Database, ledger: LedgerRepo) -> None:
    for n in range(5):
        await _charge(db, ledger, f"j{n}", 3, 3)
    results = await asyncio.gather(
        *(ledger.refund(job_id=f"j{n % 5}", actor_id=n, now=NOW) for n in range(40)), return_exceptions=True
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sorted(r for r in results if isinstance(r, tuple) and r[1]) == [(3, True)] * 5
    balance = await ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.granted, balance.held) == (5, 15, 0)
    assert await ledger.mismatches() == []


async def test_refunds_come_off_what_was_spent_today(db: Database, ledger: LedgerRepo) -> None:
    await _charge(db, ledger, "old", 2, 2, now=NOW - timedelta(days=1))
    await _charge(db, ledger, "new", 4, 4)
    midnight = NOW.replace(hour=0)
    assert await ledger.spent_since(1, 7, midnight) == 4
    await ledger.refund(job_id="new", actor_id=99, now=NOW)
    assert await ledger.spent_since(1, 7, midnight) == 0
    await ledger.refund(job_id="old", actor_id=99, now=NOW)  # yesterday's charge never makes today negative
    assert await ledger.spent_since(1, 7, midnight) == 0


async def test_the_migration_keeps_every_ledger_row_and_the_append_only_rule(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    refund_migration = next(n for n, m in enumerate(MIGRATIONS) if any("ledger_new" in s for s in m))
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for statements in MIGRATIONS[:refund_migration]:
            for statement in statements:
                await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {refund_migration}")
        await conn.execute(
            "INSERT INTO accounts (guild_id, user_id, granted, created_at) VALUES (1, 7, 5, '2026-01-01')"
        )
        await conn.execute(
            "INSERT INTO ledger (guild_id, user_id, kind, amount, d_granted, actor_id, reason, idempotency_key,"
            " created_at) VALUES (1, 7, 'grant', 5, 5, 3, 'prize', 'g1', '2026-01-01')"
        )
        with pytest.raises(aiosqlite.IntegrityError):
            await conn.execute(
                "INSERT INTO ledger (guild_id, user_id, kind, amount, idempotency_key, created_at)"
                " VALUES (1, 7, 'refund', 1, 'r0', '2026-01-01')"
            )

    db = await Database.open(path)
    try:
        ledger = LedgerRepo(db)
        [entry] = await ledger.entries(1, 7)
        assert (entry.id, entry.kind, entry.amount, entry.d_granted, entry.actor_id, entry.reason) == (
            1,
            "grant",
            5,
            5,
            3,
            "prize",
        )
        assert await ledger.mismatches() == []
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO ledger (guild_id, user_id, kind, amount, idempotency_key, created_at)"
                " VALUES (1, 7, 'refund', 0, 'r1', '2026-01-02')"
            )
        for statement in ("UPDATE ledger SET amount = 50", "DELETE FROM ledger"):
            with pytest.raises(aiosqlite.IntegrityError, match="append-only"):
                async with db.transaction() as conn:
                    await conn.execute(statement)
        indexes = {row["name"] for row in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ledger_account", "ledger_job"} <= indexes
    finally:
        await db.close()
