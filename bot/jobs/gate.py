"""Per-provider request budget: at most `rpm` requests in any window, a pause after a 429, a concurrency cap."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


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
        self.requests = 0

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

    def spare(self) -> int | None:
        """Requests that could go out right now without waiting, or None for no budget."""
        if not self.rpm:
            return None
        self._expire(self._clock())
        return max(0, self.rpm - len(self._sent))

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
            self.requests += 1
