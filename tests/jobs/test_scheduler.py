from __future__ import annotations

from datetime import UTC, datetime

from bot.core.jobs import Job, JobState
from bot.core.requests import ImagineOptions
from bot.jobs.scheduler import FairQueue

SPEC = ImagineOptions.parse(prompt="x").resolve()


def job(job_id: str, guild: int, user: int) -> Job:
    return Job(
        id=job_id,
        request_id=job_id,
        guild_id=guild,
        user_id=user,
        channel_id=None,
        message_id=None,
        origin="command",
        parent_job_id=None,
        parent_index=None,
        spec=SPEC,
        input_sha256=None,
        state=JobState.QUEUED,
        provider=None,
        provider_job_id=None,
        attempts=0,
        cost=1,
        charged=None,
        delivered=False,
        error=None,
        created_at=datetime(2026, 11, 21, tzinfo=UTC),
        submitted_at=None,
        started_at=None,
        finished_at=None,
        inference_ms=None,
    )


def drain(queue: FairQueue) -> list[str]:
    served = []
    while (next_job := queue.pop()) is not None:
        served.append(next_job.id)
    return served


def test_members_take_turns_within_a_server() -> None:
    queue = FairQueue()
    for i in range(5):
        queue.push(job(f"a{i}", 1, 1))
    queue.push(job("b0", 1, 2))
    assert [j.id for j in queue.order()][:2] == ["a0", "b0"]
    assert drain(queue) == ["a0", "b0", "a1", "a2", "a3", "a4"]


def test_servers_take_turns_whatever_their_number_of_members() -> None:
    queue = FairQueue()
    for member in range(1, 4):
        for i in range(2):
            queue.push(job(f"busy-m{member}-{i}", 1, member))
    queue.push(job("quiet-0", 2, 9))
    queue.push(job("quiet-1", 2, 9))
    served = drain(queue)
    assert served[:4] == ["busy-m1-0", "quiet-0", "busy-m2-0", "quiet-1"]
    assert len(served) == 8


def test_an_ineligible_job_is_skipped_not_lost() -> None:
    queue = FairQueue()
    queue.push(job("a0", 1, 1))
    queue.push(job("b0", 1, 2))
    assert queue.pop(lambda j: j.user_id == 2) is not None
    assert queue.position("a0") == 1 and len(queue) == 1
    assert queue.remove("a0") and len(queue) == 0 and queue.pop() is None
