"""Segmind: v2 async submit → poll the status URL → fetch the response URL once, as Segmind documents it.

Contract decisions, each with its evidence:

- Polling. docs.segmind.com/api-reference/async-inference: "Use status_url for efficient polling — it
  returns only status and metrics, no output payload" and "Once status is COMPLETED, fetch the full result
  from response_url". The SDK (segmind 1.3.0, segmind/v2.py) does the same and calls `result()` "Only
  meaningful once status is COMPLETED". What the response URL answers while a job is pending is not
  documented anywhere, so it is read once, after COMPLETED, and a non-final answer from it (404, 202, a
  pending body) is "not ready yet", never an expiry.
- URLs. The submit answer carries `status_url` and `response_url` (the SDK requires both and GETs them as
  given); they are kept as the job's handle, so a restart polls the same URLs. Only an answer without them
  makes the adapter build the documented paths from the base URL.
- FAILED is HTTP 422 with a status body on both URLs (SDK comment "heimdall returns the FAILED body under
  HTTP 422"); an unknown or expired id is 404 on the status URL (records last 1 hour).
- Money. There is no idempotency key: "Each POST /v2/{slug} creates a NEW request_id ... if a submit
  returns a 5xx, retry the submit" (Segmind's async-inference docs, quoted by API Evangelist's conventions
  file), and the error table marks 5xx "not billed". A 504 is a gateway giving up on a backend that may have
  taken the job, so it, a timeout and a reset leave the outcome unknown and are never resent. Out of credits
  is 402 on v2 and 406 on v1 (openCreate's Segmind client: "An empty balance is 402 on /v2 and 406 on /v1");
  both are the operator's problem.
- `output` "is always present" but its shape is model-specific: a URL (SDK README), a list of URLs
  (third-party integrations), or a JSON-encoded copy of the provider's JSON (SDK CHANGELOG 1.1.0).
- The Redux image. The model pages type `redux_image` as "string (uri)" and show only https URLs; the SDK's
  examples say "Pass input images as URLs — upload local files first"; Segmind Storage
  (docs.segmind.com/api-reference/segmind-storage) takes `{"data_urls": [...]}` at
  workflows-api.segmind.com/upload-asset and returns `urls` "that can be used as inputs for various models"
  (older SDKs read `file_urls`). Nothing documents a data URI or raw base64 in `redux_image`, so the image is
  uploaded and its URL sent (once per image and process). `image_input="data-uri"` sends it inline instead,
  for an operator who has checked that their account accepts it: Segmind Storage has no delete.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import aiohttp

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderOutcomeUnknownError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.images import fit_output_async
from bot.core.requests import GenerationSpec, ModelId
from bot.providers.base import Accepts, ProviderResult, ProviderState, ProviderStatus, Submission
from bot.providers.http import HttpAnswer, HttpClient, error_text, output_urls
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
OFFICIAL_BASE_URL = "https://api.segmind.com"
OFFICIAL_UPLOAD_URL = "https://workflows-api.segmind.com/upload-asset"
# flux-schnell on Segmind takes width/height of 512–2048 only.
_SCHNELL_MIN_SIDE = 512
# Uploaded input images remembered per process, by content.
_UPLOADS_KEPT = 256
ImageInput = Literal["upload", "data-uri"]
Call = Literal["submit", "status", "result", "upload"]


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


def default_upload_url(base_url: str) -> str:
    """Segmind Storage's upload URL for the official API; a stand-in serves it under its own base URL."""
    base = base_url.rstrip("/")
    return OFFICIAL_UPLOAD_URL if base == OFFICIAL_BASE_URL else f"{base}/upload-asset"


