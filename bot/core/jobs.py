"""Job states and the job record every layer passes around."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from bot.core.requests import GenerationSpec


class JobState(StrEnum):
    """Where a job is; every change is a compare-and-set on the stored row."""

    #: accepted and paid for (held), waiting for a provider slot
    QUEUED = "queued"
    #: a provider accepted it and gave it an id
    SUBMITTED = "submitted"
    #: the provider reports it is being processed
    RUNNING = "running"
    #: outputs downloaded and stored; the hold is settled
    SUCCEEDED = "succeeded"
    #: ended without outputs; the hold is released
    FAILED = "failed"
    #: stopped by the member or an admin; the hold is released
    CANCELLED = "cancelled"
    #: ran past its deadline or the provider forgot it; the hold is released
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return not self.terminal


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})
AT_PROVIDER = frozenset({JobState.SUBMITTED, JobState.RUNNING})

_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_job_id() -> str:
    """A short id a member can type: 10 characters, no look-alikes."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


@dataclass(frozen=True, slots=True)
class Job:
    """One stored job, as read from the database."""

    id: str
    request_id: str
    guild_id: int
    user_id: int
    channel_id: int | None
    message_id: int | None
    origin: str
    parent_job_id: str | None
    parent_index: int | None
    spec: GenerationSpec
    input_sha256: str | None
    state: JobState
    provider: str | None
    provider_job_id: str | None
    attempts: int
    cost: int
    charged: int | None
    delivered: bool
    error: str | None
    created_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    inference_ms: int | None
    preferred_provider: str | None = None
    #: bytes one message may carry in the job's channel, if the front end knew it
    upload_limit: int | None = None
    #: its images are posted as spoilers (the server's channel or role policy when it was submitted)
    spoiler: bool = False
    #: what the adapter needs to find the job again (see `Submission.handle`)
    provider_handle: dict[str, str] = field(default_factory=dict)
    #: the provider a submit was sent to whose outcome is not recorded yet
    submitting_to: str | None = None

    @property
    def per_image(self) -> int:
        return self.cost // self.spec.count if self.spec.count else 0


@dataclass(frozen=True, slots=True)
class StoredOutput:
    """One delivered image of a succeeded job."""

    index: int
    data: bytes
    format: str
    width: int
    height: int


class Clock(Protocol):
    """Wall-clock time, injectable so midnight and deadlines can be tested."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real UTC clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)
