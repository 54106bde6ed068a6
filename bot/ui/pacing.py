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
#: the notifier's requests in any one second, across all channels: Discord allows a bot 50 (interaction
#: answers aside), and the rest is left for everything else the bot sends with its token
GLOBAL_PER_SECOND = 45
#: of those, what new status messages and progress lines may take; only results may use all of it
GLOBAL_STATUS_SHARE = 35
GLOBAL_PROGRESS_SHARE = 20
#: a lane with nothing to do for this long stops its task and is dropped
IDLE_SECONDS = 30.0
#: what a bucket is taken to be before Discord's headers said otherwise (its usual message limit)
ASSUMED_LIMIT, ASSUMED_WINDOW = 5, 5.0

_CHANNEL_MESSAGES = re.compile(r"/channels/(\d+)/messages(/\d+)?$")


@dataclass(slots=True)
class Bucket:
    """What Discord last said about one rate-limit bucket; `limit == 0` means it said nothing (yet)."""

    limit: int = 0
    remaining: int = 0
    resets_at: float = 0.0
    #: the longest reset Discord announced: about the length of the bucket's window
    window: float = 0.0

    def spare(self, now: float) -> int | None:
        """Requests left in the current window, or None if Discord sends no limits for it."""
        if not self.limit:
            return None
        return self.limit if now >= self.resets_at else self.remaining

    def horizon(self, now: float) -> tuple[int, float]:
        """(requests spare, when the window ends): what results due before then can count on."""
        if not self.limit:
            return ASSUMED_LIMIT, now + ASSUMED_WINDOW
        if now >= self.resets_at:
            return self.limit, now + (self.window or ASSUMED_WINDOW)
        return self.remaining, self.resets_at

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
        bucket.window = max(bucket.window, reset_after)


class GlobalPace:
    """A sliding one-second window over every lane's requests, for Discord's global limit (which discord.py
    only reacts to, after a 429). Results may fill it; status messages and progress lines leave room."""

    def __init__(self, per_second: int = GLOBAL_PER_SECOND) -> None:
        self.per_second = per_second
        self._sent: deque[float] = deque()

    def wait(self, now: float, share: int) -> float:
        """Seconds until one more request fits within `share` requests a second (0 if it fits now)."""
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        share = min(share, self.per_second)
        if len(self._sent) < share:
            return 0.0
        return self._sent[len(self._sent) - share] + 1.0 - now

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
    #: when true by the time the request's turn comes, it is dropped (the future resolves to None)
    obsolete: Callable[[], bool] | None = None

    def dropped(self) -> bool:
        """Cancelled or made obsolete while it waited; then it costs no budget."""
        if self.future.done():
            return True
        if self.obsolete is not None and self.obsolete():
            self.future.set_result(None)
            return True
        return False


@dataclass(eq=False)
class Lane:
    """One channel's writes of one kind, one request at a time: urgent, then normal, then progress."""

    bucket: Bucket
    pace: GlobalPace
    on_idle: Callable[[], None] = lambda: None
    #: how many outcomes in the channel are expected before a moment: tokens progress must leave to them
    due: Callable[[float], int] = lambda before: 0
    _urgent: deque[_Work] = field(default_factory=deque)
    _normal: deque[_Work] = field(default_factory=deque)
    _progress: dict[str, Refreshable] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    #: while the lane sleeps only until a progress line is ready, a readier one must wake it; else nothing must
    _ready_wait_until: float = float("inf")

    def run(
        self, action: Callable[[], Awaitable[T]], *, urgent: bool, obsolete: Callable[[], bool] | None = None
    ) -> asyncio.Future[T | None]:
        """Queue a request; the future resolves with its result (None if dropped as obsolete before its turn).

        Cancelling the future before the request's turn drops it too.
        """
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(_Work(action, future, obsolete))
        self._poke()
        return future

    def want(self, key: str, item: Refreshable) -> None:
        """`item` has a newer line; it is refreshed once when spare budget allows (repeated calls coalesce).

        Cheap when many jobs report at once: the lane is only woken if this could change what it does next.
        """
        idle = not self.busy
        self._progress[key] = item
        if idle or self._task is None or item.ready_at < self._ready_wait_until:
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
            self._ready_wait_until = float("-inf")  # awake: wants need not wake it
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
        while self._urgent and self._urgent[0].dropped():
            self._urgent.popleft()
        while self._normal and self._normal[0].dropped():
            self._normal.popleft()
        if self._urgent:
            if (wait := self.pace.wait(now, GLOBAL_PER_SECOND)) > 0:
                return wait
            self.pace.spend(now)
            await self._send(self._urgent.popleft())
            return 0.0
        if self._normal:
            if not self.bucket.allows(now, keep=1):
                return max(0.01, self.bucket.resets_at - now)
            if (wait := self.pace.wait(now, GLOBAL_STATUS_SHARE)) > 0:
                return wait
            self.pace.spend(now)
            await self._send(self._normal.popleft())
            return 0.0
        if not self._progress:
            return None
        quota = max(1, int(self.bucket.limit * PROGRESS_SHARE))
        if not self.bucket.allows(now, keep=self.bucket.limit - quota):
            return max(0.01, self.bucket.resets_at - now)
        # Outcomes expected before the window ends get its last tokens; a progress line only takes one spare.
        spare, window_end = self.bucket.horizon(now)
        if spare - 1 < self.due(window_end):
            return max(0.01, window_end - now)
        if (wait := self.pace.wait(now, GLOBAL_PROGRESS_SHARE)) > 0:
            return wait
        key, item = min(self._progress.items(), key=lambda entry: entry[1].ready_at)
        if item.ready_at > now:
            self._ready_wait_until = item.ready_at
            return item.ready_at - now
        del self._progress[key]
        self.pace.spend(now)
        try:
            await item.refresh()
        except asyncio.CancelledError:
            raise
        except Exception:  # a status line must never take the lane down
            log.warning("status line update failed", exc_info=True)
        return 0.0

    @staticmethod
    async def _send(work: _Work) -> None:
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
