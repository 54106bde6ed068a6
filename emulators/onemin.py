"""A loopback emulator of 1min.ai's asset upload and blocking feature call for the FLUX.1 models."""

from __future__ import annotations

import asyncio
import io
import math
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Literal, cast

from aiohttp import BodyPartReader, web
from PIL import Image

from emulators.common import FILE_CACHE_SIZE as FILE_CACHE_SIZE
from emulators.common import (
    NSFW_ERROR,
    EmulatorConfig,
    Fault,
    InvalidInput,
    Plan,
    ProviderEmulator,
    random_uuid,
    read_bool,
    read_choice,
    read_int,
    read_megapixels,
    read_number,
    render_output,
)
from emulators.sizes import ASPECT_RATIOS, AspectRatio, output_size

VARIATOR: Final = "IMAGE_VARIATOR"
GENERATOR: Final = "IMAGE_GENERATOR"
REDUX_SCHNELL: Final = "black-forest-labs/flux-redux-schnell"
REDUX_DEV: Final = "black-forest-labs/flux-redux-dev"
SCHNELL: Final = "black-forest-labs/flux-schnell"
FEATURES: Final[dict[str, str]] = {REDUX_SCHNELL: VARIATOR, REDUX_DEV: VARIATOR, SCHNELL: GENERATOR}
# 1min.ai credits per generated image. Not published; made up so the balance knob has something to count.
CREDITS_PER_IMAGE: Final[dict[str, int]] = {REDUX_SCHNELL: 100, REDUX_DEV: 800, SCHNELL: 100}
ROUTES: Final = ("asset", "features", "file", "presigned")
SCHNELL_RATIOS: Final = ("1:1", "16:9", "9:16", "3:2", "2:3", "4:5", "5:4", "custom")
FORMATS: Final = ("webp", "jpg", "png")
# Bounds for flux-schnell's `custom` width/height: undocumented, chosen to cover every size Fluxcord asks for.
CUSTOM_MIN, CUSTOM_MAX, CUSTOM_STEP = 256, 2048, 16

AUTH_ERROR: Final = "Unauthorized: invalid or missing API key"
ACCESS_DENIED: Final = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
MAX_ASSET_BYTES: Final = 20 * 1024 * 1024
# Uploaded assets kept in memory (rendered outputs are cached up to FILE_CACHE_SIZE).
ASSET_CACHE_SIZE: Final = 256
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def error_body(message: str, details: list[str] | None = None) -> dict[str, Any]:
    """The `{"error": {"message", "details"}}` envelope 1min.ai's web API uses."""
    error: dict[str, Any] = {"message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(message), status=status, headers=headers)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y_%m_%d_%H_%M_%S_") + f"{moment.microsecond // 1000:03d}"


@dataclass(frozen=True, slots=True)
class _Plan(Plan):
    image_path: str | None = None
    #: flux-schnell's fp8 mode: "outputs will not be deterministic when this is enabled, even if you set a seed"
    go_fast: bool = False


@dataclass
class Record:
    """One feature call and what it produced."""

    uuid: str
    model: str
    type: str
    prompt_object: dict[str, Any] = field(repr=False)
    seed: int
    width: int
    height: int
    output_format: str
    quality: int
    num_outputs: int
    kept: tuple[int, ...]
    paths: tuple[str, ...]
    error: str | None
    credits: int
    inference_time: float
    source: bytes | None = field(default=None, repr=False)
    prompt: str | None = None
    #: what the pixels come from: the seed, or (with go_fast) the seed and chance
    render_seed: int = 0


# 1min.ai types these fields as numbers and booleans; unlike Eachlabs, strings are refused.


