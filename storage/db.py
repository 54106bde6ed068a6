"""The SQLite database: one writer connection behind a lock, one reader, WAL, migrations at open."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiosqlite

from bot.core.errors import StorageError
from storage.migrations import MIGRATIONS, migrate

log = logging.getLogger(__name__)

Conn = aiosqlite.Connection
Params = Iterable[Any] | dict[str, Any]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


class Database:
    """Owns the connections. Writes go through `transaction()`; reads may use `fetchone`/`fetchall`."""

    def __init__(self, path: Path, writer: Conn, reader: Conn) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        """Open (creating if needed) the database file and bring its schema up to date."""
        if sqlite3.sqlite_version_info < (3, 35):
            raise StorageError(f"SQLite 3.35 or newer is needed (this one is {sqlite3.sqlite_version}).")
        path = Path(path)
        problem = await asyncio.to_thread(database_problem, path)
        if problem is not None:
            raise StorageError(problem)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(_cannot_open(path, exc)) from exc
        reader: Conn | None = None
        try:
            writer.row_factory = aiosqlite.Row
            for pragma in _PRAGMAS:
                await writer.execute(pragma)
            await migrate(writer)
            reader = await aiosqlite.connect(path, isolation_level=None)
            reader.row_factory = aiosqlite.Row
            for pragma in (*_PRAGMAS[1:], "PRAGMA query_only=ON"):
                await reader.execute(pragma)
        except BaseException as exc:
            if reader is not None:
                await reader.close()
            await writer.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(_cannot_open(path, exc)) from exc
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        async with self._lock:
            await self._reader.close()
            await self._writer.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """`BEGIN IMMEDIATE` … `COMMIT` on the writer, held against every other writer in this process."""
        async with self._lock:
            try:
                # Inside the try: a caller cancelled while BEGIN is on its way leaves it to run in the
                # connection's thread, and the rollback queued behind it must end that transaction.
                await self._writer.execute("BEGIN IMMEDIATE")
                yield self._writer
            except BaseException:
                await asyncio.shield(self._writer.rollback())  # a no-op when BEGIN itself failed
                raise
            else:
                await asyncio.shield(self._writer.execute("COMMIT"))

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Conn]:
        """The read connection, for code written against a connection (sees only committed data)."""
        yield self._reader

    # Each read runs and finishes in one call on the connection's thread: a cursor left open across an
    # await keeps SQLite's read snapshot pinned, and other reads interleaved with it would see old data.
    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        rows = await self._reader.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        return list(await self._reader.execute_fetchall(sql, params))


def database_problem(path: Path) -> str | None:
    """Why the database at `path` cannot be used, in one sentence with the fix, or None; changes nothing on disk."""
    where = f"FLUXCORD_DATABASE ({path})"
    if path.is_dir():
        return f"{where} is a folder; give a file name inside it, such as {path / 'fluxcord.db'}."
    if not path.exists():
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            return f"{where} cannot be created because {folder} is a file; choose another path."
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{where} cannot be created because {folder} is not writable; choose a writable folder."
        return None
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        return (
            f"{where} is not writable (the file and its folder must be, for the -wal and -shm files); "
            "fix the permissions or choose another path."
        )
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            return f"{where} is not a SQLite database; move it away or point FLUXCORD_DATABASE at another file."
        return _cannot_open(path, exc)
    if version > len(MIGRATIONS):
        return (
            f"{where} was written by a newer Fluxcord (schema version {version}, this one knows {len(MIGRATIONS)}); "
            "upgrade Fluxcord or restore a backup."
        )
    return None


def _cannot_open(path: Path, exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = text.rstrip(".") or type(exc).__name__
    return f"FLUXCORD_DATABASE ({path}) cannot be opened ({reason}); check the path and its permissions."


async def fetchone(conn: Conn, sql: str, params: Params = ()) -> aiosqlite.Row | None:
    """Read one row with `conn` (inside a transaction it sees the transaction's own writes)."""
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)
