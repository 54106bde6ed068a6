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
        # The operator's daily cap sums today's jobs across every server inside the submit transaction: covering,
        # so the sum reads the index alone.
        "CREATE INDEX jobs_created ON jobs (created_at, state, cost, charged)",
    ),
    (
        # A member's own defaults on one server; NULL means the command's default.
        """CREATE TABLE member_defaults (
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            model TEXT,
            count INTEGER,
            aspect_ratio TEXT,
            output_format TEXT,
            megapixels TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        ) WITHOUT ROWID""",
        # A server's named option sets and prompt templates.
        """CREATE TABLE presets (
            guild_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            template TEXT,
            options TEXT NOT NULL,
            actor_id INTEGER,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (guild_id, name)
        ) WITHOUT ROWID""",
        """CREATE TABLE prompt_blocklist (
            guild_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('word', 'regex')),
            pattern TEXT NOT NULL,
            actor_id INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (guild_id, kind, pattern)
        ) WITHOUT ROWID""",
        """CREATE TABLE showcases (
            guild_id INTEGER PRIMARY KEY,
            channel_id INTEGER NOT NULL,
            stars INTEGER CHECK (stars >= 1),
            updated_at TEXT NOT NULL
        )""",
        # One row per job ever showcased: claimed before the post is made, so it is made once.
        """CREATE TABLE showcase_posts (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id),
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER,
            actor_id INTEGER,
            claimed_at TEXT NOT NULL,
            posted_at TEXT
        )""",
        """CREATE TABLE showcase_votes (
            job_id TEXT NOT NULL REFERENCES jobs (id),
            user_id INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (job_id, user_id)
        ) WITHOUT ROWID""",
        # Messages other than the job's own result that show it with its buttons (`/show`, the showcase).
        """CREATE TABLE job_posts (
            message_id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id),
            channel_id INTEGER NOT NULL,
            actor_id INTEGER,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX job_posts_job ON job_posts (job_id)",
        # `/history`: a member's results, newest first.
        "CREATE INDEX jobs_results ON jobs (guild_id, user_id, state, created_at)",
    ),
    (
        # The largest upload the job's channel accepts, as its interaction reported it (boosts raise it).
        "ALTER TABLE jobs ADD COLUMN upload_limit INTEGER",
    ),
    (
        # A moderator's refund of what a job was charged is a ledger kind of its own. SQLite cannot change a CHECK
        # constraint, so the ledger is rebuilt as SQLite documents (its rows copied unchanged, then its indexes and
        # the append-only triggers made again); dropping a table fires no DELETE trigger.
        """CREATE TABLE ledger_new (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN
                ('refill', 'grant', 'revoke', 'hold', 'capture', 'release', 'refund')),
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
        """INSERT INTO ledger_new (id, guild_id, user_id, kind, amount, d_allowance, d_granted, d_held, job_id,
                                   actor_id, reason, idempotency_key, created_at)
           SELECT id, guild_id, user_id, kind, amount, d_allowance, d_granted, d_held, job_id,
                  actor_id, reason, idempotency_key, created_at FROM ledger""",
        "DROP TABLE ledger",
        "ALTER TABLE ledger_new RENAME TO ledger",
        "CREATE INDEX ledger_account ON ledger (guild_id, user_id, id)",
        "CREATE INDEX ledger_job ON ledger (job_id)",
        """CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
           BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
        """CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
           BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
        # Whether the job's images are posted as spoilers, decided when it is submitted (channel or role policy).
        "ALTER TABLE jobs ADD COLUMN spoiler INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE spoiler_targets (
            guild_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('channel', 'role')),
            target_id INTEGER NOT NULL,
            PRIMARY KEY (guild_id, kind, target_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE modlog_channels (
            guild_id INTEGER PRIMARY KEY,
            channel_id INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # One entry per job: claimed before the job's outcome is shown, posted after it.
        """CREATE TABLE modlog_entries (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id),
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER,
            claimed_at TEXT NOT NULL,
            posted_at TEXT
        )""",
        "CREATE INDEX modlog_unposted ON modlog_entries (claimed_at) WHERE posted_at IS NULL",
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
    first = current
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
        log.debug("database migrated to schema version %d", version)
    if 0 < first < len(MIGRATIONS):  # a new database is not news; an upgrade is
        log.info("database upgraded from schema version %d to %d", first, len(MIGRATIONS))
    return len(MIGRATIONS)
