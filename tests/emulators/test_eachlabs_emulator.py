"""The Eachlabs emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from emulators.common import NSFW_ERROR, EmulatorConfig, safety_dropped
from emulators.eachlabs import EachlabsEmulator

KEY = {"X-API-Key": "eachlabs-test-key"}
FAST: dict[str, Any] = {"latency_median": 0.15, "latency_sigma": 0.0, "queue_seconds": 0.05}

MakeEmulator = Callable[..., Awaitable[EachlabsEmulator]]


def data_uri() -> str:
    image = Image.new("RGB", (320, 240), (200, 60, 30))
    image.paste((20, 120, 220), (80, 60, 160, 120))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


SOURCE = data_uri()


def create_body(**overrides: Any) -> dict[str, Any]:
    """The model page's example body: numbers as strings."""
    inputs: dict[str, Any] = {
        "seed": "1234",
        "megapixels": "0.25",
        "num_outputs": "1",
        "redux_image": SOURCE,
        "aspect_ratio": "1:1",
        "output_format": "jpg",
        "output_quality": "80",
        "num_inference_steps": "4",
        "disable_safety_checker": False,
    }
    inputs.update(overrides)
    return {"model": "flux-redux-schnell", "version": "0.0.1", "input": inputs}


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    started: list[EachlabsEmulator] = []

    async def make(
        *, numbers_as_strings: bool = True, failed_status: str = "failed", **overrides: Any
    ) -> EachlabsEmulator:
        emulator = EachlabsEmulator(
            EmulatorConfig(**{**FAST, **overrides}), numbers_as_strings=numbers_as_strings, failed_status=failed_status
        )
        await emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        await emulator.stop()


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> EachlabsEmulator:
    return await make_emulator()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def create(http: aiohttp.ClientSession, emulator: EachlabsEmulator, body: dict[str, Any]) -> str:
    async with http.post(f"{emulator.base_url}/v1/prediction", json=body, headers=KEY) as response:
        assert response.status == 200, await response.text()
        created = await response.json()
    assert created["status"] == "success" and created["message"] == "Prediction created successfully"
    prediction_id: str = created["predictionID"]
    return prediction_id


async def get(http: aiohttp.ClientSession, emulator: EachlabsEmulator, prediction_id: str) -> tuple[int, Any]:
    async with http.get(f"{emulator.base_url}/v1/prediction/{prediction_id}", headers=KEY) as response:
        return response.status, await response.json()


async def wait_done(emulator: EachlabsEmulator, prediction_id: str) -> None:
    prediction = emulator.predictions[prediction_id]
    await asyncio.sleep(max(0.0, prediction.completes_at - emulator.now()) + 0.01)


async def download(http: aiohttp.ClientSession, url: str) -> tuple[str, bytes]:
    async with http.get(url) as response:
        assert response.status == 200
        return response.content_type, await response.read()


async def test_lifecycle_starting_processing_success(http: aiohttp.ClientSession, emulator: EachlabsEmulator) -> None:
    prediction_id = await create(http, emulator, create_body())
    base = f"{emulator.base_url}/v1/prediction/{prediction_id}"
    status, body = await get(http, emulator, prediction_id)
    assert status == 200
    assert body == {
        "id": prediction_id,
        "input": create_body()["input"],
        "status": "starting",
        "output": None,
        "logs": None,
        "metrics": {},
        "urls": {"cancel": f"{base}/cancel", "get": base},
    }
    prediction = emulator.predictions[prediction_id]
    await asyncio.sleep(prediction.started_at - emulator.now() + 0.02)
    assert (await get(http, emulator, prediction_id))[1]["status"] == "processing"

    await wait_done(emulator, prediction_id)
    _, body = await get(http, emulator, prediction_id)
    assert body["status"] == "success"
    assert body["output"] == [f"{emulator.base_url}/files/{prediction_id}/out-0.jpg"]
    # Numbers arrive as strings, as the real API sends them.
    assert body["metrics"] == {"predict_time": "0.15", "cost": "0.003"}
    assert emulator.counts["create"] == 1 and emulator.counts["get"] == 3


async def test_trailing_slash_and_header_spelling(http: aiohttp.ClientSession, emulator: EachlabsEmulator) -> None:
    url = f"{emulator.base_url}/v1/prediction/"
    async with http.post(url, json=create_body(), headers={"X-API-KEY": "k"}) as response:
        assert response.status == 200
        assert "predictionID" in await response.json()


@pytest.mark.parametrize(
    ("aspect", "megapixels", "fmt", "size", "pil_format", "content_type"),
    [
        ("16:9", "0.25", "webp", (672, 384), "WEBP", "image/webp"),
        ("9:21", 0.25, "png", (320, 768), "PNG", "image/png"),
        ("4:5", "1", "jpg", (896, 1088), "JPEG", "image/jpeg"),
    ],
)
async def test_output_size_and_format(
    http: aiohttp.ClientSession,
    emulator: EachlabsEmulator,
    aspect: str,
    megapixels: str | float,
    fmt: str,
    size: tuple[int, int],
    pil_format: str,
    content_type: str,
) -> None:
    prediction_id = await create(
        http, emulator, create_body(aspect_ratio=aspect, megapixels=megapixels, output_format=fmt)
    )
    await wait_done(emulator, prediction_id)
    _, body = await get(http, emulator, prediction_id)
    kind, data = await download(http, body["output"][0])
    image = Image.open(io.BytesIO(data))
    assert (kind, image.size, image.format) == (content_type, size, pil_format)


