"""A loopback emulator of Replicate's predictions API for the official FLUX.1 Redux and schnell models."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import math
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Final, Literal, cast

from aiohttp import BodyPartReader, web
from PIL import Image

from emulators.common import FILE_CACHE_SIZE as FILE_CACHE_SIZE
from emulators.common import NSFW_ERROR as NSFW_ERROR
from emulators.common import (
    EmulatorConfig,
    Fault,
    Plan,
    ProviderEmulator,
    SlidingWindowLimiter,
    output_index,
    random_uuid,
    render_output,
)
from emulators.common import Outcome as Outcome
from emulators.common import safety_dropped as safety_dropped
from emulators.render import CONTENT_TYPES
from emulators.sizes import ASPECT_RATIOS, AspectRatio, Megapixels, output_size

OWNER: Final = "black-forest-labs"
REDUX_SCHNELL: Final = f"{OWNER}/flux-redux-schnell"
REDUX_DEV: Final = f"{OWNER}/flux-redux-dev"
SCHNELL: Final = f"{OWNER}/flux-schnell"
MODELS: Final = (REDUX_SCHNELL, REDUX_DEV, SCHNELL)
# Official models hide their version; these stand in for it on the by-version route.
VERSIONS: Final[dict[str, str]] = {model: hashlib.sha256(model.encode()).hexdigest() for model in MODELS}
# Dollars per output image, from Replicate's price table.
PRICES: Final[dict[str, float]] = {REDUX_SCHNELL: 0.003, REDUX_DEV: 0.025, SCHNELL: 0.003}
ROUTES: Final = ("create", "get", "cancel", "file", "account", "upload")

STARTING: Final = "starting"
PROCESSING: Final = "processing"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
TERMINAL: Final = frozenset({SUCCEEDED, FAILED, CANCELED})

DEFAULT_FAILURE: Final = "Prediction interrupted; please retry (code: PA)"
UNREADABLE_IMAGE_ERROR: Final = "cannot identify image file <_io.BytesIO object>"
URL_INPUT_ERROR: Final = "The emulator cannot download redux_image from a URL; send a data URI."
NO_TOKEN: Final = "You did not pass an authentication token"
BAD_TOKEN: Final = "You did not pass a valid authentication token"
NO_CREDIT: Final = (
    "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing "
    "to purchase credit. Once you purchase credit, please wait a few minutes before trying again."
)
MAX_WAIT: Final = 60
PROBLEM_JSON: Final = "application/problem+json"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    """An RFC 7807 answer as Replicate sends them."""
    body = {"title": title, "detail": detail, "status": status, **extra}
    return web.json_response(body, status=status, headers=headers, content_type=PROBLEM_JSON)


def throttled(seconds: float, headers: dict[str, str] | None = None) -> web.Response:
    """429 in Replicate's words; whole seconds, rounded up, so a client that waits that long is never early."""
    whole = max(1, math.ceil(seconds))
    return web.json_response(
        {"detail": f"Request was throttled. Your rate limit resets in ~{whole}s.", "status": 429},
        status=429,
        headers=headers if headers is not None else {"Retry-After": str(whole)},
        content_type=PROBLEM_JSON,
    )


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class EmulatedPrediction:
    """One prediction; its status follows from the timestamps (all `time.monotonic()`)."""

    id: str
    model: str
    version: str
    input: dict[str, Any] = field(repr=False)
    created_at: float
    created_wall: datetime
    started_at: float
    completes_at: float
    data_expires_at: float
    seed: int = 0
    render_seed: int = 0
    width: int = 0
    height: int = 0
    output_format: str = "webp"
    quality: int = 80
    num_outputs: int = 1
    kept: tuple[int, ...] = ()
    error: str | None = None
    cost: float = 0.0
    source: bytes | None = field(default=None, repr=False)
    prompt: str | None = None
    waited: bool = False
    canceled_at: float | None = None
    detected_at: float | None = None
    expired: bool = False

    def state_at(self, now: float) -> str:
        if self.canceled_at is not None and now >= self.canceled_at:
            return CANCELED
        if now < self.started_at:
            return STARTING
        if now < self.completes_at:
            return PROCESSING
        return FAILED if self.error is not None else SUCCEEDED

    def ended_at(self) -> float:
        return self.canceled_at if self.canceled_at is not None else self.completes_at

    def wall(self, moment: float) -> str:
        return _stamp(self.created_wall + timedelta(seconds=moment - self.created_at))


