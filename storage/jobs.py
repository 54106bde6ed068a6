"""Jobs: creation with its hold, compare-and-set transitions, outputs, and the timings polling learns from."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

import aiosqlite

from bot.core.images import NormalizedImage
from bot.core.jobs import Job, JobState, StoredOutput, new_job_id
from bot.core.limits import WINDOW, OperatorGuard, Policy, Usage, check_operator, check_usage
from bot.core.requests import GenerationSpec
from storage.db import Conn, Database, fetchone
from storage.ledger import LedgerRepo


@dataclass(frozen=True, slots=True)
class NewJob:
    """Everything needed to create a job row."""

    request_id: str
    guild_id: int
    user_id: int
    spec: GenerationSpec
    cost: int
    channel_id: int | None = None
    origin: str = "command"
    input_image: NormalizedImage | None = None
    input_sha256: str | None = None
    parent_job_id: str | None = None
    parent_index: int | None = None
    preferred_provider: str | None = None
    upload_limit: int | None = None
    spoiler: bool = False


def _midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(0, tzinfo=UTC))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _job(row: aiosqlite.Row) -> Job:
    created = _dt(row["created_at"])
    assert created is not None
    return Job(
        id=row["id"],
        request_id=row["request_id"],
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        channel_id=row["channel_id"],
        message_id=row["message_id"],
        origin=row["origin"],
        parent_job_id=row["parent_job_id"],
        parent_index=row["parent_index"],
        spec=GenerationSpec.model_validate_json(row["spec"]),
        input_sha256=row["input_sha256"],
        state=JobState(row["state"]),
        provider=row["provider"],
        provider_job_id=row["provider_job_id"],
        attempts=row["attempts"],
        cost=row["cost"],
        charged=row["charged"],
        delivered=bool(row["delivered"]),
        error=row["error"],
        created_at=created,
        submitted_at=_dt(row["submitted_at"]),
        started_at=_dt(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        inference_ms=row["inference_ms"],
        preferred_provider=row["preferred_provider"],
        upload_limit=row["upload_limit"],
        spoiler=bool(row["spoiler"]),
        provider_handle=_handle(row["provider_handle"]),
        submitting_to=row["submitting_to"],
    )


def _handle(value: str | None) -> dict[str, str]:
    try:
        loaded = json.loads(value) if value else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


class JobRepo:
    """All SQL about jobs. Transitions are compare-and-set: they name the states they may leave."""

    def __init__(self, db: Database, ledger: LedgerRepo, guard: OperatorGuard | None = None) -> None:
        self.db = db
        self.ledger = ledger
        self.guard = guard or OperatorGuard()

    async def create(self, new: NewJob, *, policy: Policy, now: datetime) -> tuple[Job, bool]:
        """Check the limits, hold the cost and insert the job — one transaction, keyed by `request_id`.

        Returns (job, created); a repeated request id returns the existing job and holds nothing.
        """
        async with self.db.transaction() as conn:
            existing = await fetchone(conn, "SELECT * FROM jobs WHERE request_id = ?", (new.request_id,))
            if existing is not None:
                return _job(existing), False
            check_usage(policy, await self._usage(conn, new.guild_id, new.user_id, now), cost=new.cost, now=now)
            counted = self.guard.daily_cap is not None and new.cost > 0
            check_operator(
                self.guard,
                guild_id=new.guild_id,
                spent_everywhere=await self._spent_since(conn, _midnight(now)) if counted else 0,
                cost=new.cost,
                now=now,
            )
            job_id = new_job_id()
            await self.ledger.hold(
                conn,
                guild_id=new.guild_id,
                user_id=new.user_id,
                amount=new.cost,
                job_id=job_id,
                daily=policy.daily_allowance,
                now=now,
            )
            sha = new.input_sha256
            if new.input_image is not None:
                sha = new.input_image.sha256
                await conn.execute(
                    """INSERT INTO images (sha256, data, mime, width, height, created_at)
                       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                    (
                        sha,
                        new.input_image.data,
                        new.input_image.mime,
                        new.input_image.width,
                        new.input_image.height,
                        now.isoformat(),
                    ),
                )
            stamp = now.isoformat()
            await conn.execute(
                """INSERT INTO jobs (id, request_id, guild_id, user_id, channel_id, origin, parent_job_id,
                                     parent_index, model, spec, input_sha256, state, cost, preferred_provider,
                                     upload_limit, spoiler, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)""",
                (
                    job_id,
                    new.request_id,
                    new.guild_id,
                    new.user_id,
                    new.channel_id,
                    new.origin,
                    new.parent_job_id,
                    new.parent_index,
                    new.spec.model.value,
                    new.spec.model_dump_json(),
                    sha,
                    new.cost,
                    new.preferred_provider,
                    new.upload_limit,
                    int(new.spoiler),
                    stamp,
                    stamp,
                ),
            )
            row = await fetchone(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            assert row is not None
            return _job(row), True

    async def _usage(self, conn: Conn, guild_id: int, user_id: int, now: datetime) -> Usage:
        recent = await conn.execute_fetchall(
            """SELECT created_at FROM jobs WHERE guild_id = ? AND user_id = ? AND created_at > ?
               ORDER BY created_at""",
            (guild_id, user_id, (now - WINDOW).isoformat()),
        )
        queued = await fetchone(
            conn,
            "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND user_id = ? AND state = 'queued'",
            (guild_id, user_id),
        )
        return Usage(
            recent=tuple(datetime.fromisoformat(row[0]) for row in recent),
            queued=int(queued[0]) if queued else 0,
            server_spent_today=await self._spent_since(conn, _midnight(now), guild_id=guild_id),
        )

    async def _spent_since(self, conn: Conn, since: datetime, *, guild_id: int | None = None) -> int:
        """Credits captured plus still held by jobs created since `since`, in one server or in all of them."""
        where = "created_at >= ?" + (" AND guild_id = ?" if guild_id is not None else "")
        row = await fetchone(
            conn,
            f"""SELECT COALESCE(SUM(CASE WHEN state = 'succeeded' THEN charged
                                         WHEN state IN ('queued', 'submitted', 'running') THEN cost
                                         ELSE 0 END), 0)
                FROM jobs WHERE {where}""",
            (since.isoformat(), *([guild_id] if guild_id is not None else [])),
        )
        return int(row[0]) if row else 0

    async def usage(self, guild_id: int, user_id: int, now: datetime) -> Usage:
        """The same counts the submit transaction checks, read without a transaction (a cheap pre-check)."""
        async with self.db.reading() as conn:
            return await self._usage(conn, guild_id, user_id, now)

    async def get(self, job_id: str) -> Job | None:
        row = await self.db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row else None

    async def by_request(self, request_id: str) -> Job | None:
        row = await self.db.fetchone("SELECT * FROM jobs WHERE request_id = ?", (request_id,))
        return _job(row) if row else None

    async def input_image(self, sha256: str) -> bytes | None:
        row = await self.db.fetchone("SELECT data FROM images WHERE sha256 = ?", (sha256,))
        return bytes(row["data"]) if row else None

    async def _cas(
        self, conn: Conn, job_id: str, allowed: Iterable[JobState], now: datetime, fields: dict[str, Any]
    ) -> bool:
        states = [state.value for state in allowed]
        fields = {**fields, "updated_at": now.isoformat()}
        assignments = ", ".join(f"{name} = ?" for name in fields)
        marks = ", ".join("?" for _ in states)
        cursor = await conn.execute(
            f"UPDATE jobs SET {assignments} WHERE id = ? AND state IN ({marks})",
            (*fields.values(), job_id, *states),
        )
        return cursor.rowcount == 1

    async def transition(
        self, job_id: str, allowed: Iterable[JobState], to: JobState, *, now: datetime, **fields: Any
    ) -> bool:
        """Move a non-terminal job from one of `allowed` to `to`; False if it was not in one of them."""
        async with self.db.transaction() as conn:
            return await self._cas(conn, job_id, allowed, now, {"state": to.value, **fields})

    async def update(self, job_id: str, allowed: Iterable[JobState], *, now: datetime, **fields: Any) -> bool:
        """Change fields of a job still in one of `allowed` without changing its state."""
        async with self.db.transaction() as conn:
            return await self._cas(conn, job_id, allowed, now, fields)

    async def finish(
        self,
        job_id: str,
        allowed: Iterable[JobState],
        to: JobState,
        *,
        now: datetime,
        outputs: Iterable[StoredOutput] = (),
        error: str | None = None,
        inference_ms: int | None = None,
        provider_ms: int | None = None,
        spec: GenerationSpec | None = None,
    ) -> bool:
        """Enter a terminal state, store the outputs and settle the hold — all or nothing, once.

        `spec` replaces the stored one (a provider reported the seed it really used).
        """
        outputs = list(outputs)
        async with self.db.transaction() as conn:
            row = await fetchone(conn, "SELECT cost, spec FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            count = GenerationSpec.model_validate_json(row["spec"]).count
            capture = row["cost"] // count * len(outputs) if to is JobState.SUCCEEDED else 0
            fields: dict[str, Any] = {
                "state": to.value,
                "finished_at": now.isoformat(),
                "error": error,
                "charged": capture,
            }
            if inference_ms is not None:
                fields["inference_ms"] = inference_ms
            if provider_ms is not None:
                fields["provider_ms"] = provider_ms
            if spec is not None:
                fields["spec"] = spec.model_dump_json()
            if not await self._cas(conn, job_id, allowed, now, fields):
                return False
            await conn.executemany(
                "INSERT INTO job_outputs (job_id, idx, data, format, width, height) VALUES (?, ?, ?, ?, ?, ?)",
                [(job_id, out.index, out.data, out.format, out.width, out.height) for out in outputs],
            )
            await self.ledger.settle(conn, job_id=job_id, capture=capture, now=now)
            return True

    async def set_message(self, job_id: str, message_id: int, *, now: datetime) -> None:
        """Remember the channel message that shows the job, unless its result was already recorded."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE jobs SET message_id = ?, updated_at = ? WHERE id = ? AND delivered = 0",
                (message_id, now.isoformat(), job_id),
            )

    async def active_for_member(self, guild_id: int, user_id: int, *, limit: int = 100) -> list[Job]:
        rows = await self.db.fetchall(
            """SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? AND state IN ('queued', 'submitted', 'running')
               ORDER BY created_at DESC LIMIT ?""",
            (guild_id, user_id, limit),
        )
        return [_job(row) for row in rows]

    async def mark_delivered(self, job_id: str, *, now: datetime, message_id: int | None = None) -> None:
        """The result is visible (in `message_id`, when there is a message)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE jobs SET delivered = 1, message_id = COALESCE(?, message_id), updated_at = ? WHERE id = ?",
                (message_id, now.isoformat(), job_id),
            )

    async def outputs(self, job_id: str) -> list[StoredOutput]:
        rows = await self.db.fetchall(
            "SELECT idx, data, format, width, height FROM job_outputs WHERE job_id = ? ORDER BY idx",
            (job_id,),
        )
        return [
            StoredOutput(
                index=r["idx"],
                data=bytes(r["data"]),
                format=r["format"],
                width=r["width"],
                height=r["height"],
            )
            for r in rows
        ]

    async def in_states(self, states: Iterable[JobState]) -> list[Job]:
        values = [state.value for state in states]
        marks = ", ".join("?" for _ in values)
        rows = await self.db.fetchall(
            f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created_at",
            values,
        )
        return [_job(row) for row in rows]

    async def undelivered(self) -> list[Job]:
        rows = await self.db.fetchall(
            "SELECT * FROM jobs WHERE delivered = 0 AND state IN ('succeeded', 'failed', 'cancelled', 'expired')"
            " ORDER BY finished_at"
        )
        return [_job(row) for row in rows]

    async def recent_durations(
        self, *, provider: str, model: str, megapixels: str | None = None, limit: int = 200
    ) -> list[float]:
        """How long the latest succeeded jobs took at the provider, newest first (of one output size, if given).

        The provider's own queue + inference time where it reports one: the time this process saw
        includes its own polling delay, and learning from that would only ever push polls later.
        """
        size = "AND json_extract(spec, '$.megapixels') = ?" if megapixels is not None else ""
        rows = await self.db.fetchall(
            f"""SELECT submitted_at, finished_at, provider_ms FROM jobs
               WHERE provider = ? AND model = ? AND state = 'succeeded' AND submitted_at IS NOT NULL {size}
               ORDER BY finished_at DESC LIMIT ?""",
            (provider, model, *([megapixels] if megapixels is not None else []), limit),
        )
        return [
            r["provider_ms"] / 1000
            if r["provider_ms"] is not None
            else (datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["submitted_at"])).total_seconds()
            for r in rows
        ]

    async def recent_for_member(self, guild_id: int, user_id: int, *, limit: int = 10) -> list[Job]:
        rows = await self.db.fetchall(
            "SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? ORDER BY created_at DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [_job(row) for row in rows]
