"""Segmind: v2 async submit → status → result for FLUX.1 Redux schnell/dev and FLUX.1 schnell."""

from __future__ import annotations

import base64
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.images import fit_output_async
from bot.core.requests import GenerationSpec, ModelId
from bot.providers.base import Accepts, ProviderResult, ProviderState, ProviderStatus, Submission
from bot.providers.http import HttpAnswer, HttpClient, error_text
from bot.providers.keys import KeyCheck, check_with

SLUGS: dict[ModelId, str] = {
    ModelId.REDUX_SCHNELL: "flux-redux-schnell",
    ModelId.REDUX_DEV: "flux-redux-dev",
    ModelId.SCHNELL: "flux-schnell",
}
_STATES = {
    "QUEUED": ProviderState.QUEUED,
    "PROCESSING": ProviderState.RUNNING,
    "COMPLETED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
}
#: finished result bodies kept between the poll that saw them and the result call
_FINISHED_KEPT = 256
# flux-schnell on Segmind takes width/height of 512–2048 only.
_SCHNELL_MIN_SIDE = 512


def is_safety_refusal(message: str) -> bool:
    text = message.lower()
    return "nsfw" in text or "safety" in text


def reset_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds until an `x-rate-limit-reset-at-utc` moment (ISO 8601 or epoch seconds)."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def schnell_render_size(spec: GenerationSpec) -> tuple[int, int]:
    """The size to ask flux-schnell for: the wanted size, or twice it when a side is below Segmind's minimum."""
    width, height = spec.size
    while min(width, height) < _SCHNELL_MIN_SIDE:
        width, height = width * 2, height * 2
    return width, height


