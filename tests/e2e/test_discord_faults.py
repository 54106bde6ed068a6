"""Discord misbehaving: rate limits, deleted status messages, expired interaction tokens."""

from __future__ import annotations

from bot.core.jobs import JobState
from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, delivered, job_id_from, png, wait_result

EDIT = "PATCH /channels/{channel}/messages/{message}"


async def test_a_429_on_a_status_edit_is_retried_and_the_job_is_unaffected(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    discord_emu.inject_429("PATCH", r"^/channels/\d+/messages/\d+$", times=1, retry_after=0.2)
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)
    statuses = [request.status for request in discord_emu.calls(EDIT)]
    assert statuses[0] == 429 and 200 in statuses[1:]
    assert len(result.attachments) == 1
    job = await delivered(bot, job_id)
    assert job.state is JobState.SUCCEEDED


async def test_a_status_message_deleted_mid_job_gets_the_result_as_a_new_message(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    segmind.next_outcome(failed=False, latency=1.5)
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    status = await discord_emu.wait_for_message(lambda m: f"job `{job_id}`" in m.content and not m.ephemeral)
    discord_emu.delete_message(status.id)
    result = await wait_result(discord_emu, job_id)
    assert result.id != status.id and len(result.attachments) == 1
    job = await delivered(bot, job_id)
    assert job.message_id == result.id


async def test_the_result_arrives_after_the_interaction_token_expired(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    await start_bot()
    alice = discord_emu.add_member("alice")
    segmind.next_outcome(failed=False, latency=1.0)
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    discord_emu.advance(16 * 60)  # the interaction webhook is dead from here on
    result = await wait_result(discord_emu, job_id)
    assert len(result.attachments) == 1
    assert not result.ephemeral
