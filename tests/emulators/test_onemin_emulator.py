"""The 1min.ai emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from emulators.common import NSFW_ERROR, EmulatorConfig, safety_dropped
from emulators.onemin import OneMinEmulator

KEY = {"API-KEY": "onemin-test-key"}
FAST: dict[str, Any] = {"latency_median": 0.1, "latency_sigma": 0.0, "queue_seconds": 0.0}
REDUX = "black-forest-labs/flux-redux-schnell"

MakeEmulator = Callable[..., Awaitable[OneMinEmulator]]


def png(size: tuple[int, int] = (320, 240)) -> bytes:
    image = Image.new("RGB", size, (200, 60, 30))
    image.paste((20, 120, 220), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


SOURCE = png()


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    started: list[OneMinEmulator] = []

    async def make(
        *,
        asset_prefix: str = "/asset",
        temporary_url: bool = True,
        failed_as_record: bool = False,
        asset_host: str = "serve",
        undocumented: str = "honor",
        **overrides: Any,
    ) -> OneMinEmulator:
        emulator = OneMinEmulator(
            EmulatorConfig(**{**FAST, **overrides}),
            asset_prefix=asset_prefix,
            temporary_url=temporary_url,
            failed_as_record=failed_as_record,
            asset_host=asset_host,  # type: ignore[arg-type]
            undocumented=undocumented,  # type: ignore[arg-type]
        )
        await emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        await emulator.stop()


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> OneMinEmulator:
    return await make_emulator()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def upload(http: aiohttp.ClientSession, emulator: OneMinEmulator, data: bytes = SOURCE) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("asset", data, filename="example.png", content_type="image/png")
    async with http.post(f"{emulator.base_url}/api/assets", data=form, headers=KEY) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def variator(image_url: str, model: str = REDUX, **overrides: Any) -> dict[str, Any]:
    prompt: dict[str, Any] = {
        "imageUrl": image_url,
        "format": "jpg",
        "aspect_ratio": "1:1",
        "num_outputs": 1,
        "num_inference_steps": 4,
        "seed": 1234,
        "output_quality": 80,
        "disable_safety_checker": False,
        "megapixels": "0.25",
    }
    prompt.update(overrides)
    return {"type": "IMAGE_VARIATOR", "model": model, "promptObject": prompt}


def generator(**overrides: Any) -> dict[str, Any]:
    prompt: dict[str, Any] = {"prompt": "a fox in snow", "megapixels": "0.25", "seed": 5}
    prompt.update(overrides)
    return {"type": "IMAGE_GENERATOR", "model": "black-forest-labs/flux-schnell", "promptObject": prompt}


async def features(http: aiohttp.ClientSession, emulator: OneMinEmulator, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"{emulator.base_url}/api/features", json=body, headers=KEY) as response:
        return response.status, await response.json()


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[str, Image.Image]:
    async with http.get(url) as response:
        assert response.status == 200, url
        return response.content_type, Image.open(io.BytesIO(await response.read()))


async def test_asset_upload_answer(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    body = await upload(http, emulator)
    path = body["fileContent"]["path"]
    assert path.startswith("images/") and path.endswith("_example.png")
    assert body["asset"]["key"] == path
    assert body["asset"]["location"] == f"{emulator.asset_base_url}/{path}"
    assert (body["asset"]["fieldname"], body["asset"]["mimetype"], body["asset"]["size"]) == (
        "asset",
        "image/png",
        len(SOURCE),
    )
    assert body["fileContent"]["type"] == "png" and body["fileContent"]["uuid"]
    async with http.get(f"{emulator.asset_base_url}/{path}") as response:
        assert (response.status, response.content_type, await response.read()) == (200, "image/png", SOURCE)


async def test_concurrent_uploads_get_their_own_keys(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    sources = [png((64 + 8 * i, 48)) for i in range(6)]
    answers = await asyncio.gather(*(upload(http, emulator, data) for data in sources))
    paths = [answer["fileContent"]["path"] for answer in answers]
    assert len(set(paths)) == 6
    assert [emulator.assets[path][0] for path in paths] == sources


async def test_asset_upload_refusals(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    url = f"{emulator.base_url}/api/assets"
    form = aiohttp.FormData()
    form.add_field("file", SOURCE, filename="x.png", content_type="image/png")
    async with http.post(url, data=form, headers=KEY) as response:
        assert response.status == 400
        assert (await response.json())["error"]["message"] == "asset is required"
    form = aiohttp.FormData()
    form.add_field("asset", b"plain text", filename="x.txt", content_type="text/plain")
    async with http.post(url, data=form, headers=KEY) as response:
        assert response.status == 400
    async with http.post(url, json={"asset": "x"}, headers=KEY) as response:
        assert response.status == 400
    assert emulator.assets == {}


async def test_feature_call_blocks_and_returns_relative_paths(
    http: aiohttp.ClientSession, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator(latency_median=0.3)
    path = (await upload(http, emulator))["fileContent"]["path"]
    started = time.monotonic()
    status, body = await features(http, emulator, variator(path, num_outputs=2))
    assert status == 200
    assert time.monotonic() - started >= 0.3
    record = body["aiRecord"]
    assert (record["model"], record["type"], record["status"]) == (REDUX, "IMAGE_VARIATOR", "SUCCESS")
    assert record["uuid"] in emulator.records
    assert record["aiRecordDetail"]["promptObject"] == variator(path, num_outputs=2)["promptObject"]
    results = record["aiRecordDetail"]["resultObject"]
    assert len(results) == 2
    assert all(p.startswith("images/") and p.endswith(f"_out-{i}.jpg") for i, p in enumerate(results))
    # A presigned S3-style URL of the first output, as the documented answer shows.
    assert record["temporaryUrl"].startswith(f"{emulator.base_url}/s3/asset.1min.ai/{results[0]}?X-Amz-Expires=")
    for url in (f"{emulator.asset_base_url}/{results[1]}", record["temporaryUrl"]):
        kind, image = await fetch(http, url)
        assert (kind, image.size, image.format) == ("image/jpeg", (512, 512), "JPEG")


@pytest.mark.parametrize(
    ("overrides", "size", "pil_format"),
    [
        ({"aspect_ratio": "16:9", "format": "webp"}, (672, 384), "WEBP"),
        ({"aspect_ratio": "9:21", "format": "png", "megapixels": 0.25}, (320, 768), "PNG"),
        ({"aspect_ratio": None, "format": None}, (576, 448), "WEBP"),  # the documented defaults: 4:3, webp
        ({"format": None, "output_format": "png"}, (512, 512), "WEBP"),  # Replicate's name is not read
    ],
)
async def test_variator_sizes_and_formats(
    http: aiohttp.ClientSession,
    emulator: OneMinEmulator,
    overrides: dict[str, Any],
    size: tuple[int, int],
    pil_format: str,
) -> None:
    path = (await upload(http, emulator))["fileContent"]["path"]
    body = variator(path, **overrides)
    body["promptObject"] = {k: v for k, v in body["promptObject"].items() if v is not None}
    status, answer = await features(http, emulator, body)
    assert status == 200, answer
    _, image = await fetch(http, f"{emulator.asset_base_url}/{answer['aiRecord']['aiRecordDetail']['resultObject'][0]}")
    assert (image.size, image.format) == (size, pil_format)


async def test_image_url_forms(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    path = (await upload(http, emulator))["fileContent"]["path"]
    for image_url in (path, "/" + path, f"{emulator.asset_base_url}/{path}"):
        status, _ = await features(http, emulator, variator(image_url))
        assert status == 200
    status, body = await features(http, emulator, variator("images/missing.png"))
    assert status == 422
    assert body["error"] == {"message": "Invalid promptObject", "details": ["imageUrl could not be loaded"]}


@pytest.mark.parametrize(
    ("prompt", "size"),
    [
        ({"aspect_ratio": "16:9"}, (672, 384)),
        ({"aspect_ratio": "custom", "width": 768, "height": 320}, (768, 320)),
        ({}, (512, 512)),
    ],
)
async def test_generator_sizes(
    http: aiohttp.ClientSession, emulator: OneMinEmulator, prompt: dict[str, Any], size: tuple[int, int]
) -> None:
    status, body = await features(http, emulator, generator(**prompt, num_outputs=2, format="png"))
    assert status == 200, body
    results = body["aiRecord"]["aiRecordDetail"]["resultObject"]
    assert len(results) == 2
    _, image = await fetch(http, f"{emulator.asset_base_url}/{results[1]}")
    assert (image.size, image.format) == (size, "PNG")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (generator(aspect_ratio="21:9"), "aspect_ratio"),
        (generator(aspect_ratio="custom", width=768), "width and height"),
        (generator(aspect_ratio="custom", width=770, height=320), "multiples"),
        (generator(num_inference_steps=5), "num_inference_steps"),
        (generator(prompt=""), "prompt"),
        (variator("x", num_outputs="2"), "num_outputs"),
        (variator("x", output_quality=0), "output_quality"),
        (variator("x", model="black-forest-labs/flux-redux-dev", guidance=11), "guidance"),
        (variator("x", num_inference_steps=5), "num_inference_steps"),
        ({**variator("x"), "promptObject": None}, "promptObject"),
    ],
)
async def test_validation_is_422(
    http: aiohttp.ClientSession, emulator: OneMinEmulator, body: dict[str, Any], detail: str
) -> None:
    status, answer = await features(http, emulator, body)
    assert status == 422
    assert answer["error"]["message"] == "Invalid promptObject"
    assert detail in answer["error"]["details"][0]
    assert emulator.records == {}


async def test_unknown_model_or_mismatched_type_is_400(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    for body in ({**generator(), "model": "flux-pro"}, {**generator(), "type": "IMAGE_VARIATOR"}):
        status, answer = await features(http, emulator, body)
        assert status == 400 and "Unsupported model" in answer["error"]["message"]


async def test_redux_dev_takes_up_to_50_steps(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    path = (await upload(http, emulator))["fileContent"]["path"]
    body = variator(path, model="black-forest-labs/flux-redux-dev", num_inference_steps=28, guidance=3)
    status, answer = await features(http, emulator, body)
    assert (status, answer["aiRecord"]["model"]) == (200, "black-forest-labs/flux-redux-dev")


async def test_model_failure_is_500_or_a_failed_record(
    http: aiohttp.ClientSession, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator()
    emulator.next_outcome(error="boom")
    assert await features(http, emulator, generator()) == (500, {"error": {"message": "boom"}})
    emulator.next_outcome(failed=False, dropped={0})
    status, body = await features(http, emulator, generator())
    assert (status, body["error"]) == (422, {"message": NSFW_ERROR, "details": ["nsfw"]})

    as_record = await make_emulator(failed_as_record=True)
    as_record.next_outcome(error="boom")
    status, body = await features(http, as_record, generator())
    assert status == 200
    record = body["aiRecord"]
    assert (record["status"], record["error"], record["aiRecordDetail"]["resultObject"]) == ("FAILED", "boom", [])
    assert "temporaryUrl" not in record


async def test_safety_drops_shorten_the_result(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    rate = 0.5
    emulator = await make_emulator(safety_drop_rate=rate)
    some = next(s for s in range(1, 500) if 0 < sum(safety_dropped(s, i, rate) for i in range(4)) < 4)
    status, body = await features(http, emulator, generator(seed=some, num_outputs=4))
    assert status == 200
    kept = [i for i in range(4) if not safety_dropped(some, i, rate)]
    results = body["aiRecord"]["aiRecordDetail"]["resultObject"]
    assert [p.rsplit("_", 1)[1] for p in results] == [f"out-{i}.webp" for i in kept]
    status, body = await features(http, emulator, generator(seed=some, num_outputs=4, disable_safety_checker=True))
    assert len(body["aiRecord"]["aiRecordDetail"]["resultObject"]) == 4


async def test_options_prefix_and_no_temporary_url(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(asset_prefix="cdn/files/", temporary_url=False)
    assert emulator.asset_base_url == f"{emulator.base_url}/cdn/files"
    _, body = await features(http, emulator, generator())
    assert "temporaryUrl" not in body["aiRecord"]
    path = body["aiRecord"]["aiRecordDetail"]["resultObject"][0]
    await fetch(http, f"{emulator.base_url}/cdn/files/{path}")
    async with http.get(f"{emulator.base_url}/asset/{path}") as response:
        assert response.status == 404


async def test_evicted_files_are_rendered_again(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    _, body = await features(http, emulator, generator())
    url = f"{emulator.asset_base_url}/{body['aiRecord']['aiRecordDetail']['resultObject'][0]}"
    async with http.get(url) as response:
        first = await response.read()
    emulator._files.clear()
    async with http.get(url) as response:
        assert await response.read() == first


async def test_auth(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(api_keys=frozenset({"good"}))
    url = f"{emulator.base_url}/api/features"
    for headers in ({}, {"API-KEY": "bad"}, {"Authorization": "Bearer good"}):
        async with http.post(url, json=generator(), headers=headers) as response:
            assert response.status == 401
            assert "API key" in (await response.json())["error"]["message"]
    async with http.post(url, json=generator(), headers={"api-key": "good"}) as response:
        assert response.status == 200


async def test_insufficient_credits(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(credits=250)
    assert (await features(http, emulator, generator(num_outputs=2)))[0] == 200
    status, body = await features(http, emulator, generator())
    assert status == 400 and body["error"]["message"].startswith("Insufficient credits")
    assert emulator.balance == 50


async def test_rate_limit(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(rpm=2, time_scale=0.01)  # a 0.6 s window
    statuses = []
    for _ in range(3):
        async with http.post(f"{emulator.base_url}/api/features", json={}, headers=KEY) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert await response.json() == {"error": {"message": "Too many requests"}}
                assert response.headers["Retry-After"] == "1"
    assert statuses == [400, 400, 429]
    async with http.get(f"{emulator.asset_base_url}/images/nope.png") as response:
        assert response.status == 404  # downloads never count
    assert emulator.count_429 == 1
    await asyncio.sleep(0.62)
    async with http.post(f"{emulator.base_url}/api/features", json={}, headers=KEY) as response:
        assert response.status == 400


async def test_fail_next_and_delay_next(http: aiohttp.ClientSession, emulator: OneMinEmulator) -> None:
    emulator.fail_next(504, route="features")
    assert await features(http, emulator, generator()) == (504, {"error": {"message": "HTTP 504"}})
    emulator.fail_next(429, route="asset")
    form = aiohttp.FormData()
    form.add_field("asset", SOURCE, filename="x.png", content_type="image/png")
    async with http.post(f"{emulator.base_url}/api/assets", data=form, headers=KEY) as response:
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    emulator.delay_next(0.5, route="features")
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{emulator.base_url}/api/features",
            json=generator(),
            headers=KEY,
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass
    _, body = await features(http, emulator, generator())
    url = f"{emulator.asset_base_url}/{body['aiRecord']['aiRecordDetail']['resultObject'][0]}"
    emulator.fail_next(503, route="file")
    async with http.get(url) as response:
        assert response.status == 503
    await fetch(http, url)
    # The delayed call is still parked server-side; only the answered ones are logged.
    assert [r.status for r in emulator.requests if r.route == "features"] == [504, 200]


async def test_a_private_asset_host_refuses_outputs_but_the_presigned_url_serves_them(
    http: aiohttp.ClientSession, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator(asset_host="403")
    path = (await upload(http, emulator))["fileContent"]["path"]
    _, body = await features(http, emulator, variator(path))
    record = body["aiRecord"]
    async with http.get(f"{emulator.asset_base_url}/{record['aiRecordDetail']['resultObject'][0]}") as response:
        assert response.status == 403
    kind, image = await fetch(http, record["temporaryUrl"])
    assert kind == "image/jpeg" and image.size == (512, 512)


async def test_go_fast_makes_a_seed_not_reproduce(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator()
    pictures: dict[bool, list[bytes]] = {True: [], False: []}
    for go_fast in (True, True, False, False):
        _, body = await features(http, emulator, generator(seed=77, go_fast=go_fast))
        url = f"{emulator.asset_base_url}/{body['aiRecord']['aiRecordDetail']['resultObject'][0]}"
        async with http.get(url) as response:
            pictures[go_fast].append(await response.read())
    assert pictures[False][0] == pictures[False][1]
    assert pictures[True][0] != pictures[True][1]


@pytest.mark.parametrize("undocumented", ["ignore", "refuse"])
async def test_undocumented_schnell_fields_ignored_or_refused(
    http: aiohttp.ClientSession, make_emulator: MakeEmulator, undocumented: str
) -> None:
    emulator = await make_emulator(undocumented=undocumented)
    status, body = await features(http, emulator, generator(num_outputs=2, format="png"))
    if undocumented == "refuse":
        assert status == 422 and "num_outputs" in str(body)
    else:
        assert status == 200 and len(body["aiRecord"]["aiRecordDetail"]["resultObject"]) == 1
