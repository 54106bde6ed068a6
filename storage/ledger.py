"""Credits: two pots per (server, member) and an append-only ledger that always sums to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.core.credits import Balance, insufficient_message
from bot.core.errors import InsufficientCreditsError, StorageError
from storage.db import Conn, Database, fetchone


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One movement of credits."""

    id: int
    kind: str
    amount: int
    d_allowance: int
    d_granted: int
    d_held: int
    job_id: str | None
    actor_id: int | None
    reason: str | None
    created_at: str


def _balance(row: aiosqlite.Row) -> Balance:
    return Balance(
        allowance=row["allowance"],
        granted=row["granted"],
        held=row["held"],
        allowance_day=row["allowance_day"],
    )


class LedgerRepo:
    """Every change of credits: one ledger row and the matching account update in the same transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _apply(
        self,
        conn: Conn,
        *,
        guild_id: int,
        user_id: int,
        kind: str,
        amount: int,
        d_allowance: int = 0,
        d_granted: int = 0,
        d_held: int = 0,
        key: str,
        now: datetime,
        job_id: str | None = None,
        actor_id: int | None = None,
        reason: str | None = None,
    ) -> bool:
        """Append the row and move the pots; False (and nothing moved) if `key` was applied before."""
        async with conn.execute(
            """INSERT INTO ledger (guild_id, user_id, kind, amount, d_allowance, d_granted, d_held,
                                   job_id, actor_id, reason, idempotency_key, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING id""",
            (
                guild_id,
                user_id,
                kind,
                amount,
                d_allowance,
                d_granted,
                d_held,
                job_id,
                actor_id,
                reason,
                key,
                now.isoformat(),
            ),
        ) as cursor:
            if await cursor.fetchone() is None:
                return False
        # The WHERE clause is the overdraft backstop; CHECK constraints are the last line.
        async with conn.execute(
            """UPDATE accounts SET allowance = allowance + ?, granted = granted + ?, held = held + ?
               WHERE guild_id = ? AND user_id = ?
                 AND allowance + ? >= 0 AND granted + ? >= 0 AND held + ? >= 0
               RETURNING 1""",
            (d_allowance, d_granted, d_held, guild_id, user_id, d_allowance, d_granted, d_held),
        ) as cursor:
            if await cursor.fetchone() is None:
                raise StorageError(f"ledger movement {key} would overdraw account {guild_id}/{user_id}")
        return True

    async def open_account(self, conn: Conn, *, guild_id: int, user_id: int, daily: int, now: datetime) -> Balance:
        """The member's pots, creating the account and topping up today's allowance where due."""
        today = now.date().isoformat()
        await conn.execute(
            "INSERT INTO accounts (guild_id, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (guild_id, user_id, now.isoformat()),
        )
        row = await fetchone(conn, "SELECT * FROM accounts WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        assert row is not None
        if row["allowance_day"] != today:
            # The allowance does not accumulate: it is set to the day's amount, not increased by it.
            await self._apply(
                conn,
                guild_id=guild_id,
                user_id=user_id,
                kind="refill",
                amount=daily,
                d_allowance=daily - row["allowance"],
                key=f"refill:{guild_id}:{user_id}:{today}",
                now=now,
                reason=f"daily allowance for {today}",
            )
            await conn.execute(
                "UPDATE accounts SET allowance_day = ? WHERE guild_id = ? AND user_id = ?",
                (today, guild_id, user_id),
            )
            row = await fetchone(conn, "SELECT * FROM accounts WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
            assert row is not None
        return _balance(row)

    async def hold(
        self, conn: Conn, *, guild_id: int, user_id: int, amount: int, job_id: str, daily: int, now: datetime
    ) -> Balance:
        """Set `amount` aside for a job, taking today's allowance first; refuses rather than overdraws."""
        balance = await self.open_account(conn, guild_id=guild_id, user_id=user_id, daily=daily, now=now)
        if amount == 0:
            return balance
        if balance.spendable < amount:
            raise InsufficientCreditsError(
                insufficient_message(balance.spendable, amount, now), spendable=balance.spendable, cost=amount
            )
        from_allowance = min(balance.allowance, amount)
        await self._apply(
            conn,
            guild_id=guild_id,
            user_id=user_id,
            kind="hold",
            amount=amount,
            d_allowance=-from_allowance,
            d_granted=-(amount - from_allowance),
            d_held=amount,
            key=f"hold:{job_id}",
            now=now,
            job_id=job_id,
        )
        return Balance(
            allowance=balance.allowance - from_allowance,
            granted=balance.granted - (amount - from_allowance),
            held=balance.held + amount,
            allowance_day=balance.allowance_day,
        )

    async def settle(self, conn: Conn, *, job_id: str, capture: int, now: datetime) -> int:
        """Capture `capture` credits of the job's hold and release the rest, once. Returns what was captured."""
        hold = await fetchone(conn, "SELECT * FROM ledger WHERE idempotency_key = ?", (f"hold:{job_id}",))
        if hold is None:
            return 0
        settled = await fetchone(
            conn,
            "SELECT COALESCE(SUM(CASE WHEN kind = 'capture' THEN amount END), 0), COUNT(*) FROM ledger"
            " WHERE job_id = ? AND kind IN ('capture', 'release')",
            (job_id,),
        )
        if settled is not None and settled[1]:  # settled before: whatever was decided then stands
            return int(settled[0])
        guild_id, user_id, held = hold["guild_id"], hold["user_id"], hold["amount"]
        capture = max(0, min(capture, held))
        release = held - capture
        if capture:
            await self._apply(
                conn,
                guild_id=guild_id,
                user_id=user_id,
                kind="capture",
                amount=capture,
                d_held=-capture,
                key=f"capture:{job_id}",
                now=now,
                job_id=job_id,
            )
        if release:
            # Credits go back to the pot they were last taken from: granted first, then allowance;
            # allowance from a day that has since been reset is not given back (it would accumulate).
            to_granted = min(release, -hold["d_granted"])
            to_allowance = release - to_granted
            account = await fetchone(
                conn,
                "SELECT allowance_day FROM accounts WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            )
            hold_day = hold["created_at"][:10]
            reason = None
            if to_allowance and (account is None or account["allowance_day"] != hold_day):
                reason = f"{to_allowance} of the allowance of {hold_day} lapsed at the daily reset"
                to_allowance = 0
            await self._apply(
                conn,
                guild_id=guild_id,
                user_id=user_id,
                kind="release",
                amount=release,
                d_allowance=to_allowance,
                d_granted=to_granted,
                d_held=-release,
                key=f"release:{job_id}",
                now=now,
                job_id=job_id,
                reason=reason,
            )
        return capture

    async def grant(
        self,
        *,
        guild_id: int,
        user_id: int,
        amount: int,
        daily: int,
        now: datetime,
        key: str,
        actor_id: int | None = None,
        reason: str | None = None,
    ) -> Balance:
        """Add to the granted balance (negative `amount` revokes, never below zero)."""
        async with self.db.transaction() as conn:
            balance = await self.open_account(conn, guild_id=guild_id, user_id=user_id, daily=daily, now=now)
            delta = amount if amount >= 0 else -min(-amount, balance.granted)
            await self._apply(
                conn,
                guild_id=guild_id,
                user_id=user_id,
                kind="grant" if amount >= 0 else "revoke",
                amount=abs(delta),
                d_granted=delta,
                key=key,
                now=now,
                actor_id=actor_id,
                reason=reason,
            )
            return await self.open_account(conn, guild_id=guild_id, user_id=user_id, daily=daily, now=now)

    async def refund(
        self, *, job_id: str, actor_id: int | None, now: datetime, reason: str | None = None
    ) -> tuple[int, bool]:
        """Give back what a job was charged (its captures), once, as granted credits so nothing lapses at a reset.

        Returns (credits, refunded now): a second call moves nothing and returns the first refund's amount.
        """
        async with self.db.transaction() as conn:
            earlier = await fetchone(conn, "SELECT amount FROM ledger WHERE idempotency_key = ?", (f"refund:{job_id}",))
            if earlier is not None:
                return int(earlier["amount"]), False
            captured = await fetchone(
                conn,
                "SELECT guild_id, user_id, SUM(amount) AS amount FROM ledger WHERE job_id = ? AND kind = 'capture'",
                (job_id,),
            )
            if captured is None or not captured["amount"]:
                return 0, False
            await self._apply(
                conn,
                guild_id=captured["guild_id"],
                user_id=captured["user_id"],
                kind="refund",
                amount=captured["amount"],
                d_granted=captured["amount"],
                key=f"refund:{job_id}",
                now=now,
                job_id=job_id,
                actor_id=actor_id,
                reason=reason,
            )
            return int(captured["amount"]), True

    async def balance(self, guild_id: int, user_id: int) -> Balance | None:
        row = await self.db.fetchone("SELECT * FROM accounts WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        return _balance(row) if row else None

    async def entries(self, guild_id: int, user_id: int, *, limit: int = 20) -> list[LedgerEntry]:
        rows = await self.db.fetchall(
            """SELECT id, kind, amount, d_allowance, d_granted, d_held, job_id, actor_id, reason, created_at
               FROM ledger WHERE guild_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?""",
            (guild_id, user_id, limit),
        )
        return [LedgerEntry(**dict(row)) for row in rows]

    async def spent_since(self, guild_id: int, user_id: int, since: datetime) -> int:
        """Credits captured (actually charged) since `since`, less what moderators refunded since."""
        row = await self.db.fetchone(
            """SELECT COALESCE(SUM(CASE kind WHEN 'capture' THEN amount ELSE -amount END), 0) FROM ledger
               WHERE guild_id = ? AND user_id = ? AND kind IN ('capture', 'refund') AND created_at >= ?""",
            (guild_id, user_id, since.isoformat()),
        )
        return max(0, int(row[0])) if row else 0

    async def mismatches(self) -> list[tuple[int, int]]:
        """Accounts whose pots differ from the sum of their ledger rows (always empty, or it is a bug)."""
        rows = await self.db.fetchall(
            """SELECT a.guild_id, a.user_id FROM accounts a
               LEFT JOIN (SELECT guild_id, user_id, SUM(d_allowance) sa, SUM(d_granted) sg, SUM(d_held) sh
                          FROM ledger GROUP BY guild_id, user_id) l
                 ON l.guild_id = a.guild_id AND l.user_id = a.user_id
               WHERE a.allowance != COALESCE(l.sa, 0) OR a.granted != COALESCE(l.sg, 0)
                  OR a.held != COALESCE(l.sh, 0)"""
        )
        return [(row[0], row[1]) for row in rows]
