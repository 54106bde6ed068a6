from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import InsufficientCreditsError
from storage.db import Database
from storage.ledger import LedgerRepo

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def _hold(
    db: Database, ledger: LedgerRepo, job: str, amount: int, *, daily: int = 20, now: datetime = NOW
) -> None:
    async with db.transaction() as conn:
        await ledger.hold(conn, guild_id=1, user_id=7, amount=amount, job_id=job, daily=daily, now=now)


async def _settle(db: Database, ledger: LedgerRepo, job: str, capture: int, now: datetime = NOW) -> int:
    async with db.transaction() as conn:
        return await ledger.settle(conn, job_id=job, capture=capture, now=now)


async def test_200_concurrent_holds_never_overdraw_and_match_the_ledger(db: Database, ledger: LedgerRepo) -> None:
    await ledger.grant(guild_id=1, user_id=7, amount=380, daily=20, now=NOW, key="seed")
    # 400 spendable, 200 holds of 3: exactly 133 fit.
    results = await asyncio.gather(*(_hold(db, ledger, f"job{i}", 3) for i in range(200)), return_exceptions=True)
    accepted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert len(accepted) == 133
    assert len(refused) == 67
    balance = await ledger.balance(1, 7)
    assert balance is not None
    assert balance.spendable == 1 and balance.held == 399
    assert await ledger.mismatches() == []


async def test_allowance_is_spent_first_and_refunds_go_back_where_they_came_from(
    db: Database, ledger: LedgerRepo
) -> None:
    await ledger.grant(guild_id=1, user_id=7, amount=10, daily=20, now=NOW, key="g")
    await _hold(db, ledger, "a", 24)  # 20 from the allowance, 4 granted
    balance = await ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.granted, balance.held) == (0, 6, 24)
    assert await _settle(db, ledger, "a", 18) == 18  # 6 released: 4 to granted, 2 to the allowance
    balance = await ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.granted, balance.held) == (2, 10, 0)
    assert await ledger.mismatches() == []


async def test_settle_is_applied_once(db: Database, ledger: LedgerRepo) -> None:
    await _hold(db, ledger, "a", 8)
    assert await _settle(db, ledger, "a", 4) == 4
    await _settle(db, ledger, "a", 4)
    await _settle(db, ledger, "a", 0)
    balance = await ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (16, 0)
    kinds = [entry.kind for entry in await ledger.entries(1, 7)]
    assert kinds.count("capture") == 1 and kinds.count("release") == 1
    assert await ledger.mismatches() == []


async def test_a_hold_is_refused_with_the_credits_sentence(db: Database, ledger: LedgerRepo) -> None:
    await _hold(db, ledger, "a", 18)
    with pytest.raises(InsufficientCreditsError) as caught:
        await _hold(db, ledger, "b", 4)
    assert caught.value.message.startswith("You have 2 credits; this job costs 4. Your allowance refills <t:")
    balance = await ledger.balance(1, 7)
    assert balance is not None and balance.held == 18


async def test_allowance_refills_after_midnight_without_accumulating(db: Database, ledger: LedgerRepo) -> None:
    await _hold(db, ledger, "a", 5)
    tomorrow = NOW + timedelta(days=1)
    await _hold(db, ledger, "b", 1, now=tomorrow)
    balance = await ledger.balance(1, 7)
    assert balance is not None and balance.allowance == 19  # 20 again, not 15 + 20
    # Yesterday's allowance released today lapses instead of stacking on today's.
    await _settle(db, ledger, "a", 0, now=tomorrow)
    balance = await ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (19, 1)
    assert await ledger.mismatches() == []


async def test_revoke_never_takes_more_than_was_granted(db: Database, ledger: LedgerRepo) -> None:
    await ledger.grant(guild_id=1, user_id=7, amount=5, daily=20, now=NOW, key="g")
    balance = await ledger.grant(guild_id=1, user_id=7, amount=-9, daily=20, now=NOW, key="r")
    assert balance.granted == 0 and balance.allowance == 20
    again = await ledger.grant(guild_id=1, user_id=7, amount=5, daily=20, now=NOW, key="g")
    assert again.granted == 0  # the same idempotency key is not applied twice
    assert await ledger.mismatches() == []
