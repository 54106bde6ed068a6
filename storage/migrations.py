"""Schema migrations, tracked by `PRAGMA user_version`: append new entries, never edit a shipped one."""

from __future__ import annotations

import logging

import aiosqlite

from bot.core.errors import StorageError

log = logging.getLogger(__name__)

# Each migration is a tuple of statements, run with its version bump in one transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE accounts (
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            allowance INTEGER NOT NULL DEFAULT 0 CHECK (allowance >= 0),
            allowance_day TEXT NOT NULL DEFAULT '',
            granted INTEGER NOT NULL DEFAULT 0 CHECK (granted >= 0),
            held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
            created_at TEXT NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('refill', 'grant', 'revoke', 'hold', 'capture', 'release')),
            amount INTEGER NOT NULL CHECK (amount >= 0),
            d_allowance INTEGER NOT NULL DEFAULT 0,
            d_granted INTEGER NOT NULL DEFAULT 0,
            d_held INTEGER NOT NULL DEFAULT 0,
            job_id TEXT,
            actor_id INTEGER,
            reason TEXT,
            idempotency_key TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX ledger_account ON ledger (guild_id, user_id, id)",
        "CREATE INDEX ledger_job ON ledger (job_id)",
        """CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
           BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
        """CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
           BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
        """CREATE TABLE images (
            sha256 TEXT PRIMARY KEY,
            data BLOB NOT NULL,
            mime TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            channel_id INTEGER,
            message_id INTEGER,
            origin TEXT NOT NULL,
            parent_job_id TEXT,
            parent_index INTEGER,
            model TEXT NOT NULL,
            spec TEXT NOT NULL,
            input_sha256 TEXT REFERENCES images (sha256),
            state TEXT NOT NULL CHECK (state IN
                ('queued', 'submitted', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
            provider TEXT,
            provider_job_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            cost INTEGER NOT NULL CHECK (cost >= 0),
            charged INTEGER,
            delivered INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            created_at TEXT NOT NULL,
            submitted_at TEXT,
            started_at TEXT,
            finished_at TEXT,
            updated_at TEXT NOT NULL,
            inference_ms INTEGER,
            provider_ms INTEGER
        )""",
        "CREATE INDEX jobs_state ON jobs (state)",
        "CREATE INDEX jobs_member ON jobs (guild_id, user_id, created_at)",
        "CREATE INDEX jobs_timing ON jobs (provider, model, finished_at)",
        """CREATE TABLE job_outputs (
            job_id TEXT NOT NULL REFERENCES jobs (id),
            idx INTEGER NOT NULL,
            data BLOB NOT NULL,
            format TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            PRIMARY KEY (job_id, idx)
        )""",
    ),
    (
        # Small facts the process keeps between runs, e.g. the hash of the last synced command set.
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)",
    ),
    (
        # Server administration: each column NULL means "the operator's default".
        """CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY,
            allowance INTEGER CHECK (allowance >= 0),
            budget INTEGER CHECK (budget >= 0),
            jobs_per_minute INTEGER CHECK (jobs_per_minute >= 1),
            max_active INTEGER CHECK (max_active >= 1),
            max_queued INTEGER CHECK (max_queued >= 0),
            nsfw_allowed INTEGER NOT NULL DEFAULT 0,
            provider TEXT,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE guild_channels (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            PRIMARY KEY (guild_id, channel_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE role_bonuses (
            guild_id INTEGER NOT NULL,
            role_id INTEGER NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            PRIMARY KEY (guild_id, role_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE blocked_members (
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            actor_id INTEGER,
            reason TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX jobs_guild_day ON jobs (guild_id, created_at)",
        "ALTER TABLE jobs ADD COLUMN preferred_provider TEXT",
    ),
    (
        # What an adapter needs to find a job again after a restart (JSON), e.g. the URLs its submit answer gave.
        "ALTER TABLE jobs ADD COLUMN provider_handle TEXT",
        # Set before a submit is sent and cleared once its outcome is recorded: non-NULL on a queued job after
        # a restart means a provider may have accepted (and may bill) a job nobody knows the id of.
        "ALTER TABLE jobs ADD COLUMN submitting_to TEXT",
    ),
)


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply pending migrations; refuse a database written by newer code. Returns the version."""
    current = await schema_version(conn)
    if current > len(MIGRATIONS):
        raise StorageError(
            f"The database is at schema version {current}, newer than this Fluxcord ({len(MIGRATIONS)}); "
            "upgrade Fluxcord or use another database file."
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if await schema_version(conn) >= version:  # another process got here first
                await conn.execute("ROLLBACK")
                continue
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        log.info("database migrated to schema version %d", version)
    return len(MIGRATIONS)
