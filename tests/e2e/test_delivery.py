"""Results reach Discord once and first: many jobs in one channel under Discord's rate limits, lost answers, crashes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.core.jobs import Job, JobState, StoredOutput
from bot.settings import Settings
from bot.ui.notifier import DiscordNotifier
from bot.ui.render import job_named, shows_outcome
from emulators.discord.emulator import DiscordEmulator
from emulators.discord.messages import RecordedRequest, StoredMessage
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, delivered, job_id_from, png, wait_result

EDIT = "PATCH /channels/{channel}/messages/{message}"
POST = "POST /channels/{channel}/messages"


def messages_of(discord_emu: DiscordEmulator, job_id: str) -> list[StoredMessage]:
    """The live channel messages that show the job (status line or outcome)."""
    return [m for m in discord_emu.channel_messages() if job_named(m.content) == job_id]


def is_outcome(request: RecordedRequest) -> bool:
    return bool(request.files) or shows_outcome(str((request.json or {}).get("content", "")))


def notifier_of(bot: Any) -> DiscordNotifier:
    notifier = bot.services.engine.notifier
    assert isinstance(notifier, DiscordNotifier)
    return notifier


async def test_many_jobs_in_one_channel_keep_within_the_limits_and_results_go_first(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, settings: Settings, start_bot: Start
) -> None:
    # Discord's limits, five times faster (5 posts and 5 edits a second in the channel).
    discord_emu.rate_limiter.config.time_scale = 0.2
    segmind.config = dataclasses.replace(segmind.config, latency_median=2.5)
    bot = await start_bot(
        settings.model_copy(update={"segmind_concurrency": 100, "segmind_rpm": 10_000, "server_concurrency": 100})
    )
    notifier = notifier_of(bot)
    # When each outcome was ready to show: a result must not wait behind status lines from then on.
    ready: dict[str, float] = {}
    show_done, show_failed = notifier.done, notifier.failed

    async def timed_done(job: Job, outputs: list[StoredOutput]) -> int | None:
        ready[job.id] = time.monotonic()
        return await show_done(job, outputs)

    async def timed_failed(job: Job) -> int | None:
        ready[job.id] = time.monotonic()
        return await show_failed(job)

    notifier.done, notifier.failed = timed_done, timed_failed  # type: ignore[method-assign]

    members = [discord_emu.add_member(f"member{n}") for n in range(24)]
    acks = [
        await discord_emu.slash("imagine", user=member, options={"prompt": f"a lighthouse, take {n}"})
        for n, member in enumerate(members)
    ]
    job_ids = [job_id_from((await ack.wait_content("Queued job", timeout=20)).content) for ack in acks]
    for job_id in job_ids:
        await wait_result(discord_emu, job_id, timeout=60)
        await delivered(bot, job_id)

    assert [r for r in discord_emu.requests if r.status == 429] == []
    for job_id in job_ids:
        [message] = messages_of(discord_emu, job_id)
        assert len(message.attachments) == 1
    message_job = {m.id: job_named(m.edits[0].content) for m in discord_emu.channel_messages()}
    edits = [r for r in discord_emu.calls(EDIT) if r.status == 200]
    progress = [r for r in edits if not is_outcome(r)]
    per_job = {job_id: 0 for job_id in job_ids}
    for request in progress:
        per_job[str(message_job[int(request.path.rsplit("/", 1)[1])])] += 1
    assert max(per_job.values()) <= 3, per_job
    # From the moment an outcome was ready, at most one status line (already on its way) went out before it,
    # on the route the outcome took.
    for request in [*edits, *discord_emu.calls(POST)]:
        if not is_outcome(request):
            continue
        if request.route == EDIT:
            job_id = message_job[int(request.path.rsplit("/", 1)[1])]
        else:
            job_id = job_named(str(request.json["content"]))
        assert job_id is not None
        overtaking = [
            other
            for other in discord_emu.calls(request.route)
            if not is_outcome(other) and ready[job_id] < other.at < request.at
        ]
        assert len(overtaking) <= 1, (job_id, overtaking)
    assert notifier.live == 0  # one record per live job, none left once all ended


async def test_a_result_whose_answer_was_lost_is_posted_once(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    segmind.next_outcome(failed=False, latency=1.5)
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    status = await discord_emu.wait_for_message(lambda m: job_named(m.content) == job_id)
    discord_emu.delete_message(status.id)
    # The result goes out as a new message; Discord posts it but the answer is lost (a 503 discord.py does not
    # retry), and the bot may not read the channel's history to look for it: only the job's nonce is left.
    discord_emu.inject_error("POST", r"^/channels/\d+/messages$", 503, after_applying=True)
    discord_emu.inject_error("GET", r"^/channels/\d+/messages$", 403, code=50001, message="Missing Access", times=5)

    result = await wait_result(discord_emu, job_id)
    job = await delivered(bot, job_id)
    await asyncio.sleep(0.3)  # time for a duplicate to show up, if one were coming

    assert messages_of(discord_emu, job_id) == [result]
    assert [r.status for r in discord_emu.calls(POST) if r.files] == [503, 200]
    assert job.message_id == result.id


Break = Callable[[Any], Awaitable[None]]


@pytest.mark.parametrize("nonce_window", [120.0, 0.0], ids=["nonce-window", "no-nonce-window"])
async def test_a_result_posted_just_before_a_crash_is_not_posted_again(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start, nonce_window: float
) -> None:
    discord_emu.nonce_window = nonce_window
    first = await start_bot()
    alice = discord_emu.add_member("alice")
    segmind.next_outcome(failed=False, latency=1.5)

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process died here")

    # The process dies after posting the result and before recording that it did.
    first.services.jobs.mark_delivered = crash  # type: ignore[method-assign]
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    status = await discord_emu.wait_for_message(lambda m: job_named(m.content) == job_id)
    discord_emu.delete_message(status.id)
    result = await wait_result(discord_emu, job_id)
    await first.close()
    posts_before = len(discord_emu.calls(POST))

    second = await start_bot()
    job = await delivered(second, job_id)

    assert messages_of(discord_emu, job_id) == [result]
    assert len(discord_emu.calls(POST)) == posts_before  # nothing posted by the second process
    assert job.message_id == result.id
    assert job.state is JobState.SUCCEEDED


async def test_a_status_message_posted_just_before_a_crash_becomes_the_result(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice = discord_emu.add_member("alice")
    segmind.next_outcome(failed=False, latency=2.0)

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process died here")

    # The status message goes out, and the process dies before recording which message it is.
    first.services.jobs.set_message = crash  # type: ignore[method-assign]
    ack = await discord_emu.slash("vary", user=alice, attachments={"image": ("a.png", png(), "image/png")})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    status = await discord_emu.wait_for_message(lambda m: job_named(m.content) == job_id)
    while (job := await first.services.jobs.get(job_id)) is None or job.state is JobState.QUEUED:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert job.message_id is None
    await first.close()

    second = await start_bot()
    result = await wait_result(discord_emu, job_id)
    job = await delivered(second, job_id)

    assert result.id == status.id  # the status message became the result: nothing left at "⏳ Queued"
    assert messages_of(discord_emu, job_id) == [result]
    assert len(result.attachments) == 1 and job.message_id == status.id
