"""Replicate: predictions on the official FLUX.1 Redux schnell/dev and FLUX.1 schnell models.

Contract decisions, each with its evidence:

- Input image. Replicate: "Input files can be HTTP URLs or data URLs. Data URLs are recommended only for
  files of 256 KB or less"; larger files go through `POST /v1/files` (multipart field `content`; the client
  passes the answer's `urls.get`). Redux resizes its input to 384×384 (cog-flux image_embedders.py), so the
  image is re-encoded at 768 px, which nearly always fits a data URL; the files API takes the rest.
- Seeds. The cog treats a falsy seed as "pick one": `if not seed: seed = int.from_bytes(os.urandom(2))`
  and prints `Using seed: N` (cog-flux bfl_predictor.py), which reaches the prediction's `logs`. The seed
  read from there is reported, so a member's `seed:0` shows the seed that reproduces the images.
- `go_fast: false` for flux-schnell: fp8 mode "will not be deterministic ... even if you set a seed".
- Money. A create is not idempotent and the official client never retries a POST (RetryTransport retries
  429/503/504 for idempotent methods only); nothing documents a 5xx on create as "not created". So a
  timeout, a reset or a 5xx on create leaves the outcome unknown and is never resent; 429 and 4xx are refusals.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import aiohttp

from bot.core.errors import (
    ProviderBlockedError,
    ProviderError,
    ProviderJobExpiredError,
    ProviderOutcomeUnknownError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.redux_input import compact_jpeg_async
from bot.core.requests import GenerationSpec, ModelId
from bot.providers.base import Accepts, ProviderResult, ProviderState, ProviderStatus, Submission
from bot.providers.http import HttpAnswer, HttpClient, output_urls, retry_after, seed_from_logs
from bot.providers.keys import KeyCheck, check_with

OWNER = "black-forest-labs"
SLUGS: dict[ModelId, str] = {
    ModelId.REDUX_SCHNELL: "flux-redux-schnell",
    ModelId.REDUX_DEV: "flux-redux-dev",
    ModelId.SCHNELL: "flux-schnell",
}
_STATES = {
    "starting": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "canceled": ProviderState.FAILED,
}
_TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# Replicate holds a waited create for at most 60 s.
MAX_WAIT_SECONDS = 60
# "Request was throttled. Your rate limit resets in ~30s." (older wording: "Expected available in 30 seconds.")
_RESET_IN = re.compile(r"(?:resets in|available in)\s*~?\s*(\d+(?:\.\d+)?)\s*(?:s\b|sec)", re.IGNORECASE)
#: "Data URLs are recommended only for files of 256 KB or less"
MAX_DATA_URL_BYTES = 256 * 1024


def is_safety_refusal(message: str) -> bool:
    """The cog's every-output-dropped failure, or Replicate's own sensitive-content refusal (E005)."""
    text = message.lower()
    return "nsfw" in text or "flagged as sensitive" in text


def retry_after_seconds(header: str | None, detail: str = "", now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or HTTP date), else from the 429 `detail` text."""
    seconds = retry_after(header, now)
    if seconds is not None:
        return seconds
    match = _RESET_IN.search(detail)
    return float(match.group(1)) if match else None


def problem_text(answer: HttpAnswer) -> str:
    """The vendor's own words from a problem+json body (`detail`, else `title`), kept short."""
    if isinstance(answer.body, dict):
        for key in ("detail", "title", "error"):
            value = answer.body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
    text = answer.text.strip()
    return text[:300] if text and "<html" not in text.lower() else f"HTTP {answer.status}"


