"""Autocomplete answers stay within Discord's limits however many jobs a member has and however long they read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.core.requests import ImagineOptions
from bot.jobs.service import Requester
from bot.settings import Settings
from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start


@pytest.fixture
async def segmind() -> AsyncIterator[SegmindEmulator]:
    # Jobs that stay running for the whole test, so they are all still cancellable.
    async with SegmindEmulator(EmulatorConfig(latency_median=60, latency_sigma=0.0)) as server:
        yield server


async def test_cancel_offers_at_most_25_choices_with_short_names(
    discord_emu: DiscordEmulator, start_bot: Start, settings: Settings
) -> None:
    roomy = settings.model_copy(
        update={"queued_jobs": 40, "max_queued_jobs": 40, "jobs_per_minute": 60, "max_jobs_per_minute": 60}
    )
    bot = await start_bot(roomy)
    alice = discord_emu.add_member("alice")
    await bot.services.admin.give(discord_emu.guild_id, alice.id, 100, actor_id=1, reason=None, key="start")
    prompt = "a lighthouse on a cliff at dawn, " * 30
    for n in range(30):
        who = Requester(guild_id=discord_emu.guild_id, user_id=alice.id, channel_id=None, request_id=f"many-{n}")
        await bot.services.generation.imagine(who, ImagineOptions.parse(prompt=prompt, megapixels="0.25"))

    choices = await discord_emu.autocomplete("cancel", user=alice, option="job", value="")
    assert len(choices) == 25
    assert all(len(choice["name"]) <= 100 and choice["name"].startswith(choice["value"]) for choice in choices)
    picked = choices[3]["value"]
    narrowed = await discord_emu.autocomplete("cancel", user=alice, option="job", value=picked)
    assert [choice["value"] for choice in narrowed] == [picked]
    cancelled = await discord_emu.slash("cancel", user=alice, options={"job": picked})
    assert (await cancelled.wait_reply(lambda m: not m.loading)).content.startswith(f"Cancelled job `{picked}`")
