"""A loopback emulator of Segmind's v1 (sync) and v2 (async) inference API for the FLUX.1 slugs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from aiohttp import web
from PIL import Image

from emulators.common import DEFAULT_FAILURE as DEFAULT_FAILURE
from emulators.common import FILE_CACHE_SIZE as FILE_CACHE_SIZE
from emulators.common import (
    EmulatorConfig,
    Fault,
    InvalidInput,
    Plan,
    ProviderEmulator,
    json_error,
    output_index,
    random_uuid,
    read_bool,
    read_choice,
    read_int,
    read_megapixels,
    read_number,
    render_output,
)
from emulators.common import Outcome as Outcome
from emulators.render import CONTENT_TYPES
from emulators.sizes import ASPECT_RATIOS, AspectRatio, output_size

REDUX_SCHNELL: Final = "flux-redux-schnell"
REDUX_DEV: Final = "flux-redux-dev"
SCHNELL: Final = "flux-schnell"
SLUGS: Final = (REDUX_SCHNELL, REDUX_DEV, SCHNELL)
# Dollars per generated image, as the model pages list them.
PRICES: Final[dict[str, float]] = {REDUX_SCHNELL: 0.004, REDUX_DEV: 0.031, SCHNELL: 0.008}
ROUTES: Final = ("submit", "status", "result", "file", "v1")

QUEUED: Final = "QUEUED"
PROCESSING: Final = "PROCESSING"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"

MISSING_KEY_ERROR: Final = "Missing Authorization or x-api-key in header"
INVALID_KEY_ERROR: Final = "Unauthorized. API key is invalid or may have expired. Please check your API key."
# Reported as the balance when the config sets no credit limit, so response shapes never change.
UNLIMITED_BALANCE: Final = 1_000_000.0

SCHEDULERS: Final = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform")


@dataclass
class EmulatedJob:
    """One submitted job; its state follows from the timestamps (all `time.monotonic()`)."""

    request_id: str
    slug: str
    body: dict[str, Any] = field(repr=False)
    submitted_at: float
    started_at: float
    completes_at: float
    expires_at: float
    seed: int | None = None
    width: int = 0
    height: int = 0
    output_format: str = "webp"
    quality: int = 80
    num_outputs: int = 1
    kept: tuple[int, ...] = ()
    error: str | None = None
    invalid: bool = False
    cost: float = 0.0
    remaining_credits: float = 0.0
    source: bytes | None = field(default=None, repr=False)
    prompt: str | None = None
    detected_at: float | None = None
    expired: bool = False

    @property
    def state(self) -> str:
        return self.state_at(time.monotonic())

    def state_at(self, now: float) -> str:
        if now < self.started_at:
            return QUEUED
        if now < self.completes_at:
            return PROCESSING
        return FAILED if self.error is not None else COMPLETED

    @property
    def outputs(self) -> int:
        """How many images the job delivers (0 when it fails)."""
        return 0 if self.error is not None else len(self.kept)

    @property
    def queue_time(self) -> float:
        return self.started_at - self.submitted_at

    @property
    def inference_time(self) -> float:
        return self.completes_at - self.started_at


def _seed(body: dict[str, Any]) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("seed must be an integer")
    return value


def _decode_image(value: object, inputs: Inputs) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("redux_image is Mandatory and must be string")
    text = value.strip()
    if text.startswith(("http://", "https://")):
        stored = inputs.assets.get(text)
        if stored is None:
            raise InvalidInput("redux_image: the image URL could not be downloaded")
        return stored
    if not inputs.inline:
        raise InvalidInput("redux_image must be a URI of an image the model can download")
    payload = text
    if text.startswith("data:"):
        header, sep, payload = text.partition(",")
        if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
            raise InvalidInput("redux_image is not a valid base64 image data URI")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("redux_image is not valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except Exception:
        raise InvalidInput("redux_image could not be read as an image") from None
    return data


@dataclass(frozen=True, slots=True)
class Inputs:
    """How `redux_image` is read: the images uploaded to this emulator's storage (by URL), and whether an
    inline data URI or raw base64 is accepted too."""

    assets: dict[str, bytes]
    inline: bool = True


def _plan_redux(slug: str, body: dict[str, Any], inputs: Inputs) -> Plan:
    dev = slug == REDUX_DEV
    if body.get("redux_image") is None:
        raise InvalidInput("redux_image is Mandatory and must be string")
    aspect = read_choice(body, "aspect_ratio", "1:1", ASPECT_RATIOS)
    megapixels = read_megapixels(body.get("megapixels"))
    count = read_int(body, "num_outputs", 1, 1, 4)
    read_int(body, "num_inference_steps", 28 if dev else 4, 1, 50 if dev else 4)
    if dev:
        read_number(body, "guidance", 3.0, 0.0, 10.0)
    output_format = read_choice(body, "output_format", "webp", ("webp", "jpg", "png"))
    quality = read_int(body, "output_quality", 80, 0, 100)
    seed = _seed(body)
    safety = not read_bool(body, "disable_safety_checker")
    source = _decode_image(body.get("redux_image"), inputs)
    width, height = output_size(cast(AspectRatio, aspect), megapixels)
    # The cog treats a falsy seed (None or 0) as "pick one".
    return Plan(width, height, count, output_format, quality, seed or None, safety, source=source)


def _image_extension(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))
            image.load()
            kind = str(image.format)
    except Exception:
        raise ValueError("not an image") from None
    return {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}.get(kind, "img")


def _plan_schnell(body: dict[str, Any]) -> Plan:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("Prompt is Mandatory and must be string")
    read_int(body, "steps", 4, 1, 8)
    width = read_int(body, "width", 1024, 512, 2048)
    height = read_int(body, "height", 1024, 512, 2048)
    if width % 8 or height % 8:
        raise InvalidInput("width and height must be multiples of 8")
    count = read_int(body, "samples", 1, 1, 4)
    seed = _seed(body)
    sampler = body.get("sampler_name")
    if sampler is not None and (not isinstance(sampler, str) or not sampler):
        raise InvalidInput("sampler_name must be a string")
    read_choice(body, "scheduler", "normal", SCHEDULERS)
    read_number(body, "denoise", 1.0, 0.0, 1.0)
    format_key = "output_format" if "output_format" in body else "image_format"
    output_format = read_choice(body, format_key, "jpg", ("jpg", "jpeg", "png", "webp"))
    quality_key = "output_quality" if "output_quality" in body else "image_quality"
    quality = read_int(body, quality_key, 80, 0, 100)
    safety = not read_bool(body, "disable_safety_checker")
    return Plan(
        width,
        height,
        count,
        "jpg" if output_format == "jpeg" else output_format,
        quality,
        seed,
        safety,
        prompt=prompt,
    )


def _plan(slug: str, body: dict[str, Any], inputs: Inputs) -> Plan:
    return _plan_schnell(body) if slug == SCHNELL else _plan_redux(slug, body, inputs)


def _requested_count(slug: str, body: dict[str, Any]) -> int:
    value = body.get("samples" if slug == SCHNELL else "num_outputs", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4 else 1


def _reset_header(seconds_from_now: float) -> dict[str, str]:
    # Whole seconds, rounded up, so a client that sleeps until the stamp is never early.
    reset = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    if reset.microsecond:
        reset = reset.replace(microsecond=0) + timedelta(seconds=1)
    return {"x-rate-limit-reset-at-utc": reset.strftime("%Y-%m-%dT%H:%M:%SZ")}


PendingResponse = Literal["status", "404", "202"]
OutputShape = Literal["auto", "list", "json"]


class SegmindEmulator(ProviderEmulator):
    """Segmind's API on loopback: `/v2/{slug}` + polling, `/v1/{slug}` sync, `/files/...` outputs, and
    Segmind Storage's `/upload-asset` (another service: not counted against `rpm`).

    Switches for what Segmind's docs leave open: `pending_response` is what the response URL answers while
    a job is pending (its status body, 404 as for an unknown id, or 202); `inline_images` whether
    `redux_image` may be a data URI or raw base64 rather than a URL; `out_of_credits` the v2 status for an
    empty balance (402; v1 says 406); `output_shape` how `output` lists several images ("auto": a URL for
    one, a list for more; "list"; "json": a JSON-encoded list in a string); `upload_key` the upload answer's
    key ("urls" as documented, "file_urls" as older SDKs read).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        pending_response: PendingResponse = "status",
        inline_images: bool = True,
        out_of_credits: int = 402,
        output_shape: OutputShape = "auto",
        upload_key: Literal["urls", "file_urls"] = "urls",
    ) -> None:
        super().__init__(config)
        self.pending_response = pending_response
        self.inline_images = inline_images
        self.out_of_credits = out_of_credits
        self.output_shape = output_shape
        self.upload_key = upload_key
        self.jobs: dict[str, EmulatedJob] = {}
        self.sync_jobs: dict[str, EmulatedJob] = {}
        #: uploaded images by their URL
        self.assets: dict[str, bytes] = {}
        self.balance: float = UNLIMITED_BALANCE if self.config.credits is None else self.config.credits

    # -- test-facing controls --------------------------------------------------------------------

    def expire(self, request_id: str) -> None:
        """Make the id answer 404 from now on, as after the retention period."""
        self.jobs[request_id].expired = True

    # -- routing ---------------------------------------------------------------------------------

    def build_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/v2/{slug}", self.handler("submit", self._submit))
        router.add_get("/v2/requests/{request_id}/status", self.handler("status", self._status))
        router.add_get("/v2/requests/{request_id}", self.handler("result", self._result))
        router.add_get("/v1/requests/{request_id}", self.handler("result", self._result))
        router.add_post("/v1/{slug}", self.handler("v1", self._run_sync))
        router.add_get("/files/{request_id}/{name}", self.handler("file", self._file, api=False))
        router.add_post("/upload-asset", self.handler("upload", self._upload, limited=False))
        router.add_get("/assets/{name}", self.handler("asset", self._asset, api=False))

    def presented_key(self, request: web.Request) -> str:
        return request.headers.get("x-api-key", "")

    def authenticate(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            if request.headers.get("Authorization", "").lower().startswith("bearer "):
                return web.json_response(
                    {
                        "error": "invalid_token",
                        "error_description": "Bearer tokens are not accepted; send x-api-key.",
                        "status_code": 401,
                    },
                    status=401,
                )
            return json_error(401, MISSING_KEY_ERROR)
        if self.config.api_keys is not None and key not in self.config.api_keys:
            return json_error(401, INVALID_KEY_ERROR)
        return None

    def rate_limit_response(self, retry_in: float) -> web.Response:
        return json_error(429, "Rate limit exceeded", headers=_reset_header(retry_in))

    def fault_response(self, fault: Fault) -> web.Response:
        if fault.status == 429 and fault.headers is None:
            fault = Fault(
                429,
                fault.remaining,
                fault.route,
                fault.body or {"error": "Rate limit exceeded"},
                _reset_header(self.config.scaled(60.0)),
            )
        return super().fault_response(fault)

    # -- job creation ----------------------------------------------------------------------------

    async def _read_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        slug = request.match_info["slug"]
        if slug not in SLUGS:
            return json_error(404, f"Model {slug} not found")
        if request.content_type != "application/json":
            return json_error(406, "Invalid content type")
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return json_error(400, "Request body must be a JSON object")
        return body

    def _affordable(self, price: float) -> bool:
        return self.config.credits is None or self.balance + 1e-9 >= price

    def _insufficient(self, price: float, *, sync: bool) -> web.Response:
        status = 406 if sync else self.out_of_credits
        return json_error(status, f"Insufficient credits. Balance {self.balance:.4f}, this request costs {price:.4f}.")

    async def _create_job(self, slug: str, body: dict[str, Any], *, sync: bool) -> EmulatedJob | web.Response:
        submitted = self.now()
        price = round(PRICES[slug] * _requested_count(slug, body), 6)
        if not self._affordable(price):
            return self._insufficient(price, sync=sync)
        plan: Plan | None = None
        error: str | None = None
        try:
            plan = await asyncio.to_thread(_plan, slug, body, Inputs(dict(self.assets), self.inline_images))
        except InvalidInput as exc:
            error = exc.message

        outcome = self.take_outcome()
        seed: int | None = None
        kept: tuple[int, ...] = ()
        # Validation fails within milliseconds of a worker picking the job up.
        latency = 0.01
        if plan is not None:
            error, kept, latency, seed = self.decide(outcome, plan)
        started = submitted if sync else submitted + self.config.scaled(self.config.queue_seconds)
        cost = price if error is None else 0.0
        # Checked again: other submissions may have spent the balance while this one was validated.
        if not self._affordable(cost):
            if outcome is not None:
                self._outcomes.appendleft(outcome)
            return self._insufficient(cost, sync=sync)
        self.balance = round(self.balance - cost, 6)
        return EmulatedJob(
            request_id=random_uuid(self.rng),
            slug=slug,
            body=body,
            submitted_at=submitted,
            started_at=started,
            completes_at=started + self.config.scaled(latency),
            expires_at=submitted + self.config.scaled(self.config.ttl_seconds),
            seed=seed,
            width=plan.width if plan else 0,
            height=plan.height if plan else 0,
            output_format=plan.output_format if plan else "webp",
            quality=plan.quality if plan else 80,
            num_outputs=plan.count if plan else _requested_count(slug, body),
            kept=kept,
            error=error,
            invalid=plan is None,
            cost=cost,
            remaining_credits=self.balance,
            source=plan.source if plan else None,
            prompt=plan.prompt if plan else None,
        )

    def _urls(self, request_id: str) -> dict[str, str]:
        base = self.base_url
        return {
            "poll_url": f"{base}/v1/requests/{request_id}",
            "status_url": f"{base}/v2/requests/{request_id}/status",
            "response_url": f"{base}/v2/requests/{request_id}",
        }

    def _file_url(self, job: EmulatedJob, index: int) -> str:
        return f"{self.base_url}/files/{job.request_id}/out-{index}.{job.output_format}"

    def _render(self, job: EmulatedJob, index: int) -> Coroutine[Any, Any, bytes]:
        assert job.seed is not None
        return render_output(job, job.seed, index)

    # -- handlers --------------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        job = await self._create_job(request.match_info["slug"], body, sync=False)
        if isinstance(job, web.Response):
            return job
        self.jobs[job.request_id] = job
        urls = self._urls(job.request_id)
        return web.json_response(
            {
                "request_id": job.request_id,
                "status": QUEUED,
                "poll_url": urls["poll_url"],
                "status_url": urls["status_url"],
                "response_url": urls["response_url"],
            }
        )

    def _lookup(self, request: web.Request) -> tuple[EmulatedJob, str] | web.Response:
        """The live job and its state, or the 404 an unknown or expired id gets."""
        request_id = request.match_info["request_id"]
        now = self.now()
        job = self.jobs.get(request_id)
        if job is None or job.expired or now >= job.expires_at:
            return json_error(404, f"Request {request_id} not found")
        state = job.state_at(now)
        if state in (COMPLETED, FAILED) and job.detected_at is None:
            job.detected_at = now
        return job, state

    @staticmethod
    def _failed(job: EmulatedJob) -> web.Response:
        return web.json_response(
            {
                "status": FAILED,
                "error": job.error,
                "metrics": {
                    "inference_time": round(job.inference_time, 3),
                    "queue_time": round(job.queue_time, 3),
                    "total_time": round(job.queue_time + job.inference_time, 3),
                },
            },
            status=422,
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        job, state = found
        if state == FAILED:
            return self._failed(job)
        if state == COMPLETED:
            return web.json_response(
                {
                    "status": COMPLETED,
                    "request_id": job.request_id,
                    "metrics": {"inference_time": round(job.inference_time, 3)},
                }
            )
        urls = self._urls(job.request_id)
        return web.json_response(
            {
                "status": state,
                "request_id": job.request_id,
                "status_url": urls["status_url"],
                "response_url": urls["response_url"],
                "metrics": {},
            }
        )

    async def _result(self, request: web.Request) -> web.StreamResponse:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        job, state = found
        if state == FAILED:
            return self._failed(job)
        if state != COMPLETED and self.pending_response == "404":
            return json_error(404, f"Request {job.request_id} not found")
        urls = self._urls(job.request_id)
        body: dict[str, Any] = {
            "status": state,
            "request_id": job.request_id,
            "status_url": urls["status_url"],
            "response_url": urls["response_url"],
            "output": None,
            "metrics": {},
        }
        if state != COMPLETED and self.pending_response == "202":
            return web.json_response(body, status=202)
        if state == COMPLETED:
            files = [self._file_url(job, index) for index in job.kept]
            if self.output_shape == "json":
                body["output"] = json.dumps(files)
            elif self.output_shape == "list":
                body["output"] = files
            else:
                body["output"] = files[0] if len(files) == 1 else files
            body["metrics"] = {
                "inference_time": round(job.inference_time, 3),
                "queue_time": round(job.queue_time, 3),
                "total_time": round(job.queue_time + job.inference_time, 3),
                "cost": job.cost,
                "remaining_credits": job.remaining_credits,
            }
        return web.json_response(body)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """Segmind Storage: `{"data_urls": [...]}` in, the stored files' URLs out."""
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "Request body is not valid JSON")
        data_urls = body.get("data_urls") if isinstance(body, dict) else None
        if not isinstance(data_urls, list) or not data_urls:
            return json_error(400, "data_urls must be a non-empty list")
        urls: list[str] = []
        for value in data_urls:
            header, sep, payload = str(value).partition(",")
            if not sep or not header.startswith("data:") or not header.endswith(";base64"):
                return json_error(400, "each entry of data_urls must be a base64 data URL")
            try:
                data = base64.b64decode(payload, validate=True)
                extension = await asyncio.to_thread(_image_extension, data)
            except (binascii.Error, ValueError):
                return json_error(400, "a data URL is not a readable image")
            url = f"{self.base_url}/assets/{random_uuid(self.rng)}.{extension}"
            self.assets[url] = data
            urls.append(url)
        return web.json_response({self.upload_key: urls, "message": "Files uploaded successfully"})

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        data = self.assets.get(f"{self.base_url}/assets/{request.match_info['name']}")
        if data is None:
            return json_error(404, "Not Found")
        return web.Response(body=data, content_type="image/jpeg")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        job = self.jobs.get(request.match_info["request_id"])
        if job is None or job.seed is None or job.state_at(self.now()) != COMPLETED:
            return json_error(404, "Not Found")
        index = output_index(request.match_info["name"], job.kept, job.output_format)
        if index is None:
            return json_error(404, "Not Found")
        return await self.serve_file((job.request_id, index), job, job.seed, index)

    async def _run_sync(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        job = await self._create_job(request.match_info["slug"], body, sync=True)
        if isinstance(job, web.Response):
            return job
        self.sync_jobs[job.request_id] = job
        await asyncio.sleep(max(0.0, job.completes_at - self.now()))
        if job.error is not None:
            # v1 has no FAILED state: bad input is a 400, anything the model did is a 500.
            return json_error(400 if job.invalid else 500, job.error)
        data = await self._render(job, job.kept[0])
        headers = {
            "x-remaining-credits": str(job.remaining_credits),
            "x-cost": str(job.cost),
            "x-request-id": job.request_id,
            "x-generation-time": f"{job.inference_time:.3f}",
            "x-seed-value": str(job.seed),
        }
        if self.config.v1_mode == "json":
            return web.json_response({"image": base64.b64encode(data).decode("ascii")}, headers=headers)
        return web.Response(body=data, content_type=CONTENT_TYPES[job.output_format], headers=headers)


async def serve(port: int, config: EmulatorConfig) -> SegmindEmulator:
    """Start an emulator on 127.0.0.1:`port` and return it running."""
    emulator = SegmindEmulator(config)
    await emulator.start(port=port)
    return emulator
