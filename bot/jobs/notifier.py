"""What the engine tells the outside world about a job; Discord and the CLI implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.core.jobs import Job, JobState, StoredOutput


@dataclass(frozen=True, slots=True)
class Progress:
    """A live line for a job: queue position and ETA while queued, provider and elapsed time while running."""

    state: JobState
    provider: str | None = None
    position: int | None = None
    eta_seconds: float | None = None
    elapsed_seconds: float | None = None
    expected_seconds: float | None = None

    @property
    def fraction(self) -> float | None:
        """How far along the job is by the ETA, capped below 1 until it is done."""
        if self.elapsed_seconds is None or not self.expected_seconds:
            return None
        return min(0.95, self.elapsed_seconds / self.expected_seconds)


class JobNotifier(Protocol):
    """Receives every visible change of a job. `done` and `failed` must raise if delivery did not happen."""

    async def progress(self, job: Job, progress: Progress) -> None: ...

    async def done(self, job: Job, outputs: list[StoredOutput]) -> None: ...

    async def failed(self, job: Job) -> None: ...


class NullNotifier:
    """Tells nobody; for engines driven directly by tests."""

    async def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def done(self, job: Job, outputs: list[StoredOutput]) -> None:
        return None

    async def failed(self, job: Job) -> None:
        return None
