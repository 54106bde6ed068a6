"""A bot stopped mid-job and started again on the same database: delivered once, settled once, buttons work."""

from __future__ import annotations

import asyncio

from bot.core.jobs import JobState
from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, job_id_from, png, wait_result


async def test_a_job_submitted_before_a_restart_is_delivered_once(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice = discord_emu.add_member("alice")

    # A result posted before the restart, whose buttons must keep working.
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    before_id = job_id_from((await ack.wait_content("Queued job")).content)
    before = await wait_result(discord_emu, before_id)

    # A job that is at the provider when the process goes away.
    segmind.next_outcome(failed=False, latency=2.0)
    ack = await discord_emu.slash(
        "vary",
        user=alice,
        options={"count": 2},
        attachments={"image": ("b.png", png(colour=(10, 90, 200)), "image/png")},
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    jobs = first.services.jobs
    while (job := await jobs.get(job_id)) is None or job.state is JobState.QUEUED:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert job.state is JobState.SUBMITTED
    await first.close()

    second = await start_bot()
    result = await wait_result(discord_emu, job_id)
    assert len(result.attachments) == 2
    await asyncio.sleep(0.5)  # time for a duplicate to show up, if one were coming
    finished = [m for m in discord_emu.channel_messages() if f"job `{job_id}`" in m.content and m.attachments]
    assert [m.id for m in finished] == [result.id]
    uploads = [r for r in discord_emu.requests if r.files and str(result.id) in r.path]
    assert len(uploads) == 1
    assert segmind.counts["submit"] == 2  # resumed by provider id, never submitted again
    ledger = second.services.ledger
    kinds = [e.kind for e in await ledger.entries(discord_emu.guild_id, alice.id) if e.job_id == job_id]
    assert sorted(kinds) == ["capture", "hold"]
    assert await ledger.mismatches() == []

    # The button under the result posted by the first process works in the second.
    click = await discord_emu.click(before, f"fx:reroll:{before_id}", user=alice)
    reroll_id = job_id_from((await click.wait_content("Re-rolling as job")).content)
    await wait_result(discord_emu, reroll_id)
