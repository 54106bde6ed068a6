"""Every environment failure: one line on stderr, the documented exit code, no traceback, no hang."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.cli.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE
from emulators.discord.emulator import DiscordEmulator
from tests.cli.support import DEADLINE, ROOT, clean_env, free_port, run_bot

Setup = Callable[[Path], dict[str, str]]


def nothing(tmp: Path) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    needle: str
    setup: Setup = nothing
    env: dict[str, str] = field(default_factory=dict)


def a_file(tmp: Path) -> dict[str, str]:
    (tmp / "file").write_text("not a folder")
    return {}


def database(make: Callable[[Path], Path]) -> Setup:
    def setup(tmp: Path) -> dict[str, str]:
        return {"FLUXCORD_DATABASE": str(make(tmp))}

    return setup


def folder(tmp: Path) -> Path:
    (tmp / "db").mkdir()
    return tmp / "db"


def under_a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("x")
    return tmp / "file" / "fluxcord.db"


def junk(tmp: Path) -> Path:
    (tmp / "junk.db").write_bytes(b"this is not SQLite\n" * 300)
    return tmp / "junk.db"


def newer(tmp: Path) -> Path:
    path = tmp / "newer.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    return path


CLOSED = free_port()  # nothing listens here: connections are refused at once
KEYED = {"FLUXCORD_SEGMIND_API_KEY": "SG_key", "FLUXCORD_SEGMIND_BASE_URL": f"http://127.0.0.1:{CLOSED}"}
TOKEN = {"FLUXCORD_DISCORD_TOKEN": "a.b.c", **KEYED}
NO_DISCORD = {**TOKEN, "FLUXCORD_DISCORD_API_BASE": f"http://127.0.0.1:{CLOSED}/api/v10"}

CASES: dict[str, Case] = {
    "--out is a file": Case(("imagine", "hi", "--out", "file"), EXIT_USAGE, "--out file is a file", a_file, KEYED),
    "--out inside a file": Case(("imagine", "hi", "--out", "file/sub"), EXIT_USAGE, "--out file/sub", a_file, KEYED),
    "discord unreachable on run": Case(("run",), EXIT_UNREACHABLE, "Could not reach Discord at", env=NO_DISCORD),
    "discord unreachable on sync": Case(("sync",), EXIT_UNREACHABLE, "Could not reach Discord at", env=NO_DISCORD),
    "no token on run": Case(("run",), EXIT_CONFIG, "FLUXCORD_DISCORD_TOKEN", env=KEYED),
    "database is a folder": Case(("credits", "show", "1", "2"), EXIT_CONFIG, "is a folder", database(folder)),
    "database cannot be created": Case(
        ("credits", "show", "1", "2"), EXIT_CONFIG, "cannot be created", database(under_a_file)
    ),
    "database is not a database": Case(("credits", "show", "1", "2"), EXIT_CONFIG, "not a SQLite", database(junk)),
    "database from a newer version": Case(("run",), EXIT_CONFIG, "newer Fluxcord", database(newer), TOKEN),
    "emulate port out of range": Case(("emulate", "--port", "70000"), EXIT_USAGE, "between 1 and 65535"),
    "emulate --rpm 0": Case(("emulate", "--rpm", "0"), EXIT_USAGE, "--rpm"),
    "emulate --time-scale -1": Case(("emulate", "--time-scale", "-1"), EXIT_USAGE, "--time-scale"),
    "provider URL not a URL": Case(
        ("check",), EXIT_CONFIG, "FLUXCORD_SEGMIND_BASE_URL", env={**TOKEN, "FLUXCORD_SEGMIND_BASE_URL": "notaurl"}
    ),
    "provider URL without scheme": Case(
        ("imagine", "hi"), EXIT_CONFIG, "http://", env={**KEYED, "FLUXCORD_SEGMIND_BASE_URL": "api.segmind.com"}
    ),
    "provider URL ending in /v2": Case(
        ("imagine", "hi"), EXIT_CONFIG, "ends in /v2", env={**KEYED, "FLUXCORD_SEGMIND_BASE_URL": "http://h/v2"}
    ),
    "provider unreachable": Case(
        ("imagine", "hi"), EXIT_UNREACHABLE, f"127.0.0.1:{CLOSED} (connection refused)", env=KEYED
    ),
    "a setting that is not a number": Case(
        ("check",), EXIT_CONFIG, "FLUXCORD_DEV_GUILD_ID", env={**TOKEN, "FLUXCORD_DEV_GUILD_ID": "my server"}
    ),
    "an unknown option": Case(("imagine", "hi", "--sharpness", "3"), EXIT_USAGE, "--sharpness", env=KEYED),
}


def assert_one_sentence(result_stderr: str, needle: str) -> None:
    assert "Traceback" not in result_stderr
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1, result_stderr
    assert needle in lines[0]


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_each_failure_is_one_sentence_with_its_exit_code(tmp_path: Path, case: Case) -> None:
    env = clean_env(FLUXCORD_DATABASE=str(tmp_path / "fluxcord.db"), **case.env)
    env.update(case.setup(tmp_path))
    result = run_bot(tmp_path, *case.args, env=env)
    assert result.returncode == case.code, result.stderr
    assert_one_sentence(result.stderr, case.needle)


def test_emulate_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_bot(tmp_path, "emulate", "--port", str(port), env=clean_env())
    assert result.returncode == EXIT_CONFIG
    assert_one_sentence(result.stderr, f"Port {port} on 127.0.0.1 is already in use")


async def test_a_wrong_token_on_sync_is_one_sentence(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu:
        env = clean_env(
            FLUXCORD_DISCORD_TOKEN="not-the-token",
            FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
            FLUXCORD_DATABASE=str(tmp_path / "bot.db"),
            **KEYED,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "sync", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        _, errors = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == EXIT_FAILED
    assert_one_sentence(errors.decode(), "Discord refused the bot token")
    assert "not-the-token" not in errors.decode()


def test_verbose_adds_the_traceback_before_or_after_the_command(tmp_path: Path) -> None:
    env = clean_env(**database(junk)(tmp_path))
    quiet = run_bot(tmp_path, "credits", "show", "1", "2", env=env)
    for args in (("-v", "credits", "show", "1", "2"), ("credits", "show", "1", "2", "-v")):
        loud = run_bot(tmp_path, *args, env=env)
        assert loud.returncode == quiet.returncode == EXIT_CONFIG
        assert "Traceback" in loud.stderr
        assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def test_help_lists_the_exit_codes_and_imagine_offers_only_what_it_accepts(tmp_path: Path) -> None:
    top = run_bot(tmp_path, "--help", env=clean_env())
    for code in (EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_UNREACHABLE):
        assert f"\n  {code}   " in top.stdout
    readme = (ROOT / "README.md").read_text()
    for code in (EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_UNREACHABLE):
        assert f"| {code} |" in readme
    imagine = run_bot(tmp_path, "imagine", "--help", env=clean_env())
    assert "dev" not in imagine.stdout.split("exit codes:")[0]
    assert "--model" not in imagine.stdout and "--guidance" not in imagine.stdout


async def test_an_unreachable_gateway_ends_run_with_one_sentence(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu:  # REST answers; the gateway URL leads nowhere
        env = clean_env(
            FLUXCORD_DISCORD_TOKEN=discord_emu.token,
            FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
            FLUXCORD_DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{CLOSED}/gateway",
            FLUXCORD_DATABASE=str(tmp_path / "bot.db"),
            **KEYED,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        _, errors = await asyncio.wait_for(process.communicate(), DEADLINE)
    text = errors.decode()
    assert process.returncode == EXIT_UNREACHABLE, text
    assert "Traceback" not in text and discord_emu.token not in text
    assert text.strip().splitlines()[-1] == (
        f"Could not reach Discord's gateway at ws://127.0.0.1:{CLOSED}/gateway; check the network, "
        "or FLUXCORD_DISCORD_GATEWAY_URL if you set it."
    )