class ReplicateProvider:
    """Adapter for api.replicate.com. Creates use the versionless official-model endpoint, optionally waited."""

    name = "replicate"
    models = frozenset(SLUGS)
    #: the models' input schemas take num_inference_steps everywhere and guidance on Redux dev
    tunable: ClassVar[Accepts] = {
        ModelId.REDUX_SCHNELL: frozenset({"steps"}),
        ModelId.REDUX_DEV: frozenset({"steps", "guidance"}),
        ModelId.SCHNELL: frozenset({"steps"}),
    }
    can_cancel = True

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.replicate.com",
        timeout: float = 30.0,
        max_output_bytes: int = 25 * 1024 * 1024,
        wait_seconds: int = 0,
        max_data_url_bytes: int = MAX_DATA_URL_BYTES,
    ) -> None:
        self.wait_seconds = max(0, min(MAX_WAIT_SECONDS, wait_seconds))
        self.max_data_url_bytes = max_data_url_bytes
        self.http = HttpClient(session, provider=self.name, timeout=timeout, secrets=[api_key])
        # A waited create is held open by the server, so it gets that much longer before timing out.
        self._create_http = HttpClient(
            session, provider=self.name, timeout=timeout + self.wait_seconds, secrets=[api_key]
        )
        self.base_url = base_url.rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._headers = {**self._auth, "Accept": "application/json"}

    def accepts(self, spec: GenerationSpec) -> bool:
        return spec.model in SLUGS

    # ------------------------------------------------------------------ vendor JSON

    @staticmethod
    def body(spec: GenerationSpec, redux_image: str | None) -> dict[str, Any]:
        """Our spec in the cog's parameter names, wrapped as a create body."""
        values: dict[str, Any] = {
            "aspect_ratio": spec.aspect_ratio,
            "megapixels": spec.megapixels,
            "num_outputs": spec.count,
            "num_inference_steps": spec.steps,
            "seed": spec.seed,
            "output_format": spec.output_format,
            "output_quality": spec.quality,
            "disable_safety_checker": not spec.safety,
        }
        if spec.model is ModelId.SCHNELL:
            # fp8 "go fast" mode is not deterministic even with a seed, and seeds must reproduce.
            return {"input": {"prompt": spec.prompt or "", **values, "go_fast": False}}
        if not redux_image:
            raise ProviderPermanentError("a Redux job needs an input image", provider="replicate")
        values = {"redux_image": redux_image, **values}
        if spec.model is ModelId.REDUX_DEV and spec.guidance is not None:
            values["guidance"] = spec.guidance
        return {"input": values}

    def _raise_for(self, answer: HttpAnswer, *, job_call: bool, create: bool = False) -> None:
        """Map an unsuccessful answer onto the error tree."""
        status, message = answer.status, problem_text(answer)
        if status == 429:
            raise ProviderTransientError(
                f"rate limited: {message}",
                provider=self.name,
                status=status,
                retry_after=retry_after_seconds(answer.headers.get("retry-after"), message),
                rate_limited=True,
            )
        if status >= 500 and create:
            raise ProviderOutcomeUnknownError(
                f"HTTP {status} on a create, which may have started a prediction: {message}",
                provider=self.name,
                status=status,
            )
        if status >= 500:
            raise ProviderTransientError(f"HTTP {status}: {message}", provider=self.name, status=status)
        if status in (401, 403):
            raise ProviderPermanentError(
                f"Replicate refused the API token (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        if status == 402:
            raise ProviderPermanentError(
                f"Replicate is out of credit: {message}", provider=self.name, status=status, operator=True
            )
        if status == 404 and job_call:
            raise ProviderJobExpiredError(f"unknown or expired prediction: {message}", provider=self.name, status=404)
        if status in (404, 410):
            raise ProviderPermanentError(
                f"Replicate does not serve this model (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        raise ProviderPermanentError(f"HTTP {status}: {message}", provider=self.name, status=status)

    def _prediction(self, answer: HttpAnswer, *, job_call: bool, create: bool = False) -> dict[str, Any]:
        if answer.status >= 300:
            self._raise_for(answer, job_call=job_call, create=create)
        if not isinstance(answer.body, dict):
            if create:
                raise ProviderOutcomeUnknownError(
                    f"malformed JSON in the HTTP {answer.status} answer to a create", provider=self.name
                )
            raise ProviderTransientError(f"malformed JSON in an HTTP {answer.status} answer", provider=self.name)
        return answer.body

    def _status_from(self, body: dict[str, Any]) -> ProviderStatus:
        raw = str(body.get("status", ""))
        state = _STATES.get(raw)
        if state is None:
            raise ProviderTransientError(f"unknown prediction status {raw!r}", provider=self.name)
        error = body.get("error") if isinstance(body.get("error"), str) and body.get("error") else None
        if raw == "canceled":
            error = error or "the prediction was canceled"
        raw_metrics = body.get("metrics")
        metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
        return ProviderStatus(
            state=state,
            error=error,
            blocked=raw == "failed" and bool(error and is_safety_refusal(error)),
            inference_seconds=_number(metrics.get("predict_time")),
            queue_seconds=_queue_seconds(body),
        )

    async def _get(self, job_id: str) -> dict[str, Any]:
        answer = await self.http.request("GET", f"{self.base_url}/v1/predictions/{job_id}", headers=self._headers)
        return self._prediction(answer, job_call=True)

    async def _download(self, job_id: str, body: dict[str, Any], status: ProviderStatus) -> ProviderResult:
        if body.get("data_removed") or body.get("output") is None:
            raise ProviderJobExpiredError(f"the outputs of {job_id} were removed", provider=self.name)
        # Replicate's delivery URLs want the same token as the API.
        images = await self.http.download_all(_outputs(body), max_bytes=self.max_output_bytes, headers=self._auth)
        return ProviderResult(
            images=images,
            inference_seconds=status.inference_seconds,
            queue_seconds=status.queue_seconds,
            seed=seed_from_logs(body.get("logs")),
        )

    async def _redux_image(self, image: bytes) -> str:
        """A data URL when the image fits Replicate's advice (≤ 256 KB), else an upload to the files API."""
        data = await compact_jpeg_async(image, max_bytes=self.max_data_url_bytes)
        if len(data) <= self.max_data_url_bytes:
            return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        form = aiohttp.FormData()
        form.add_field("content", data, filename="input.jpg", content_type="image/jpeg")
        answer = await self.http.request("POST", f"{self.base_url}/v1/files", data=form, headers=self._headers)
        body = self._prediction(answer, job_call=False)
        urls = body.get("urls")
        url = urls.get("get") if isinstance(urls, dict) else None
        if not isinstance(url, str) or not url:
            raise ProviderTransientError("the file upload answer has no urls.get", provider=self.name)
        return url

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        redux_image = None
        if spec.model.is_redux:
            if image is None:
                raise ProviderPermanentError("a Redux job needs an input image", provider=self.name)
            redux_image = await self._redux_image(image)
        headers = dict(self._headers)
        if self.wait_seconds:
            headers["Prefer"] = f"wait={self.wait_seconds}"
        answer = await self._create_http.request(
            "POST",
            f"{self.base_url}/v1/models/{OWNER}/{SLUGS[spec.model]}/predictions",
            json=self.body(spec, redux_image),
            headers=headers,
            billable=True,
        )
        body = self._prediction(answer, job_call=False, create=True)
        job_id = body.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise ProviderOutcomeUnknownError("the create answer has no prediction id", provider=self.name)
        # Only `succeeded` carries outputs; anything else, `processing` on a waited create included, is polled.
        if body.get("status") != "succeeded":
            return Submission(job_id=job_id, sent_at=answer.sent_at)
        try:
            result = await self._download(job_id, body, self._status_from(body))
        except ProviderError:
            # The prediction exists and is paid for: never let a download hiccup cause a second create.
            return Submission(job_id=job_id, sent_at=answer.sent_at)
        return Submission(job_id=job_id, result=result, sent_at=answer.sent_at)

    async def status(self, job_id: str, handle: Mapping[str, str] | None = None) -> ProviderStatus:
        return self._status_from(await self._get(job_id))

    async def result(
        self, job_id: str, spec: GenerationSpec, handle: Mapping[str, str] | None = None
    ) -> ProviderResult:
        body = await self._get(job_id)
        status = self._status_from(body)
        if status.state is ProviderState.FAILED:
            message = status.error or "the prediction failed"
            if status.blocked:
                raise ProviderBlockedError(message, provider=self.name)
            raise ProviderPermanentError(message, provider=self.name)
        if status.state is not ProviderState.SUCCEEDED:
            raise ProviderTransientError(f"the result is not ready ({body.get('status')})", provider=self.name)
        return await self._download(job_id, body, status)

    async def cancel(self, job_id: str) -> None:
        answer = await self.http.request(
            "POST", f"{self.base_url}/v1/predictions/{job_id}/cancel", headers=self._headers
        )
        self._prediction(answer, job_call=True)

    async def check_key(self) -> KeyCheck:
        """`GET /v1/account`: the token's own account, free. (Replicate reports no balance anywhere.)"""
        url = f"{self.base_url}/v1/account"
        return await check_with(self.http, base_url=self.base_url, method="GET", url=url, headers=self._headers)


def _number(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _queue_seconds(body: dict[str, Any]) -> float | None:
    created, started = _moment(body.get("created_at")), _moment(body.get("started_at"))
    if created is None or started is None:
        return None
    return max(0.0, (started - created).total_seconds())


def _outputs(body: dict[str, Any]) -> list[str]:
    """`output` is a list of URLs (or data URIs) for these models; other shapes are read too."""
    return output_urls(body.get("output"))
