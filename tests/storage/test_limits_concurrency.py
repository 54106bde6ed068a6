"""Credits and limits under concurrent submits, across 00:00 UTC and at the edges of the rate window."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.credits import next_refill
from bot.core.errors import InsufficientCreditsError
from bot.core.jobs import Job, JobState
from bot.core.limits import GuildSettings, LimitExceededError, Limits, OperatorPolicy, Policy
from bot.core.requests import GenerationSpec, ImagineOptions
from storage.db import Database
from storage.jobs import JobRepo, NewJob
from storage.ledger import LedgerRepo

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
WIDE = Limits(jobs_per_minute=10_000, max_active=10_000, max_queued=10_000, server_concurrency=10_000)
SPEC: GenerationSpec = ImagineOptions.parse(prompt="x").resolve()


def new_job(request_id: str, *, user: int = 7, cost: int = 4, guild: int = 1) -> NewJob:
    return NewJob(request_id=request_id, guild_id=guild, user_id=user, spec=SPEC, cost=cost)


def refill_stamp(now: datetime) -> str:
    return f"<t:{int(next_refill(now).timestamp())}:R>"


async def pots(ledger: LedgerRepo, user: int = 7, guild: int = 1) -> tuple[int, int, int]:
    balance = await ledger.balance(guild, user)
    assert balance is not None
    return balance.allowance, balance.granted, balance.held


# --------------------------------------------------------------------------- credits under concurrency


async def test_500_concurrent_submits_by_one_member_create_exactly_what_100_credits_pay_for(
    jobs: JobRepo, ledger: LedgerRepo
) -> None:
    policy = Policy(daily_allowance=0, limits=WIDE)
    await ledger.grant(guild_id=1, user_id=7, amount=100, daily=0, now=NOW, key="seed")

    results = await asyncio.gather(
        *(jobs.create(new_job(f"r{i}"), policy=policy, now=NOW) for i in range(500)), return_exceptions=True
    )

    created = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert len(created) == 25 and len(refused) == 475, Counter(type(r).__name__ for r in results)
    assert all(flag for _, flag in created)
    assert len({job.id for job, _ in created}) == 25
    expected = f"You have 0 credits; this job costs 4. Your allowance refills {refill_stamp(NOW)}."
    assert {error.message for error in refused} == {expected}
    assert {(error.spendable, error.cost) for error in refused} == {(0, 4)}

    balance = await ledger.balance(1, 7)
    assert balance is not None
    assert (balance.held, balance.spendable) == (100, 0)
    assert len(await jobs.active_for_member(1, 7)) == 25
    assert await ledger.mismatches() == []


async def test_500_concurrent_submits_by_20_members_stop_at_the_server_budget(
    jobs: JobRepo, ledger: LedgerRepo
) -> None:
    policy = Policy(daily_allowance=20, limits=WIDE, budget=100)
    members = range(100, 120)
    for member in members:
        await ledger.grant(guild_id=1, user_id=member, amount=1000, daily=20, now=NOW, key=f"seed{member}")

    results = await asyncio.gather(
        *(jobs.create(new_job(f"r{i}", user=100 + i % 20), policy=policy, now=NOW) for i in range(500)),
        return_exceptions=True,
    )

    created = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, LimitExceededError)]
    assert len(created) == 25 and len(refused) == 475, Counter(type(r).__name__ for r in results)
    expected = (
        f"This server's daily budget of 100 credits has 0 left and this job costs 4; it resets {refill_stamp(NOW)}."
    )
    assert {error.message for error in refused} == {expected}
    assert {error.frees_at for error in refused} == {MIDNIGHT}

    per_member = Counter(job.user_id for job, _ in created)
    total_held = 0
    for member in members:
        allowance, granted, held = await pots(ledger, member)
        assert held == 4 * per_member[member]
        assert allowance >= 0 and granted >= 0
        assert allowance + granted + held == 1020  # nothing lost, nothing overdrawn
        total_held += held
    assert total_held == 100
    assert await ledger.mismatches() == []


async def test_the_server_budget_resets_at_midnight_utc(jobs: JobRepo, ledger: LedgerRepo) -> None:
    policy = Policy(daily_allowance=20, limits=WIDE, budget=8)
    late = MIDNIGHT - timedelta(seconds=1)
    await jobs.create(new_job("a", user=7), policy=policy, now=late)
    await jobs.create(new_job("b", user=8), policy=policy, now=late)
    with pytest.raises(LimitExceededError) as caught:
        await jobs.create(new_job("c", user=9), policy=policy, now=late)
    assert caught.value.frees_at == MIDNIGHT
    assert "daily budget of 8 credits has 0 left" in caught.value.message
    # Yesterday's jobs (still held) no longer count against today's budget.
    _, created = await jobs.create(new_job("d", user=9), policy=policy, now=MIDNIGHT + timedelta(seconds=1))
    assert created


# --------------------------------------------------------------------------- the daily allowance


async def test_the_allowance_refills_across_midnight_without_accumulating(jobs: JobRepo, ledger: LedgerRepo) -> None:
    policy = Policy(daily_allowance=20, limits=WIDE)
    late = datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)
    early = datetime(2026, 11, 22, 0, 0, 1, tzinfo=UTC)

    job, _ = await jobs.create(new_job("late"), policy=policy, now=late)
    assert await pots(ledger) == (16, 0, 4)

    async with jobs.db.transaction() as conn:
        balance = await ledger.open_account(conn, guild_id=1, user_id=7, daily=20, now=early)
    assert (balance.allowance, balance.held, balance.allowance_day) == (20, 4, "2026-11-22")

    # Yesterday's job fails after midnight: its 4 credits of yesterday's allowance lapse.
    assert await jobs.finish(job.id, [JobState.QUEUED], JobState.FAILED, now=early, error="boom")
    assert await pots(ledger) == (20, 0, 0)

    # The whole new day's allowance, and not a credit more, can be spent.
    _, created = await jobs.create(new_job("early", cost=20), policy=policy, now=early)
    assert created
    with pytest.raises(InsufficientCreditsError) as caught:
        await jobs.create(new_job("more", cost=1), policy=policy, now=early)
    assert caught.value.message.startswith("You have 0 credits; this job costs 1.")
    assert await ledger.mismatches() == []


def test_a_role_bonus_adds_to_the_daily_allowance() -> None:
    settings = GuildSettings(role_bonuses=((555, 10),))
    operator = OperatorPolicy(daily_allowance=20)
    assert operator.resolve(settings, role_ids=frozenset({555})).daily_allowance == 30
    assert operator.resolve(settings, role_ids=frozenset({556})).daily_allowance == 20
    assert operator.resolve(settings).daily_allowance == 20


async def test_a_member_with_the_bonus_role_can_spend_30_on_a_fresh_day_but_not_31(
    jobs: JobRepo, ledger: LedgerRepo
) -> None:
    settings = GuildSettings(role_bonuses=((555, 10),))
    with_role = OperatorPolicy(daily_allowance=20).resolve(settings, role_ids=frozenset({555}))
    without_role = OperatorPolicy(daily_allowance=20).resolve(settings, role_ids=frozenset())

    with pytest.raises(InsufficientCreditsError) as caught:
        await jobs.create(new_job("too-much", user=7, cost=31), policy=with_role, now=NOW)
    assert caught.value.message.startswith("You have 30 credits; this job costs 31.")
    _, created = await jobs.create(new_job("all-of-it", user=7, cost=30), policy=with_role, now=NOW)
    assert created
    assert await pots(ledger, 7) == (0, 0, 30)

    with pytest.raises(InsufficientCreditsError) as caught:
        await jobs.create(new_job("over", user=8, cost=21), policy=without_role, now=NOW)
    assert caught.value.message.startswith("You have 20 credits; this job costs 21.")
    assert await ledger.balance(1, 8) is None  # a refused submit leaves nothing behind
    assert await ledger.mismatches() == []


# --------------------------------------------------------------------------- rate window and queue


async def test_the_rate_limit_window_frees_exactly_60_seconds_after_the_oldest_job(
    jobs: JobRepo, ledger: LedgerRepo
) -> None:
    policy = Policy(daily_allowance=20, limits=Limits(jobs_per_minute=5, max_active=100, max_queued=100))
    t0 = NOW
    for i in range(5):
        _, created = await jobs.create(new_job(f"r{i}", cost=1), policy=policy, now=t0 + timedelta(seconds=10 * i))
        assert created

    for attempt, at in (("early", t0 + timedelta(seconds=50)), ("edge", t0 + timedelta(seconds=59.999))):
        with pytest.raises(LimitExceededError) as caught:
            await jobs.create(new_job(attempt, cost=1), policy=policy, now=at)
        assert caught.value.frees_at == t0 + timedelta(seconds=60)
        assert caught.value.message == (
            f"You can start 5 jobs a minute; try again <t:{int((t0 + timedelta(seconds=60)).timestamp())}:R>."
        )

    _, created = await jobs.create(new_job("on-time", cost=1), policy=policy, now=t0 + timedelta(seconds=60))
    assert created
    # The window now holds t0+10 … t0+40 and t0+60: the next slot frees when t0+10 leaves it.
    with pytest.raises(LimitExceededError) as caught:
        await jobs.create(new_job("next", cost=1), policy=policy, now=t0 + timedelta(seconds=60))
    assert caught.value.frees_at == t0 + timedelta(seconds=70)
    assert await pots(ledger) == (14, 0, 6)  # refused submits hold nothing


async def test_the_queued_limit_frees_when_a_job_leaves_the_queue(jobs: JobRepo, ledger: LedgerRepo) -> None:
    policy = Policy(daily_allowance=20, limits=Limits(jobs_per_minute=100, max_active=100, max_queued=2))
    first: Job
    first, _ = await jobs.create(new_job("a", cost=1), policy=policy, now=NOW)
    await jobs.create(new_job("b", cost=1), policy=policy, now=NOW + timedelta(seconds=1))

    with pytest.raises(LimitExceededError) as caught:
        await jobs.create(new_job("c", cost=1), policy=policy, now=NOW + timedelta(seconds=2))
    assert caught.value.message == (
        "You already have 2 jobs waiting (the limit is 2); try again when one of them starts."
    )
    assert caught.value.frees_at is None

    assert await jobs.transition(first.id, [JobState.QUEUED], JobState.SUBMITTED, now=NOW + timedelta(seconds=3))
    _, created = await jobs.create(new_job("c", cost=1), policy=policy, now=NOW + timedelta(seconds=4))
    assert created
    with pytest.raises(LimitExceededError):
        await jobs.create(new_job("d", cost=1), policy=policy, now=NOW + timedelta(seconds=5))
    assert await pots(ledger) == (17, 0, 3)
    assert await ledger.mismatches() == []


async def test_concurrent_submits_never_exceed_the_queued_limit(db: Database, jobs: JobRepo) -> None:
    policy = Policy(daily_allowance=1000, limits=Limits(jobs_per_minute=10_000, max_active=100, max_queued=5))
    results = await asyncio.gather(
        *(jobs.create(new_job(f"q{i}", cost=1), policy=policy, now=NOW) for i in range(50)), return_exceptions=True
    )
    assert sum(isinstance(r, tuple) for r in results) == 5
    assert sum(isinstance(r, LimitExceededError) for r in results) == 45
    row = await db.fetchone("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
    assert row is not None and row[0] == 5