class SegmindProvider:
    """Adapter for api.segmind.com. Segmind has no cancel and no idempotency: a submit is only retried on 5xx."""

    name = "segmind"
    models = frozenset(SLUGS)
    #: the vendor's pages document steps for every model and guidance for Redux dev
    accepts: ClassVar[Accepts] = {
        ModelId.REDUX_SCHNELL: frozenset({"steps"}),
        ModelId.REDUX_DEV: frozenset({"steps", "guidance"}),
        ModelId.SCHNELL: frozenset({"steps"}),
    }
    can_cancel = False

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.segmind.com",
        timeout: float = 30.0,
        max_output_bytes: int = 25 * 1024 * 1024,
    ) -> None:
        self.http = HttpClient(session, provider=self.name, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._headers = {"x-api-key": api_key, "Accept": "application/json"}
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # ------------------------------------------------------------------ vendor JSON

    @staticmethod
    def body(spec: GenerationSpec, image: bytes | None) -> dict[str, Any]:
        """Our spec in Segmind's words: Replicate's parameter set for Redux, ComfyUI-style for flux-schnell."""
        if spec.model is ModelId.SCHNELL:
            width, height = schnell_render_size(spec)
            return {
                "prompt": spec.prompt or "",
                "steps": spec.steps,
                "seed": spec.seed,
                "sampler_name": "euler",
                "scheduler": "simple",
                "samples": spec.count,
                "width": width,
                "height": height,
                "denoise": 1,
            }
        if image is None:
            raise ProviderPermanentError("a Redux job needs an input image", provider="segmind")
        body: dict[str, Any] = {
            "redux_image": "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii"),
            "aspect_ratio": spec.aspect_ratio,
            "megapixels": spec.megapixels,
            "num_outputs": spec.count,
            "num_inference_steps": spec.steps,
            "seed": spec.seed,
            "output_format": spec.output_format,
            "output_quality": spec.quality,
            "disable_safety_checker": not spec.safety,
        }
        if spec.model is ModelId.REDUX_DEV and spec.guidance is not None:
            body["guidance"] = spec.guidance
        return body

    def _raise_for(self, answer: HttpAnswer, *, job_call: bool) -> None:
        """Map an unsuccessful answer onto the error tree."""
        status, message = answer.status, error_text(answer)
        if status == 429:
            raise ProviderTransientError(
                f"rate limited: {message}",
                provider=self.name,
                status=status,
                retry_after=reset_seconds(answer.headers.get("x-rate-limit-reset-at-utc")),
                rate_limited=True,
            )
        if status >= 500:
            raise ProviderTransientError(f"HTTP {status}: {message}", provider=self.name, status=status)
        if status in (401, 403):
            raise ProviderPermanentError(
                f"Segmind refused the API key (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        if status == 406:
            raise ProviderPermanentError(
                f"Segmind is out of credits or refused the request: {message}",
                provider=self.name,
                status=status,
                operator="credit" in message.lower() or "limit" in message.lower(),
            )
        if status == 404 and job_call:
            raise ProviderJobExpiredError(f"unknown or expired request: {message}", provider=self.name, status=404)
        if status in (404, 410):
            raise ProviderPermanentError(
                f"Segmind does not serve this model (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        if status == 422 and is_safety_refusal(message):
            raise ProviderBlockedError(message, provider=self.name, status=status)
        raise ProviderPermanentError(f"HTTP {status}: {message}", provider=self.name, status=status)

    def _json(self, answer: HttpAnswer) -> dict[str, Any]:
        if not isinstance(answer.body, dict):
            raise ProviderTransientError(f"malformed JSON in an HTTP {answer.status} answer", provider=self.name)
        return answer.body

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        answer = await self.http.request(
            "POST",
            f"{self.base_url}/v2/{SLUGS[spec.model]}",
            json=self.body(spec, image),
            headers=self._headers,
        )
        if answer.status >= 300:
            self._raise_for(answer, job_call=False)
        request_id = self._json(answer).get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise ProviderTransientError("the submit answer has no request_id", provider=self.name)
        return Submission(job_id=request_id)

    def _status_from(self, body: dict[str, Any]) -> ProviderStatus:
        state = _STATES.get(str(body.get("status", "")).upper())
        if state is None:
            raise ProviderTransientError(f"unknown job status {body.get('status')!r}", provider=self.name)
        raw_metrics = body.get("metrics")
        metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), str) else None
        return ProviderStatus(
            state=state,
            error=error,
            blocked=bool(error and is_safety_refusal(error)),
            inference_seconds=_number(metrics.get("inference_time")),
            queue_seconds=_number(metrics.get("queue_time")),
        )

    async def _request_body(self, job_id: str) -> dict[str, Any]:
        """GET the job's response URL: its status while pending, status plus outputs once COMPLETED."""
        answer = await self.http.request("GET", f"{self.base_url}/v2/requests/{job_id}", headers=self._headers)
        # A FAILED job is served as HTTP 422 with a normal status body.
        if answer.status == 422 and isinstance(answer.body, dict) and answer.body.get("status") == "FAILED":
            return answer.body
        if answer.status >= 300:
            self._raise_for(answer, job_call=True)
        return self._json(answer)

    async def status(self, job_id: str) -> ProviderStatus:
        # Polling the response URL instead of /status costs nothing extra while pending and saves the
        # separate result request once the job is done (the body is kept for `result`).
        body = await self._request_body(job_id)
        status = self._status_from(body)
        if status.state is ProviderState.SUCCEEDED:
            self._finished[job_id] = body
            while len(self._finished) > _FINISHED_KEPT:
                self._finished.popitem(last=False)
        return status

    async def result(self, job_id: str, spec: GenerationSpec) -> ProviderResult:
        body = self._finished.pop(job_id, None) or await self._request_body(job_id)
        status = self._status_from(body)
        if status.state is ProviderState.FAILED:
            raise (ProviderBlockedError if status.blocked else ProviderPermanentError)(
                status.error or "the job failed", provider=self.name, status=422
            )
        if status.state is not ProviderState.SUCCEEDED:
            raise ProviderTransientError(f"the result is not ready ({body.get('status')})", provider=self.name)
        urls = _output_urls(body)
        images = await self.http.download_all(urls, max_bytes=self.max_output_bytes)
        if spec.model is ModelId.SCHNELL and schnell_render_size(spec) != spec.size:
            images = [
                await fit_output_async(data, size=spec.size, output_format=spec.output_format, quality=spec.quality)
                for data in images
            ]
        return ProviderResult(
            images=images,
            inference_seconds=status.inference_seconds,
            queue_seconds=status.queue_seconds,
            remaining_balance=remaining_credits(body),
        )

    async def cancel(self, job_id: str) -> None:
        return None

    async def check_key(self) -> KeyCheck:
        """Ask for the status of a request id nobody made: 404 with a good key, 401 with a bad one, nothing billed."""
        url = f"{self.base_url}/v2/requests/{uuid.uuid4()}/status"
        return await check_with(self.http, base_url=self.base_url, method="GET", url=url, headers=self._headers)


def remaining_credits(body: dict[str, Any]) -> float | None:
    """The account balance a finished v2 result reports in `metrics.remaining_credits`, if it does."""
    metrics = body.get("metrics")
    return _number(metrics.get("remaining_credits")) if isinstance(metrics, dict) else None


def _number(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _output_urls(body: dict[str, Any]) -> list[str]:
    """`output` is a URL or a list of URLs; some models use `images` instead."""
    for key in ("output", "images"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list):
            urls = [item for item in value if isinstance(item, str) and item]
            if urls:
                return urls
    return []
