"""What the operator's protections cost: the submit transaction with and without the daily cap, and a backup.

    python -m bench.operator [--quick]

The daily cap sums today's jobs across every server inside the hold's transaction; this measures that
transaction on a database already holding many of today's jobs. Results go to bench/results/operator.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.core.limits import UNLIMITED, OperatorGuard, Policy
from bot.core.requests import ImagineOptions
from storage.backup import backup_database
from storage.db import Database
from storage.jobs import JobRepo, NewJob
from storage.ledger import LedgerRepo

RESULTS = Path(__file__).parent / "results" / "operator.md"
SPEC = ImagineOptions.parse(prompt="a lighthouse").resolve()


async def fill(db: Database, count: int, now: datetime) -> None:
    """`count` jobs created today, spread over 50 servers, written directly (fast) with one ledger-free insert each."""
    rows = [
        (
            f"seed{n}",
            f"seed-req-{n}",
            n % 50,
            n,
            "command",
            SPEC.model.value,
            SPEC.model_dump_json(),
            2,
            now.isoformat(),
        )
        for n in range(count)
    ]
    async with db.transaction() as conn:
        await conn.executemany(
            """INSERT INTO jobs (id, request_id, guild_id, user_id, origin, model, spec, state, cost, charged,
                                 created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, 'succeeded', ?, 2, ?, ?9)""",
            rows,
        )


async def submit_latency(existing: int, cap: int | None, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        try:
            now = datetime.now(UTC)
            await fill(db, existing, now)
            jobs = JobRepo(db, LedgerRepo(db), OperatorGuard(daily_cap=cap))
            policy = Policy(daily_allowance=10**6, limits=UNLIMITED)
            timings = []
            for n in range(samples):
                order = NewJob(request_id=f"b{n}", guild_id=n % 50, user_id=10**6 + n, spec=SPEC, cost=2)
                started = time.perf_counter()
                await jobs.create(order, policy=policy, now=now)
                timings.append((time.perf_counter() - started) * 1000)
            return timings
        finally:
            await db.close()


async def backup_seconds(existing: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        try:
            await fill(db, existing, datetime.now(UTC))
        finally:
            await db.close()
        started = time.perf_counter()
        result = await asyncio.to_thread(backup_database, Path(folder) / "bench.db", Path(folder) / "copy.db")
        return time.perf_counter() - started, result.size


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


async def main(quick: bool) -> str:
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    samples = 100 if quick else 300
    lines = [
        f"Submit transaction (check limits, hold, insert) on SQLite {sqlite3.sqlite_version}, {samples} submits "
        f"per row, {'quick' if quick else 'full'} run. The machine is shared: compare rows, not absolute figures.",
        "",
        "| today's jobs already stored | daily cap | median ms | p95 ms |",
        "|---|---|---|---|",
    ]
    for existing in sizes:
        for cap in (None, 10**9):
            timings = await submit_latency(existing, cap, samples)
            label = "off" if cap is None else "on"
            lines.append(f"| {existing:,} | {label} | {statistics.median(timings):.2f} | {p95(timings):.2f} |")
    seconds, size = await backup_seconds(sizes[-1])
    lines += ["", f"`backup` of the database with {sizes[-1]:,} jobs ({size / 1e6:.1f} MB): {seconds:.2f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller databases, fewer samples")
    table = asyncio.run(main(parser.parse_args().quick))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    print(table)
