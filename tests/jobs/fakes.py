"""A scripted provider for engine tests: real images, controllable timing and failures."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from PIL import Image

from bot.core.errors import ProviderError
from bot.core.jobs import Job
from bot.core.requests import GenerationSpec, ModelId
from bot.jobs.notifier import Progress
from bot.providers.base import ProviderResult, ProviderState, ProviderStatus, Submission


def render(spec: GenerationSpec, index: int) -> bytes:
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[spec.output_format]
    buffer = io.BytesIO()
    Image.new("RGB", spec.size, ((spec.seed + index * 40) % 256, 90, 120)).save(buffer, fmt)
    return buffer.getvalue()


@dataclass
class FakeProvider:
    """Jobs take `duration` seconds; `errors` are raised, in order, by the named calls."""

    name: str = "fake"
    duration: float = 0.05
    drop: int = 0
    fail_with: str | None = None
    models: frozenset[ModelId] = frozenset(ModelId)
    can_cancel: bool = True
    errors: dict[str, list[ProviderError]] = field(default_factory=dict)
    submitted: dict[str, tuple[GenerationSpec, float]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def accepts(self, spec: GenerationSpec) -> bool:
        return spec.model in self.models

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        queue = self.errors.get(call)
        if queue:
            raise queue.pop(0)

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        self._maybe_fail("submit")
        job_id = f"p{next(self._ids)}"
        self.submitted[job_id] = (spec, time.monotonic())
        return Submission(job_id=job_id)

    async def status(self, job_id: str, handle: Mapping[str, str] | None = None) -> ProviderStatus:
        self._maybe_fail("status")
        _, started = self.submitted[job_id]
        if time.monotonic() - started < self.duration:
            return ProviderStatus(ProviderState.RUNNING)
        if self.fail_with:
            return ProviderStatus(ProviderState.FAILED, error=self.fail_with)
        return ProviderStatus(ProviderState.SUCCEEDED, inference_seconds=self.duration)

    async def result(
        self, job_id: str, spec: GenerationSpec, handle: Mapping[str, str] | None = None
    ) -> ProviderResult:
        self._maybe_fail("result")
        return ProviderResult(images=[render(spec, i) for i in range(spec.count - self.drop)])

    async def cancel(self, job_id: str) -> None:
        self._maybe_fail("cancel")
        self.cancelled.append(job_id)


@dataclass
class RecordingNotifier:
    """Remembers everything it was told; `fail_deliveries` makes the first N deliveries raise."""

    progress_log: list[tuple[str, Progress]] = field(default_factory=list)
    done_log: list[tuple[str, int]] = field(default_factory=list)
    failed_log: list[tuple[str, str | None]] = field(default_factory=list)
    fail_deliveries: int = 0
    delivered: asyncio.Event = field(default_factory=asyncio.Event)

    queued_log: list[str] = field(default_factory=list)

    async def queued(self, job: Job) -> int | None:
        self.queued_log.append(job.id)
        return None

    def progress(self, job: Job, progress: Progress) -> None:
        self.progress_log.append((job.id, progress))

    def _check(self) -> None:
        if self.fail_deliveries > 0:
            self.fail_deliveries -= 1
            raise RuntimeError("delivery failed")

    async def done(self, job: Job, outputs: Iterable[object]) -> int | None:
        self._check()
        self.done_log.append((job.id, len(list(outputs))))
        self.delivered.set()
        return None

    async def failed(self, job: Job) -> int | None:
        self._check()
        self.failed_log.append((job.id, job.error))
        self.delivered.set()
        return None

    async def close(self) -> None:
        return None
