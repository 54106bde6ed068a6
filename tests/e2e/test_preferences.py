"""`/settings`, server presets and the prompt blocklist through the real client."""

from __future__ import annotations

import logging

import pytest

from bot.client import FluxcordBot
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, decoded, job_id_from, png, wait_result


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def admin_says(discord_emu: DiscordEmulator, admin: Member, subcommand: str, **options: object) -> str:
    return await answer(await discord_emu.slash("fluxadmin", subcommand=subcommand, user=admin, options=options))


async def spendable(bot: FluxcordBot, discord_emu: DiscordEmulator, member: Member) -> int:
    return (await bot.services.generation.credits(discord_emu.guild_id, member.id)).balance.spendable


async def test_the_registered_commands_include_history_show_and_settings(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    await start_bot()
    names = {command["name"] for command in discord_emu.commands["global"]}
    assert {"history", "show", "settings", "vary", "imagine", "Vary with FLUX"} <= names
    admin = next(c for c in discord_emu.commands["global"] if c["name"] == "fluxadmin")
    assert {"blocklist", "showcase", "preset"} <= {option["name"] for option in admin["options"]}


async def test_settings_fill_in_what_a_member_leaves_out(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    shown = await answer(await discord_emu.slash("settings", user=alice))
    assert "Images: **the command's default**" in shown

    changed = await discord_emu.slash(
        "settings", user=alice, options={"count": 2, "megapixels": "0.25", "format": "png", "aspect_ratio": "16:9"}
    )
    assert "Images: **2**" in await answer(changed) and "Format: **png**" in await answer(changed)

    ack = await discord_emu.slash("imagine", user=alice, options={"prompt": "a kite"})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    assert decoded(await wait_result(discord_emu, job_id)) == [("PNG", (672, 384))] * 2
    # An option given in the command wins over the member's default.
    ack = await discord_emu.slash(
        "vary", user=alice, options={"count": 1}, attachments={"image": ("a.png", png(), "image/png")}
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    assert decoded(await wait_result(discord_emu, job_id)) == [("PNG", (672, 384))]

    bad = await discord_emu.slash("settings", user=alice, options={"model": "dev", "aspect_ratio": "auto"})
    assert "Model: **dev**" in await answer(bad)
    reset = await answer(await discord_emu.slash("settings", user=alice, options={"reset": True}))
    assert "Images: **the command's default**" in reset
    defaults = await bot.services.preferences.defaults(discord_emu.guild_id, alice.id)
    assert defaults.as_dict() == {}


async def test_presets_are_managed_by_admins_autocompleted_and_applied(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    refused = await discord_emu.slash(
        "fluxadmin", subcommand="preset", user=admin, options={"action": "add", "name": "x", "template": "no slot"}
    )
    assert "must contain `{prompt}`" in await answer(refused)
    saved = await admin_says(
        discord_emu,
        admin,
        "preset",
        action="add",
        name="Studio",
        template="{prompt}, studio lighting",
        aspect_ratio="9:16",
        megapixels="0.25",
    )
    assert saved.startswith("Preset **studio** saved: template “{prompt}, studio lighting”")
    await admin_says(discord_emu, admin, "preset", action="add", name="square", aspect_ratio="1:1", count=2)

    choices = await discord_emu.autocomplete(
        "imagine", user=alice, option="preset", value="stu", options={"prompt": "x"}
    )
    assert [c["value"] for c in choices] == ["studio"]
    assert choices[0]["name"].startswith("studio · template")

    ack = await discord_emu.slash("imagine", user=alice, options={"prompt": "a teapot", "preset": "studio"})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    assert decoded(await wait_result(discord_emu, job_id)) == [("WEBP", (384, 672))]
    job = await bot.services.generation.job(job_id)
    assert job.spec.prompt == "a teapot, studio lighting"
    assert segmind.jobs[job.provider_job_id or ""].body["prompt"] == "a teapot, studio lighting"

    unknown = await discord_emu.slash("imagine", user=alice, options={"prompt": "a teapot", "preset": "nope"})
    assert await answer(unknown) == "This server has no preset 'nope'; pick one from the list."
    listing = await admin_says(discord_emu, admin, "preset", action="list")
    assert "**square** · Images 2, Aspect ratio 1:1" in listing
    removed = await admin_says(discord_emu, admin, "preset", action="remove", name="square")
    assert removed == "Preset **square** removed."
    assert "square" not in await admin_says(discord_emu, admin, "preset", action="list")


async def test_the_blocklist_refuses_prompts_and_remixes_before_charging(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start_bot()
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    ack = await discord_emu.slash("imagine", user=alice, options={"prompt": "a calm sea", "megapixels": "0.25"})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)

    added = await admin_says(discord_emu, admin, "blocklist", action="add", entry="Gore")
    assert added == "Prompts with `gore` are now refused here."
    assert "regular expression" in await admin_says(discord_emu, admin, "blocklist", action="add", entry=r"re:(a)\1")
    slow = await admin_says(discord_emu, admin, "blocklist", action="add", entry="re:(a+)+!$")
    assert slow == "Prompts with `re:(a+)+!$` are now refused here."
    listing = await admin_says(discord_emu, admin, "blocklist", action="list")
    assert "`gore`" in listing and "`re:(a+)+!$`" in listing
    submits, before = segmind.counts["submit"], await spendable(bot, discord_emu, alice)

    caplog.set_level(logging.WARNING, logger="bot.jobs.moderation")
    word = await discord_emu.slash("imagine", user=alice, options={"prompt": "a sea of GORE"})
    assert await answer(word) == "Your prompt contains “gore”, which this server does not allow; nothing was charged."
    # A pattern that backtracks for ever elsewhere is answered at once.
    pattern = await discord_emu.slash("imagine", user=alice, options={"prompt": "a" * 900 + "!"})
    assert await answer(pattern) == "Your prompt matches a pattern this server does not allow; nothing was charged."
    remix = await discord_emu.click(result, f"fx:remix:{job_id}", user=alice)
    await remix.wait_answered()
    assert remix.modal is not None
    box = next(label["component"]["custom_id"] for label in remix.modal["components"] if label["label"] == "Prompt")
    refused = await discord_emu.submit_modal(remix, {box: "calm gore"})
    assert "which this server does not allow" in await answer(refused)
    assert segmind.counts["submit"] == submits
    assert await spendable(bot, discord_emu, alice) == before
    logged = [r.getMessage() for r in caplog.records if "prompt refused by blocklist" in r.getMessage()]
    assert len(logged) == 3 and f"user={alice.id}" in logged[0] and "'gore'" in logged[0]

    removed = await admin_says(discord_emu, admin, "blocklist", action="remove", entry="gore")
    assert removed == "`gore` is off the blocklist."
    allowed = await discord_emu.slash("imagine", user=alice, options={"prompt": "gore", "megapixels": "0.25"})
    assert "Queued job" in await answer(allowed)
