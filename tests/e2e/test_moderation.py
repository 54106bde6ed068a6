"""Spoilers by channel and role, and the mod-log with its delete-and-refund, through the real client."""

from __future__ import annotations

import asyncio

from bot.client import FluxcordBot
from bot.core.requests import ImagineOptions
from bot.jobs.service import Requester
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction, StoredMessage, custom_ids
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, delivered, job_id_from, wait_result

OTHER_SERVER = 464646
POST = "POST /channels/{channel}/messages"
EDIT = "PATCH /channels/{channel}/messages/{message}"


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def admin_says(discord_emu: DiscordEmulator, admin: Member, subcommand: str, **options: object) -> str:
    return await answer(await discord_emu.slash("fluxadmin", subcommand=subcommand, user=admin, options=options))


async def imagine(
    discord_emu: DiscordEmulator, member: Member, prompt: str, *, channel_id: int | None = None
) -> tuple[str, StoredMessage]:
    ack = await discord_emu.slash(
        "imagine", user=member, channel_id=channel_id, options={"prompt": prompt, "megapixels": "0.25"}
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    return job_id, await wait_result(discord_emu, job_id)


def spoilers(message: StoredMessage) -> list[bool]:
    return [attachment.spoiler for attachment in message.attachments]


async def spendable(bot: FluxcordBot, guild_id: int, member: Member) -> int:
    return (await bot.services.generation.credits(guild_id, member.id)).balance.spendable


# ---------------------------------------------------------------------------------------------------- spoilers


async def test_results_are_spoilers_by_channel_and_by_role_across_a_restart(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    admin = discord_emu.add_member("admin", manage_guild=True)
    role = discord_emu.add_role("spoiled")
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob", roles=[role])
    art = discord_emu.nsfw_channel_id

    assert await admin_says(discord_emu, admin, "spoilers", action="list") == (
        "No results are posted as spoilers; add a channel or a role with `/fluxadmin spoilers`."
    )
    assert await admin_says(discord_emu, admin, "spoilers", action="add") == "Name a channel, a role, or both."
    await admin_says(discord_emu, admin, "spoilers", action="add", channel=art)
    assert await admin_says(discord_emu, admin, "spoilers", action="add", role=role) == (
        f"Results are posted as spoilers when made in <#{art}>, or asked for by members with <@&{role}>."
    )

    plain_id, plain = await imagine(discord_emu, alice, "a meadow")
    _, in_art = await imagine(discord_emu, alice, "a meadow at night", channel_id=art)
    assert spoilers(plain) == [False] and spoilers(in_art) == [True]
    assert in_art.attachments[0].filename.startswith("SPOILER_")
    # Bob's role makes his results spoilers anywhere; decided at submit, so a restart before the result keeps it.
    segmind.next_outcome(failed=False, latency=1.5)
    ack = await discord_emu.slash("imagine", user=bob, options={"prompt": "a castle", "megapixels": "0.25"})
    bobs = job_id_from((await ack.wait_content("Queued job")).content)
    await first.close()

    second = await start_bot()
    result = await wait_result(discord_emu, bobs, timeout=20)
    assert spoilers(result) == [True], result.content
    await delivered(second, bobs)
    # A re-post into a spoiler channel is a spoiler too, whatever the original was.
    shown = await discord_emu.slash("show", user=alice, channel_id=art, options={"job": plain_id})
    assert (await answer(shown)).startswith("Shown again:")
    repost = next(m for m in discord_emu.channel_messages(art) if "shown again" in m.content)
    assert spoilers(repost) == [True]

    await admin_says(discord_emu, admin, "spoilers", action="remove", role=role)
    _, after = await imagine(discord_emu, bob, "a castle by day")
    assert spoilers(after) == [False]
    assert await admin_says(discord_emu, admin, "spoilers", action="clear") == (
        "No results are posted as spoilers; add a channel or a role with `/fluxadmin spoilers`."
    )


# ---------------------------------------------------------------------------------------------------- mod-log


def log_entries(discord_emu: DiscordEmulator, channel_id: int, job_id: str) -> list[StoredMessage]:
    return [m for m in discord_emu.channel_messages(channel_id) if m.content.startswith(f"📋 job `{job_id}`")]


async def wait_entry(discord_emu: DiscordEmulator, channel_id: int, job_id: str) -> StoredMessage:
    await discord_emu.wait_for(lambda: len(log_entries(discord_emu, channel_id, job_id)) == 1)
    return log_entries(discord_emu, channel_id, job_id)[0]


async def test_each_job_is_logged_after_its_result_and_a_moderator_deletes_and_refunds_after_a_restart(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    admin = discord_emu.add_member("admin", manage_guild=True)
    moderator = discord_emu.add_member("mod", manage_messages=True)
    alice = discord_emu.add_member("alice")
    modlog = discord_emu.add_channel("mod-log")
    assert await admin_says(discord_emu, admin, "modlog", action="show") == (
        "The mod-log is off; name a channel with `/fluxadmin modlog action:set`."
    )
    assert await admin_says(discord_emu, admin, "modlog", action="set", channel=modlog) == (
        f"Every job is logged in <#{modlog}>, with 🗑️ Delete and refund for moderators."
    )

    job_id, result = await imagine(discord_emu, alice, "a red fox in the snow")
    entry = await wait_entry(discord_emu, modlog, job_id)
    url = f"https://discord.com/channels/{discord_emu.guild_id}/{discord_emu.channel_id}/{result.id}"
    assert entry.content == (
        f"📋 job `{job_id}` · <@{alice.id}> in <#{discord_emu.channel_id}> · 1 image with FLUX.1 schnell\n"
        "Prompt: “a red fox in the snow”\n"
        f"✅ 1 image, 1 credit charged · [result]({url})"
    )
    assert custom_ids(entry) == [f"fx:refund:{job_id}"]
    # After the result: the entry's post went out once the result's last write had.
    result_writes = [
        r
        for r in discord_emu.requests
        if r.files and (r.path.endswith(f"/{result.id}") or job_id in str((r.json or {}).get("content", "")))
    ]
    [entry_post] = [
        r for r in discord_emu.calls(POST) if str((r.json or {}).get("content", "")).startswith(f"📋 job `{job_id}`")
    ]
    assert entry_post.path.endswith(f"/channels/{modlog}/messages")
    assert result_writes and all(r.at < entry_post.at for r in result_writes)
    # A failed job is logged too, without the button (nothing was charged).
    segmind.next_outcome(failed=True)
    failed_id, _ = await imagine(discord_emu, alice, "a storm")
    failed_entry = await wait_entry(discord_emu, modlog, failed_id)
    assert "❌ Failed, nothing charged" in failed_entry.content and custom_ids(failed_entry) == []
    assert await spendable(first, discord_emu.guild_id, alice) == 19
    # Another server's job, for a forged click.
    who = Requester(guild_id=OTHER_SERVER, user_id=moderator.id, channel_id=None, request_id="elsewhere-2")
    foreign = await first.services.generation.imagine(who, ImagineOptions.parse(prompt="elsewhere"))
    await delivered(first, foreign.id)
    await first.close()

    second = await start_bot()
    refused = await discord_emu.click(entry, f"fx:refund:{job_id}", user=alice)
    assert await answer(refused) == f"Only a moderator (Manage Messages) can delete and refund job `{job_id}`."
    forged = await discord_emu.click(entry, f"fx:refund:{foreign.id}", user=moderator, forged=True)
    assert await answer(forged) == f"There is no job `{foreign.id}` on this server."
    assert not discord_emu.messages[result.id].deleted

    click = await discord_emu.click(entry, f"fx:refund:{job_id}", user=moderator)
    assert await answer(click) == f"Deleted job `{job_id}` of <@{alice.id}> and refunded their 1 credit."
    assert discord_emu.messages[result.id].deleted
    changed = discord_emu.messages[entry.id]
    assert changed.content.endswith(f"\n🗑️ Deleted by <@{moderator.id}>; 1 credit refunded.")
    assert custom_ids(changed) == []
    assert await spendable(second, discord_emu.guild_id, alice) == 20
    [refund] = [e for e in await second.services.ledger.entries(discord_emu.guild_id, alice.id) if e.kind == "refund"]
    assert (refund.amount, refund.d_granted, refund.job_id, refund.actor_id) == (1, 1, job_id, moderator.id)
    assert await second.services.ledger.mismatches() == []

    # A repeated click (a modified client, the button being gone) refunds nothing more.
    again = await discord_emu.click(changed, f"fx:refund:{job_id}", user=moderator, forged=True)
    assert await answer(again) == f"Deleted job `{job_id}` of <@{alice.id}>; its 1 credit had been refunded already."
    assert await spendable(second, discord_emu.guild_id, alice) == 20
    assert await second.services.ledger.mismatches() == []


async def test_a_mod_log_entry_is_posted_once_across_restarts(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    admin, alice = discord_emu.add_member("admin", manage_guild=True), discord_emu.add_member("alice")
    modlog = discord_emu.add_channel("mod-log")
    claimed_only, _ = await imagine(discord_emu, alice, "claimed, never posted")
    posted_unrecorded, _ = await imagine(discord_emu, alice, "posted, never recorded")
    await admin_says(discord_emu, admin, "modlog", action="set", channel=modlog)
    # A process that stopped between claim and post, and one that stopped between post and record.
    repo = first.services.modlog.repo
    for job_id in (claimed_only, posted_unrecorded):
        assert await repo.claim(job_id, discord_emu.guild_id, now=first.services.modlog.clock.now()) is not None
    discord_emu.create_message(
        channel_id=modlog, author=discord_emu.bot, body={"content": f"📋 job `{posted_unrecorded}` · earlier"}
    )
    await first.close()

    second = await start_bot()
    await wait_entry(discord_emu, modlog, claimed_only)
    live, _ = await imagine(discord_emu, alice, "logged as it happens")
    await wait_entry(discord_emu, modlog, live)
    await asyncio.sleep(0.3)
    for job_id in (claimed_only, posted_unrecorded, live):
        assert len(log_entries(discord_emu, modlog, job_id)) == 1, job_id
    assert await second.services.modlog.repo.unposted() == []
    entry = await second.services.modlog.repo.entry(posted_unrecorded)
    assert entry is not None and entry.message_id == log_entries(discord_emu, modlog, posted_unrecorded)[0].id
