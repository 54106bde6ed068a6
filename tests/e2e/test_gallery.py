"""`/history`, `/show` and the showcase through the real client: stored results, no provider call, posted once."""

from __future__ import annotations

import asyncio

from bot.client import FluxcordBot
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction, StoredMessage, custom_ids
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, decoded, job_id_from, wait_result


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def imagine(discord_emu: DiscordEmulator, member: Member, prompt: str) -> tuple[str, StoredMessage]:
    ack = await discord_emu.slash("imagine", user=member, options={"prompt": prompt, "megapixels": "0.25"})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    return job_id, await wait_result(discord_emu, job_id)


def showcase_posts(discord_emu: DiscordEmulator, channel_id: int, job_id: str) -> list[StoredMessage]:
    return [m for m in discord_emu.channel_messages(channel_id) if f"job `{job_id}`" in m.content]


async def test_history_pages_through_the_members_results_after_a_restart(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    admin = discord_emu.add_member("admin", manage_guild=True)
    limits = {"jobs_per_minute": 20, "active": 4, "queued": 20}
    await answer(await discord_emu.slash("fluxadmin", subcommand="limits", user=admin, options=limits))
    ids = [(await imagine(discord_emu, alice, f"picture {n}"))[0] for n in range(10)]
    await imagine(discord_emu, bob, "not alice's")

    listing = await discord_emu.slash("history", user=alice)
    page = await listing.wait_reply(lambda m: not m.loading)
    assert page.ephemeral and page.content.startswith("Your results, page 1 of 2 (10 in all):")
    assert [job for job in reversed(ids) if f"`{job}`" in page.content] == list(reversed(ids))[:8]
    job = await first.services.jobs.get(ids[-1])
    assert job is not None
    assert f"https://discord.com/channels/{discord_emu.guild_id}/{job.channel_id}/{job.message_id}" in page.content
    assert "not alice's" not in page.content
    assert custom_ids(page) == ["fx:history:0", "fx:history:2"]
    await first.close()

    await start_bot()
    older = await discord_emu.click(page, "fx:history:2", user=alice)
    await older.wait_answered()
    turned = discord_emu.messages[page.id]
    assert turned.content.startswith("Your results, page 2 of 2 (10 in all):")
    assert all(f"`{job}`" in turned.content for job in ids[:2])
    assert segmind.counts["submit"] == 11


async def test_show_reposts_a_result_with_working_buttons_and_no_provider_call(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    job_id, result = await imagine(discord_emu, alice, "a red fox")
    submits = segmind.counts["submit"]

    refused = await discord_emu.slash("show", user=bob, options={"job": job_id})
    assert await answer(refused) == f"Only the member who asked for job `{job_id}`, or a moderator, can show it again."
    unknown = await discord_emu.slash("show", user=alice, options={"job": "nope1234"})
    assert await answer(unknown) == "There is no job `nope1234` on this server."

    shown = await discord_emu.slash("show", user=alice, options={"job": job_id}, channel_id=discord_emu.nsfw_channel_id)
    assert (await answer(shown)).startswith("Shown again: https://discord.com/channels/")
    repost = next(m for m in discord_emu.channel_messages(discord_emu.nsfw_channel_id) if job_id in m.content)
    assert decoded(repost) == decoded(result)
    assert custom_ids(repost) == custom_ids(result)
    assert repost.embeds[0]["title"] == result.embeds[0]["title"]
    assert segmind.counts["submit"] == submits  # stored outputs, no provider call

    # The re-post's own buttons work: 🗑️ deletes the re-post (not the original) for its owner.
    stranger = await discord_emu.click(repost, f"fx:delete:{job_id}", user=bob)
    assert "Only the member who asked" in await answer(stranger)
    own = await discord_emu.click(repost, f"fx:delete:{job_id}", user=alice)
    assert await answer(own) == "Deleted."
    assert discord_emu.messages[repost.id].deleted and not discord_emu.messages[result.id].deleted
    job = await bot.services.jobs.get(job_id)
    assert job is not None and job.message_id == result.id


async def set_showcase(discord_emu: DiscordEmulator, admin: Member, **options: object) -> str:
    configured = await discord_emu.slash(
        "fluxadmin",
        subcommand="showcase",
        user=admin,
        options={"action": "set", "channel": showcase_channel(discord_emu), **options},
    )
    return await answer(configured)


def showcase_channel(discord_emu: DiscordEmulator) -> int:
    existing = next((c.id for c in discord_emu.guild.channels.values() if c.name == "showcase"), None)
    return existing if existing is not None else discord_emu.add_channel("showcase")


async def test_the_star_button_showcases_a_result_once_crediting_its_author(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    admin = discord_emu.add_member("admin", manage_guild=True)
    job_id, result = await imagine(discord_emu, alice, "a castle")

    early = await discord_emu.click(result, f"fx:star:{job_id}", user=alice)
    assert "no showcase channel yet" in await answer(early)
    channel = showcase_channel(discord_emu)
    assert (
        await set_showcase(discord_emu, admin)
        == f"Results go to <#{channel}> with ⭐ (by their author or a moderator)."
    )
    await first.close()

    await start_bot()
    stranger = await discord_emu.click(result, f"fx:star:{job_id}", user=bob)
    assert "Only the member who asked for this job, or a moderator" in await answer(stranger)
    # Two clicks at once: one post.
    clicks = [await discord_emu.click(result, f"fx:star:{job_id}", user=alice) for _ in range(2)]
    answers = sorted(await asyncio.gather(*(answer(c) for c in clicks)))
    posts = showcase_posts(discord_emu, channel, job_id)
    assert len(posts) == 1
    assert posts[0].content == f"⭐ <@{alice.id}>’s 1 image of “a castle” with FLUX.1 schnell · job `{job_id}`"
    assert decoded(posts[0]) == decoded(result)
    assert f"fx:star:{job_id}" not in custom_ids(posts[0]) and f"fx:remix:{job_id}" in custom_ids(posts[0])
    assert any(a.startswith(f"Job `{job_id}` is in the showcase: https://") for a in answers), answers
    again = await discord_emu.click(result, f"fx:star:{job_id}", user=alice)
    assert (await answer(again)).startswith(f"Job `{job_id}` is already in the showcase: https://")
    assert len(showcase_posts(discord_emu, channel, job_id)) == 1


async def test_a_reaction_threshold_showcases_once(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    await start_bot()
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    fans = [discord_emu.add_member(f"fan{n}") for n in range(3)]
    job_id, result = await imagine(discord_emu, alice, "a comet")
    channel = showcase_channel(discord_emu)
    assert "when 2 members react with ⭐" in await set_showcase(discord_emu, admin, stars=2)

    assert discord_emu.react(result, "⭐", user=alice)  # the author's own star does not count
    assert discord_emu.react(result, "⭐", user=fans[0])
    assert discord_emu.react(result, "👍", user=fans[1])
    await asyncio.sleep(0.3)
    assert showcase_posts(discord_emu, channel, job_id) == []
    assert discord_emu.react(result, "⭐", user=fans[1])
    await discord_emu.wait_for(lambda: len(showcase_posts(discord_emu, channel, job_id)) == 1)
    assert discord_emu.react(result, "⭐", user=fans[2])
    assert discord_emu.react(result, "⭐", user=fans[0], remove=True)
    assert discord_emu.react(result, "⭐", user=fans[0])
    await asyncio.sleep(0.3)
    assert len(showcase_posts(discord_emu, channel, job_id)) == 1


async def test_a_showcase_post_interrupted_by_a_restart_is_finished_once(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    await set_showcase(discord_emu, admin)
    channel = showcase_channel(discord_emu)
    claimed_only, _ = await imagine(discord_emu, alice, "claimed, never posted")
    posted_unrecorded, _ = await imagine(discord_emu, alice, "posted, never recorded")
    # A process that stopped between claim and post, and one that stopped between post and record.
    gallery = first.services.gallery
    for job_id in (claimed_only, posted_unrecorded):
        job = await first.services.jobs.get(job_id)
        assert job is not None
        await gallery.gallery.claim(job, channel_id=channel, actor_id=alice.id, now=gallery.clock.now())
    unrecorded = await first.services.jobs.get(posted_unrecorded)
    assert unrecorded is not None
    discord_emu.create_message(
        channel_id=channel, author=discord_emu.bot, body={"content": f"⭐ earlier · job `{posted_unrecorded}`"}
    )
    await first.close()

    second: FluxcordBot = await start_bot()
    await discord_emu.wait_for(lambda: len(showcase_posts(discord_emu, channel, claimed_only)) == 1)
    await asyncio.sleep(0.3)
    assert len(showcase_posts(discord_emu, channel, claimed_only)) == 1
    assert len(showcase_posts(discord_emu, channel, posted_unrecorded)) == 1  # found, not posted again
    assert await second.services.gallery.unfinished() == []
