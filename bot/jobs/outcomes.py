"""How a job that produced no images ends: a plain sentence for the member, the details for the operator."""

from __future__ import annotations

import logging

from bot.core.errors import (
    ProviderBlockedError,
    ProviderError,
    ProviderJobExpiredError,
    ProviderOutcomeUnknownError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.jobs import Job, JobState
from bot.jobs.polling import DeadlinePassedError

log = logging.getLogger("bot.jobs.engine")

# Never the provider's own words (those go to the operator's log, masked); the front ends add their own
# words about the refund.
TIMED_OUT = "The job took longer than the time limit."
LOST = "The provider lost track of the job."
BLOCKED = "The provider's safety filter blocked this job."
UNAVAILABLE = "The image provider is not available right now."
REFUSED = "The provider could not run this job."
KEPT_FAILING = "The provider kept failing; try again later."
UNCONFIRMED = "The provider did not confirm that it received the job, so it was stopped."
BROKEN = "Something went wrong while running the job."


def ending(job: Job, exc: Exception) -> tuple[JobState, str]:
    """The terminal state and member-facing reason for a job that failed with `exc`; logs what the operator needs."""
    if isinstance(exc, ProviderError) and not isinstance(exc, ProviderOutcomeUnknownError):
        log.warning("job=%s provider=%s %s: %s", job.id, exc.provider, type(exc).__name__, exc.message)
    if isinstance(exc, DeadlinePassedError):
        return JobState.EXPIRED, TIMED_OUT
    if isinstance(exc, ProviderOutcomeUnknownError):
        log.error(
            "job=%s provider=%s the outcome of a submit is unknown, so it was not sent again; "
            "one provider job may have been billed: %s",
            job.id,
            exc.provider,
            exc.message,
        )
        return JobState.FAILED, UNCONFIRMED
    if isinstance(exc, ProviderJobExpiredError):
        return JobState.EXPIRED, LOST
    if isinstance(exc, ProviderBlockedError):
        return JobState.FAILED, BLOCKED
    if isinstance(exc, ProviderPermanentError):
        if exc.operator:
            log.error("provider=%s needs the operator's attention: %s", exc.provider, exc.message)
            return JobState.FAILED, UNAVAILABLE
        return JobState.FAILED, REFUSED
    if isinstance(exc, ProviderTransientError):
        return JobState.FAILED, KEPT_FAILING
    log.error("job=%s failed unexpectedly", job.id, exc_info=exc)
    return JobState.FAILED, BROKEN
