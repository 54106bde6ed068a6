"""The layering of STYLE.md: the engine never imports discord, cogs never hold SQL, vendor JSON stays in providers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (ROOT / folder).rglob("*.py")]


@pytest.mark.parametrize("path", files("bot/core", "bot/jobs", "bot/providers", "storage"), ids=str)
def test_no_discord_below_the_front_end(path: Path) -> None:
    assert not {name for name in imports(path) if name.split(".")[0] == "discord"}


@pytest.mark.parametrize("path", files("bot/core"), ids=str)
def test_core_has_no_io_libraries(path: Path) -> None:
    assert not {name for name in imports(path) if name.split(".")[0] in {"aiohttp", "aiosqlite", "sqlite3", "storage"}}


@pytest.mark.parametrize("path", files("bot", "cogs"), ids=str)
def test_sql_lives_only_in_storage(path: Path) -> None:
    assert not {name for name in imports(path) if name.split(".")[0] in {"aiosqlite", "sqlite3"}}


@pytest.mark.parametrize("path", files("bot/jobs", "bot/core", "cogs"), ids=str)
def test_vendor_adapters_are_reached_only_through_the_protocol(path: Path) -> None:
    vendors = {"bot.providers.segmind", "bot.providers.replicate", "bot.providers.eachlabs", "bot.providers.onemin"}
    assert not imports(path) & vendors


def test_settings_is_the_only_reader_of_the_environment() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in files("bot", "cogs", "storage")
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize("path", files("emulators"), ids=str)
def test_emulators_import_nothing_from_the_product(path: Path) -> None:
    # An emulator that shared the product's tables (sizes, slugs) could never catch a mistake in them.
    assert not {name for name in imports(path) if name.split(".")[0] in {"bot", "cogs", "storage"}}


@pytest.mark.parametrize("path", [p for p in files("bot", "cogs", "storage") if p.name != "__main__.py"], ids=str)
def test_product_code_never_imports_the_emulators(path: Path) -> None:
    # Only the command line's `emulate` reaches them, so the Docker image (which leaves them out) still runs.
    assert not {name for name in imports(path) if name.split(".")[0] == "emulators"}


@pytest.mark.parametrize("path", files("bot/ui", "cogs"), ids=str)
def test_the_front_end_never_reaches_for_the_composition_root(path: Path) -> None:
    # Counting imports made only for type checking: cogs get their services through `Services.of(bot)`.
    assert not imports(path) & {"bot.app", "bot.client"}
