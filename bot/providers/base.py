"""The one interface every provider adapter implements, and the models it speaks in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
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
    #: the seed the provider reports it used, when it says (it picks its own for seed 0)
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """A provider's acceptance of a job; `result` is set when the call itself already finished it.

    `handle` is what the adapter needs to find the job again (e.g. the URLs the submit answer gave); the
    engine stores it with the job and passes it back to `status` and `result`, after a restart too.
    """

    job_id: str
    result: ProviderResult | None = None
    handle: dict[str, str] = field(default_factory=dict)
    #: when the accepted request left (after any wait for the request budget): the job's age counts from it
    sent_at: datetime | None = None


class Provider(Protocol):
    """A hosted inference API. Errors are raised as the ProviderError tree of `bot.core.errors`."""

    name: str
    models: frozenset[ModelId]
    can_cancel: bool

    def accepts(self, spec: GenerationSpec) -> bool:
        """Whether the provider's documented inputs can express `spec` (model, options, count)."""
        ...

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        """Start a job; `image` is the normalized input (JPEG bytes) for Redux models."""
        ...

    async def status(self, job_id: str, handle: Mapping[str, str] | None = None) -> ProviderStatus:
        """Ask where the job stands, with the cheapest call the provider offers."""
        ...

    async def result(
        self, job_id: str, spec: GenerationSpec, handle: Mapping[str, str] | None = None
    ) -> ProviderResult:
        """Fetch and download the outputs of a succeeded job, at the size and format `spec` asks for."""
        ...

    async def cancel(self, job_id: str) -> None:
        """Ask the provider to stop the job; a no-op where the provider cannot."""
        ...


#: what an adapter declares, per model, about the tunable fields it sends on (`GenerationSpec.tuned_fields`)
Accepts = Mapping[ModelId, frozenset[str]]


def tunes(provider: object, spec: GenerationSpec) -> bool:
    """Whether `provider` (an adapter or its class) sends on every field the spec sets away from its default.

    An adapter lists the fields its vendor documents for each model in `tunable`; one that lists nothing is
    taken to send every field.
    """
    tunable: Accepts | None = getattr(provider, "tunable", None)
    return tunable is None or spec.tuned_fields() <= tunable.get(spec.model, frozenset())


def honours(provider: Provider, spec: GenerationSpec) -> bool:
    """Whether `provider` can run `spec`: its documented inputs express it, and it takes every tuned field."""
    return provider.accepts(spec) and tunes(provider, spec)