class SegmindProvider:
    """Adapter for api.segmind.com. No cancel and no idempotency: a submit is resent only after a refusal."""

    name = "segmind"
    models = frozenset(SLUGS)
    #: the vendor's pages document steps for every model and guidance for Redux dev
    tunable: ClassVar[Accepts] = {
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
        base_url: str = OFFICIAL_BASE_URL,
        timeout: float = 30.0,
        max_output_bytes: int = 25 * 1024 * 1024,
        upload_url: str | None = None,
        image_input: ImageInput = "upload",
    ) -> None:
        self.http = HttpClient(session, provider=self.name, timeout=timeout, secrets=[api_key])
        # Segmind Storage is another service on another host: its uploads do not spend the model API's budget.
        self.storage = HttpClient(session, provider=self.name, timeout=timeout, secrets=[api_key])
        self.base_url = base_url.rstrip("/")
        self.upload_url = upload_url or default_upload_url(self.base_url)
        self.image_input = image_input
        self.max_output_bytes = max_output_bytes
        self._headers = {"x-api-key": api_key, "Accept": "application/json"}
        self._uploaded: OrderedDict[str, str] = OrderedDict()

    def accepts(self, spec: GenerationSpec) -> bool:
        return spec.model in SLUGS

    # ------------------------------------------------------------------ vendor JSON

    @staticmethod
    def body(spec: GenerationSpec, redux_image: str | None) -> dict[str, Any]:
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
        if not redux_image:
            raise ProviderPermanentError("a Redux job needs an input image", provider="segmind")
        body: dict[str, Any] = {
            "redux_image": redux_image,
            "aspect_ratio": spec.aspect_ratio,
            # Typed "number" on the page, sent as the page's example sends it.
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

    def _raise_for(self, answer: HttpAnswer, call: Call) -> None:
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
        if status == 504 and call == "submit":
            raise ProviderOutcomeUnknownError(
                f"the gateway timed out on a submit (HTTP 504): {message}", provider=self.name, status=status
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
        lowered = message.lower()
        if status == 402 or (status == 406 and any(word in lowered for word in ("credit", "limit", "balance"))):
            raise ProviderPermanentError(
                f"Segmind is out of credits or over a spend limit (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        if status == 404 and call == "status":
            raise ProviderJobExpiredError(f"unknown or expired request: {message}", provider=self.name, status=404)
        if call == "result" and status in (404, 409, 425):
            raise ProviderTransientError(f"the result is not ready (HTTP {status})", provider=self.name, status=status)
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

    def _status_from(self, body: dict[str, Any]) -> ProviderStatus | None:
        """The status a body announces, or None when it names no status this adapter knows."""
        state = _STATES.get(str(body.get("status", "")).upper())
        if state is None:
            return None
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

    def _urls(self, job_id: str, handle: Mapping[str, str] | None) -> tuple[str, str]:
        handle = handle or {}
        status_url = handle.get("status_url") or f"{self.base_url}/v2/requests/{job_id}/status"
        response_url = handle.get("response_url") or f"{self.base_url}/v2/requests/{job_id}"
        return status_url, response_url

    # ------------------------------------------------------------------ the input image

    async def _redux_image(self, image: bytes) -> str:
        data_uri = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
        if self.image_input == "data-uri":
            return data_uri
        key = hashlib.sha256(image).hexdigest()
        url = self._uploaded.get(key)
        if url is not None:
            self._uploaded.move_to_end(key)
            return url
        # Not billable: a repeated upload only stores the file twice.
        answer = await self.storage.request(
            "POST", self.upload_url, json={"data_urls": [data_uri]}, headers=self._headers
        )
        if answer.status >= 300:
            self._raise_for(answer, "upload")
        urls = output_urls(answer.body.get("urls") or answer.body.get("file_urls")) if _is_dict(answer) else []
        if not urls:
            raise ProviderTransientError("the upload answer carries no URL", provider=self.name)
        self._uploaded[key] = urls[0]
        while len(self._uploaded) > _UPLOADS_KEPT:
            self._uploaded.popitem(last=False)
        return urls[0]

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        redux_image = None
        if spec.model.is_redux:
            if image is None:
                raise ProviderPermanentError("a Redux job needs an input image", provider=self.name)
            redux_image = await self._redux_image(image)
        answer = await self.http.request(
            "POST",
            f"{self.base_url}/v2/{SLUGS[spec.model]}",
            json=self.body(spec, redux_image),
            headers=self._headers,
            billable=True,
        )
        if answer.status >= 300:
            self._raise_for(answer, "submit")
        request_id = answer.body.get("request_id") if _is_dict(answer) else None
        if not isinstance(request_id, str) or not request_id:
            # A success without an id may still be a job Segmind runs and bills.
            raise ProviderOutcomeUnknownError(
                f"the submit answer (HTTP {answer.status}) carries no request_id", provider=self.name
            )
        handle = {
            key: value
            for key in ("status_url", "response_url")
            if isinstance(value := answer.body.get(key), str) and value.startswith(("https://", "http://"))
        }
        return Submission(job_id=request_id, handle=handle, sent_at=answer.sent_at)

    async def status(self, job_id: str, handle: Mapping[str, str] | None = None) -> ProviderStatus:
        status_url, _ = self._urls(job_id, handle)
        answer = await self.http.request("GET", status_url, headers=self._headers)
        body = answer.body if _is_dict(answer) else {}
        status = self._status_from(body)
        # FAILED comes as HTTP 422 with a normal status body.
        if status is not None and (answer.status < 300 or status.state is ProviderState.FAILED):
            return status
        if answer.status >= 300:
            self._raise_for(answer, "status")
        raise ProviderTransientError(
            f"the status answer (HTTP {answer.status}) names no known status", provider=self.name
        )

    async def result(
        self, job_id: str, spec: GenerationSpec, handle: Mapping[str, str] | None = None
    ) -> ProviderResult:
        _, response_url = self._urls(job_id, handle)
        answer = await self.http.request("GET", response_url, headers=self._headers)
        body = answer.body if _is_dict(answer) else {}
        status = self._status_from(body)
        if status is not None and status.state is ProviderState.FAILED:
            raise (ProviderBlockedError if status.blocked else ProviderPermanentError)(
                status.error or "the job failed", provider=self.name, status=answer.status
            )
        if answer.status >= 300:
            self._raise_for(answer, "result")
        if answer.status != 200 or status is None or status.state is not ProviderState.SUCCEEDED:
            raise ProviderTransientError(
                f"the result is not ready (HTTP {answer.status}, status {body.get('status')!r})", provider=self.name
            )
        if body.get("output") is None and body.get("images") is None:
            raise ProviderTransientError("the COMPLETED result carries no output yet", provider=self.name)
        urls = output_urls(body.get("output")) or output_urls(body.get("images"))
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


def _is_dict(answer: HttpAnswer) -> bool:
    return isinstance(answer.body, dict)


def _number(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