class _Invalid(Exception):
    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        super().__init__("input validation failed")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class _Plan(Plan):
    go_fast: bool = False
    #: the decoded input, or the error the prediction will fail with
    image: bytes | str | None = None
    prompt: str | None = None


class _Validator:
    """Checks one `input` against the model's schema, collecting every problem like Replicate does."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.problems: list[tuple[str, str, str]] = []

    def _fail(self, name: str, kind: str, description: str) -> None:
        self.problems.append((f"input.{name}", kind, description))

    def typed(self, name: str, expected: str) -> Any:
        """The value when present and of the JSON type `expected`, else None (recording a problem)."""
        value = self.values.get(name)
        if value is None:
            return None
        given = "boolean" if isinstance(value, bool) else type(value).__name__
        given = {"str": "string", "int": "integer", "float": "number", "dict": "object", "list": "array"}.get(
            given, given
        )
        ok = {
            "integer": (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, float) and value.is_integer()),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
        }[expected]
        if not ok:
            self._fail(name, "invalid_type", f"Invalid type. Expected: {expected}, given: {given}")
            return None
        return int(value) if expected == "integer" else value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return int(self.number(name, default, low, high, kind="integer"))

    def number(self, name: str, default: float, low: float, high: float, *, kind: str = "number") -> float:
        value = self.typed(name, kind)
        if value is None:
            return default
        if value < low:
            self._fail(name, "greater_than_equal", f"Must be greater than or equal to {low:g}")
            return default
        if value > high:
            self._fail(name, "less_than_equal", f"Must be less than or equal to {high:g}")
            return default
        return cast(float, value)

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.typed(name, "string")
        if value is None:
            return default
        if value not in allowed:
            listed = ", ".join(f'"{item}"' for item in allowed)
            self._fail(name, "enum", f"{name} must be one of the following: {listed}")
            return default
        return cast(str, value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.typed(name, "boolean")
        return default if value is None else bool(value)

    def required_string(self, name: str) -> str | None:
        if self.values.get(name) is None:
            self._fail(name, "required", f"{name} is required")
            return None
        return cast(str | None, self.typed(name, "string"))


def _decode_image(value: str, files: dict[str, bytes]) -> bytes | str:
    """The image bytes of a data URI or of a file uploaded here, or the error the prediction fails with."""
    text = value.strip()
    try:
        if text in files:
            data = files[text]
        elif text.startswith("data:"):
            header, sep, payload = text.partition(",")
            data = base64.b64decode("".join(payload.split()), validate=True) if sep and ";base64" in header else b""
        else:
            return URL_INPUT_ERROR
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except (binascii.Error, ValueError, OSError):
        return UNREADABLE_IMAGE_ERROR
    return data


def _plan(model: str, values: dict[str, Any], files: dict[str, bytes]) -> _Plan:
    """Validate `input` for `model` (raising `_Invalid`) and decide what the prediction renders."""
    check = _Validator(values)
    schnell = model == SCHNELL
    dev = model == REDUX_DEV
    prompt = check.required_string("prompt") if schnell else None
    image = None if schnell else check.required_string("redux_image")
    aspect = check.choice("aspect_ratio", "1:1", ASPECT_RATIOS)
    megapixels = check.choice("megapixels", "1", ("1", "0.25"))
    count = check.integer("num_outputs", 1, 1, 4)
    check.integer("num_inference_steps", 28 if dev else 4, 1, 50 if dev else 4)
    if dev:
        check.number("guidance", 3.0, 0, 10)
    output_format = check.choice("output_format", "webp", ("webp", "jpg", "png"))
    quality = check.integer("output_quality", 80, 0, 100)
    seed = check.typed("seed", "integer")
    safety = not check.boolean("disable_safety_checker", False)
    go_fast = check.boolean("go_fast", True) if schnell else False
    if check.problems:
        raise _Invalid(check.problems)
    width, height = output_size(cast(AspectRatio, aspect), cast(Megapixels, megapixels))
    return _Plan(
        width,
        height,
        count,
        output_format,
        quality,
        # The cog treats a falsy seed (None or 0) as "pick one".
        cast(int | None, seed) or None,
        safety,
        go_fast=go_fast,
        image=_decode_image(image, files) if image is not None else None,
        prompt=prompt,
    )


def _parse_prefer(header: str | None) -> int | Literal["invalid"] | None:
    """Seconds asked for by `Prefer: wait` / `Prefer: wait=N`, None when absent."""
    for token in (header or "").split(","):
        name, _, value = token.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        if not value.strip():
            return MAX_WAIT
        try:
            seconds = int(value.strip())
        except ValueError:
            return "invalid"
        return seconds if 1 <= seconds <= MAX_WAIT else "invalid"
    return None


class ReplicateEmulator(ProviderEmulator):
    """Replicate on loopback: create (by model or version, `Prefer: wait`), get, cancel, authenticated outputs.

    `output_mode="data"` answers outputs as data URIs instead of URLs served under `/delivery/...`;
    `create_rpm` adds Replicate's separate, lower limit on creates on top of `config.rpm`;
    `data_url_limit` refuses data URLs larger than that many bytes (Replicate recommends them only up to
    256 KB, without saying what happens above); files uploaded to `POST /v1/files` are model inputs by URL.
    """

    default_failure = DEFAULT_FAILURE

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        output_mode: Literal["url", "data"] = "url",
        create_rpm: int | None = None,
        data_url_limit: int | None = None,
    ) -> None:
        super().__init__(config)
        self.output_mode = output_mode
        self.data_url_limit = data_url_limit
        #: uploaded files by their `urls.get`
        self.files: dict[str, bytes] = {}
        self.create_limiter = SlidingWindowLimiter(create_rpm, self.config.scaled(60.0))
        self.predictions: dict[str, EmulatedPrediction] = {}
        self.balance: float | None = self.config.credits

    # -- test-facing controls --------------------------------------------------------------------

    def expire(self, prediction_id: str) -> None:
        """Make the id answer 404 from now on, as if it never existed."""
        self.predictions[prediction_id].expired = True

    # -- routing ---------------------------------------------------------------------------------

    def build_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/v1/models/{owner}/{name}/predictions", self.handler("create", self._create_for_model))
        router.add_post("/v1/predictions", self.handler("create", self._create_for_version))
        router.add_get("/v1/predictions/{id}", self.handler("get", self._get))
        router.add_post("/v1/predictions/{id}/cancel", self.handler("cancel", self._cancel))
        router.add_get("/delivery/{id}/{name}", self.handler("file", self._file, api=False))
        router.add_get("/v1/account", self.handler("account", self._account))
        router.add_post("/v1/files", self.handler("upload", self._upload))

    def presented_key(self, request: web.Request) -> str:
        return request.headers.get("Authorization", "").partition(" ")[2].strip()

    def _check_data_url(self, value: object) -> None:
        if (
            self.data_url_limit is not None
            and isinstance(value, str)
            and value.startswith("data:")
            and len(value.partition(",")[2]) * 3 // 4 > self.data_url_limit
        ):
            raise _Invalid([("input.redux_image", "size", "the data URL is too large; upload the file instead")])

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/files` (multipart `content`): the file object, whose `urls.get` is usable as an input."""
        if not request.content_type.startswith("multipart/"):
            return problem(400, "Bad request", "expected multipart/form-data with a `content` file")
        reader = await request.multipart()
        data: bytes | None = None
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "content":
                data = bytes(await part.read(decode=False))
        if data is None:
            return problem(400, "Bad request", "content is required")
        file_id = random_uuid(self.rng).replace("-", "")
        url = f"{self.base_url}/v1/files/{file_id}"
        self.files[url] = data
        return web.json_response(
            {
                "id": file_id,
                "name": "input.jpg",
                "content_type": "image/jpeg",
                "size": len(data),
                "urls": {"get": url},
            },
            status=201,
        )

    def authenticate(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            return problem(401, "Unauthenticated", NO_TOKEN)
        if self.config.api_keys is not None and token not in self.config.api_keys:
            return problem(401, "Unauthenticated", BAD_TOKEN)
        return None

    def rate_limit_response(self, retry_in: float) -> web.Response:
        return throttled(retry_in)

    async def _account(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/account`: the account the token belongs to (reached only past `authenticate`)."""
        return web.json_response({"type": "user", "username": "emulator", "name": "Emulator", "github_url": None})

    def fault_response(self, fault: Fault) -> web.Response:
        if fault.raw is not None or fault.body is not None:
            return super().fault_response(fault)
        if fault.status == 429:
            return throttled(self.config.scaled(30.0), fault.headers)
        try:
            title = HTTPStatus(fault.status).phrase
        except ValueError:
            title = f"Error {fault.status}"
        return problem(fault.status, title, title, fault.headers)

    # -- creation --------------------------------------------------------------------------------

    async def _read_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return problem(400, "Invalid request body", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return problem(400, "Invalid request body", "The request body must be a JSON object.")
        if not isinstance(body.get("input"), dict):
            return problem(
                422,
                "Input validation failed",
                "- input: input is required\n",
                invalid_fields=[{"type": "required", "field": "input", "description": "input is required"}],
            )
        return body

    async def _create_for_model(self, request: web.Request) -> web.StreamResponse:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if model not in MODELS:
            return problem(404, "Model not found", f"The model {model} does not exist or is not accessible.")
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        return await self._create(request, model, "hidden", body["input"])

    async def _create_for_version(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        version = str(body.get("version") or "")
        version_id = version.rpartition(":")[2]
        model = next((m for m, v in VERSIONS.items() if v == version_id), None)
        if model is None or (":" in version and version.rpartition(":")[0] != model):
            return problem(
                422,
                "Invalid version or not permitted",
                "The specified version does not exist (or perhaps you don't have permission to use it?)",
            )
        return await self._create(request, model, version_id, body["input"])

    async def _create(self, request: web.Request, model: str, version: str, values: dict[str, Any]) -> web.Response:
        wait = _parse_prefer(request.headers.get("Prefer"))
        if wait == "invalid":
            return problem(400, "Invalid Prefer header", f"wait must be an integer between 1 and {MAX_WAIT}")
        retry_in = self.create_limiter.acquire(self.now())
        if retry_in is not None:
            return throttled(retry_in)
        try:
            self._check_data_url(values.get("redux_image"))
            plan = await asyncio.to_thread(_plan, model, values, dict(self.files))
        except _Invalid as exc:
            detail = "".join(f"- {name}: {description}\n" for name, _, description in exc.problems)
            fields = [{"type": kind, "field": name, "description": text} for name, kind, text in exc.problems]
            return problem(422, "Input validation failed", detail, invalid_fields=fields)
        price = PRICES[model]
        if self.balance is not None and self.balance + 1e-9 < price * plan.count:
            return problem(402, "Insufficient credit", NO_CREDIT)
        prediction = self._start(model, version, values, plan)
        prediction.waited = wait is not None
        self.predictions[prediction.id] = prediction
        if wait is None:
            return await self._answer(prediction, status=201)
        deadline = prediction.created_at + self.config.scaled(wait)
        await asyncio.sleep(max(0.0, min(prediction.completes_at, deadline) - self.now()))
        # The blocking API never says `processing`: an unfinished prediction is shown as `starting`.
        return await self._answer(prediction, status=201, unfinished_as_starting=True)

    def _start(self, model: str, version: str, values: dict[str, Any], plan: _Plan) -> EmulatedPrediction:
        created = self.now()
        outcome = self.take_outcome()
        if isinstance(plan.image, str):
            # An unreadable input fails as soon as the worker opens it.
            error, kept, latency, seed = self.decide(outcome, plan, error=plan.image, latency=0.05)
        else:
            error, kept, latency, seed = self.decide(outcome, plan)
        started = created + self.config.scaled(self.config.queue_seconds)
        cost = round(PRICES[model] * len(kept), 6)
        if self.balance is not None:
            self.balance = round(self.balance - cost, 6)
        prediction_id = base64.b32encode(self.rng.randbytes(16)).decode().lower()[:26]
        return EmulatedPrediction(
            id=prediction_id,
            model=model,
            version=version,
            input=values,
            created_at=created,
            created_wall=datetime.now(UTC),
            started_at=started,
            completes_at=started + self.config.scaled(latency),
            data_expires_at=created + self.config.scaled(self.config.ttl_seconds),
            seed=seed,
            # go_fast (fp8) is documented as non-deterministic even with a seed.
            render_seed=seed if not plan.go_fast else seed + (self.rng.getrandbits(32) << 32),
            width=plan.width,
            height=plan.height,
            output_format=plan.output_format,
            quality=plan.quality,
            num_outputs=plan.count,
            kept=kept,
            error=error,
            cost=cost,
            source=plan.image if isinstance(plan.image, bytes) else None,
            prompt=plan.prompt,
        )

    # -- answers ---------------------------------------------------------------------------------

    def _lookup(self, request: web.Request) -> EmulatedPrediction | web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None or prediction.expired:
            return problem(404, "Not found", "The requested prediction was not found.")
        return prediction

    async def _answer(
        self, prediction: EmulatedPrediction, *, status: int = 200, unfinished_as_starting: bool = False
    ) -> web.Response:
        body = self.prediction_json(prediction, unfinished_as_starting)
        if self.output_mode == "data" and body["output"]:
            mime = CONTENT_TYPES[prediction.output_format]
            body["output"] = [
                f"data:{mime};base64," + base64.b64encode(await self._bytes(prediction, index)).decode("ascii")
                for index in prediction.kept
            ]
        return web.json_response(body, status=status)

    def prediction_json(self, prediction: EmulatedPrediction, unfinished_as_starting: bool = False) -> dict[str, Any]:
        """The prediction object as Replicate shows it right now."""
        now = self.now()
        state = prediction.state_at(now)
        if state not in TERMINAL and unfinished_as_starting:
            state = STARTING
        if state in TERMINAL and prediction.detected_at is None:
            prediction.detected_at = now
        removed = now >= prediction.data_expires_at and state in TERMINAL
        started = state != STARTING and prediction.started_at < prediction.ended_at()
        logs = f"Using seed: {prediction.seed}\n" if started else ""
        if state == SUCCEEDED:
            logs += f"Generated {len(prediction.kept)} image(s)\n"
        output: list[str] | None = None
        if state == SUCCEEDED and not removed:
            output = [self._output(prediction, index) for index in prediction.kept]
        metrics: dict[str, Any] = {}
        if state in TERMINAL:
            ended = prediction.ended_at()
            metrics = {
                "predict_time": round(max(0.0, ended - prediction.started_at), 6),
                "total_time": round(ended - prediction.created_at, 6),
            }
            if state == SUCCEEDED:
                metrics["image_count"] = len(prediction.kept)
        base = self.base_url
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": {} if removed else prediction.input,
            "logs": "" if removed else logs,
            "output": output,
            "data_removed": removed,
            "error": prediction.error if state == FAILED else None,
            "status": state,
            "created_at": prediction.wall(prediction.created_at),
            "started_at": prediction.wall(prediction.started_at) if started else None,
            "completed_at": prediction.wall(prediction.ended_at()) if state in TERMINAL else None,
            "source": "api",
            "metrics": metrics,
            "urls": {
                "get": f"{base}/v1/predictions/{prediction.id}",
                "cancel": f"{base}/v1/predictions/{prediction.id}/cancel",
            },
        }

    def _output(self, prediction: EmulatedPrediction, index: int) -> str:
        return f"{self.base_url}/delivery/{prediction.id}/out-{index}.{prediction.output_format}"

    def _render(self, prediction: EmulatedPrediction, index: int) -> Coroutine[Any, Any, bytes]:
        return render_output(prediction, prediction.render_seed, index)

    async def _bytes(self, prediction: EmulatedPrediction, index: int) -> bytes:
        """One output's bytes, rendered once and shared by every request that wants it."""
        return await self._files.get((prediction.id, index), lambda: self._render(prediction, index))

    # -- handlers --------------------------------------------------------------------------------

    async def _get(self, request: web.Request) -> web.StreamResponse:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        return await self._answer(found)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        now = self.now()
        if found.state_at(now) not in TERMINAL:
            found.canceled_at = now
            if self.balance is not None:
                self.balance = round(self.balance + found.cost, 6)
            found.cost = 0.0
        return await self._answer(found)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        refusal = self.authenticate(request)
        if refusal is not None:
            return refusal
        prediction = self.predictions.get(request.match_info["id"])
        now = self.now()
        index = None
        if (
            prediction is not None
            and not prediction.expired
            and now < prediction.data_expires_at
            and prediction.state_at(now) == SUCCEEDED
        ):
            index = output_index(request.match_info["name"], prediction.kept, prediction.output_format)
        if prediction is None or index is None:
            return problem(404, "Not found", "The requested file was not found.")
        return await self.serve_file((prediction.id, index), prediction, prediction.render_seed, index)


async def serve(port: int, config: EmulatorConfig) -> ReplicateEmulator:
    """Start an emulator on 127.0.0.1:`port` and return it running."""
    emulator = ReplicateEmulator(config)
    await emulator.start(port=port)
    return emulator
