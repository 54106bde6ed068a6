"""A circuit breaker per provider: stop sending work to a provider that keeps failing, try again later."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"  #: healthy: everything goes through
    OPEN = "open"  #: failing: nothing goes through until the cool-down ends
    HALF_OPEN = "half-open"  #: cooled down: one trial job may go through


class CircuitBreaker:
    """Opens after `threshold` failures in a row; half-opens after `cooldown` seconds; a success closes it."""

    def __init__(self, *, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._open_for = cooldown
        self._trial = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self._open_for:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def reopens_in(self) -> float:
        """Seconds until an open circuit half-opens (0 when it is not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._open_for - self._clock())

    def available(self) -> bool:
        """Whether a job may be sent now: closed, or half-open with its one trial not yet taken."""
        state = self.state
        return state is CircuitState.CLOSED or (state is CircuitState.HALF_OPEN and not self._trial)

    def begin(self) -> None:
        """A job is being sent; in the half-open state it is the one trial."""
        if self.state is CircuitState.HALF_OPEN:
            self._trial = True

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._open_for = self.cooldown
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.open(self.cooldown)

    def open(self, seconds: float) -> None:
        """Open now for `seconds` (a provider out of credits is kept out longer than a flaky one)."""
        self._opened_at = self._clock()
        self._open_for = seconds
        self._trial = False
