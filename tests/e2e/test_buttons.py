"""Result buttons: re-roll, V1–V4, info and delete, through the real client."""

from __future__ import annotations

from bot.core.images import normalize_input
from emulators.discord.emulator import DiscordEmulator
from emulators.discord.messages import StoredMessage
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, decoded, job_id_from, png, wait_result


async def first_result(discord_emu: DiscordEmulator, member: object, count: int = 2) -> tuple[str, StoredMessage]:
    ack = await discord_emu.slash(
        "vary",
        user=member,
        options={"count": count, "megapixels": "0.25", "seed": 1234},  # type: ignore[arg-type]
        attachments={"image": ("in.png", png(), "image/png")},
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    return job_id, await wait_result(discord_emu, job_id)


def seed_of(message: StoredMessage) -> int:
    return int(next(f["value"] for f in message.embeds[0]["fields"] if f["name"] == "Seed").strip("`"))


async def test_reroll_is_a_new_job_paid_by_the_clicker_with_a_new_seed(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    job_id, result = await first_result(discord_emu, alice)
    click = await discord_emu.click(result, f"fx:reroll:{job_id}", user=bob)
    reroll_id = job_id_from((await click.wait_content("Re-rolling as job")).content)
    assert click.ephemeral
    reroll = await wait_result(discord_emu, reroll_id)
    assert reroll.id != result.id
    assert decoded(reroll) == decoded(result)
    assert seed_of(reroll) != seed_of(result) == 1234
    service = bot.services.generation
    alice_view = await service.credits(discord_emu.guild_id, alice.id)
    bob_view = await service.credits(discord_emu.guild_id, bob.id)
    assert (alice_view.balance.spendable, bob_view.balance.spendable) == (18, 18)
    rerolled = await service.job(reroll_id)
    assert rerolled.user_id == bob.id and rerolled.parent_job_id == job_id and rerolled.origin == "reroll"


async def test_v2_varies_output_two(discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    job_id, result = await first_result(discord_emu, alice)
    click = await discord_emu.click(result, f"fx:vary:{job_id}:2", user=alice)
    variation_id = job_id_from((await click.wait_content("Varying image 2 as job")).content)
    variation = await wait_result(discord_emu, variation_id)
    assert len(variation.attachments) == 2
    job = await bot.services.generation.job(variation_id)
    assert (job.parent_job_id, job.parent_index, job.origin) == (job_id, 2, "variation")
    # The provider was sent image 2 of the first job (normalized), not the original upload.
    outputs = await bot.services.generation.outputs(job_id)
    expected = normalize_input(outputs[1].data)
    assert job.input_sha256 == expected.sha256
    body = segmind.jobs[job.provider_job_id or ""].body
    assert segmind.assets[body["redux_image"]] == expected.data  # uploaded to Segmind Storage, sent as its URL
    assert normalize_input(outputs[0].data).sha256 != expected.sha256


async def test_info_answers_privately_and_delete_is_refused_to_a_stranger(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    await start_bot()
    alice, stranger = discord_emu.add_member("alice"), discord_emu.add_member("stranger")
    moderator = discord_emu.add_member("mod", manage_messages=True)
    job_id, result = await first_result(discord_emu, alice, count=1)

    info = await discord_emu.click(result, f"fx:info:{job_id}", user=stranger)
    answer = await info.wait_reply(lambda m: bool(m.embeds))
    assert answer.ephemeral and answer.embeds[0]["title"] == f"Job {job_id}"
    fields = {f["name"]: f["value"] for f in answer.embeds[0]["fields"]}
    assert fields["Seed"] == "`1234`" and fields["Provider"] == "Segmind" and fields["Steps"] == "4"

    refused = await discord_emu.click(result, f"fx:delete:{job_id}", user=stranger)
    assert "Only the member who asked" in (await refused.wait_reply(lambda m: not m.loading)).content
    assert not discord_emu.messages[result.id].deleted

    deleted = await discord_emu.click(result, f"fx:delete:{job_id}", user=moderator)
    await deleted.wait_content("Deleted")
    assert discord_emu.messages[result.id].deleted
