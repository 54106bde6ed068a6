"""Per-provider request budget: a token bucket over every request, a pause after a 429, a concurrency cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ProviderGate:
    """Every request to one provider passes `await gate.request()`; jobs at the provider hold a slot."""

    def __init__(
        self,
        *,
        concurrency: int,
        rpm: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.rpm = rpm
        self._clock = clock
        self.in_flight = 0
        self._tokens = float(rpm) if rpm else 0.0
        self._refilled = clock()
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
        return self.rpm / 60.0 if self.rpm else None

    def pause(self, seconds: float) -> None:
        """Hold back every request to this provider for `seconds` (after a 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def _refill(self) -> None:
        if not self.rpm:
            return
        now = self._clock()
        self._tokens = min(float(self.rpm), self._tokens + (now - self._refilled) * self.rpm / 60.0)
        self._refilled = now

    def spare_rate(self) -> float | None:
        """Tokens available now, as a measure of how much polling the budget can afford."""
        if not self.rpm:
            return None
        self._refill()
        return self._tokens

    async def request(self) -> None:
        """Wait until a request may be sent, then spend one token."""
        async with self._lock:  # first come, first served
            while True:
                wait = self.paused_for
                if self.rpm:
                    self._refill()
                    if self._tokens < 1:
                        wait = max(wait, (1 - self._tokens) * 60.0 / self.rpm)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm:
                self._tokens -= 1
            self.requests += 1
