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
    def remaining_seconds(self) -> float | None:
        """Seconds until the job should be done by the ETA (0 once overdue), if known."""
        if self.elapsed_seconds is None or self.expected_seconds is None:
            return None
        return max(0.0, self.expected_seconds - self.elapsed_seconds)

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
    """Shows a job to its member from queued to done; the engine drives it and stores the message ids it returns.

    `progress` must return at once (it may only note the line). `done` and `failed` return the id of the message
    that shows the outcome (None without one) and raise if the outcome may not be visible.
    """

    async def queued(self, job: Job) -> int | None:
        """Show a job the engine just created; the id of the message that shows it, if any."""
        ...

    def progress(self, job: Job, progress: Progress) -> None: ...

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None: ...

    async def failed(self, job: Job) -> int | None: ...

    async def close(self) -> None:
        """Stop whatever the notifier still had pending (the engine is stopping)."""
        ...


class NullNotifier:
    """Tells nobody; for engines driven directly by tests and the operator's command line."""

    async def queued(self, job: Job) -> int | None:
        return None

    def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None:
        return None

    async def failed(self, job: Job) -> int | None:
        return None

    async def close(self) -> None:
        return None
