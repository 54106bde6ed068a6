"""`check --online`: one free authenticated call per token and key, against each emulator (good, bad, unreachable)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_provider
from bot.providers.keys import KeyChecker
from bot.settings import Settings
from emulators.common import EmulatorConfig, EmulatorServer
from emulators.discord.emulator import DiscordEmulator
from emulators.eachlabs import EachlabsEmulator
from emulators.onemin import OneMinEmulator
from emulators.replicate import ReplicateEmulator
from emulators.segmind import SegmindEmulator
from tests.cli.support import DEADLINE, clean_env, free_port

KINDS: dict[str, type[EmulatorServer]] = {
    "segmind": SegmindEmulator,
    "replicate": ReplicateEmulator,
    "eachlabs": EachlabsEmulator,
    "onemin": OneMinEmulator,
}
GOOD = "good-key"


@pytest.fixture
async def emulators() -> AsyncIterator[dict[str, EmulatorServer]]:
    started = {name: kind(EmulatorConfig(api_keys=frozenset({GOOD}))) for name, kind in KINDS.items()}
    for emulator in started.values():
        await emulator.start()
    try:
        yield started
    finally:
        for emulator in started.values():
            await emulator.stop()


def settings_for(name: str, base_url: str, key: str) -> Settings:
    return Settings(_env_file=None, providers=[name], **{f"{name}_api_key": key, f"{name}_base_url": base_url})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(KINDS))
async def test_a_key_is_proven_without_starting_any_work(name: str, emulators: dict[str, EmulatorServer]) -> None:
    emulator = emulators[name]
    closed = f"http://127.0.0.1:{free_port()}"
    async with aiohttp.ClientSession() as http:
        results = {}
        for case, url, key in (
            ("good", emulator.base_url, GOOD),
            ("bad", emulator.base_url, "bad"),
            ("down", closed, GOOD),
        ):
            provider = build_provider(name, settings_for(name, url, key), http, key)
            assert isinstance(provider, KeyChecker)
            results[case] = await provider.check_key()
    assert results["good"].ok and results["good"].detail == "the key works"
    assert not results["bad"].ok and results["bad"].reachable and "refused (HTTP 401)" in results["bad"].detail
    assert not results["down"].ok and not results["down"].reachable
    assert f"could not reach {closed} (connection refused)" == results["down"].detail
    # Three calls, each answered at the door: no job, prediction or upload was made.
    assert all(r.status in (401, 404, 400, 200) for r in emulator.requests)
    assert len(emulator.requests) == 2
    jobs = (
        getattr(emulator, "jobs", None) or getattr(emulator, "predictions", None) or getattr(emulator, "records", None)
    )
    assert not jobs and not getattr(emulator, "assets", None)


async def test_check_online_says_which_credential_works(tmp_path: Path, emulators: dict[str, EmulatorServer]) -> None:
    async with DiscordEmulator() as discord_emu:
        env = clean_env(
            FLUXCORD_DATABASE=str(tmp_path / "fluxcord.db"),
            FLUXCORD_DISCORD_TOKEN=discord_emu.token,
            FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
            FLUXCORD_PROVIDERS="segmind,replicate,eachlabs,onemin",
            FLUXCORD_SEGMIND_API_KEY=GOOD,
            FLUXCORD_SEGMIND_BASE_URL=emulators["segmind"].base_url,
            FLUXCORD_REPLICATE_API_KEY="wrong-token",
            FLUXCORD_REPLICATE_BASE_URL=emulators["replicate"].base_url,
            FLUXCORD_EACHLABS_API_KEY=GOOD,
            FLUXCORD_EACHLABS_BASE_URL=f"http://127.0.0.1:{free_port()}",
            FLUXCORD_ONEMIN_API_KEY=GOOD,
            FLUXCORD_ONEMIN_BASE_URL=emulators["onemin"].base_url,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "check",
            "--online",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    report = out.decode()
    assert process.returncode == 1 and err.decode() == "", report
    lines = {line.split(":")[0]: line for line in report.splitlines() if line.startswith(("ok", "PROBLEM"))}
    assert lines["ok  discord"].startswith("ok  discord: the token works: Fluxcord#0000")
    assert lines["ok  segmind"] == "ok  segmind: the key works."
    assert lines["PROBLEM  replicate"] == (
        "PROBLEM  replicate: the key was refused (HTTP 401); check FLUXCORD_REPLICATE_API_KEY."
    )
    assert "PROBLEM  eachlabs: could not reach http://127.0.0.1:" in lines["PROBLEM  eachlabs"]
    assert "(connection refused); check FLUXCORD_EACHLABS_BASE_URL and the network." in lines["PROBLEM  eachlabs"]
    assert lines["ok  onemin"] == "ok  onemin: the key works."
    assert "wrong-token" not in report and GOOD not in report and discord_emu.token not in report


async def test_a_refused_discord_token_and_public_bot_are_problems(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu:
        base = clean_env(
            FLUXCORD_DATABASE=str(tmp_path / "fluxcord.db"),
            FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
            FLUXCORD_SEGMIND_API_KEY=GOOD,
            FLUXCORD_PROVIDERS="segmind",
            FLUXCORD_SEGMIND_BASE_URL=f"http://127.0.0.1:{free_port()}",
        )
        reports = []
        for token in ("wrong", discord_emu.token):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "check",
                "--online",
                cwd=tmp_path,
                env={**base, "FLUXCORD_DISCORD_TOKEN": token},
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(process.communicate(), DEADLINE)
            reports.append(out.decode())
            discord_emu.bot_public = True
    assert "PROBLEM  discord: Discord refused the token" in reports[0]
    assert "Public Bot is on" in reports[1] and "PROBLEM  discord" in reports[1]
