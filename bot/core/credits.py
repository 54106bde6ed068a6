"""Credit arithmetic and the member-facing sentences about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True, slots=True)
class Balance:
    """One member's pots in one server."""

    allowance: int
    granted: int
    held: int
    allowance_day: str

    @property
    def spendable(self) -> int:
        return self.allowance + self.granted


def next_refill(now: datetime) -> datetime:
    """The next 00:00 UTC after `now`, when the daily allowance tops up."""
    tomorrow: date = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0, tzinfo=UTC))


def relative_time(moment: datetime) -> str:
    """A Discord relative timestamp (`<t:…:R>`), which clients render in the reader's own words."""
    return f"<t:{int(moment.timestamp())}:R>"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def insufficient_message(spendable: int, cost: int, now: datetime) -> str:
    return (
        f"You have {plural(spendable, 'credit')}; this job costs {cost}. "
        f"Your allowance refills {relative_time(next_refill(now))}."
    )
