"""1min.ai: asset upload, then one blocking feature call that returns the finished images.

1min.ai has no endpoint to look a job up again, so the whole job happens inside `submit`. Finished
results are kept in a small in-memory LRU for `status`/`result`; after a restart (or once evicted) an id
is unknown and reported as expired, and a call cut off mid-flight cannot be recovered, only resubmitted.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from datetime import datetime
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
from bot.providers.http import HttpAnswer, HttpClient, retry_after
from bot.providers.keys import KeyCheck, check_with

VARIATOR = "IMAGE_VARIATOR"
GENERATOR = "IMAGE_GENERATOR"
FEATURES: dict[ModelId, tuple[str, str]] = {
    ModelId.REDUX_SCHNELL: (VARIATOR, "black-forest-labs/flux-redux-schnell"),
    ModelId.REDUX_DEV: (VARIATOR, "black-forest-labs/flux-redux-dev"),
    ModelId.SCHNELL: (GENERATOR, "black-forest-labs/flux-schnell"),
}
# flux-schnell's page lists only these ratios plus `custom`; the others are asked for as explicit sizes.
SCHNELL_ASPECT_RATIOS = frozenset({"1:1", "16:9", "9:16", "3:2", "2:3", "4:5", "5:4"})
ASSET_BASE_URL = "https://asset.1min.ai"
# Finished jobs remembered for `result`; the engine normally takes the result straight from the Submission.
RESULT_CACHE_SIZE = 16
_BLOCKED_WORDS = ("nsfw", "safety", "moderation", "inappropriate", "content policy", "flagged")
_CREDIT_WORDS = ("credit", "balance", "quota exceeded", "insufficient")


def is_safety_refusal(message: str) -> bool:
    text = message.lower()
    return any(word in text for word in _BLOCKED_WORDS)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header: a delay in seconds or an HTTP date."""
    return retry_after(value, now)


