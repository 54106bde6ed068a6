"""The real Fluxcord bot (discord.py 2.7.1) against the Discord emulator and the Segmind emulator, on loopback."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import discord
import discord.gateway
import discord.http
import pytest
from PIL import Image

from bot.app import open_bot
from bot.client import FluxcordBot
from bot.core.jobs import Job
from bot.core.requests import ModelId
from bot.settings import Settings
from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator
from emulators.discord.messages import StoredMessage
from emulators.segmind import SegmindEmulator


@pytest.fixture
async def discord_emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordEmulator]:
    # open_bot points discord.py at the emulator; put the real endpoints back afterwards.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    async with DiscordEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture
async def segmind() -> AsyncIterator[SegmindEmulator]:
    async with SegmindEmulator(EmulatorConfig(latency_median=0.5, latency_sigma=0.0, queue_seconds=0.05)) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, discord_emu: DiscordEmulator, segmind: SegmindEmulator) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        discord_token=discord_emu.token,
        discord_api_base=discord_emu.api_base,
        discord_gateway_url=discord_emu.gateway_url,
        attachment_origins=[discord_emu.root],
        segmind_api_key="SG_test",
        segmind_base_url=segmind.base_url,
        database=tmp_path / "fluxcord.db",
        status_edit_interval=0.1,
        poll_min_interval=0.03,
        poll_max_interval=0.1,
        retry_base_delay=0.02,
        retry_max_delay=0.1,
        expected_seconds={model: 0.5 for model in ModelId},
    )


Start = Callable[..., Awaitable[FluxcordBot]]


@pytest.fixture
async def start_bot(settings: Settings, discord_emu: DiscordEmulator) -> AsyncIterator[Start]:
    """Start the real bot as a task (as `python -m bot` does); close everything afterwards; fail on a crash."""
    async with AsyncExitStack() as stack:
        running: list[tuple[FluxcordBot, asyncio.Task[None]]] = []

        async def start(custom: Settings | None = None) -> FluxcordBot:
            config = custom or settings
            bot = await stack.enter_async_context(open_bot(config, guild_ready_timeout=0.05))
            task = asyncio.create_task(bot.start(discord_emu.token))
            running.append((bot, task))
            ready = asyncio.create_task(bot.wait_until_ready())
            done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()
                pytest.fail("the bot did not become ready within 10 s")
            return bot

        async def stop_all() -> None:
            for bot, task in running:
                if not bot.is_closed():
                    await bot.close()
                await asyncio.wait_for(task, 10)

        stack.push_async_callback(stop_all)
        yield start


async def stop(bot: FluxcordBot) -> None:
    """Stop a bot the way a killed process would leave things: jobs stay where they are in the database."""
    await bot.close()


def png(width: int = 320, height: int = 200, colour: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    for x in range(width):
        image.putpixel((x, height // 2), (x % 256, 255 - x % 256, 90))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decoded(message: StoredMessage) -> list[tuple[str | None, tuple[int, int]]]:
    """(format, size) of every image attached to a message."""
    found = []
    for attachment in message.attachments:
        with Image.open(io.BytesIO(attachment.data)) as image:
            found.append((image.format, image.size))
    return found


def result_of(discord_emu: DiscordEmulator, job_id: str) -> Callable[[], StoredMessage | None]:
    """The channel message that shows job `job_id` finished (with files or a failure line)."""

    def find() -> StoredMessage | None:
        for message in list(discord_emu.messages.values()):  # any channel
            if (
                f"job `{job_id}`" in message.content
                and not message.deleted
                and ("Done" in message.content or "Failed" in message.content or "Cancelled" in message.content)
            ):
                return message
        return None

    return find


async def wait_result(discord_emu: DiscordEmulator, job_id: str, timeout: float = 15.0) -> StoredMessage:  # noqa: ASYNC109
    find = result_of(discord_emu, job_id)
    await discord_emu.wait_for(lambda: find() is not None, timeout=timeout)
    message = find()
    assert message is not None
    return message


async def delivered(bot: FluxcordBot, job_id: str) -> Job:
    """The job once its result is marked delivered (that commit lands just after the message is posted)."""
    for _ in range(200):
        job = await bot.services.jobs.get(job_id)
        if job is not None and job.delivered:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} was never marked delivered")


def job_id_from(text: str) -> str:
    """The id in `Queued job `abc` …`."""
    assert "`" in text, text
    return text.split("`")[1]
