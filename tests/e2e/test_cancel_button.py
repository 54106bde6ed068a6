"""✖️ Cancel on the status message, through the real client: after a restart, for moderators, at the provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.client import FluxcordBot
from bot.core.jobs import JobState
from bot.core.requests import ImagineOptions
from bot.jobs.service import Requester
from bot.settings import Settings
from bot.ui.render import job_named
from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction, StoredMessage, custom_ids
from emulators.replicate import ReplicateEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, delivered, job_id_from, wait_result

OTHER_SERVER = 454545
EDIT = "PATCH /channels/{channel}/messages/{message}"
POST = "POST /channels/{channel}/messages"


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def slow_job(discord_emu: DiscordEmulator, member: Member, prompt: str = "a slow lighthouse") -> str:
    ack = await discord_emu.slash("imagine", user=member, options={"prompt": prompt})
    return job_id_from((await ack.wait_content("Queued job")).content)


async def status_of(discord_emu: DiscordEmulator, job_id: str) -> StoredMessage:
    """The job's status message, once it shows the Cancel button."""
    return await discord_emu.wait_for_message(
        lambda m: job_named(m.content) == job_id and f"fx:cancel:{job_id}" in custom_ids(m)
    )


async def at_provider(bot: FluxcordBot, job_id: str) -> None:
    """Return once a provider has accepted the job (it has the provider's id)."""
    for _ in range(250):
        job = await bot.services.jobs.get(job_id)
        if job is not None and job.provider_job_id is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached the provider")


async def spendable(bot: FluxcordBot, guild_id: int, member: Member) -> int:
    return (await bot.services.generation.credits(guild_id, member.id)).balance.spendable


async def test_the_owner_cancels_from_the_status_message_after_a_restart(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    segmind.next_outcome(failed=False, latency=60)
    job_id = await slow_job(discord_emu, alice)
    status = await status_of(discord_emu, job_id)
    assert await spendable(first, discord_emu.guild_id, alice) == 18
    # Another server's job, forged onto the button by a modified client.
    who = Requester(guild_id=OTHER_SERVER, user_id=bob.id, channel_id=None, request_id="elsewhere-1")
    segmind.next_outcome(failed=False, latency=60)
    foreign = await first.services.generation.imagine(who, ImagineOptions.parse(prompt="elsewhere"))
    await first.close()

    second = await start_bot()
    stranger = await discord_emu.click(status, f"fx:cancel:{job_id}", user=bob)
    assert await answer(stranger) == f"Only the member who asked for job `{job_id}`, or a moderator, can cancel it."
    forged = await discord_emu.click(status, f"fx:cancel:{foreign.id}", user=bob, forged=True)
    assert await answer(forged) == f"There is no job `{foreign.id}` on this server."
    assert (await second.services.jobs.get(foreign.id)).state is not JobState.CANCELLED  # type: ignore[union-attr]

    own = await discord_emu.click(status, f"fx:cancel:{job_id}", user=alice)
    assert await answer(own) == f"Cancelled job `{job_id}`; 2 credits refunded."
    job = await delivered(second, job_id)
    assert job.state is JobState.CANCELLED and job.charged == 0
    # The same message now says so, and its button is gone.
    shown = discord_emu.messages[status.id]
    assert shown.content.endswith("🚫 Cancelled: Cancelled. Your 2 credits were refunded.")
    assert custom_ids(shown) == []
    assert await spendable(second, discord_emu.guild_id, alice) == 20
    assert await second.services.ledger.mismatches() == []


async def test_the_button_rides_on_writes_that_happen_anyway_and_goes_with_the_result(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    segmind.next_outcome(failed=False, latency=2.0)
    job_id = await slow_job(discord_emu, alice, "a lighthouse")
    status = await status_of(discord_emu, job_id)
    result = await wait_result(discord_emu, job_id)
    await delivered(bot, job_id)
    assert result.id == status.id and f"fx:cancel:{job_id}" not in custom_ids(result)
    # The button went out with the status post; progress edits never carried components; only the outcome did.
    [post] = [r for r in discord_emu.calls(POST) if job_named(str((r.json or {}).get("content", ""))) == job_id]
    assert [b["custom_id"] for row in post.json["components"] for b in row["components"]] == [f"fx:cancel:{job_id}"]
    edits = [r for r in discord_emu.calls(EDIT) if r.path.endswith(f"/{status.id}")]
    assert edits, "the status message was never edited"
    assert [bool(r.files) for r in edits if "components" in (r.json or {})] == [True]


@pytest.fixture
async def replicate() -> AsyncIterator[ReplicateEmulator]:
    config = EmulatorConfig(latency_median=60.0, latency_sigma=0.0, queue_seconds=0.05)
    async with ReplicateEmulator(config) as server:
        yield server


async def test_a_moderator_cancels_a_members_job_and_the_provider_is_told(
    discord_emu: DiscordEmulator, replicate: ReplicateEmulator, settings: Settings, start_bot: Start
) -> None:
    bot = await start_bot(
        settings.model_copy(
            update={
                "providers": ["replicate"],
                "replicate_api_key": SecretStr("r8_test"),
                "replicate_base_url": replicate.base_url,
                "replicate_wait_seconds": 0,
            }
        )
    )
    alice = discord_emu.add_member("alice")
    moderator = discord_emu.add_member("mod", manage_messages=True)
    job_id = await slow_job(discord_emu, alice)
    status = await status_of(discord_emu, job_id)
    await at_provider(bot, job_id)

    click = await discord_emu.click(status, f"fx:cancel:{job_id}", user=moderator)
    assert await answer(click) == f"Cancelled job `{job_id}` of <@{alice.id}>; their 2 credits were refunded."
    job = await delivered(bot, job_id)
    assert job.state is JobState.CANCELLED
    await discord_emu.wait_for(lambda: replicate.counts["cancel"] == 1)
    assert discord_emu.messages[status.id].content.endswith(
        "🚫 Cancelled: Cancelled by a moderator. Your 2 credits were refunded."
    )
    assert await spendable(bot, discord_emu.guild_id, alice) == 20
