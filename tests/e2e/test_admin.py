"""Server administration through the real client: credits, permissions, NSFW policy, usage, blocks, limits."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, job_id_from, png, wait_result


async def answer(interaction: object) -> str:
    message = await interaction.wait_reply(lambda m: not m.loading)  # type: ignore[attr-defined]
    return str(message.content)


async def spendable(discord_emu: DiscordEmulator, member: object) -> int:
    reply = await discord_emu.slash("credits", user=member)  # type: ignore[arg-type]
    message = await reply.wait_reply(lambda m: bool(m.embeds))
    field = next(f for f in message.embeds[0]["fields"] if f["name"] == "Spendable")
    return int(field["value"].split("**")[1])


async def test_an_admin_grants_credits_and_the_member_sees_them(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    admin, alice = discord_emu.add_member("admin", manage_guild=True), discord_emu.add_member("alice")
    done = await discord_emu.slash(
        "fluxadmin", subcommand="grant", user=admin, options={"member": alice, "amount": 50, "reason": "contest prize"}
    )
    assert "Granted 50 credits" in await answer(done)
    assert await spendable(discord_emu, alice) == 70
    # An admin may look at a member's credits; a member may not look at another's.
    peek = await discord_emu.slash("credits", user=admin, options={"member": alice})
    assert (await peek.wait_reply(lambda m: bool(m.embeds))).embeds[0]["title"] == "Credits of alice"
    nosy = await discord_emu.slash("credits", user=discord_emu.add_member("bob"), options={"member": alice})
    assert "needs the Manage Server permission" in await answer(nosy)
    ledger = await discord_emu.slash("fluxadmin", subcommand="ledger", user=admin, options={"member": alice})
    text = await answer(ledger)
    assert "**grant** 50" in text and "contest prize" in text


async def test_a_member_without_manage_server_is_refused(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    alice = discord_emu.add_member("alice")
    with pytest.raises(PermissionError):  # Discord hides the command from her
        await discord_emu.slash("fluxadmin", subcommand="grant", user=alice, options={"member": alice, "amount": 5})
    # A server admin may re-grant the command to everyone in Discord's settings: the bot still refuses.
    for command in discord_emu.commands["global"]:
        if command["name"] == "fluxadmin":
            command["default_member_permissions"] = None
    refused = await discord_emu.slash(
        "fluxadmin", subcommand="grant", user=alice, options={"member": alice, "amount": 5}
    )
    assert "You need the Manage Server permission" in await answer(refused)
    assert await spendable(discord_emu, alice) == 20


async def test_safety_off_only_in_age_restricted_channels_of_servers_that_allow_it(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    await start_bot()
    admin, alice = discord_emu.add_member("admin", manage_guild=True), discord_emu.add_member("alice")
    image = {"image": ("a.png", png(), "image/png")}

    denied = await discord_emu.slash(
        "vary", user=alice, channel_id=discord_emu.nsfw_channel_id, options={"safety": "off"}, attachments=image
    )
    assert "`safety:off` is not allowed on this server" in await answer(denied)
    await answer(await discord_emu.slash("fluxadmin", subcommand="nsfw", user=admin, options={"policy": "allow"}))

    normal = await discord_emu.slash("vary", user=alice, options={"safety": "off"}, attachments=image)
    assert "only works in age-restricted channels" in await answer(normal)
    assert segmind.requests == []

    allowed = await discord_emu.slash(
        "vary", user=alice, channel_id=discord_emu.nsfw_channel_id, options={"safety": "off"}, attachments=image
    )
    job_id = job_id_from(await answer(allowed))
    await wait_result(discord_emu, job_id)
    (job,) = segmind.jobs.values()
    assert job.body["disable_safety_checker"] is True


async def test_usage_answers_with_a_png_chart(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    admin = discord_emu.add_member("admin", manage_guild=True)
    ack = await discord_emu.slash("imagine", user=admin, options={"prompt": "a fox", "count": 2})
    await wait_result(discord_emu, job_id_from(await answer(ack)))
    usage = await discord_emu.slash("fluxadmin", subcommand="usage", user=admin, options={"days": 7})
    message = await usage.wait_reply(lambda m: bool(m.attachments))
    assert message.ephemeral and "4 credits spent on 1 job" in message.content
    with Image.open(io.BytesIO(message.attachments[0].data)) as chart:
        assert chart.format == "PNG" and chart.size[0] > 400


async def test_a_blocked_member_is_refused_until_unblocked(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    admin, alice = discord_emu.add_member("admin", manage_guild=True), discord_emu.add_member("alice")
    await answer(await discord_emu.slash("fluxadmin", subcommand="block", user=admin, options={"member": alice}))
    refused = await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox"})
    assert "You are blocked from using Fluxcord on this server" in await answer(refused)
    await answer(await discord_emu.slash("fluxadmin", subcommand="unblock", user=admin, options={"member": alice}))
    accepted = await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox"})
    assert "Queued job" in await answer(accepted)


async def test_channels_allow_list_and_rate_limit(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    admin, alice = discord_emu.add_member("admin", manage_guild=True), discord_emu.add_member("alice")
    await answer(
        await discord_emu.slash(
            "fluxadmin",
            subcommand="channels",
            user=admin,
            options={"action": "add", "channel": discord_emu.nsfw_channel_id},
        )
    )
    elsewhere = await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox"})
    assert "not enabled in this channel" in await answer(elsewhere)
    await answer(await discord_emu.slash("fluxadmin", subcommand="channels", user=admin, options={"action": "clear"}))
    await answer(await discord_emu.slash("fluxadmin", subcommand="limits", user=admin, options={"jobs_per_minute": 2}))
    for _ in range(2):
        assert "Queued job" in await answer(await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox"}))
    third = await answer(await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox"}))
    assert "You can start 2 jobs a minute; try again <t:" in third
    too_much = await discord_emu.slash("fluxadmin", subcommand="limits", user=admin, options={"jobs_per_minute": 99})
    assert "The most this server may set for jobs per minute is 30." in await answer(too_much)
