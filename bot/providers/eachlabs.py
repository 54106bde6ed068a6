"""Eachlabs: create → get polling (and cancel) for FLUX.1 Redux schnell, the one FLUX model its docs cover."""

from __future__ import annotations

import base64
import math
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.requests import GenerationSpec, ModelId
from bot.providers.base import Accepts, ProviderResult, ProviderState, ProviderStatus, Submission
from bot.providers.http import HttpAnswer, HttpClient, error_text, retry_after
from bot.providers.keys import KeyCheck, check_with

# Only flux-redux-schnell has a documented Eachlabs model page; other slugs would be guesses.
MODELS: dict[ModelId, str] = {ModelId.REDUX_SCHNELL: "flux-redux-schnell"}
# Documented as ignored, but older docs mark it required, so it is always sent.
MODEL_VERSION = "0.0.1"
_STATES = {
    "starting": ProviderState.QUEUED,
    "queued": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "running": ProviderState.RUNNING,
    "success": ProviderState.SUCCEEDED,
    "succeeded": ProviderState.SUCCEEDED,
    # The docs list `failed` and `cancelled`; the model page's sample poller checks `error`.
    "failed": ProviderState.FAILED,
    "error": ProviderState.FAILED,
    "cancelled": ProviderState.FAILED,
    "canceled": ProviderState.FAILED,
}
# An epoch timestamp rather than a delay when a reset header is at least this large.
_EPOCH_THRESHOLD = 1_000_000_000


def is_safety_refusal(message: str) -> bool:
    text = message.lower()
    return "nsfw" in text or "safety" in text


