"""1min.ai: asset upload, then one blocking feature call that returns the finished images.

1min.ai has no documented endpoint to look a job up again, so the whole job happens inside `submit`.
Finished results are kept in a small in-memory LRU for `status`/`result`; after a restart an id is unknown.

Contract decisions, each with its evidence:

- Money. The feature call blocks until the images exist and is billed once sent; it has no idempotency
  key and relays see 504s on slow image jobs (providers.md §4.4). A timeout, a reset or any 5xx on it
  therefore leaves the outcome unknown: it is never resent, and the engine fails the job without a charge.
- Fields. Only what each model page documents. Redux variator pages (schnell, dev): imageUrl (the Asset
  API's `fileContent.path`), `format` (not output_format), aspect_ratio, num_outputs 1–4,
  num_inference_steps, seed, output_quality 1–100, disable_safety_checker, megapixels; the dev page lists
  no `guidance`, so a dev job with another guidance than the model's default is not sent here. flux-schnell
  (IMAGE_GENERATOR): prompt, aspect_ratio (1:1 16:9 9:16 3:2 2:3 4:5 5:4), output_quality,
  num_inference_steps, megapixels, go_fast, disable_safety_checker, seed — no num_outputs, format, width or
  height, so it takes one image of a listed ratio, and `go_fast` is false so a seed reproduces ("outputs will
  not be deterministic when this is enabled").
- Outputs. The documented answer's `temporaryUrl` is a presigned S3 URL (X-Amz-Expires) while assets are
  `"acl": "private"`, and third-party code disagrees on whether https://asset.1min.ai serves files. The
  presigned URL is downloaded first; the asset host only when there is none (or it fails).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections import OrderedDict
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
from bot.core.images import fit_output_async
from bot.core.requests import GenerationSpec, ModelId
from bot.providers.base import Accepts, ProviderResult, ProviderState, ProviderStatus, Submission
from bot.providers.http import HttpAnswer, HttpClient, output_urls, retry_after
from bot.providers.keys import KeyCheck, check_with

log = logging.getLogger(__name__)

VARIATOR = "IMAGE_VARIATOR"
GENERATOR = "IMAGE_GENERATOR"
FEATURES: dict[ModelId, tuple[str, str]] = {
    ModelId.REDUX_SCHNELL: (VARIATOR, "black-forest-labs/flux-redux-schnell"),
    ModelId.REDUX_DEV: (VARIATOR, "black-forest-labs/flux-redux-dev"),
    ModelId.SCHNELL: (GENERATOR, "black-forest-labs/flux-schnell"),
}
# flux-schnell's page lists only these ratios (and `custom`, with no documented fields to size it).
SCHNELL_ASPECT_RATIOS = frozenset({"1:1", "16:9", "9:16", "3:2", "2:3", "4:5", "5:4"})
# The Redux dev model's own guidance default; the 1min.ai page has no field to change it.
DEV_GUIDANCE = 3.0
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
    tunable: ClassVar[Accepts] = {
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
        self.http = HttpClient(session, provider=self.name, timeout=timeout, secrets=[api_key])
        self.base_url = base_url.rstrip("/")
        self.asset_base_url = (asset_base_url or ASSET_BASE_URL).rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._headers = {"API-KEY": api_key, "Accept": "application/json"}
        self._finished: OrderedDict[str, ProviderResult] = OrderedDict()

    def accepts(self, spec: GenerationSpec) -> bool:
        if spec.model is ModelId.SCHNELL:
            return spec.count == 1 and spec.aspect_ratio in SCHNELL_ASPECT_RATIOS
        if spec.model is ModelId.REDUX_DEV:
            return spec.guidance is None or spec.guidance == DEV_GUIDANCE
        return spec.model in FEATURES

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
        else:
            prompt = {
                "prompt": spec.prompt or "",
                "aspect_ratio": spec.aspect_ratio,
                "output_quality": spec.quality,
                "num_inference_steps": spec.steps,
                "megapixels": spec.megapixels,
                "go_fast": False,
                "disable_safety_checker": not spec.safety,
                "seed": spec.seed,
            }
        return {"type": feature, "model": model, "promptObject": prompt}

    def _raise_for(self, answer: HttpAnswer, *, billable: bool = False) -> None:
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
        if billable and (status >= 500 or status == 408):
            raise ProviderOutcomeUnknownError(
                f"HTTP {status} from the blocking feature call, which may have run: {message}",
                provider=self.name,
                status=status,
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

    def _sources(self, paths: list[str], temporary: list[str]) -> list[list[str]]:
        """Where each output can be downloaded, best first: its presigned URL, then the asset host."""
        sources: list[list[str]] = []
        for index, path in enumerate(paths):
            if len(temporary) == len(paths):
                presigned = [temporary[index]]
            else:
                presigned = [url for url in temporary if path.lstrip("/") and path.lstrip("/") in url]
                if not presigned and len(paths) == 1:
                    presigned = temporary[:1]
            fallback = self._url(path)
            sources.append([*presigned, *([fallback] if fallback not in presigned else [])])
        return sources

    async def _download(self, sources: list[str]) -> bytes:
        error: ProviderError | None = None
        for url in sources:
            try:
                return await self.http.download(url, max_bytes=self.max_output_bytes)
            except (ProviderPermanentError, ProviderTransientError) as exc:
                error = exc
        assert error is not None
        raise error

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
    ) -> tuple[str | None, list[list[str]], float | None]:
        """Run the feature call; the record id (if any), where to download each output (best first), the balance."""
        answer = await self.http.request(
            "POST",
            f"{self.base_url}/api/features",
            json=self.body(spec, image_path),
            headers=self._headers,
            billable=True,
        )
        if answer.status >= 300:
            self._raise_for(answer, billable=True)
        if not isinstance(answer.body, dict):
            raise ProviderOutcomeUnknownError(
                f"malformed JSON in the HTTP {answer.status} answer to a feature call", provider=self.name
            )
        body = answer.body
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
        temporary = output_urls(record.get("temporaryUrl")) or output_urls(body.get("temporaryUrl"))
        if not paths and temporary:
            paths = temporary
        if paths is None:
            raise ProviderPermanentError("the feature answer carries no result paths", provider=self.name)
        record_id = record.get("uuid")
        found = record_id if isinstance(record_id, str) and record_id else None
        return found, self._sources(paths, temporary), team_balance(body)

    # ------------------------------------------------------------------ Provider

    async def submit(self, spec: GenerationSpec, image: bytes | None) -> Submission:
        image_path: str | None = None
        if spec.model.is_redux:
            if image is None:
                raise ProviderPermanentError("a Redux job needs an input image", provider=self.name)
            image_path = await self._upload(image)
        started = time.monotonic()
        record_id, sources, balance = await self._generate(spec, image_path)
        # No timing comes back; the wall time of the blocking call is the closest measure.
        elapsed = round(time.monotonic() - started, 3)
        job_id = record_id or f"onemin-{uuid.uuid4().hex}"
        handle = {"sources": json.dumps(sources), "seconds": str(elapsed)}
        try:
            result = await self._fetch(spec, sources, elapsed)
            result = dataclasses.replace(result, remaining_balance=balance)
        except ProviderError as exc:
            # The call is billed already: a failed download is retried through `result`, never resubmitted.
            log.warning("provider=onemin job=%s outputs not downloaded yet: %s", job_id, exc.message)
            return Submission(job_id=job_id, handle=handle)
        self._remember(job_id, result)
        return Submission(job_id=job_id, result=result, handle=handle)

    async def _fetch(self, spec: GenerationSpec, sources: list[list[str]], elapsed: float | None) -> ProviderResult:
        images = list(await asyncio.gather(*(self._download(urls) for urls in sources)))
        if spec.model is ModelId.SCHNELL:
            # Schnell's page documents no output format: convert to the one asked for.
            images = [
                await fit_output_async(data, size=spec.size, output_format=spec.output_format, quality=spec.quality)
                for data in images
            ]
        return ProviderResult(images=images, inference_seconds=elapsed)

    async def status(self, job_id: str, handle: Mapping[str, str] | None = None) -> ProviderStatus:
        result = self._finished.get(job_id)
        if result is not None:
            return ProviderStatus(state=ProviderState.SUCCEEDED, inference_seconds=result.inference_seconds)
        if _sources_of(handle) is not None:
            return ProviderStatus(state=ProviderState.SUCCEEDED)
        raise ProviderJobExpiredError(
            "1min.ai has no job lookup and the job's outputs are not known", provider=self.name
        )

    async def result(
        self, job_id: str, spec: GenerationSpec, handle: Mapping[str, str] | None = None
    ) -> ProviderResult:
        result = self._finished.get(job_id)
        if result is not None:
            self._finished.move_to_end(job_id)
            return result
        sources = _sources_of(handle)
        if sources is None:
            raise ProviderJobExpiredError(
                "1min.ai has no job lookup and the job's outputs are not known", provider=self.name
            )
        result = await self._fetch(spec, sources, _number((handle or {}).get("seconds")))
        self._remember(job_id, result)
        return result

    async def check_key(self) -> KeyCheck:
        """An asset upload without a file: refused as incomplete (400) with a good key, 401 with a bad one.

        1min.ai documents no free lookup call; an empty upload stores nothing and generates nothing.
        """
        url = f"{self.base_url}/api/assets"
        return await check_with(self.http, base_url=self.base_url, method="POST", url=url, headers=self._headers)

    async def cancel(self, job_id: str) -> None:
        return None

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


def _sources_of(handle: Mapping[str, str] | None) -> list[list[str]] | None:
    try:
        value = json.loads((handle or {}).get("sources", ""))
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(urls, list) for urls in value):
        return None
    return [[url for url in urls if isinstance(url, str)] for urls in value]


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
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
