"""A loopback emulator of Eachlabs' prediction API (create, get, cancel, the sync `run`) and its upload flow."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from aiohttp import web
from PIL import Image

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
)
from emulators.sizes import ASPECT_RATIOS, AspectRatio, output_size

REDUX_SCHNELL: Final = "flux-redux-schnell"
SCHNELL: Final = "flux-schnell"
MODELS: Final = (REDUX_SCHNELL, SCHNELL)
# Dollars per execution (not per image), as the model page lists it.
PRICE: Final = 0.003
ROUTES: Final = ("create", "run", "get", "cancel", "file", "presign", "put", "upload")
SIGNATURE_ERROR: Final = "SignatureDoesNotMatch: a required header is missing or was changed"
OutputShape = Literal["list", "string", "object"]

STARTING: Final = "starting"
PROCESSING: Final = "processing"
SUCCESS: Final = "success"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

AUTH_ERROR: Final = "Invalid or missing API key"
INVALID_INPUT: Final = "Invalid input for model"


@dataclass
class Prediction:
    """One created prediction; its status follows from the timestamps (all `time.monotonic()`)."""

    id: str
    model: str
    input: dict[str, Any] = field(repr=False)
    submitted_at: float
    started_at: float
    completes_at: float
    expires_at: float
    seed: int
    width: int
    height: int
    output_format: str
    quality: int
    num_outputs: int
    kept: tuple[int, ...]
    error: str | None
    cost: float
    source: bytes | None = field(repr=False)
    failed_status: str = FAILED
    cancelled_at: float | None = None
    expired: bool = False
    #: flux-schnell's prompt (None for Redux), read by `render_output`
    prompt: str | None = None

    @property
    def status(self) -> str:
        return self.status_at(time.monotonic())

    def status_at(self, now: float) -> str:
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return CANCELLED
        if now < self.started_at:
            return STARTING
        if now < self.completes_at:
            return PROCESSING
        return self.failed_status if self.error is not None else SUCCESS

    @property
    def inference_time(self) -> float:
        return self.completes_at - self.started_at


# Eachlabs' own example sends every number as a string, so each reader accepts both forms
# (and takes an empty string for "not given").


def _int(inputs: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = inputs.get(name)
    if isinstance(value, str) and value != "":
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidInput(f"{name} must be an integer") from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return read_int({name: None if value == "" else value}, name, default, low, high)


def _bool(inputs: dict[str, Any], name: str) -> bool:
    value = inputs.get(name)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return read_bool({name: None if value == "" else value}, name)


def _choice(inputs: dict[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = inputs.get(name)
    return read_choice({name: None if value == "" else value}, name, default, allowed)


def _decode_image(value: object, uploads: dict[str, bytes]) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("redux_image is required")
    text = value.strip()
    if text.startswith(("http://", "https://")):
        stored = uploads.get(text)
        if stored is None:
            raise InvalidInput("redux_image: the image URL could not be downloaded")
        data = stored
    else:
        header, sep, payload = text.partition(",")
        if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
            raise InvalidInput("redux_image must be a URL or a base64 image data URI")
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


def _plan(model: str, inputs: dict[str, Any], uploads: dict[str, bytes]) -> Plan:
    aspect = _choice(inputs, "aspect_ratio", "1:1", ASPECT_RATIOS)
    megapixels = read_megapixels(inputs.get("megapixels"))
    count = _int(inputs, "num_outputs", 1, 1, 4)
    _int(inputs, "num_inference_steps", 4, 1, 4)
    output_format = _choice(inputs, "output_format", "webp", ("webp", "jpg", "png"))
    quality = _int(inputs, "output_quality", 80, 0, 100)
    seed = _int(inputs, "seed", 0, 0, 2**32 - 1)
    safety = not _bool(inputs, "disable_safety_checker")
    width, height = output_size(cast(AspectRatio, aspect), megapixels)
    prompt: str | None = None
    source: bytes | None = None
    if model == SCHNELL:
        prompt = inputs.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInput("prompt is required")
        if "go_fast" in inputs:
            _bool(inputs, "go_fast")
    else:
        source = _decode_image(inputs.get("redux_image"), uploads)
    # The cog treats a falsy seed (None or 0) as "pick one".
    return Plan(width, height, count, output_format, quality, seed or None, safety, source, prompt)


def _rate_headers(limit: int | None, seconds_from_now: float) -> dict[str, str]:
    wait = max(1, math.ceil(seconds_from_now))
    headers = {
        "Retry-After": str(wait),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(math.ceil(time.time() + seconds_from_now)),
    }
    if limit is not None:
        headers["X-RateLimit-Limit"] = str(limit)
    return headers


class EachlabsEmulator(ProviderEmulator):
    """Eachlabs on loopback: `/v1/prediction` create, get, cancel and run, `/files/...` outputs, and the
    upload flow (`/v1/upload/presign`, a PUT to `/storage/...`, the file at its `public_url`).

    `numbers_as_strings` sends metrics as strings like the real API; `failed_status` picks between the
    documented `failed` and the sample code's `error`; `output_shape` is how `output` arrives ("list", a
    "string" URL for one output, or an "object" `{"images": [...]}`); `seed_logs` puts the cog's
    `Using seed: N` into a succeeded prediction's `logs` (the docs show `"logs": null`).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        numbers_as_strings: bool = True,
        failed_status: str = FAILED,
        output_shape: OutputShape = "list",
        seed_logs: bool = False,
    ) -> None:
        super().__init__(config)
        if failed_status not in (FAILED, "error"):
            raise ValueError("failed_status must be 'failed' or 'error'")
        self.numbers_as_strings = numbers_as_strings
        self.failed_status = failed_status
        self.output_shape = output_shape
        self.seed_logs = seed_logs
        self.predictions: dict[str, Prediction] = {}
        #: presigned upload id → the public URL it fills; uploaded files by public URL
        self.pending_uploads: dict[str, str] = {}
        self.uploads: dict[str, bytes] = {}
        self.balance: float | None = self.config.credits

    # -- test-facing controls --------------------------------------------------------------------

    def expire(self, prediction_id: str) -> None:
        """Make the id answer 404 from now on, as after the retention period."""
        self.predictions[prediction_id].expired = True

    # -- routing ---------------------------------------------------------------------------------

    def build_routes(self, app: web.Application) -> None:
        router = app.router
        # The docs show no trailing slash, the model page shows one; both reach the same handler.
        router.add_post("/v1/prediction", self.handler("create", self._create))
        router.add_post("/v1/prediction/", self.handler("create", self._create))
        router.add_post("/v1/prediction/run", self.handler("run", self._run))
        router.add_get("/v1/prediction/{id}", self.handler("get", self._get))
        router.add_post("/v1/prediction/{id}/cancel", self.handler("cancel", self._cancel))
        router.add_get("/files/{id}/{name}", self.handler("file", self._file, api=False))
        router.add_post("/v1/upload/presign", self.handler("presign", self._presign))
        router.add_put("/storage/{id}", self.handler("put", self._put, api=False))
        router.add_get("/cdn/uploads/{name}", self.handler("upload", self._uploaded, api=False))

    def presented_key(self, request: web.Request) -> str:
        return request.headers.get("X-API-Key", "")

    def authenticate(self, request: web.Request) -> web.Response | None:
        # Header names are case-insensitive, which covers both documented spellings (X-API-Key, X-API-KEY).
        key = request.headers.get("X-API-Key", "").strip()
        if not key or (self.config.api_keys is not None and key not in self.config.api_keys):
            return json_error(401, AUTH_ERROR)
        return None

    def rate_limit_response(self, retry_in: float) -> web.Response:
        return json_error(429, "Rate limit exceeded", headers=_rate_headers(self.config.rpm, retry_in))

    def fault_response(self, fault: Fault) -> web.Response:
        if fault.status == 429 and fault.headers is None:
            fault = Fault(
                429,
                fault.remaining,
                fault.route,
                fault.body or {"error": "Rate limit exceeded"},
                _rate_headers(self.config.rpm, self.config.scaled(60.0)),
                fault.raw,
            )
        return super().fault_response(fault)

    # -- predictions -----------------------------------------------------------------------------

    async def _new_prediction(self, request: web.Request, *, sync: bool) -> Prediction | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return json_error(400, "Request body must be a JSON object")
        model = body.get("model")
        if not model:
            return json_error(400, "model field is required")
        if model not in MODELS:
            return json_error(404, f"Model {model} not found")
        inputs = body.get("input")
        if not isinstance(inputs, dict):
            return web.json_response({"error": INVALID_INPUT, "details": "input must be an object"}, status=400)
        try:
            plan = await asyncio.to_thread(_plan, str(model), inputs, dict(self.uploads))
        except InvalidInput as exc:
            return web.json_response({"error": INVALID_INPUT, "details": exc.message}, status=400)
        if self.balance is not None and self.balance + 1e-9 < PRICE:
            return json_error(402, f"Insufficient balance: {self.balance:.4f} left, a prediction costs {PRICE}")

        submitted = self.now()
        error, kept, latency, seed = self.decide(self.take_outcome(), plan)
        started = submitted if sync else submitted + self.config.scaled(self.config.queue_seconds)
        cost = PRICE if error is None else 0.0
        if self.balance is not None:
            self.balance = round(self.balance - cost, 6)
        prediction = Prediction(
            id=random_uuid(self.rng),
            model=str(model),
            input=inputs,
            submitted_at=submitted,
            started_at=started,
            completes_at=started + self.config.scaled(latency),
            expires_at=submitted + self.config.scaled(self.config.ttl_seconds),
            seed=seed,
            width=plan.width,
            height=plan.height,
            output_format=plan.output_format,
            quality=plan.quality,
            num_outputs=plan.count,
            kept=kept,
            error=error,
            cost=cost,
            source=plan.source,
            prompt=plan.prompt,
            failed_status=self.failed_status,
        )
        self.predictions[prediction.id] = prediction
        return prediction

    def _lookup(self, request: web.Request) -> Prediction | web.Response:
        prediction_id = request.match_info["id"]
        prediction = self.predictions.get(prediction_id)
        if prediction is None or prediction.expired or self.now() >= prediction.expires_at:
            return json_error(404, f"Prediction {prediction_id} not found")
        return prediction

    def _number(self, value: float) -> float | str:
        rounded = round(value, 3)
        return f"{rounded:g}" if self.numbers_as_strings else rounded

    def _output(self, prediction: Prediction) -> str | list[str] | dict[str, Any]:
        urls = [
            f"{self.base_url}/files/{prediction.id}/out-{index}.{prediction.output_format}" for index in prediction.kept
        ]
        if self.output_shape == "object":
            return {"images": urls}
        return urls[0] if len(urls) == 1 and self.output_shape == "string" else urls

    def _view(self, prediction: Prediction) -> dict[str, Any]:
        status = prediction.status_at(self.now())
        base = f"{self.base_url}/v1/prediction/{prediction.id}"
        body: dict[str, Any] = {
            "id": prediction.id,
            "input": prediction.input,
            "status": status,
            "output": self._output(prediction) if status == SUCCESS else None,
            "logs": None,
            "metrics": {},
            "urls": {"cancel": f"{base}/cancel", "get": base},
        }
        if status == SUCCESS:
            body["metrics"] = {
                "predict_time": self._number(prediction.inference_time),
                "cost": self._number(prediction.cost),
            }
            if self.seed_logs:
                body["logs"] = f"Using seed: {prediction.seed}\n"
        elif status == prediction.failed_status:
            body["error"] = prediction.error
            body["logs"] = f"Using seed: {prediction.seed}\n{prediction.error}"
            body["metrics"] = {"predict_time": self._number(prediction.inference_time)}
        elif status == CANCELLED:
            body["error"] = "Prediction was cancelled"
        return body

    # -- handlers --------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._new_prediction(request, sync=False)
        if isinstance(prediction, web.Response):
            return prediction
        return web.json_response(
            {"status": "success", "message": "Prediction created successfully", "predictionID": prediction.id}
        )

    async def _run(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._new_prediction(request, sync=True)
        if isinstance(prediction, web.Response):
            return prediction
        await asyncio.sleep(max(0.0, prediction.completes_at - self.now()))
        failed = prediction.error is not None
        return web.json_response(
            {
                "status": prediction.failed_status if failed else SUCCESS,
                "message": "Prediction failed" if failed else "Prediction completed successfully",
                "predictionID": prediction.id,
                "output": None if failed else self._output(prediction),
                "error": prediction.error,
            }
        )

    async def _get(self, request: web.Request) -> web.StreamResponse:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(self._view(found))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        now = self.now()
        if found.status_at(now) in (STARTING, PROCESSING):
            found.cancelled_at = now
            # A cancelled prediction is not billed.
            self._refund(found)
            return web.json_response({"status": "success", "message": "Prediction cancelled successfully"})
        # Cancelling a finished prediction changes nothing and is not an error.
        return web.json_response({"status": "success", "message": f"Prediction already {found.status_at(now)}"})

    async def _presign(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "Request body is not valid JSON")
        content_type = body.get("content_type") if isinstance(body, dict) else None
        if not isinstance(content_type, str) or not content_type:
            return json_error(400, "content_type is required")
        upload_id = random_uuid(self.rng)
        extension = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}.get(content_type, "bin")
        public = f"{self.base_url}/cdn/uploads/{upload_id}.{extension}"
        self.pending_uploads[upload_id] = public
        return web.json_response(
            {
                "id": upload_id,
                "presigned_url": f"{self.base_url}/storage/{upload_id}?X-Amz-Signature={upload_id[:8]}",
                "public_url": public,
                "expires_at": datetime.now(UTC).isoformat(),
                "required_headers": {"x-amz-meta-file-id": upload_id},
            }
        )

    async def _put(self, request: web.Request) -> web.StreamResponse:
        upload_id = request.match_info["id"]
        public = self.pending_uploads.get(upload_id)
        if public is None:
            return json_error(404, "NoSuchUpload")
        if request.headers.get("x-amz-meta-file-id") != upload_id:
            return json_error(403, SIGNATURE_ERROR)
        self.uploads[public] = await request.read()
        return web.Response(status=200)

    async def _uploaded(self, request: web.Request) -> web.StreamResponse:
        data = self.uploads.get(f"{self.base_url}/cdn/uploads/{request.match_info['name']}")
        if data is None:
            return json_error(404, "Not Found")
        return web.Response(body=data, content_type="image/jpeg")

    def _refund(self, prediction: Prediction) -> None:
        if self.balance is not None:
            self.balance = round(self.balance + prediction.cost, 6)
        prediction.cost = 0.0

    async def _file(self, request: web.Request) -> web.StreamResponse:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None or prediction.status_at(self.now()) != SUCCESS:
            return json_error(404, "Not Found")
        index = output_index(request.match_info["name"], prediction.kept, prediction.output_format)
        if index is None:
            return json_error(404, "Not Found")
        return await self.serve_file((prediction.id, index), prediction, prediction.seed, index)


async def serve(port: int, config: EmulatorConfig) -> EachlabsEmulator:
    """Start an emulator on 127.0.0.1:`port` and return it running."""
    emulator = EachlabsEmulator(config)
    await emulator.start(port=port)
    return emulator
