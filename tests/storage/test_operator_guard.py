"""The operator's rules over every server, checked in the same transaction as the hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import UserError
from bot.core.limits import NOT_SERVED, UNLIMITED, LimitExceededError, OperatorGuard, Policy
from bot.core.requests import ImagineOptions
from storage.db import Database
from storage.jobs import JobRepo, NewJob
from storage.ledger import LedgerRepo

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = ImagineOptions.parse(prompt="a fox").resolve()


def order(n: int, guild: int, cost: int) -> NewJob:
    return NewJob(request_id=f"r{n}", guild_id=guild, user_id=1000 + n, spec=SPEC, cost=cost)


async def held(db: Database) -> int:
    row = await db.fetchone("SELECT COALESCE(SUM(held), 0) FROM accounts")
    assert row is not None
    return int(row[0])


async def test_the_daily_cap_counts_every_server_and_refuses_with_nothing_held(db: Database) -> None:
    ledger = LedgerRepo(db)
    jobs = JobRepo(db, ledger, OperatorGuard(daily_cap=10))
    policy = Policy(daily_allowance=100, limits=UNLIMITED)
    await jobs.create(order(1, guild=1, cost=4), policy=policy, now=NOW)
    await jobs.create(order(2, guild=2, cost=4), policy=policy, now=NOW)
    before = await held(db)
    with pytest.raises(LimitExceededError, match="across all servers") as refused:
        await jobs.create(order(3, guild=3, cost=4), policy=policy, now=NOW)
    assert "nothing was charged" in refused.value.message
    assert refused.value.frees_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert await held(db) == before == 8
    assert await jobs.by_request("r3") is None
    # What fits is still accepted, a free job always is, and the next UTC day starts again.
    await jobs.create(order(4, guild=3, cost=2), policy=policy, now=NOW)
    await jobs.create(order(5, guild=3, cost=0), policy=policy, now=NOW)
    await jobs.create(order(6, guild=3, cost=10), policy=policy, now=NOW + timedelta(days=1))


async def test_concurrent_submits_never_overshoot_the_cap(db: Database) -> None:
    jobs = JobRepo(db, LedgerRepo(db), OperatorGuard(daily_cap=25))
    policy = Policy(daily_allowance=100, limits=UNLIMITED)
    results = await asyncio.gather(
        *(jobs.create(order(n, guild=n % 5, cost=3), policy=policy, now=NOW) for n in range(40)),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 8  # 8 × 3 = 24 ≤ 25 < 27
    assert all(isinstance(r, LimitExceededError) for r in results if isinstance(r, BaseException))
    assert await held(db) == 24


async def test_servers_off_the_allow_list_are_refused_but_the_operator_is_not(db: Database) -> None:
    jobs = JobRepo(db, LedgerRepo(db), OperatorGuard(allowed_guilds=frozenset({1})))
    policy = Policy(daily_allowance=100, limits=UNLIMITED)
    await jobs.create(order(1, guild=1, cost=2), policy=policy, now=NOW)
    with pytest.raises(UserError) as refused:
        await jobs.create(order(2, guild=2, cost=2), policy=policy, now=NOW)
    assert refused.value.message == NOT_SERVED
    await jobs.create(order(3, guild=0, cost=0), policy=policy, now=NOW)  # the command line's jobs
    assert await held(db) == 2
