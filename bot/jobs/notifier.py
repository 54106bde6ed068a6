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

    def line(self) -> str:
        """`Queued (#3, ETA ~12 s)` or `Running on Segmind · 6 s ████░░░░░░░░`."""
        if self.state is JobState.QUEUED:
            parts = [f"#{self.position}"] if self.position else []
            if self.eta_seconds is not None:
                parts.append(f"ETA ~{self.eta_seconds:.0f} s")
            return "Queued" + (f" ({', '.join(parts)})" if parts else "")
        name = (self.provider or "the provider").capitalize()
        text = f"Running on {name} · {self.elapsed_seconds or 0.0:.0f} s"
        if self.fraction is not None:
            text += f" {progress_bar(self.fraction)}"
        return text


def progress_bar(fraction: float, width: int = 12) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


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