def _int(values: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    return read_int(values, name, default, low, high, kind="a number")


def _plan_variator(model: str, values: dict[str, Any]) -> _Plan:
    dev = model == REDUX_DEV
    image_url = values.get("imageUrl")
    if not isinstance(image_url, str) or not image_url.strip():
        raise InvalidInput("imageUrl is required")
    # Replicate's `output_format` is not read: 1min.ai's name for it is `format`.
    output_format = read_choice(values, "format", "webp", FORMATS)
    aspect = read_choice(values, "aspect_ratio", "4:3", ASPECT_RATIOS)
    count = _int(values, "num_outputs", 1, 1, 4)
    _int(values, "num_inference_steps", 28 if dev else 4, 1, 50 if dev else 4)
    if dev:
        read_number(values, "guidance", 0.0, 0, 10)
    seed = _int(values, "seed", 0, 0, 2**32 - 1)
    quality = _int(values, "output_quality", 80, 1, 100)
    safety = not read_bool(values, "disable_safety_checker")
    width, height = output_size(cast(AspectRatio, aspect), read_megapixels(values.get("megapixels")))
    return _Plan(width, height, count, output_format, quality, seed or None, safety, image_path=image_url.strip())


# flux-schnell fields 1min.ai's page does not list: what the model does with them is unknown.
UNDOCUMENTED_SCHNELL: Final = ("num_outputs", "format", "width", "height")
Undocumented = Literal["honor", "ignore", "refuse"]


def _plan_generator(values: dict[str, Any], undocumented: Undocumented = "honor") -> _Plan:
    prompt = values.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("prompt is required")
    extra = [name for name in UNDOCUMENTED_SCHNELL if name in values]
    if extra and undocumented == "refuse":
        raise InvalidInput(f"unknown parameter(s): {', '.join(extra)}")
    if undocumented == "ignore":
        values = {name: value for name, value in values.items() if name not in UNDOCUMENTED_SCHNELL}
        if values.get("aspect_ratio") == "custom":
            values["aspect_ratio"] = None
    aspect = read_choice(values, "aspect_ratio", "1:1", SCHNELL_RATIOS)
    megapixels = read_megapixels(values.get("megapixels"))
    if aspect == "custom":
        if values.get("width") is None or values.get("height") is None:
            raise InvalidInput("width and height are required when aspect_ratio is custom")
        width = _int(values, "width", 0, CUSTOM_MIN, CUSTOM_MAX)
        height = _int(values, "height", 0, CUSTOM_MIN, CUSTOM_MAX)
        if width % CUSTOM_STEP or height % CUSTOM_STEP:
            raise InvalidInput(f"width and height must be multiples of {CUSTOM_STEP}")
    else:
        width, height = output_size(cast(AspectRatio, aspect), megapixels)
    count = _int(values, "num_outputs", 1, 1, 4)
    output_format = read_choice(values, "format", "webp", FORMATS)
    quality = _int(values, "output_quality", 80, 0, 100)
    _int(values, "num_inference_steps", 4, 1, 4)
    go_fast = read_bool(values, "go_fast", True)
    seed = _int(values, "seed", 0, 0, 2**32 - 1)
    safety = not read_bool(values, "disable_safety_checker")
    return _Plan(width, height, count, output_format, quality, seed or None, safety, prompt=prompt, go_fast=go_fast)


def _retry_headers(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class OneMinEmulator(ProviderEmulator):
    """1min.ai on loopback: `POST /api/assets`, a blocking `POST /api/features`, files under `asset_prefix`.

    `asset_prefix` is the path standing in for https://asset.1min.ai; `temporary_url` adds a presigned URL
    of the first output under `/s3/...` (the docs show one on s3.amazonaws.com); `asset_host` is whether the
    bare asset host serves output files ("serve") or refuses them like a private bucket ("403");
    `failed_as_record` reports model failures as a 200 with a FAILED record instead of an HTTP 500;
    `undocumented` is what flux-schnell does with fields its page does not list (num_outputs, format,
    width, height): "honor" them, "ignore" them, or "refuse" the call.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        asset_prefix: str = "/asset",
        temporary_url: bool = True,
        asset_host: Literal["serve", "403"] = "serve",
        failed_as_record: bool = False,
        undocumented: Undocumented = "honor",
    ) -> None:
        super().__init__(config)
        prefix = "/" + asset_prefix.strip("/")
        if prefix == "/":
            raise ValueError("asset_prefix must name a path, e.g. /asset")
        self.asset_prefix = prefix
        self.temporary_url = temporary_url
        self.asset_host = asset_host
        self.failed_as_record = failed_as_record
        self.undocumented = undocumented
        self.records: dict[str, Record] = {}
        #: asset key → (bytes, MIME type)
        self.assets: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self.balance: int | None = None if self.config.credits is None else int(self.config.credits)
        #: output path → (record uuid, output index)
        self._outputs: dict[str, tuple[str, int]] = {}

    @property
    def asset_base_url(self) -> str:
        """What the adapter's `asset_base_url` should be: the stand-in for https://asset.1min.ai."""
        return self.base_url + self.asset_prefix

    # -- routing ---------------------------------------------------------------------------------

    def build_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/api/assets", self.handler("asset", self._upload))
        router.add_post("/api/features", self.handler("features", self._features))
        router.add_get(self.asset_prefix + "/{path:.+}", self.handler("file", self._file, api=False))
        router.add_get("/s3/{path:.+}", self.handler("presigned", self._presigned, api=False))

    def presented_key(self, request: web.Request) -> str:
        return request.headers.get("API-KEY", "")

    def authenticate(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("API-KEY", "").strip()
        if not key or (self.config.api_keys is not None and key not in self.config.api_keys):
            return error_response(401, AUTH_ERROR)
        return None

    def rate_limit_response(self, retry_in: float) -> web.Response:
        return error_response(429, "Too many requests", headers=_retry_headers(retry_in))

    def fault_response(self, fault: Fault) -> web.Response:
        if fault.status == 429 and fault.headers is None:
            fault = Fault(
                429,
                fault.remaining,
                fault.route,
                fault.body or error_body("Too many requests"),
                _retry_headers(self.config.scaled(60.0)),
                fault.raw,
            )
        elif fault.body is None and fault.raw is None:
            fault = Fault(fault.status, fault.remaining, fault.route, error_body(f"HTTP {fault.status}"), fault.headers)
        return super().fault_response(fault)

    # -- assets ----------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/"):
            return error_response(400, "Expected multipart/form-data with an `asset` file")
        reader = await request.multipart()
        data: bytes | None = None
        filename = "asset"
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "asset":
                data = bytes(await part.read(decode=False))
                filename = part.filename or filename
                break
        if data is None:
            return error_response(400, "asset is required")
        if len(data) > MAX_ASSET_BYTES:
            return error_response(413, "asset is too large")
        try:
            kind = await asyncio.to_thread(_image_kind, data)
        except ValueError:
            return error_response(400, "asset is not a supported image")
        name = _UNSAFE_NAME.sub("_", filename.rsplit("/", 1)[-1]) or "asset"
        stamp = _stamp(datetime.now(UTC))
        key = f"images/{stamp}_{name}"
        # Concurrent uploads of the same file name can share a millisecond; each still needs its own key.
        serial = 0
        while key in self.assets:
            serial += 1
            key = f"images/{stamp}_{serial}_{name}"
        mime = f"image/{'jpeg' if kind == 'jpg' else kind}"
        self.assets[key] = (data, mime)
        while len(self.assets) > ASSET_CACHE_SIZE:
            self.assets.popitem(last=False)
        meta = {"fieldname": "asset", "originalname": filename, "encoding": "7bit", "mimetype": mime}
        return web.json_response(
            {
                "asset": {
                    **meta,
                    "size": len(data),
                    "bucket": "asset.1min.ai",
                    "key": key,
                    "acl": "private",
                    "contentType": "application/octet-stream",
                    "storageClass": "STANDARD",
                    "metadata": {"team-id": "emulator", "user-id": "emulator", **meta},
                    "location": f"{self.asset_base_url}/{key}",
                    "etag": f'"{uuid.uuid4().hex}"',
                },
                "fileContent": {
                    "uuid": str(uuid.uuid4()),
                    "path": key,
                    "type": kind,
                    "name": key.rsplit("/", 1)[-1][:30],
                },
            }
        )

    def _asset_for(self, image_url: str) -> bytes | None:
        """The uploaded bytes behind an asset key, or behind an absolute URL on this asset host."""
        key = image_url
        for prefix in (self.asset_base_url, "https://asset.1min.ai"):
            if key.startswith(prefix + "/"):
                key = key[len(prefix) :]
        asset = self.assets.get(key.lstrip("/"))
        return None if asset is None else asset[0]

    # -- features --------------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> tuple[str, str, _Plan, bytes | None] | web.Response:
        """Feature, model, plan and source image of a feature call, or the refusal it gets."""
        feature, model = body.get("type"), body.get("model")
        if not isinstance(model, str) or model not in FEATURES or FEATURES[model] != feature:
            return error_response(400, f"Unsupported model {model!r} for feature {feature!r}")
        values = body.get("promptObject")
        if not isinstance(values, dict):
            return web.json_response(error_body("Invalid promptObject", ["promptObject is required"]), status=422)
        try:
            plan = _plan_variator(model, values) if feature == VARIATOR else _plan_generator(values, self.undocumented)
        except InvalidInput as exc:
            return web.json_response(error_body("Invalid promptObject", [exc.message]), status=422)
        source: bytes | None = None
        if plan.image_path is not None:
            source = self._asset_for(plan.image_path)
            if source is None:
                return web.json_response(
                    error_body("Invalid promptObject", ["imageUrl could not be loaded"]), status=422
                )
        price = CREDITS_PER_IMAGE[model] * plan.count
        if self.balance is not None and self.balance < price:
            return error_response(400, f"Insufficient credits: {self.balance} left, this request needs {price}")
        return feature, model, plan, source

    async def _features(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return error_response(400, "Request body must be a JSON object")
        validated = self._validate(body)
        if isinstance(validated, web.Response):
            return validated
        feature, model, plan, source = validated
        record = self._run(feature, model, body["promptObject"], plan, source)
        self.records[record.uuid] = record
        if self.balance is not None:
            self.balance -= record.credits
        await asyncio.sleep(self.config.scaled(self.config.queue_seconds + record.inference_time))
        if record.error is not None and not self.failed_as_record:
            if record.error == NSFW_ERROR:
                return web.json_response(error_body(record.error, ["nsfw"]), status=422)
            return error_response(500, record.error)
        if record.error is None:
            await self._render_all(record)
        return web.json_response({"aiRecord": self._view(record) | self._team()})

    def _team(self) -> dict[str, Any]:
        """The team's credit account, as feature answers carry it, when the config sets a balance."""
        if self.balance is None or self.config.credits is None:
            return {}
        limit = int(self.config.credits)
        return {"teamUser": {"teamId": "emulator", "creditLimit": limit, "usedCredit": limit - self.balance}}

    def _run(
        self, feature: str, model: str, prompt_object: dict[str, Any], plan: _Plan, source: bytes | None
    ) -> Record:
        error, kept, latency, seed = self.decide(self.take_outcome(), plan)
        render_seed = seed + self.rng.randrange(1, 2**16) * 65536 if plan.go_fast else seed
        record_id = random_uuid(self.rng)
        stamp = _stamp(datetime.now(UTC))
        paths = tuple(f"images/{stamp}_{record_id[:8]}_out-{i}.{plan.output_format}" for i in kept)
        return Record(
            uuid=record_id,
            model=model,
            type=feature,
            prompt_object=prompt_object,
            seed=seed,
            width=plan.width,
            height=plan.height,
            output_format=plan.output_format,
            quality=plan.quality,
            num_outputs=plan.count,
            kept=kept,
            paths=paths if error is None else (),
            error=error,
            credits=CREDITS_PER_IMAGE[model] * len(kept) if error is None else 0,
            inference_time=latency,
            source=source,
            prompt=plan.prompt,
            render_seed=render_seed,
        )

    def _view(self, record: Record) -> dict[str, Any]:
        view: dict[str, Any] = {
            "uuid": record.uuid,
            "userId": "emulator",
            "teamId": "emulator",
            "model": record.model,
            "type": record.type,
            "status": "FAILED" if record.error is not None else "SUCCESS",
            "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "aiRecordDetail": {"promptObject": record.prompt_object, "resultObject": list(record.paths)},
        }
        if record.error is not None:
            view["error"] = record.error
        elif self.temporary_url and record.paths:
            view["temporaryUrl"] = (
                f"{self.base_url}/s3/asset.1min.ai/{record.paths[0]}"
                f"?X-Amz-Expires=604800&X-Amz-Signature={uuid.uuid4().hex}"
            )
        return view

    # -- files -----------------------------------------------------------------------------------

    async def _render_all(self, record: Record) -> None:
        # Rendered before answering: the call is synchronous, so the files exist when the paths are handed out.
        await asyncio.gather(
            *(
                self._files.get(path, partial(render_output, record, record.render_seed, index))
                for index, path in zip(record.kept, record.paths, strict=True)
            )
        )
        for index, path in zip(record.kept, record.paths, strict=True):
            self._outputs[path] = (record.uuid, index)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if self.asset_host == "403":
            return web.Response(status=403, text=ACCESS_DENIED, content_type="application/xml")
        return await self._serve(request.match_info["path"])

    async def _presigned(self, request: web.Request) -> web.StreamResponse:
        if "X-Amz-Signature" not in request.query:
            return web.Response(status=403, text=ACCESS_DENIED, content_type="application/xml")
        path = request.match_info["path"].removeprefix("asset.1min.ai/")
        return await self._serve(path)

    async def _serve(self, path: str) -> web.StreamResponse:
        asset = self.assets.get(path)
        if asset is not None:
            return web.Response(body=asset[0], content_type=asset[1])
        owner = self._outputs.get(path)
        if owner is None:
            return error_response(404, "Not Found")
        record_id, index = owner
        record = self.records[record_id]
        return await self.serve_file(path, record, record.render_seed, index)


def _image_kind(data: bytes) -> str:
    """`png`, `jpg`, `webp` or `gif` for a readable image; ValueError otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))
            image.load()
            kind = str(image.format)
    except Exception:
        raise ValueError("not an image") from None
    kinds = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "WEBP": "webp", "GIF": "gif"}
    if kind not in kinds:
        raise ValueError("unsupported image format")
    return kinds[kind]


async def serve(port: int, config: EmulatorConfig) -> OneMinEmulator:
    """Start an emulator on 127.0.0.1:`port` and return it running."""
    emulator = OneMinEmulator(config)
    await emulator.start(port=port)
    return emulator