class OneMinProvider:
    """Adapter for api.1min.ai. Nothing can be cancelled or polled: `submit` returns the finished result."""

    name = "onemin"
    models = frozenset(FEATURES)
    #: the Redux dev variator page lists no guidance: jobs that change it go to another provider
    accepts: ClassVar[Accepts] = {
        ModelId.REDUX_SCHNELL: frozenset({"steps"}),
        ModelId.REDUX_DEV: frozenset({"steps"}),
        ModelId.SCHNELL: frozenset({"steps"}),
    }
    can_cancel = False

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.1min.ai",
        timeout: float = 120.0,
        max_output_bytes: int = 25 * 1024 * 1024,
        asset_base_url: str | None = None,
    ) -> None:
        self.http = HttpClient(session, provider=self.name, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.asset_base_url = (asset_base_url or ASSET_BASE_URL).rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._headers = {"API-KEY": api_key, "Accept": "application/json"}
        self._finished: OrderedDict[str, ProviderResult] = OrderedDict()

    # ------------------------------------------------------------------ vendor JSON

    @staticmethod
    def body(spec: GenerationSpec, image_path: str | None) -> dict[str, Any]:
        """The feature call for `spec`; `image_path` is the uploaded asset's key (Redux only)."""
        feature, model = FEATURES[spec.model]
        prompt: dict[str, Any]
        if feature == VARIATOR:
            if not image_path:
                raise ProviderPermanentError("a Redux job needs an input image", provider="onemin")
            prompt = {
                "imageUrl": image_path,
                # 1min.ai names it `format`, not Replicate's `output_format`.
                "format": spec.output_format,
                "aspect_ratio": spec.aspect_ratio,
                "megapixels": spec.megapixels,
                "num_outputs": spec.count,
                "num_inference_steps": spec.steps,
                "seed": spec.seed,
                # The variator pages give 1–100 where Replicate allows 0.
                "output_quality": max(1, spec.quality),
                "disable_safety_checker": not spec.safety,
            }
            if spec.model is ModelId.REDUX_DEV and spec.guidance is not None:
                prompt["guidance"] = spec.guidance
        else:
            prompt = {
                "prompt": spec.prompt or "",
                "megapixels": spec.megapixels,
                "num_outputs": spec.count,
                "num_inference_steps": spec.steps,
                "seed": spec.seed,
                "format": spec.output_format,
                "output_quality": spec.quality,
                "disable_safety_checker": not spec.safety,
            }
            if spec.aspect_ratio in SCHNELL_ASPECT_RATIOS:
                prompt["aspect_ratio"] = spec.aspect_ratio
            else:
                width, height = spec.size
                prompt.update(aspect_ratio="custom", width=width, height=height)
        return {"type": feature, "model": model, "promptObject": prompt}

    def _raise_for(self, answer: HttpAnswer) -> None:
        """Map an unsuccessful answer onto the error tree."""
        status, message = answer.status, _message(answer)
        lowered = message.lower()
        if status == 429:
            raise ProviderTransientError(
                f"rate limited: {message}",
                provider=self.name,
                status=status,
                retry_after=retry_after_seconds(answer.headers.get("retry-after")),
                rate_limited=True,
            )
        # Checked before 5xx: a refusal worded as a server error is still not worth retrying.
        if is_safety_refusal(message):
            raise ProviderBlockedError(message, provider=self.name, status=status)
        if status >= 500 or status == 408:
            raise ProviderTransientError(
                f"HTTP {status}: {message}",
                provider=self.name,
                status=status,
                retry_after=retry_after_seconds(answer.headers.get("retry-after")),
            )
        if status in (401, 403):
            raise ProviderPermanentError(
                f"1min.ai refused the API key (HTTP {status}): {message}",
                provider=self.name,
                status=status,
                operator=True,
            )
        if status == 402 or any(word in lowered for word in _CREDIT_WORDS):
            raise ProviderPermanentError(
                f"1min.ai is out of credits: {message}", provider=self.name, status=status, operator=True
            )
        raise ProviderPermanentError(f"HTTP {status}: {message}", provider=self.name, status=status)

    def _json(self, answer: HttpAnswer) -> dict[str, Any]:
        if not isinstance(answer.body, dict):
            raise ProviderTransientError(f"malformed JSON in an HTTP {answer.status} answer", provider=self.name)
        return answer.body

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://", "data:")):
            return path
        return f"{self.asset_base_url}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ calls

    async def _upload(self, image: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("asset", image, filename="input.jpg", content_type="image/jpeg")
        answer = await self.http.request("POST", f"{self.base_url}/api/assets", data=form, headers=self._headers)
        if answer.status >= 300:
            self._raise_for(answer)
        body = self._json(answer)
        content = body.get("fileContent")
        asset = body.get("asset")
        path = content.get("path") if isinstance(content, dict) else None
        if not path and isinstance(asset, dict):
            path = asset.get("key")
        if not isinstance(path, str) or not path.strip():
            raise ProviderTransientError("the asset upload answer has no fileContent.path", provider=self.name)
        # Clients strip a leading slash; the feature API wants the bare asset key.
        return path.strip().lstrip("/")

    async def _generate(
        self, spec: GenerationSpec, image_path: str | None
    ) -> tuple[str | None, list[str], float | None]:
        """Run the feature call; the record id (if any), the absolute URLs of its outputs, the team's balance."""
        answer = await self.http.request(
            "POST", f"{self.base_url}/api/features", json=self.body(spec, image_path), headers=self._headers
        )
        if answer.status >= 300:
            self._raise_for(answer)
        body = self._json(answer)
        record = _dict(body.get("aiRecord"))
        detail = _dict(record.get("aiRecordDetail"))
        state = str(record.get("status", "")).upper()
        if state in ("FAILED", "FAILURE", "ERROR"):
            error = _record_error(record, detail) or "the generation failed"
            if is_safety_refusal(error):
                raise ProviderBlockedError(error, provider=self.name)
            raise ProviderPermanentError(error, provider=self.name)
        paths = _paths(detail.get("resultObject"))
        if paths is None:
            paths = _paths(body.get("resultObject"))
        if paths is None:
            paths = _paths(record.get("resultObject"))
        if not paths:
            temporary = record.get("temporaryUrl") or body.get("temporaryUrl")
            if isinstance(temporary, str) and temporary:
                paths = [temporary]
        if paths is None:
            raise ProviderPermanentError("the feature answer carries no result paths", provider=self.name)
        record_id = record.get("uuid")
        urls = [self._url(p) for p in paths]
        return (record_id if isinstance(record_id, str) and record_id else None), urls, team_balance(body)

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        image_path: str | None = None
        if spec.model.is_redux:
            if image is None:
                raise ProviderPermanentError("a Redux job needs an input image", provider=self.name)
            image_path = await self._upload(image)
        started = time.monotonic()
        record_id, urls, balance = await self._generate(spec, image_path)
        elapsed = time.monotonic() - started
        images = await self.http.download_all(urls, max_bytes=self.max_output_bytes)
        if spec.model is ModelId.SCHNELL:
            # Schnell's page documents no output format, and `custom` sizes may be rounded: make sure.
            images = [
                await fit_output_async(data, size=spec.size, output_format=spec.output_format, quality=spec.quality)
                for data in images
            ]
        # No timing comes back; the wall time of the blocking call is the closest measure.
        result = ProviderResult(images=images, inference_seconds=round(elapsed, 3), remaining_balance=balance)
        job_id = record_id or f"onemin-{uuid.uuid4().hex}"
        self._remember(job_id, result)
        return Submission(job_id=job_id, result=result)

    async def status(self, job_id: str) -> ProviderStatus:
        result = self._finished.get(job_id)
        if result is None:
            raise ProviderJobExpiredError(
                "1min.ai has no job lookup and this process no longer holds the result", provider=self.name
            )
        return ProviderStatus(state=ProviderState.SUCCEEDED, inference_seconds=result.inference_seconds)

    async def result(self, job_id: str, spec: GenerationSpec) -> ProviderResult:
        result = self._finished.get(job_id)
        if result is None:
            raise ProviderJobExpiredError(
                "1min.ai has no job lookup and this process no longer holds the result", provider=self.name
            )
        self._finished.move_to_end(job_id)
        return result

    async def cancel(self, job_id: str) -> None:
        return None

    async def check_key(self) -> KeyCheck:
        """An asset upload without a file: refused as incomplete (400) with a good key, 401 with a bad one.

        1min.ai documents no free lookup call; an empty upload stores nothing and generates nothing.
        """
        url = f"{self.base_url}/api/assets"
        return await check_with(self.http, base_url=self.base_url, method="POST", url=url, headers=self._headers)

    def _remember(self, job_id: str, result: ProviderResult) -> None:
        self._finished[job_id] = result
        self._finished.move_to_end(job_id)
        while len(self._finished) > RESULT_CACHE_SIZE:
            self._finished.popitem(last=False)


def team_balance(body: dict[str, Any]) -> float | None:
    """Credits the team has left, from `aiRecord.teamUser` (`creditLimit` − `usedCredit`), where the answer has it."""
    record = _dict(body.get("aiRecord"))
    team = _dict(record.get("teamUser")) or _dict(body.get("teamUser"))
    limit, used = _float(team.get("creditLimit")), _float(team.get("usedCredit"))
    if limit is None:
        return None
    return limit - (used or 0.0)


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _paths(value: object) -> list[str] | None:
    """`resultObject` as a list of paths; a lone string occurs too. None when the key is absent."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:300]
    if isinstance(value, list):
        parts = [item.strip() for item in value if isinstance(item, str) and item.strip()]
        return "; ".join(parts)[:300] or None
    if isinstance(value, dict):
        return _text(value.get("message"))
    return None


def _record_error(record: dict[str, Any], detail: dict[str, Any]) -> str | None:
    for value in (record.get("error"), detail.get("error"), record.get("message")):
        text = _text(value)
        if text:
            return text
    return None


def _message(answer: HttpAnswer) -> str:
    """The vendor's words: `{"error": {"message", "details"}}`, `{"error": "..."}` or `{"message": ...}`."""
    body = answer.body
    if isinstance(body, dict):
        error = body.get("error")
        text = _text(error) or _text(body.get("message"))
        if isinstance(error, dict):
            details = _text(error.get("details"))
            if details and text and details not in text:
                text = f"{text}: {details}"[:300]
        if text:
            return text
    raw = answer.text.strip()
    if not raw or "<html" in raw.lower():
        return f"HTTP {answer.status}"
    return raw[:300]
