"""Pacing the notifier's writes to Discord so that results never wait behind status lines.

Discord rate-limits message posts and edits per channel (about 5 per 5 s each), and discord.py queues every
request behind the ones before it on the same bucket. So the notifier keeps its own queue per channel and
route, sends one request at a time from it, and picks what goes next: results first, then new status
messages, then progress lines, which only ever use a share of the bucket that Discord says is spare (read
from the `X-RateLimit-*` headers of discord.py's own responses) and are coalesced to the latest line per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar

import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")

#: share of a bucket progress lines may take in one window; the rest stays free for results
PROGRESS_SHARE = 0.4
#: progress edits per second across all channels, well inside Discord's global 50 requests a second
GLOBAL_PROGRESS_PER_SECOND = 20
#: a lane with nothing to do for this long stops its task and is dropped
IDLE_SECONDS = 30.0

_CHANNEL_MESSAGES = re.compile(r"/channels/(\d+)/messages(/\d+)?$")


@dataclass(slots=True)
class Bucket:
    """What Discord last said about one rate-limit bucket; `limit == 0` means it said nothing (yet)."""

    limit: int = 0
    remaining: int = 0
    resets_at: float = 0.0

    def spare(self, now: float) -> int | None:
        """Requests left in the current window, or None if Discord sends no limits for it."""
        if not self.limit:
            return None
        return self.limit if now >= self.resets_at else self.remaining

    def allows(self, now: float, *, keep: int) -> bool:
        """True if one more request still leaves `keep` requests of the window for others."""
        spare = self.spare(now)
        return spare is None or spare > min(keep, self.limit - 1)


class RateWatch:
    """Reads the rate-limit headers of channel-message requests off discord.py's own HTTP session."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, str], Bucket] = {}

    def bucket(self, channel_id: int, kind: str) -> Bucket:
        """The bucket of new messages (`post`) or edits (`edit`) in a channel."""
        return self._buckets.setdefault((channel_id, kind), Bucket())

    def drop(self, channel_id: int, kind: str) -> None:
        self._buckets.pop((channel_id, kind), None)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Pass as discord.py's `http_trace`; observes responses, never changes them."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        found = _CHANNEL_MESSAGES.search(params.url.path)
        if found is None:
            return
        if params.method == "PATCH" and found[2]:
            kind = "edit"
        elif params.method == "POST" and not found[2]:
            kind = "post"
        else:
            return
        self.observe(int(found[1]), kind, params.response.headers, status=params.response.status)

    def observe(self, channel_id: int, kind: str, headers: Any, *, status: int = 200) -> None:
        """Update a bucket from one response's headers (a 429 leaves it empty until the reset)."""
        try:
            limit = int(headers["X-RateLimit-Limit"])
            remaining = 0 if status == 429 else int(headers["X-RateLimit-Remaining"])
            reset_after = float(headers.get("X-RateLimit-Reset-After") or headers.get("Retry-After") or 0)
        except (KeyError, ValueError):
            return
        bucket = self.bucket(channel_id, kind)
        bucket.limit, bucket.remaining, bucket.resets_at = limit, remaining, time.monotonic() + reset_after


class ProgressBudget:
    """A sliding one-second window shared by every lane, for progress edits only."""

    def __init__(self, per_second: int = GLOBAL_PROGRESS_PER_SECOND) -> None:
        self.per_second = per_second
        self._sent: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more progress edit fits (0 if it fits now)."""
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        return 0.0 if len(self._sent) < self.per_second else self._sent[0] + 1.0 - now

    def spend(self, now: float) -> None:
        self._sent.append(now)


class Refreshable(Protocol):
    """Something with a newer line to show, no sooner than `ready_at` (a `time.monotonic()` moment)."""

    @property
    def ready_at(self) -> float: ...

    async def refresh(self) -> None: ...


@dataclass(eq=False)
class _Work:
    action: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]


@dataclass(eq=False)
class Lane:
    """One channel's writes of one kind, one request at a time: urgent, then normal, then progress."""

    bucket: Bucket
    budget: ProgressBudget
    on_idle: Callable[[], None] = lambda: None
    _urgent: deque[_Work] = field(default_factory=deque)
    _normal: deque[_Work] = field(default_factory=deque)
    _progress: dict[str, Refreshable] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def run(self, action: Callable[[], Awaitable[T]], *, urgent: bool) -> asyncio.Future[T]:
        """Queue a request; the future resolves with its result. Cancelling the future before it starts skips it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(_Work(action, future))
        self._poke()
        return future

    def want(self, key: str, item: Refreshable) -> None:
        """`item` has a newer line; it is refreshed once when spare budget allows (repeated calls coalesce)."""
        self._progress[key] = item
        self._poke()

    def forget(self, key: str) -> None:
        self._progress.pop(key, None)

    @property
    def busy(self) -> bool:
        return bool(self._urgent or self._normal or self._progress)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for work in (*self._urgent, *self._normal):
            work.future.cancel()
        self._urgent.clear()
        self._normal.clear()
        self._progress.clear()

    def _poke(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._work(), name="fluxcord-lane")

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            wait = await self._step(time.monotonic())
            if wait == 0.0:
                continue
            if wait is None and not self.busy:
                wait = IDLE_SECONDS
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                if not self.busy:
                    self._task = None
                    self.on_idle()
                    return
                continue
            deadline = None if wait is None else loop.time() + wait
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()

    async def _step(self, now: float) -> float | None:
        """Send one request if one may go; else how long to wait (None: until something new arrives)."""
        if self._urgent:
            await self._send(self._urgent.popleft())
            return 0.0
        if self._normal:
            if self.bucket.allows(now, keep=1):
                await self._send(self._normal.popleft())
                return 0.0
            return max(0.01, self.bucket.resets_at - now)
        if not self._progress:
            return None
        quota = max(1, int(self.bucket.limit * PROGRESS_SHARE))
        if not self.bucket.allows(now, keep=self.bucket.limit - quota):
            return max(0.01, self.bucket.resets_at - now)
        global_wait = self.budget.wait(now)
        key, item = min(self._progress.items(), key=lambda entry: entry[1].ready_at)
        wait = max(item.ready_at - now, global_wait)
        if wait > 0:
            return wait
        del self._progress[key]
        self.budget.spend(now)
        try:
            await item.refresh()
        except asyncio.CancelledError:
            raise
        except Exception:  # a status line must never take the lane down
            log.warning("status line update failed", exc_info=True)
        return 0.0

    @staticmethod
    async def _send(work: _Work) -> None:
        if work.future.done():  # cancelled while it waited
            return
        try:
            result = await work.action()
        except asyncio.CancelledError:
            work.future.cancel()
            raise
        except Exception as exc:
            if not work.future.done():
                work.future.set_exception(exc)
        else:
            if not work.future.done():
                work.future.set_result(result)
