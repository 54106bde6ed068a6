"""Buttons and options naming jobs they should not reach: a modified client forges the custom_id or the option."""

from __future__ import annotations

from bot.client import FluxcordBot
from bot.core.requests import ImagineOptions
from bot.jobs.service import Requester
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction, StoredMessage
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, delivered, job_id_from, png, wait_result

OTHER_SERVER = 424242
SECRET = "the other server's private prompt"


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def result_for(discord_emu: DiscordEmulator, member: Member) -> tuple[str, StoredMessage]:
    ack = await discord_emu.slash(
        "vary",
        user=member,
        options={"megapixels": "0.25", "seed": 7},
        attachments={"image": ("in.png", png(), "image/png")},
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    return job_id, await wait_result(discord_emu, job_id)


async def other_servers_job(bot: FluxcordBot, user_id: int) -> str:
    """A finished job of another server that Fluxcord also serves, asked by the same Discord user."""
    who = Requester(guild_id=OTHER_SERVER, user_id=user_id, channel_id=None, request_id="elsewhere-1")
    job = await bot.services.generation.imagine(who, ImagineOptions.parse(prompt=SECRET, megapixels="0.25"))
    await delivered(bot, job.id)
    return job.id


async def test_buttons_and_options_never_reach_another_servers_job(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice, mallory = discord_emu.add_member("alice"), discord_emu.add_member("mallory")
    _, result = await result_for(discord_emu, alice)
    foreign = await other_servers_job(bot, mallory.id)
    submits_before = segmind.counts["submit"]
    messages_before = len(discord_emu.channel_messages())

    refusals = {}
    for custom_id in (f"fx:info:{foreign}", f"fx:reroll:{foreign}", f"fx:vary:{foreign}:1"):
        click = await discord_emu.click(result, custom_id, user=mallory, forged=True)
        refusals[custom_id] = await answer(click)
        assert click.ephemeral and all(not reply.embeds for reply in click.replies)
    cancel = await answer(await discord_emu.slash("cancel", user=mallory, options={"job": foreign}))
    unknown = await answer(await discord_emu.slash("cancel", user=mallory, options={"job": "zz99zz99"}))

    # One sentence, the same as for a job that does not exist: not the prompt, not even that it finished.
    assert set(refusals.values()) == {cancel} == {f"There is no job `{foreign}` on this server."}
    assert unknown == "There is no job `zz99zz99` on this server."
    assert all(SECRET not in message.content for message in discord_emu.messages.values())
    assert segmind.counts["submit"] == submits_before  # nothing re-rolled or varied
    assert len(discord_emu.channel_messages()) == messages_before
    assert await bot.services.jobs.recent_for_member(discord_emu.guild_id, mallory.id) == []
    balance = await bot.services.ledger.balance(discord_emu.guild_id, mallory.id)
    assert balance is None or (balance.spendable, balance.held) == (20, 0)
    elsewhere = await bot.services.jobs.get(foreign)
    assert elsewhere is not None and elsewhere.state.value == "succeeded"


async def test_delete_checks_the_owner_of_the_message_being_deleted(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    moderator = discord_emu.add_member("mod", manage_messages=True)
    alice_job, alice_result = await result_for(discord_emu, alice)
    bob_job, bob_result = await result_for(discord_emu, bob)

    # Bob's own job named on Alice's result: the check is about Alice's job, which the message shows.
    forged = await discord_emu.click(alice_result, f"fx:delete:{bob_job}", user=bob, forged=True)
    assert await answer(forged) == "That button does not belong to this message; nothing was deleted."
    # A moderator's forged click is refused the same way: the button must be the message's own.
    by_mod = await discord_emu.click(alice_result, f"fx:delete:{bob_job}", user=moderator, forged=True)
    assert "does not belong to this message" in await answer(by_mod)
    # Alice's own button, clicked by Bob.
    stranger = await discord_emu.click(alice_result, f"fx:delete:{alice_job}", user=bob)
    assert "Only the member who asked for this job, or a moderator" in await answer(stranger)
    assert not discord_emu.messages[alice_result.id].deleted
    assert not discord_emu.messages[bob_result.id].deleted

    own = await discord_emu.click(bob_result, f"fx:delete:{bob_job}", user=bob)
    assert await answer(own) == "Deleted."
    assert discord_emu.messages[bob_result.id].deleted
    assert not discord_emu.messages[alice_result.id].deleted
