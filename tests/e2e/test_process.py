"""`python -m bot` as its own process, configured only by environment variables, against the emulators."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, decoded, job_id_from, png, wait_result

ROOT = Path(__file__).resolve().parents[2]


async def test_python_m_bot_connects_syncs_and_answers_vary(
    tmp_path: Path, discord_emu: DiscordEmulator, segmind: SegmindEmulator
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLUXCORD_")}
    env.update(
        DISCORD_TOKEN=discord_emu.token,
        SEGMIND_API_KEY="SG_test",
        FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
        FLUXCORD_DISCORD_GATEWAY_URL=discord_emu.gateway_url,
        FLUXCORD_ATTACHMENT_ORIGINS=discord_emu.root,
        FLUXCORD_SEGMIND_BASE_URL=segmind.base_url,
        FLUXCORD_DATABASE=str(tmp_path / "bot.db"),
        FLUXCORD_EXPECTED_SECONDS='{"flux-redux-schnell": 0.5}',
        FLUXCORD_STATUS_EDIT_INTERVAL="0.2",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await discord_emu.wait_for(lambda: discord_emu.ready.is_set(), timeout=30)
        assert discord_emu.commands["sync_count"] == 1
        assert {c["name"] for c in discord_emu.commands["global"]} >= {
            "vary",
            "imagine",
            "credits",
            "jobs",
            "cancel",
            "Vary with FLUX",
            "history",
            "show",
            "settings",
        }
        alice = discord_emu.add_member("alice")
        ack = await discord_emu.slash(
            "vary", user=alice, options={"megapixels": "0.25"}, attachments={"image": ("a.png", png(), "image/png")}
        )
        job_id = job_id_from((await ack.wait_content("Queued job", timeout=20)).content)
        result = await wait_result(discord_emu, job_id, timeout=30)
        assert decoded(result) == [("WEBP", (608, 416))]
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), 20)
    text = output.decode()
    assert process.returncode == 0, text
    assert discord_emu.token not in text and "SG_test" not in text  # secrets never logged


async def test_a_second_start_with_the_same_commands_does_not_sync_again(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    assert discord_emu.commands["sync_count"] == 1
    await first.close()
    await start_bot()
    assert discord_emu.commands["sync_count"] == 1


async def test_python_m_bot_sync_registers_the_commands(
    tmp_path: Path, discord_emu: DiscordEmulator, segmind: SegmindEmulator
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLUXCORD_")}
    env.update(
        FLUXCORD_DISCORD_TOKEN=discord_emu.token,
        FLUXCORD_SEGMIND_API_KEY="SG_test",
        FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
        FLUXCORD_SEGMIND_BASE_URL=segmind.base_url,
        FLUXCORD_DATABASE=str(tmp_path / "bot.db"),
    )
    for expected in (1, 2):  # forced: a second run syncs again even though nothing changed
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "sync",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, output.decode()
        assert "Commands synced." in output.decode()
        assert discord_emu.commands["sync_count"] == expected
    assert not discord_emu.ready.is_set()  # it never opened the gateway
    assert segmind.requests == []


async def test_a_wrong_token_gets_one_sentence(tmp_path: Path, discord_emu: DiscordEmulator) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLUXCORD_")}
    env.update(
        FLUXCORD_DISCORD_TOKEN="not-the-token",
        FLUXCORD_SEGMIND_API_KEY="SG_test",
        FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
        FLUXCORD_DISCORD_GATEWAY_URL=discord_emu.gateway_url,
        FLUXCORD_DATABASE=str(tmp_path / "bot.db"),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert errors.decode().strip().splitlines()[-1] == (
        "Discord refused the bot token; copy it again from the developer portal."
    )
    assert "not-the-token" not in errors.decode()
