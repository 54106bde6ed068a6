"""The one interface every provider adapter implements, and the models it speaks in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bot.core.requests import GenerationSpec, ModelId


class ProviderState(StrEnum):
    """Where a job stands at the provider."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """One status answer, mapped out of the vendor's JSON."""

    state: ProviderState
    error: str | None = None
    #: the failure was the provider's safety filter (prompt refused or every output dropped)
    blocked: bool = False
    inference_seconds: float | None = None
    queue_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """The downloaded outputs of a finished job; fewer than requested when a safety filter dropped some."""

    images: list[bytes]
    inference_seconds: float | None = None
    queue_seconds: float | None = None
    #: the account's balance in the provider's own credits, where its answer reports one
    remaining_balance: float | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """A provider's acceptance of a job; `result` is set when the call itself already finished it."""

    job_id: str
    result: ProviderResult | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    """A hosted inference API. Errors are raised as the ProviderError tree of `bot.core.errors`."""

    name: str
    models: frozenset[ModelId]
    can_cancel: bool

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        """Start a job; `image` is the normalized input (JPEG bytes) for Redux models."""
        ...

    async def status(self, job_id: str) -> ProviderStatus:
        """Ask where the job stands, with the cheapest call the provider offers."""
        ...

    async def result(self, job_id: str, spec: GenerationSpec) -> ProviderResult:
        """Fetch and download the outputs of a succeeded job, at the size and format `spec` asks for."""
        ...

    async def cancel(self, job_id: str) -> None:
        """Ask the provider to stop the job; a no-op where the provider cannot."""
        ...


#: what an adapter declares, per model, about the tunable fields it sends on (`GenerationSpec.tuned_fields`)
Accepts = Mapping[ModelId, frozenset[str]]


def honours(provider: object, spec: GenerationSpec) -> bool:
    """Whether `provider` serves the spec's model and sends on every field the spec sets away from its default.

    An adapter lists the fields its vendor documents for each model in `accepts`; one that lists nothing is
    taken to send every field.
    """
    models: frozenset[ModelId] = getattr(provider, "models", frozenset())
    if spec.model not in models:
        return False
    accepts: Accepts | None = getattr(provider, "accepts", None)
    return accepts is None or spec.tuned_fields() <= accepts.get(spec.model, frozenset())