def retry_after_seconds(headers: dict[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (delay or HTTP date) or an `X-RateLimit-Reset` (epoch or delay)."""
    now = now or datetime.now(UTC)
    seconds = retry_after(headers.get("retry-after"), now)
    if seconds is not None:
        return seconds
    for name in ("x-ratelimit-reset", "x-rate-limit-reset"):
        number = _number(headers.get(name))
        if number is not None and math.isfinite(number):
            return max(0.0, number - now.timestamp() if number >= _EPOCH_THRESHOLD else number)
    return None


class EachlabsProvider:
    """Adapter for api.eachlabs.ai. A create is not idempotent: every POST is a new billable prediction."""

    name = "eachlabs"
    models = frozenset(MODELS)
    #: the model page documents num_inference_steps
    accepts: ClassVar[Accepts] = {ModelId.REDUX_SCHNELL: frozenset({"steps"})}
    can_cancel = True

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.eachlabs.ai",
        timeout: float = 30.0,
        max_output_bytes: int = 25 * 1024 * 1024,
    ) -> None:
        self.http = HttpClient(session, provider=self.name, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._headers = {"X-API-Key": api_key, "Accept": "application/json"}

    # ------------------------------------------------------------------ vendor JSON

    @staticmethod
    def body(spec: GenerationSpec, image: bytes | None) -> dict[str, Any]:
        """Our spec in Eachlabs' words: Replicate's Redux inputs, numbers as strings like the model page sends."""
        model = MODELS.get(spec.model)
        if model is None:
            raise ProviderPermanentError(f"Eachlabs does not serve {spec.model.label}", provider="eachlabs")
        if image is None:
            raise ProviderPermanentError("a Redux job needs an input image", provider="eachlabs")
        return {
            "model": model,
            "version": MODEL_VERSION,
            "input": {
                # No upload endpoint is documented; Replicate-backed file inputs take data URIs.
                "redux_image": "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii"),
                "aspect_ratio": spec.aspect_ratio,
                "megapixels": spec.megapixels,
                "num_outputs": str(spec.count),
                "num_inference_steps": str(spec.steps),
                "seed": str(spec.seed),
                "output_format": spec.output_format,
                "output_quality": str(spec.quality),
                "disable_safety_checker": not spec.safety,
            },
        }

    def _raise_for(self, answer: HttpAnswer, *, job_call: bool) -> None:
        """Map an unsuccessful answer onto the error tree."""
        status, message = answer.status, _message(answer)
        if status == 429:
            raise ProviderTransientError(
                f"rate limited: {message}",
                provider=self.name,
                status=status,
                retry_after=retry_after_seconds(answer.headers),
                rate_limited=True,
            )
        if status >= 500 or status == 408:
            raise ProviderTransientError(
                f"HTTP {status}: {message}",
                provider=self.name,
                status=status,
                retry_after=retry_after_seconds(answer.headers),
            )
        if status in (401, 403):
            raise ProviderPermanentError(
                f"Eachlabs refused the API key (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        lowered = message.lower()
        if status == 402 or "balance" in lowered or "credit" in lowered:
            raise ProviderPermanentError(
                f"Eachlabs is out of credits: {message}", provider=self.name, status=status, operator=True
            )
        if status == 404 and job_call:
            raise ProviderJobExpiredError(f"unknown or expired prediction: {message}", provider=self.name, status=404)
        if status == 404:
            raise ProviderPermanentError(
                f"Eachlabs does not serve this model: {message}", provider=self.name, status=status, operator=True
            )
        if is_safety_refusal(message):
            raise ProviderBlockedError(message, provider=self.name, status=status)
        raise ProviderPermanentError(f"HTTP {status}: {message}", provider=self.name, status=status)

    def _json(self, answer: HttpAnswer) -> dict[str, Any]:
        if not isinstance(answer.body, dict):
            raise ProviderTransientError(f"malformed JSON in an HTTP {answer.status} answer", provider=self.name)
        return answer.body

    def _status_from(self, body: dict[str, Any]) -> ProviderStatus:
        raw = str(body.get("status", "")).strip().lower()
        state = _STATES.get(raw)
        if state is None:
            raise ProviderTransientError(f"unknown prediction status {body.get('status')!r}", provider=self.name)
        raw_metrics = body.get("metrics")
        metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
        error: str | None = None
        if state is ProviderState.FAILED:
            error = _failure_text(body, raw)
        return ProviderStatus(
            state=state,
            error=error,
            blocked=bool(error and is_safety_refusal(error)),
            inference_seconds=_number(metrics.get("predict_time")),
        )

    async def _get(self, job_id: str) -> dict[str, Any]:
        answer = await self.http.request("GET", f"{self.base_url}/v1/prediction/{job_id}", headers=self._headers)
        if answer.status >= 300:
            self._raise_for(answer, job_call=True)
        return self._json(answer)

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        answer = await self.http.request(
            "POST", f"{self.base_url}/v1/prediction", json=self.body(spec, image), headers=self._headers
        )
        if answer.status >= 300:
            self._raise_for(answer, job_call=False)
        body = self._json(answer)
        # The create envelope's `status` is about the call itself, not the prediction.
        if str(body.get("status", "success")).lower() in ("error", "failed"):
            raise ProviderPermanentError(f"the create call failed: {_message(answer)}", provider=self.name)
        prediction_id = body.get("predictionID")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ProviderTransientError("the create answer has no predictionID", provider=self.name)
        return Submission(job_id=prediction_id)

    async def status(self, job_id: str) -> ProviderStatus:
        return self._status_from(await self._get(job_id))

    async def result(self, job_id: str, spec: GenerationSpec) -> ProviderResult:
        body = await self._get(job_id)
        status = self._status_from(body)
        if status.state is ProviderState.FAILED:
            error = status.error or "the prediction failed"
            if status.blocked:
                raise ProviderBlockedError(error, provider=self.name)
            raise ProviderPermanentError(error, provider=self.name)
        if status.state is not ProviderState.SUCCEEDED:
            raise ProviderTransientError(f"the result is not ready ({body.get('status')})", provider=self.name)
        images = await self.http.download_all(_output_urls(body.get("output")), max_bytes=self.max_output_bytes)
        return ProviderResult(images=images, inference_seconds=status.inference_seconds)

    async def cancel(self, job_id: str) -> None:
        # The method is undocumented (only the URL appears in `urls.cancel`); POST is the Replicate convention.
        answer = await self.http.request(
            "POST", f"{self.base_url}/v1/prediction/{job_id}/cancel", headers=self._headers
        )
        if answer.status >= 300:
            self._raise_for(answer, job_call=True)

    async def check_key(self) -> KeyCheck:
        """Look up a prediction id nobody made: 404 with a good key, 401 with a bad one. (No balance is reported.)"""
        url = f"{self.base_url}/v1/prediction/{uuid.uuid4()}"
        return await check_with(self.http, base_url=self.base_url, method="GET", url=url, headers=self._headers)


def _number(value: object) -> float | None:
    """A float from a number or a numeric string; Eachlabs sends both."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _message(answer: HttpAnswer) -> str:
    text = error_text(answer)
    details = answer.body.get("details") if isinstance(answer.body, dict) else None
    if isinstance(details, str) and details and details not in text:
        text = f"{text}: {details}"[:300]
    return text


def _failure_text(body: dict[str, Any], raw_status: str) -> str:
    error = body.get("error")
    if isinstance(error, str) and error.strip():
        return error.strip()[:300]
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()[:300]
    if raw_status in ("cancelled", "canceled"):
        return "the prediction was cancelled"
    logs = body.get("logs")
    if isinstance(logs, str) and logs.strip():
        return logs.strip().splitlines()[-1][:300]
    return "the prediction failed"


def _output_urls(output: object) -> list[str]:
    """`output` is a URL or a list of URLs."""
    if isinstance(output, str) and output:
        return [output]
    if isinstance(output, list):
        return [item for item in output if isinstance(item, str) and item]
    return []
