"""Per-provider request budget: at most `rpm` requests in any window, a pause after a 429, a concurrency cap."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Below this share of the budget committed, polls are fast; from BUSY on they are as few as can be. One job
# after another polled fast uses about three quarters of Segmind's 50 a minute: still room, so still fast.
CALM, BUSY = 0.8, 1.0


@dataclass(frozen=True, slots=True)
class Headroom:
    """What a provider's request budget leaves right now, and how many running jobs share it."""

    spare: int
    limit: int
    #: sustained requests per second the budget allows
    rate: float
    jobs: int
    #: jobs queued for a slot, each of which will need the budget too
    waiting: int = 0

    @property
    def pressure(self) -> float:
        """0 while polling fast costs nothing, 1 when every request is needed: how much to hold back.

        Counts the requests of the last window, the two each running job still needs at least (a status
        request and the result), and the three each waiting job will (submit, status, result).
        """
        committed = (self.limit - self.spare + 2 * self.jobs + 3 * self.waiting) / max(1, self.limit)
        return min(1.0, max(0.0, (committed - CALM) / (BUSY - CALM)))

    @property
    def share_interval(self) -> float:
        """Seconds between one job's polls when every running job takes an equal share of the rate."""
        return max(1, self.jobs) / self.rate if self.rate > 0 else 0.0


class ProviderGate:
    """Every API request to one provider passes `await gate.request()`; jobs at the provider hold a slot.

    The budget is a sliding window, the same rule providers count by: a token bucket lets a full bucket
    and a minute's refill through within one minute, which a window-counting provider answers with 429s.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        rpm: int | None,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.rpm = rpm
        # A little wider than the provider's window: requests arrive a few milliseconds after they leave.
        self.window = window * 1.02 + 0.01 if rpm else window
        self._clock = clock
        self.in_flight = 0
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def has_slot(self) -> bool:
        return self.in_flight < self.concurrency

    def take_slot(self) -> None:
        self.in_flight += 1

    def free_slot(self) -> None:
        self.in_flight -= 1

    @property
    def rate(self) -> float | None:
        """Requests per second the budget allows, or None for no budget."""
        return self.rpm / self.window if self.rpm else None

    def pause(self, seconds: float) -> None:
        """Hold back every request to this provider for `seconds` (after a 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def headroom(self, waiting: int = 0) -> Headroom | None:
        """The budget's room right now, or None for no budget; `waiting` jobs are queued for it."""
        if not self.rpm:
            return None
        self._expire(self._clock())
        rate = self.rate or 0.0
        return Headroom(
            spare=max(0, self.rpm - len(self._sent)), limit=self.rpm, rate=rate, jobs=self.in_flight, waiting=waiting
        )

    async def request(self) -> None:
        """Wait until a request may be sent, then count it."""
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                wait = self.paused_for
                if self.rpm:
                    self._expire(now)
                    if len(self._sent) >= self.rpm:
                        wait = max(wait, self._sent[0] + self.window - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm:
                self._sent.append(self._clock())
