"""A consistent copy of the live database with SQLite's online backup API, safe while the bot writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.core.errors import StorageError


@dataclass(frozen=True, slots=True)
class BackupResult:
    """Where the copy went, how big it is and the schema version it holds."""

    path: Path
    size: int
    schema_version: int


def backup_target(target: Path, *, now: datetime | None = None) -> Path:
    """`target` itself, or a dated file inside it when it is a folder."""
    if target.is_dir():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        return target / f"fluxcord-{stamp}.db"
    return target


def backup_database(source: Path, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy `source` to `target` (written beside it first, then renamed, so no half-written file is left)."""
    if not source.is_file():
        raise StorageError(f"There is no database at {source} to back up; check FLUXCORD_DATABASE.")
    target = backup_target(target)
    if target.exists() and target.resolve() == source.resolve():
        raise StorageError(f"{target} is the live database; give the backup another name.")
    if target.exists() and not overwrite:
        raise StorageError(f"{target} already exists; give another name, or add --force to replace it.")
    if not target.parent.is_dir():
        raise StorageError(f"The folder {target.parent} does not exist; create it or choose another path.")
    partial = target.with_name(f".{target.name}.partial")
    try:
        with (
            closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            # One step: the whole copy reads a single snapshot while WAL lets the bot keep writing. (Smaller
            # steps restart whenever the bot writes in between, and a busy bot could keep them going forever.)
            src.backup(dst)
            version = int(dst.execute("PRAGMA user_version").fetchone()[0])
            if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise StorageError(f"The copy of {source} failed its integrity check; try again.")
        os.replace(partial, target)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"Backing up {source} to {target} failed ({exc}); check both paths.") from exc
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(
            f"Cannot write the backup to {target} ({exc.strerror or exc}); choose a writable path."
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupResult(target, target.stat().st_size, version)


async def backup_database_async(source: Path, target: Path, *, overwrite: bool = False) -> BackupResult:
    """`backup_database` in a worker thread."""
    return await asyncio.to_thread(backup_database, source, target, overwrite=overwrite)
