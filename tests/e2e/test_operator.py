"""The operator's protections through the real client: the allow-list, the provider balance shown to admins."""

from __future__ import annotations

import logging

import pytest

from bot.core.limits import NOT_SERVED
from bot.settings import Settings
from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, job_id_from, png, wait_result


async def answer(interaction: object) -> str:
    message = await interaction.wait_reply(lambda m: not m.loading)  # type: ignore[attr-defined]
    return str(message.content)


async def test_a_server_off_the_allow_list_is_told_so_and_nothing_runs(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, settings: Settings, start_bot: Start
) -> None:
    elsewhere = discord_emu.guild_id + 1
    await start_bot(settings.model_copy(update={"allowed_guilds": [elsewhere]}))
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    for name, user, options in (
        ("imagine", alice, {"prompt": "a fox"}),
        ("credits", alice, {}),
        ("fluxadmin", admin, {}),
    ):
        kwargs = {"subcommand": "limits"} if name == "fluxadmin" else {}
        reply = await discord_emu.slash(name, user=user, options=options, **kwargs)
        assert await answer(reply) == NOT_SERVED
        assert reply.ephemeral
    assert segmind.requests == []


async def test_a_result_left_in_a_server_no_longer_served_cannot_be_rerolled(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, settings: Settings, start_bot: Start
) -> None:
    served = await start_bot(settings.model_copy(update={"allowed_guilds": [discord_emu.guild_id]}))
    alice = discord_emu.add_member("alice")
    ack = await discord_emu.slash(
        "vary", user=alice, options={"megapixels": "0.25"}, attachments={"image": ("a.png", png(), "image/png")}
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)
    await served.close()
    submits = segmind.counts["submit"]
    await start_bot(settings.model_copy(update={"allowed_guilds": [discord_emu.guild_id + 1]}))
    click = await discord_emu.click(result, f"fx:reroll:{job_id}", user=alice)
    assert await answer(click) == NOT_SERVED
    assert segmind.counts["submit"] == submits


@pytest.fixture
async def segmind() -> object:  # a Segmind account with $0.02 left
    config = EmulatorConfig(latency_median=0.3, latency_sigma=0.0, queue_seconds=0.05, credits=0.02)
    async with SegmindEmulator(config) as server:
        yield server


async def test_the_provider_balance_is_logged_warned_about_and_shown_to_admins(
    discord_emu: DiscordEmulator,
    segmind: SegmindEmulator,
    settings: Settings,
    start_bot: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs.balances")
    await start_bot(settings.model_copy(update={"segmind_low_balance": 0.015}))
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    for expected in (0.016, 0.012):
        ack = await discord_emu.slash(
            "vary", user=alice, options={"megapixels": "0.25"}, attachments={"image": ("a.png", png(), "image/png")}
        )
        await wait_result(discord_emu, job_id_from((await ack.wait_content("Queued job")).content))
        assert segmind.balance == pytest.approx(expected)
    overview = await answer(await discord_emu.slash("fluxadmin", subcommand="limits", user=admin))
    assert "segmind account balance: 0.012 credits" in overview
    assert "below the operator's warning level" in overview
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "bot.jobs.balances"]
    assert records[0] == ("INFO", "provider=segmind balance=0.016")
    assert (
        records[1][0] == "WARNING"
        and "provider=segmind balance=0.012 is below the warning level 0.015" in records[1][1]
    )
