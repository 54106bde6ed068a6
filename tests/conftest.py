from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "fluxcord.db")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def ledger(db: Database) -> LedgerRepo:
    return LedgerRepo(db)


@pytest.fixture
def jobs(db: Database, ledger: LedgerRepo) -> JobRepo:
    return JobRepo(db, ledger)


def make_png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small real PNG with a gradient, so normalization has something to keep."""
    image = Image.new("RGB", (width, height), color)
    for x in range(width):
        image.putpixel((x, height // 2), (x * 255 // max(1, width - 1), 80, 160))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
