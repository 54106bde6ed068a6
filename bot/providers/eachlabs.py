"""Eachlabs: create → get polling (and cancel) for FLUX.1 Redux schnell and FLUX.1 schnell.

Contract decisions, each with its evidence:

- Models. eachlabs.ai/ai-models/flux-redux-schnell/api and eachlabs.ai/ai-models/flux-schnell/api document
  both, with Replicate's inputs and numbers sent as strings ("num_outputs": "1", "output_quality": "80").
  No Redux dev page exists, so dev is not offered here. The schnell page sends `"go_fast": "true"`; this
  adapter sends `go_fast` false (fp8 mode is not deterministic even with a seed) as a JSON boolean, the form
  the Redux page uses for `disable_safety_checker`, which no string parser can read as true.
- Input image. docs.eachlabs.ai/api/uploads/presign-upload: "To use your own files, upload them with this
  endpoint and pass the returned public_url to Create Prediction": `POST /v1/upload/presign`
  `{content_type, file_type}` → `presigned_url`, `required_headers`, `public_url`; PUT the bytes with every
  required header; "200 OK from the PUT means the file is live". The storage reference documents
  `expires_in_seconds` (minimum 60), used to keep members' images for a day rather than the 180-day default.
- `output` "may be a single URL or a list" (docs example: a string), and the get-prediction docs allow an
  object; every shape is read. Status enum: starting, processing, success, failed, cancelled (the model
  page's sample poller also checks `error`).
- Seeds: `logs` may carry the cog's `Using seed: N`; when it does, that seed is reported.
- Money. Create errors are documented: 400 invalid input, 401, and 500 `{"error": "Failed to create
  prediction"}`, which says nothing was created, so it may be retried. Any other 5xx, a timeout or a reset
  on create leaves the outcome unknown and is never resent.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderOutcomeUnknownError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.requests import GenerationSpec, ModelId
from bot.providers.base import Accepts, ProviderResult, ProviderState, ProviderStatus, Submission
from bot.providers.http import HttpAnswer, HttpClient, error_text, output_urls, retry_after, seed_from_logs
from bot.providers.keys import KeyCheck, check_with

# The FLUX models with a documented Eachlabs model page.
MODELS: dict[ModelId, str] = {ModelId.REDUX_SCHNELL: "flux-redux-schnell", ModelId.SCHNELL: "flux-schnell"}
#: how long Eachlabs keeps an uploaded input image
UPLOAD_TTL_SECONDS = 86_400
# An uploaded image's URL is reused for re-rolls within this time (well inside the TTL).
_UPLOAD_REUSE_SECONDS = 3_600
_UPLOADS_KEPT = 256
# Documented body of a create that created nothing.
_NOT_CREATED = "failed to create prediction"
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
    #: the model pages document num_inference_steps
    tunable: ClassVar[Accepts] = {ModelId.REDUX_SCHNELL: frozenset({"steps"}), ModelId.SCHNELL: frozenset({"steps"})}
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
        self.http = HttpClient(session, provider=self.name, timeout=timeout, secrets=[api_key])
        # The PUT goes to object storage, not the API: it does not spend the API's request budget.
        self.storage = HttpClient(session, provider=self.name, timeout=timeout, secrets=[api_key])
        self.base_url = base_url.rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._headers = {"X-API-Key": api_key, "Accept": "application/json"}
        self._uploaded: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def accepts(self, spec: GenerationSpec) -> bool:
        return spec.model in MODELS

    # ------------------------------------------------------------------ vendor JSON

    @staticmethod
    def body(spec: GenerationSpec, redux_image: str | None) -> dict[str, Any]:
        """Our spec in Eachlabs' words: Replicate's inputs, numbers as strings like the model pages send."""
        model = MODELS.get(spec.model)
        if model is None:
            raise ProviderPermanentError(f"Eachlabs does not serve {spec.model.label}", provider="eachlabs")
        values: dict[str, Any] = {
            "aspect_ratio": spec.aspect_ratio,
            "megapixels": spec.megapixels,
            "num_outputs": str(spec.count),
            "num_inference_steps": str(spec.steps),
            "seed": str(spec.seed),
            "output_format": spec.output_format,
            "output_quality": str(spec.quality),
            "disable_safety_checker": not spec.safety,
        }
        if spec.model is ModelId.SCHNELL:
            values = {"prompt": spec.prompt or "", **values, "go_fast": False}
        else:
            if not redux_image:
                raise ProviderPermanentError("a Redux job needs an input image", provider="eachlabs")
            values = {"redux_image": redux_image, **values}
        return {"model": model, "version": MODEL_VERSION, "input": values}

    def _raise_for(self, answer: HttpAnswer, *, job_call: bool, create: bool = False) -> None:
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
        if create and (status >= 500 or status == 408) and _NOT_CREATED not in message.lower():
            raise ProviderOutcomeUnknownError(
                f"HTTP {status} on a create, which may have started a prediction: {message}",
                provider=self.name,
                status=status,
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

    async def _redux_image(self, image: bytes) -> str:
        """The image's `public_url` after the documented two-step upload (reused for a while per image)."""
        key = hashlib.sha256(image).hexdigest()
        known = self._uploaded.get(key)
        if known is not None and time.monotonic() - known[1] < _UPLOAD_REUSE_SECONDS:
            return known[0]
        answer = await self.http.request(
            "POST",
            f"{self.base_url}/v1/upload/presign",
            json={"content_type": "image/jpeg", "file_type": "image", "expires_in_seconds": UPLOAD_TTL_SECONDS},
            headers=self._headers,
        )
        if answer.status >= 300:
            self._raise_for(answer, job_call=False)
        body = self._json(answer)
        presigned, public = body.get("presigned_url"), body.get("public_url")
        if not isinstance(presigned, str) or not presigned or not isinstance(public, str) or not public:
            raise ProviderTransientError("the presign answer lacks presigned_url or public_url", provider=self.name)
        required = body.get("required_headers")
        headers = {str(k): str(v) for k, v in required.items()} if isinstance(required, dict) else {}
        headers["Content-Type"] = "image/jpeg"
        put = await self.storage.request("PUT", presigned, data=image, headers=headers)
        if put.status >= 300:
            self._raise_for(put, job_call=False)
        self._uploaded[key] = (public, time.monotonic())
        while len(self._uploaded) > _UPLOADS_KEPT:
            self._uploaded.popitem(last=False)
        return public

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        redux_image = None
        if spec.model.is_redux:
            if image is None:
                raise ProviderPermanentError("a Redux job needs an input image", provider=self.name)
            redux_image = await self._redux_image(image)
        answer = await self.http.request(
            "POST",
            f"{self.base_url}/v1/prediction",
            json=self.body(spec, redux_image),
            headers=self._headers,
            billable=True,
        )
        if answer.status >= 300:
            self._raise_for(answer, job_call=False, create=True)
        if not isinstance(answer.body, dict):
            raise ProviderOutcomeUnknownError(
                f"malformed JSON in the HTTP {answer.status} answer to a create", provider=self.name
            )
        body = answer.body
        # The create envelope's `status` is about the call itself, not the prediction.
        if str(body.get("status", "success")).lower() in ("error", "failed"):
            raise ProviderPermanentError(f"the create call failed: {_message(answer)}", provider=self.name)
        prediction_id = body.get("predictionID")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ProviderOutcomeUnknownError("the create answer has no predictionID", provider=self.name)
        return Submission(job_id=prediction_id, sent_at=answer.sent_at)

    async def status(self, job_id: str, handle: Mapping[str, str] | None = None) -> ProviderStatus:
        return self._status_from(await self._get(job_id))

    async def result(
        self, job_id: str, spec: GenerationSpec, handle: Mapping[str, str] | None = None
    ) -> ProviderResult:
        body = await self._get(job_id)
        status = self._status_from(body)
        if status.state is ProviderState.FAILED:
            error = status.error or "the prediction failed"
            if status.blocked:
                raise ProviderBlockedError(error, provider=self.name)
            raise ProviderPermanentError(error, provider=self.name)
        if status.state is not ProviderState.SUCCEEDED:
            raise ProviderTransientError(f"the result is not ready ({body.get('status')})", provider=self.name)
        images = await self.http.download_all(output_urls(body.get("output")), max_bytes=self.max_output_bytes)
        return ProviderResult(
            images=images, inference_seconds=status.inference_seconds, seed=seed_from_logs(body.get("logs"))
        )

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
