"""The error tree shared by every layer.

```
FluxcordError
├── UserError                  safe `message` for the member; nothing was charged
│   ├── InvalidRequestError    an option or attachment is not acceptable
│   ├── InsufficientCreditsError
│   ├── JobNotFoundError
│   └── NotAllowedError        not the job's owner, not a moderator or manager, or another server's job
├── ProviderError              raised only by bot/providers
│   ├── ProviderTransientError   retry later: the request was not accepted (refused connection, 429, safe 5xx)
│   ├── ProviderOutcomeUnknownError  a billable request may have been accepted; never send it again
│   ├── ProviderPermanentError   fail the job (400/401/403/404/422, out of credits)
│   │   ├── ProviderJobExpiredError   the provider no longer knows the job id
│   │   └── ProviderBlockedError      the safety filter refused the request or every output
└── StorageError               migration mismatch, integrity
```
"""

from __future__ import annotations


class FluxcordError(Exception):
    """Base of every error Fluxcord raises on purpose."""


class UserError(FluxcordError):
    """A refusal whose `message` is one clear sentence for the member."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(UserError):
    """An option, prompt or attachment is not acceptable."""


class InsufficientCreditsError(UserError):
    """The member cannot afford the job."""

    def __init__(self, message: str, *, spendable: int, cost: int) -> None:
        super().__init__(message)
        self.spendable = spendable
        self.cost = cost


class JobNotFoundError(UserError):
    """No job with that id belongs to the member."""


class NotAllowedError(UserError):
    """The member may not do that here; another server's job is refused exactly like a job that does not exist."""


class ProviderError(FluxcordError):
    """A provider call did not give a usable answer."""

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status


class ProviderTransientError(ProviderError):
    """Worth retrying: a read that failed, or a request the provider shows it did not accept (429, refused)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class ProviderOutcomeUnknownError(ProviderError):
    """A billable request got no usable answer after it left (timeout, reset, gateway timeout): it may run."""


class ProviderPermanentError(ProviderError):
    """Retrying will not help; `operator` marks problems only the operator can fix (bad key, no credits)."""

    def __init__(self, message: str, *, provider: str, status: int | None = None, operator: bool = False) -> None:
        super().__init__(message, provider=provider, status=status)
        self.operator = operator


class ProviderJobExpiredError(ProviderPermanentError):
    """The provider does not know the job id (never existed or past its retention)."""


class ProviderBlockedError(ProviderPermanentError):
    """The provider's safety filter refused the request or dropped every output."""


class StorageError(FluxcordError):
    """The database is not in a state this code can work with."""
