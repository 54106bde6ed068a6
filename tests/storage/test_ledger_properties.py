"""Random sequences of credit movements against a model of the two pots and the open holds.

Each example gets a fresh SQLite file and its own event loop; the state machine drives the real
`LedgerRepo` and, after every step, compares the stored pots with the model and with the ledger.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from bot.core.credits import Balance
from bot.core.errors import InsufficientCreditsError
from storage.db import Database
from storage.ledger import LedgerRepo

T = TypeVar("T")

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DAILY = {1: 20, 2: 5}  # guild -> daily allowance
GUILDS = st.sampled_from(sorted(DAILY))
MEMBERS = st.sampled_from((7, 8, 9))


@dataclass(frozen=True)
class Pots:
    allowance: int = 0
    granted: int = 0
    held: int = 0
    day: str = ""

    @property
    def spendable(self) -> int:
        return self.allowance + self.granted


@dataclass(frozen=True)
class OpenHold:
    guild_id: int
    user_id: int
    amount: int
    from_granted: int
    day: str


def pots_of(balance: Balance) -> Pots:
    return Pots(balance.allowance, balance.granted, balance.held, balance.allowance_day)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.loop = asyncio.new_event_loop()
        self.db = self.run(Database.open(Path(self.tmp.name) / "ledger.db"))
        self.ledger = LedgerRepo(self.db)
        self.now = START
        self.accounts: dict[tuple[int, int], Pots] = {}
        self.open_holds: dict[str, OpenHold] = {}
        self.settled: dict[str, int] = {}  # job -> the capture it was settled with
        self.grant_keys: dict[str, tuple[int, int]] = {}
        self.ids = itertools.count()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.db.close())
        finally:
            self.loop.close()
            self.tmp.cleanup()

    # ------------------------------------------------------------------ model

    @property
    def today(self) -> str:
        return self.now.date().isoformat()

    def refilled(self, guild_id: int, user_id: int) -> Pots:
        """The pots as `open_account` leaves them now: the allowance is set (not added) once a day."""
        pots = self.accounts.get((guild_id, user_id), Pots())
        if pots.day != self.today:
            pots = replace(pots, allowance=DAILY[guild_id], day=self.today)
        return pots

    # ------------------------------------------------------------------ rules

    @rule(guild_id=GUILDS, user_id=MEMBERS, amount=st.integers(1, 40))
    def grant(self, guild_id: int, user_id: int, amount: int) -> None:
        key = f"grant:{next(self.ids)}"
        expected = self.refilled(guild_id, user_id)
        expected = replace(expected, granted=expected.granted + amount)
        balance = self.run(
            self.ledger.grant(
                guild_id=guild_id, user_id=user_id, amount=amount, daily=DAILY[guild_id], now=self.now, key=key
            )
        )
        self.accounts[guild_id, user_id] = expected
        self.grant_keys[key] = (guild_id, user_id)
        assert pots_of(balance) == expected

    @rule(guild_id=GUILDS, user_id=MEMBERS, amount=st.integers(1, 50))
    def revoke(self, guild_id: int, user_id: int, amount: int) -> None:
        key = f"revoke:{next(self.ids)}"
        expected = self.refilled(guild_id, user_id)
        expected = replace(expected, granted=expected.granted - min(amount, expected.granted))
        balance = self.run(
            self.ledger.grant(
                guild_id=guild_id, user_id=user_id, amount=-amount, daily=DAILY[guild_id], now=self.now, key=key
            )
        )
        self.accounts[guild_id, user_id] = expected
        self.grant_keys[key] = (guild_id, user_id)
        assert pots_of(balance) == expected

    @precondition(lambda self: self.grant_keys)
    @rule(data=st.data(), amount=st.integers(-50, 50))
    def repeat_grant_key(self, data: st.DataObject, amount: int) -> None:
        """A grant or revoke replayed with a used idempotency key moves nothing, whatever its amount."""
        key = data.draw(st.sampled_from(sorted(self.grant_keys)))
        guild_id, user_id = self.grant_keys[key]
        expected = self.refilled(guild_id, user_id)
        balance = self.run(
            self.ledger.grant(
                guild_id=guild_id, user_id=user_id, amount=amount, daily=DAILY[guild_id], now=self.now, key=key
            )
        )
        self.accounts[guild_id, user_id] = expected
        assert pots_of(balance) == expected

    @rule(guild_id=GUILDS, user_id=MEMBERS, amount=st.integers(0, 30))
    def hold(self, guild_id: int, user_id: int, amount: int) -> None:
        job_id = f"job{next(self.ids)}"
        expected = self.refilled(guild_id, user_id)

        async def attempt() -> Balance:
            async with self.db.transaction() as conn:
                return await self.ledger.hold(
                    conn,
                    guild_id=guild_id,
                    user_id=user_id,
                    amount=amount,
                    job_id=job_id,
                    daily=DAILY[guild_id],
                    now=self.now,
                )

        if expected.spendable < amount:
            with pytest.raises(InsufficientCreditsError) as caught:
                self.run(attempt())
            assert (caught.value.spendable, caught.value.cost) == (expected.spendable, amount)
            assert caught.value.message.startswith(f"You have {expected.spendable} credit")
            return  # the transaction rolled back: not even the refill happened
        balance = self.run(attempt())
        if amount:
            from_allowance = min(expected.allowance, amount)
            expected = Pots(
                allowance=expected.allowance - from_allowance,
                granted=expected.granted - (amount - from_allowance),
                held=expected.held + amount,
                day=expected.day,
            )
            self.open_holds[job_id] = OpenHold(guild_id, user_id, amount, amount - from_allowance, self.today)
        self.accounts[guild_id, user_id] = expected
        assert pots_of(balance) == expected

    @precondition(lambda self: self.open_holds)
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.open_holds)))
        hold = self.open_holds.pop(job_id)
        capture = data.draw(
            st.one_of(st.integers(0, hold.amount), st.integers(-3, -1), st.integers(hold.amount + 1, hold.amount + 3))
        )
        captured = max(0, min(capture, hold.amount))
        release = hold.amount - captured
        to_granted = min(release, hold.from_granted)
        to_allowance = release - to_granted
        pots = self.accounts[hold.guild_id, hold.user_id]
        if pots.day != hold.day:
            to_allowance = 0  # that day's allowance has been reset since: it lapses
        expected = Pots(
            allowance=pots.allowance + to_allowance,
            granted=pots.granted + to_granted,
            held=pots.held - hold.amount,
            day=pots.day,
        )

        async def go() -> int:
            async with self.db.transaction() as conn:
                return await self.ledger.settle(conn, job_id=job_id, capture=capture, now=self.now)

        assert self.run(go()) == captured
        self.accounts[hold.guild_id, hold.user_id] = expected
        self.settled[job_id] = capture

    @precondition(lambda self: self.settled)
    @rule(data=st.data())
    def settle_again(self, data: st.DataObject) -> None:
        """Settling a job a second time (same outcome, e.g. a retried finish) moves nothing."""
        job_id = data.draw(st.sampled_from(sorted(self.settled)))

        async def go() -> None:
            async with self.db.transaction() as conn:
                await self.ledger.settle(conn, job_id=job_id, capture=self.settled[job_id], now=self.now)

        self.run(go())

    @rule()
    def settle_unknown_job(self) -> None:
        async def go() -> int:
            async with self.db.transaction() as conn:
                return await self.ledger.settle(conn, job_id="never-held", capture=5, now=self.now)

        assert self.run(go()) == 0

    @rule(guild_id=GUILDS, user_id=MEMBERS)
    def open_account(self, guild_id: int, user_id: int) -> None:
        before = self.accounts.get((guild_id, user_id))
        expected = self.refilled(guild_id, user_id)

        async def go() -> Balance:
            async with self.db.transaction() as conn:
                return await self.ledger.open_account(
                    conn, guild_id=guild_id, user_id=user_id, daily=DAILY[guild_id], now=self.now
                )

        balance = self.run(go())
        self.accounts[guild_id, user_id] = expected
        assert pots_of(balance) == expected
        if before is None or before.day != self.today:
            assert balance.allowance == DAILY[guild_id]  # set to the daily amount, never accumulated

    # ------------------------------------------------------------------ time

    @rule(days=st.integers(1, 3))
    def advance_days(self, days: int) -> None:
        self.now += timedelta(days=days)

    @rule(seconds=st.integers(1, 8 * 3600))
    def advance_seconds(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def to_just_before_midnight(self) -> None:
        target = datetime.combine(self.now.date(), time(23, 59, 59, 999_999, tzinfo=UTC))
        self.now = target if target > self.now else target + timedelta(days=1)

    @rule(offset_us=st.sampled_from((0, 1, 1000)))
    def to_just_after_midnight(self, offset_us: int) -> None:
        midnight = datetime.combine(self.now.date() + timedelta(days=1), time(0, tzinfo=UTC))
        self.now = midnight + timedelta(microseconds=offset_us)

    # ------------------------------------------------------------------ checks

    @invariant()
    def stored_pots_match_the_model_and_the_ledger(self) -> None:
        async def read() -> tuple[dict[tuple[int, int], Pots], list[tuple[int, int]], list[Any]]:
            rows = await self.db.fetchall("SELECT * FROM accounts")
            stored = {
                (row["guild_id"], row["user_id"]): Pots(
                    row["allowance"], row["granted"], row["held"], row["allowance_day"]
                )
                for row in rows
            }
            duplicates = await self.db.fetchall(
                "SELECT idempotency_key, COUNT(*) FROM ledger GROUP BY idempotency_key HAVING COUNT(*) > 1"
            )
            return stored, await self.ledger.mismatches(), [tuple(row) for row in duplicates]

        stored, mismatches, duplicates = self.run(read())
        assert mismatches == []
        assert duplicates == []
        for (guild_id, user_id), pots in stored.items():
            assert pots.allowance >= 0 and pots.granted >= 0 and pots.held >= 0
            assert pots.allowance <= DAILY[guild_id]
            open_held = sum(
                hold.amount for hold in self.open_holds.values() if (hold.guild_id, hold.user_id) == (guild_id, user_id)
            )
            assert pots.held == open_held
        assert stored == self.accounts


def test_random_credit_movements_keep_the_pots_equal_to_the_ledger_and_the_model() -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --------------------------------------------------------------------------- a latent defect


NOW = START


async def _hold(db: Database, ledger: LedgerRepo, job: str, amount: int) -> None:
    async with db.transaction() as conn:
        await ledger.hold(conn, guild_id=1, user_id=7, amount=amount, job_id=job, daily=20, now=NOW)


async def _settle(db: Database, ledger: LedgerRepo, job: str, capture: int) -> int:
    async with db.transaction() as conn:
        return await ledger.settle(conn, job_id=job, capture=capture, now=NOW)


async def _pots(ledger: LedgerRepo) -> tuple[int, int, int]:
    balance = await ledger.balance(1, 7)
    assert balance is not None
    return balance.allowance, balance.granted, balance.held


async def test_a_second_settle_with_a_different_capture_moves_nothing(db: Database, ledger: LedgerRepo) -> None:
    await _hold(db, ledger, "a", 8)
    await _hold(db, ledger, "b", 8)
    assert await _settle(db, ledger, "a", 8) == 8  # fully captured: no release row
    assert await _pots(ledger) == (4, 0, 8)
    assert await _settle(db, ledger, "a", 0) == 8  # the first settlement stands
    # Job a was paid for and job b still holds 8: nothing may change.
    assert await _pots(ledger) == (4, 0, 8)


async def test_a_capture_after_a_full_release_moves_nothing(db: Database, ledger: LedgerRepo) -> None:
    await _hold(db, ledger, "a", 8)
    await _hold(db, ledger, "b", 8)
    assert await _settle(db, ledger, "a", 0) == 0  # fully released: no capture row
    assert await _pots(ledger) == (12, 0, 8)
    assert await _settle(db, ledger, "a", 8) == 0  # the first settlement stands
    assert await _pots(ledger) == (12, 0, 8)
    # Job b's hold must still be settleable in full.
    assert await _settle(db, ledger, "b", 8) == 8
    assert await _pots(ledger) == (12, 0, 0)
    assert await ledger.mismatches() == []
