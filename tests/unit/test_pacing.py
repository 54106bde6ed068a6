"""The notifier's lanes: results before status posts before progress lines, within Discord's buckets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.ui.pacing import Bucket, GlobalPace, Lane, RateWatch


@dataclass(eq=False)
class Line:
    """A status line that records when it was shown."""

    name: str
    log: list[str]
    ready_at: float = float("-inf")
    shown: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def refresh(self) -> None:
        self.shown += 1
        self.log.append(self.name)


def request(
    log: list[str], name: str, *, started: asyncio.Event | None = None, hold: asyncio.Event | None = None
) -> Callable[[], Awaitable[str]]:
    """A request that logs `name` when it is sent (after `hold`, if given), telling `started` it began."""

    async def send() -> str:
        if started is not None:
            started.set()
        if hold is not None:
            await hold.wait()
        log.append(name)
        return name

    return send


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polls state the test does not own
            await asyncio.sleep(0.005)


async def test_results_overtake_waiting_status_posts_and_progress_lines() -> None:
    log: list[str] = []
    lane = Lane(Bucket(), GlobalPace())
    started, hold = asyncio.Event(), asyncio.Event()
    first = lane.run(request(log, "status-1", started=started, hold=hold), urgent=False)
    await started.wait()  # status-1 is on its way; everything below waits behind it
    lane.want("a", Line("progress-a", log))
    second = lane.run(request(log, "status-2"), urgent=False)
    result = lane.run(request(log, "result"), urgent=True)
    hold.set()
    await asyncio.gather(first, second, result)
    await until(lambda: len(log) == 4)
    assert log == ["status-1", "result", "status-2", "progress-a"]
    lane.close()


async def test_progress_lines_coalesce_and_a_dropped_post_costs_nothing() -> None:
    log: list[str] = []
    pace = GlobalPace()
    lane = Lane(Bucket(), pace)
    line = Line("line", log)
    hold = asyncio.Event()
    blocker = lane.run(request(log, "busy", hold=hold), urgent=True)
    for _ in range(5):
        lane.want("a", line)
    skipped = lane.run(request(log, "never"), urgent=False, obsolete=lambda: True)
    hold.set()
    assert await skipped is None
    await blocker
    await until(lambda: line.shown > 0)
    assert log == ["busy", "line"] and line.shown == 1
    assert pace.wait(time.monotonic(), 2) > 0  # two requests spent: "busy" and the line, not the dropped post
    lane.close()


async def test_progress_leaves_a_windows_tokens_to_results_that_are_due() -> None:
    log: list[str] = []
    bucket = Bucket(limit=5, remaining=5, resets_at=time.monotonic() + 0.3, window=0.3)
    due = 5
    lane = Lane(bucket, GlobalPace(), due=lambda before: due)
    lane.want("a", Line("progress", log))
    await asyncio.sleep(0.05)
    assert log == []  # five results expected in the window: no spare token for a status line
    due = 0
    lane.run(request(log, "result"), urgent=True)  # wakes the lane; the line may go now
    await until(lambda: len(log) == 2)
    assert log == ["result", "progress"]
    lane.close()


async def test_progress_waits_for_the_bucket_while_results_do_not() -> None:
    log: list[str] = []
    bucket = Bucket(limit=5, remaining=2, resets_at=time.monotonic() + 0.2, window=0.2)
    lane = Lane(bucket, GlobalPace())
    lane.want("a", Line("progress", log))
    await lane.run(request(log, "result"), urgent=True)
    assert log == ["result"]
    await until(lambda: len(log) == 2)  # once the window reset and the bucket is whole again
    assert log == ["result", "progress"]
    assert time.monotonic() >= bucket.resets_at
    lane.close()


def test_the_global_pace_keeps_room_for_results() -> None:
    pace = GlobalPace(per_second=4)
    now = 100.0
    for _ in range(2):
        assert pace.wait(now, 2) == 0
        pace.spend(now)
    assert pace.wait(now, 2) == 1.0  # progress is at its share
    assert pace.wait(now, 4) == 0  # a result still fits
    assert pace.wait(now + 1.0, 2) == 0  # a second later the window moved on


def test_rate_watch_reads_discords_headers_and_a_429_empties_the_bucket() -> None:
    watch = RateWatch()
    headers = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset-After": "4.0"}
    watch.observe(7, "edit", headers)
    bucket = watch.bucket(7, "edit")
    now = time.monotonic()
    assert bucket.spare(now) == 3 and bucket.window == 4.0
    assert bucket.spare(now + 5) == 5  # past the reset
    watch.observe(7, "edit", headers | {"Retry-After": "1"}, status=429)
    assert bucket.spare(time.monotonic()) == 0
    watch.observe(7, "edit", {"X-RateLimit-Limit": "5"})  # an incomplete set changes nothing
    assert bucket.spare(time.monotonic()) == 0