async def test_numbers_and_strings_are_both_accepted(http: aiohttp.ClientSession, emulator: EachlabsEmulator) -> None:
    as_strings = await create(http, emulator, create_body(num_outputs="2", seed="7", output_quality="90"))
    as_numbers = await create(http, emulator, create_body(num_outputs=2, seed=7, output_quality=90))
    await wait_done(emulator, as_numbers)
    outputs = []
    for prediction_id in (as_strings, as_numbers):
        _, body = await get(http, emulator, prediction_id)
        outputs.append([(await download(http, url))[1] for url in body["output"]])
    assert len(outputs[0]) == 2
    assert outputs[0] == outputs[1]  # same seed, same pictures
    assert emulator.predictions[as_strings].seed == 7


async def test_numeric_metrics_and_bare_url_options(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(**FAST)
    async with EachlabsEmulator(config, numbers_as_strings=False, output_shape="string") as emulator:
        prediction_id = await create(http, emulator, create_body())
        await wait_done(emulator, prediction_id)
        _, body = await get(http, emulator, prediction_id)
    assert body["metrics"] == {"predict_time": 0.15, "cost": 0.003}
    assert body["output"] == f"{emulator.base_url}/files/{prediction_id}/out-0.jpg"


async def test_seed_zero_is_drawn_and_recorded(http: aiohttp.ClientSession, emulator: EachlabsEmulator) -> None:
    prediction_id = await create(http, emulator, create_body(seed=None))
    assert 0 <= emulator.predictions[prediction_id].seed < 65536


@pytest.mark.parametrize(
    ("body", "status", "error", "details"),
    [
        ({"input": {}}, 400, "model field is required", None),
        ({"model": "flux-pro", "input": {}}, 404, "Model flux-pro not found", None),
        (create_body(aspect_ratio="custom"), 400, "Invalid input for model", "aspect_ratio"),
        (create_body(num_inference_steps="5"), 400, "Invalid input for model", "num_inference_steps"),
        (create_body(num_outputs="two"), 400, "Invalid input for model", "num_outputs"),
        (create_body(megapixels="match_input"), 400, "Invalid input for model", "megapixels"),
        (create_body(redux_image="https://example.com/x.png"), 400, "Invalid input for model", "redux_image"),
        (create_body(redux_image="data:image/png;base64,aGVsbG8="), 400, "Invalid input for model", "redux_image"),
    ],
)
async def test_create_validation(
    http: aiohttp.ClientSession,
    emulator: EachlabsEmulator,
    body: dict[str, Any],
    status: int,
    error: str,
    details: str | None,
) -> None:
    async with http.post(f"{emulator.base_url}/v1/prediction", json=body, headers=KEY) as response:
        assert response.status == status
        answer = await response.json()
    assert answer["error"] == error
    if details is not None:
        assert details in answer["details"]
    assert emulator.predictions == {}


@pytest.mark.parametrize("failed_status", ["failed", "error"])
async def test_failed_prediction(http: aiohttp.ClientSession, make_emulator: MakeEmulator, failed_status: str) -> None:
    emulator = await make_emulator(failed_status=failed_status)
    emulator.next_outcome(error="boom")
    prediction_id = await create(http, emulator, create_body())
    await wait_done(emulator, prediction_id)
    status, body = await get(http, emulator, prediction_id)
    assert (status, body["status"], body["error"], body["output"]) == (200, failed_status, "boom", None)
    assert emulator.predictions[prediction_id].cost == 0


async def test_safety_drops(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    rate = 0.5
    emulator = await make_emulator(safety_drop_rate=rate)
    some = next(s for s in range(1, 500) if 0 < sum(safety_dropped(s, i, rate) for i in range(4)) < 4)
    every = next(s for s in range(1, 500) if all(safety_dropped(s, i, rate) for i in range(4)))
    partial = await create(http, emulator, create_body(num_outputs="4", seed=str(some)))
    dropped = await create(http, emulator, create_body(num_outputs="4", seed=str(every)))
    unfiltered = await create(
        http, emulator, create_body(num_outputs="4", seed=str(every), disable_safety_checker=True)
    )
    await wait_done(emulator, unfiltered)

    _, body = await get(http, emulator, partial)
    kept = [i for i in range(4) if not safety_dropped(some, i, rate)]
    assert [url.rsplit("/", 1)[1] for url in body["output"]] == [f"out-{i}.jpg" for i in kept]
    _, body = await get(http, emulator, dropped)
    assert (body["status"], body["error"]) == ("failed", NSFW_ERROR)
    _, body = await get(http, emulator, unfiltered)
    assert len(body["output"]) == 4


async def test_cancel(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(credits=1.0)
    running = await create(http, emulator, create_body())
    url = f"{emulator.base_url}/v1/prediction/{running}/cancel"
    async with http.post(url, headers=KEY) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "success"
    _, body = await get(http, emulator, running)
    assert body["status"] == "cancelled" and body["output"] is None
    assert emulator.balance == 1.0  # not billed

    finished = await create(http, emulator, create_body())
    await wait_done(emulator, finished)
    async with http.post(f"{emulator.base_url}/v1/prediction/{finished}/cancel", headers=KEY) as response:
        assert response.status == 200
    assert (await get(http, emulator, finished))[1]["status"] == "success"
    async with http.post(f"{emulator.base_url}/v1/prediction/nope/cancel", headers=KEY) as response:
        assert response.status == 404
    assert emulator.counts["cancel"] == 3


async def test_unknown_and_expired_ids_are_404(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(time_scale=0.01, latency_median=5.0, queue_seconds=0.0, ttl_seconds=30.0)
    assert await get(http, emulator, "nope") == (404, {"error": "Prediction nope not found"})
    kept = await create(http, emulator, create_body())
    expired = await create(http, emulator, create_body())
    emulator.expire(expired)
    assert (await get(http, emulator, expired))[0] == 404
    assert (await get(http, emulator, kept))[0] == 200
    await asyncio.sleep(0.32)  # the 30 s TTL at 1/100 scale
    assert (await get(http, emulator, kept))[0] == 404


async def test_auth(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(api_keys=frozenset({"good"}))
    url = f"{emulator.base_url}/v1/prediction"
    for headers in ({}, {"X-API-Key": "bad"}, {"Authorization": "Bearer good"}):
        async with http.post(url, json=create_body(), headers=headers) as response:
            assert (response.status, await response.json()) == (401, {"error": "Invalid or missing API key"})
    async with http.post(url, json=create_body(), headers={"x-api-key": "good"}) as response:
        assert response.status == 200


async def test_insufficient_balance_is_402(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(credits=0.005)
    await create(http, emulator, create_body())
    async with http.post(f"{emulator.base_url}/v1/prediction", json=create_body(), headers=KEY) as response:
        assert response.status == 402
        assert "Insufficient balance" in (await response.json())["error"]


async def test_rate_limit(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(rpm=2, time_scale=0.01)  # a 0.6 s window
    statuses = []
    for _ in range(3):
        async with http.get(f"{emulator.base_url}/v1/prediction/nope", headers=KEY) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert await response.json() == {"error": "Rate limit exceeded"}
                assert response.headers["Retry-After"] == "1"
                assert response.headers["X-RateLimit-Limit"] == "2"
                assert 0 <= int(response.headers["X-RateLimit-Reset"]) - time.time() <= 2
    assert statuses == [404, 404, 429]
    async with http.get(f"{emulator.base_url}/files/nope/out-0.jpg") as response:
        assert response.status == 404  # downloads never count
    assert emulator.count_429 == 1
    await asyncio.sleep(0.62)
    async with http.get(f"{emulator.base_url}/v1/prediction/nope", headers=KEY) as response:
        assert response.status == 404


async def test_fail_next_and_delay_next(http: aiohttp.ClientSession, emulator: EachlabsEmulator) -> None:
    emulator.fail_next(500, route="create", body={"error": "Failed to create prediction"})
    async with http.post(f"{emulator.base_url}/v1/prediction", json=create_body(), headers=KEY) as response:
        assert (response.status, await response.json()) == (500, {"error": "Failed to create prediction"})
    prediction_id = await create(http, emulator, create_body())

    emulator.fail_next(429, route="get")
    async with http.get(f"{emulator.base_url}/v1/prediction/{prediction_id}", headers=KEY) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1

    emulator.delay_next(0.5, route="get")
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(
            f"{emulator.base_url}/v1/prediction/{prediction_id}",
            headers=KEY,
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass
    await wait_done(emulator, prediction_id)
    _, body = await get(http, emulator, prediction_id)
    emulator.fail_next(503, route="file")
    async with http.get(body["output"][0]) as response:
        assert response.status == 503
    assert (await download(http, body["output"][0]))[0] == "image/jpeg"
    assert [r.status for r in emulator.requests if r.route == "create"] == [500, 200]


async def test_run_is_synchronous(http: aiohttp.ClientSession, emulator: EachlabsEmulator) -> None:
    started = time.monotonic()
    async with http.post(f"{emulator.base_url}/v1/prediction/run", json=create_body(), headers=KEY) as response:
        assert response.status == 200
        body = await response.json()
    assert time.monotonic() - started >= 0.15
    assert set(body) == {"status", "message", "predictionID", "output", "error"}
    assert (body["status"], body["error"]) == ("success", None)
    assert body["output"] == [f"{emulator.base_url}/files/{body['predictionID']}/out-0.jpg"]
    assert emulator.counts["run"] == 1
