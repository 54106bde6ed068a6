"""The Replicate emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from emulators.common import EmulatorConfig
from emulators.replicate import (
    BAD_TOKEN,
    NO_CREDIT,
    NO_TOKEN,
    NSFW_ERROR,
    UNREADABLE_IMAGE_ERROR,
    VERSIONS,
    ReplicateEmulator,
    safety_dropped,
)

AUTH = {"Authorization": "Bearer r8_0123456789abcdef"}
# Fast but ordered: starting for 50 ms, then 150 ms of processing, no jitter.
FAST: dict[str, Any] = {"latency_median": 0.15, "latency_sigma": 0.0, "queue_seconds": 0.05}
REDUX_PATH = "/v1/models/black-forest-labs/flux-redux-schnell/predictions"

MakeEmulator = Callable[..., Awaitable[ReplicateEmulator]]


def data_uri(size: tuple[int, int] = (320, 240)) -> str:
    image = Image.new("RGB", size, (200, 60, 30))
    image.paste((20, 120, 220), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


SOURCE = data_uri()


def redux(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "redux_image": SOURCE,
        "aspect_ratio": "1:1",
        "megapixels": "0.25",
        "num_outputs": 1,
        "num_inference_steps": 4,
        "output_format": "jpg",
        "output_quality": 80,
        "seed": 1234,
    }
    values.update(overrides)
    return {"input": values}


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    started: list[ReplicateEmulator] = []

    async def make(*, output_mode: str = "url", create_rpm: int | None = None, **overrides: Any) -> ReplicateEmulator:
        emulator = ReplicateEmulator(
            EmulatorConfig(**{**FAST, **overrides}),
            output_mode=output_mode,  # type: ignore[arg-type]
            create_rpm=create_rpm,
        )
        await emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        await emulator.stop()


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> ReplicateEmulator:
    return await make_emulator()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def create(
    http: aiohttp.ClientSession,
    emulator: ReplicateEmulator,
    body: dict[str, Any],
    path: str = REDUX_PATH,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    async with http.post(f"{emulator.base_url}{path}", json=body, headers={**AUTH, **(headers or {})}) as response:
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created


async def get(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with http.get(url, headers=AUTH if headers is None else headers) as response:
        return response.status, await response.json()


async def wait_done(emulator: ReplicateEmulator, prediction_id: str) -> None:
    prediction = emulator.predictions[prediction_id]
    await asyncio.sleep(max(0.0, prediction.completes_at - emulator.now()) + 0.01)


async def download(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url, headers=AUTH) as response:
        return response.status, response.content_type, await response.read()


async def outputs(http: aiohttp.ClientSession, emulator: ReplicateEmulator, body: dict[str, Any]) -> list[bytes]:
    created = await create(http, emulator, body)
    await wait_done(emulator, created["id"])
    _, prediction = await get(http, created["urls"]["get"])
    return [(await download(http, url))[2] for url in prediction["output"]]


async def test_lifecycle_starting_processing_succeeded(
    http: aiohttp.ClientSession, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator(queue_seconds=0.2, latency_median=0.2)
    created = await create(http, emulator, redux())
    prediction_id = created["id"]
    base = emulator.base_url
    assert len(prediction_id) == 26
    assert created["model"] == "black-forest-labs/flux-redux-schnell"
    assert (created["version"], created["status"], created["output"], created["error"]) == (
        "hidden",
        "starting",
        None,
        None,
    )
    assert created["urls"] == {
        "get": f"{base}/v1/predictions/{prediction_id}",
        "cancel": f"{base}/v1/predictions/{prediction_id}/cancel",
    }
    assert created["input"] == redux()["input"]
    assert created["started_at"] is None and created["completed_at"] is None
    assert created["created_at"].endswith("Z")

    prediction = emulator.predictions[prediction_id]
    await asyncio.sleep(prediction.started_at - emulator.now() + 0.02)
    status, body = await get(http, created["urls"]["get"])
    assert (status, body["status"], body["output"], body["metrics"]) == (200, "processing", None, {})
    assert body["started_at"] is not None and body["logs"] == "Using seed: 1234\n"

    await wait_done(emulator, prediction_id)
    status, body = await get(http, created["urls"]["get"])
    assert (status, body["status"]) == (200, "succeeded")
    assert body["output"] == [f"{base}/delivery/{prediction_id}/out-0.jpg"]
    assert body["metrics"]["predict_time"] == pytest.approx(0.2, abs=0.01)
    assert body["metrics"]["total_time"] == pytest.approx(0.4, abs=0.01)
    assert body["completed_at"] >= body["started_at"] >= body["created_at"]
    assert prediction.detected_at is not None
    assert emulator.counts["create"] == 1 and emulator.counts["get"] == 2


async def test_outputs_need_the_token(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(api_keys=frozenset({"r8_good"}))
    headers = {"Authorization": "Bearer r8_good"}
    created = await create(http, emulator, redux(), headers=headers)
    await wait_done(emulator, created["id"])
    _, body = await get(http, created["urls"]["get"], headers=headers)
    url = body["output"][0]
    async with http.get(url) as response:
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert (await response.json())["detail"] == NO_TOKEN
    async with http.get(url, headers={"Authorization": "Bearer r8_bad"}) as response:
        assert response.status == 401
    async with http.get(url, headers=headers) as response:
        assert (response.status, response.content_type) == (200, "image/jpeg")


@pytest.mark.parametrize(
    ("aspect", "megapixels", "fmt", "size", "pil_format", "content_type"),
    [
        ("16:9", "1", "webp", (1344, 768), "WEBP", "image/webp"),
        ("9:21", "0.25", "png", (320, 768), "PNG", "image/png"),
        ("4:5", "1", "jpg", (896, 1088), "JPEG", "image/jpeg"),
    ],
)
async def test_output_size_and_format(
    http: aiohttp.ClientSession,
    emulator: ReplicateEmulator,
    aspect: str,
    megapixels: str,
    fmt: str,
    size: tuple[int, int],
    pil_format: str,
    content_type: str,
) -> None:
    created = await create(http, emulator, redux(aspect_ratio=aspect, megapixels=megapixels, output_format=fmt))
    await wait_done(emulator, created["id"])
    _, body = await get(http, created["urls"]["get"])
    status, kind, data = await download(http, body["output"][0])
    image = Image.open(io.BytesIO(data))
    assert (status, kind, image.size, image.format) == (200, content_type, size, pil_format)


async def test_waited_create_returns_terminal_or_starting(
    http: aiohttp.ClientSession, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator(time_scale=0.1, latency_median=1.5, queue_seconds=0.5)
    done = await create(http, emulator, redux(num_outputs=2), headers={"Prefer": "wait"})
    assert done["status"] == "succeeded"
    assert len(done["output"]) == 2

    emulator.next_outcome(failed=False, latency=30.0)  # 3 s here, far beyond wait=1 (0.1 s)
    held = await create(http, emulator, redux(), headers={"Prefer": "wait=1"})
    # It is processing by now, but a waited create never says so.
    assert emulator.predictions[held["id"]].state_at(emulator.now()) == "processing"
    assert (held["status"], held["output"], held["started_at"]) == ("starting", None, None)
    _, body = await get(http, held["urls"]["get"])
    assert body["status"] == "processing"

    emulator.next_outcome(error="boom")
    failed = await create(http, emulator, redux(), headers={"Prefer": "wait=5"})
    assert (failed["status"], failed["error"]) == ("failed", "boom")

    async with http.post(f"{emulator.base_url}{REDUX_PATH}", json=redux(), headers={**AUTH, "Prefer": "wait=61"}) as r:
        assert r.status == 400
        assert r.content_type == "application/problem+json"


async def test_cancel(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(latency_median=5.0)
    created = await create(http, emulator, redux())
    await asyncio.sleep(0.08)
    async with http.post(created["urls"]["cancel"], headers=AUTH) as response:
        assert response.status == 200
        canceled = await response.json()
    assert (canceled["status"], canceled["output"], canceled["error"]) == ("canceled", None, None)
    assert canceled["completed_at"] is not None and "predict_time" in canceled["metrics"]
    _, again = await get(http, created["urls"]["get"])
    assert again["status"] == "canceled"
    status, _, _ = await download(http, f"{emulator.base_url}/delivery/{created['id']}/out-0.jpg")
    assert status == 404

    # Cancelling a finished prediction changes nothing.
    emulator.next_outcome(failed=False, latency=0.05)
    quick = await create(http, emulator, redux(), headers={"Prefer": "wait"})
    async with http.post(quick["urls"]["cancel"], headers=AUTH) as response:
        assert (response.status, (await response.json())["status"]) == (200, "succeeded")


@pytest.mark.parametrize(
    ("path", "values", "field", "description"),
    [
        (REDUX_PATH, redux(aspect_ratio="custom")["input"], "input.aspect_ratio", "must be one of the following"),
        (REDUX_PATH, redux(num_outputs=5)["input"], "input.num_outputs", "Must be less than or equal to 4"),
        (REDUX_PATH, redux(num_inference_steps=5)["input"], "input.num_inference_steps", "less than or equal to 4"),
        (REDUX_PATH, redux(megapixels=1)["input"], "input.megapixels", "Expected: string, given: integer"),
        (REDUX_PATH, {"aspect_ratio": "1:1"}, "input.redux_image", "redux_image is required"),
        (
            "/v1/models/black-forest-labs/flux-redux-dev/predictions",
            redux(num_inference_steps=50, guidance=11)["input"],
            "input.guidance",
            "Must be less than or equal to 10",
        ),
        ("/v1/models/black-forest-labs/flux-schnell/predictions", {"go_fast": "no"}, "input.prompt", "is required"),
    ],
)
async def test_validation_is_a_422_problem(
    http: aiohttp.ClientSession,
    emulator: ReplicateEmulator,
    path: str,
    values: dict[str, Any],
    field: str,
    description: str,
) -> None:
    async with http.post(f"{emulator.base_url}{path}", json={"input": values}, headers=AUTH) as response:
        assert response.status == 422
        assert response.content_type == "application/problem+json"
        body = await response.json()
    assert body["title"] == "Input validation failed" and body["status"] == 422
    assert f"- {field}: " in body["detail"] and description in body["detail"]
    assert any(item["field"] == field and description in item["description"] for item in body["invalid_fields"])
    assert emulator.predictions == {}


async def test_unreadable_input_fails_the_prediction(http: aiohttp.ClientSession, emulator: ReplicateEmulator) -> None:
    created = await create(http, emulator, redux(redux_image="data:image/png;base64,aGVsbG8="))
    await wait_done(emulator, created["id"])
    _, body = await get(http, created["urls"]["get"])
    assert (body["status"], body["error"], body["output"]) == ("failed", UNREADABLE_IMAGE_ERROR, None)


async def test_seeds(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(latency_median=0.03, queue_seconds=0.0)
    first = await outputs(http, emulator, redux(num_outputs=2))
    again = await outputs(http, emulator, redux(num_outputs=2))
    other = await outputs(http, emulator, redux(num_outputs=2, seed=99))
    assert first == again and first[0] != first[1] and other[0] not in first

    drawn = await create(http, emulator, redux(seed=0))
    assert 0 <= emulator.predictions[drawn["id"]].seed < 65536

    schnell = "/v1/models/black-forest-labs/flux-schnell/predictions"
    images: dict[bool, list[bytes]] = {True: [], False: []}
    for go_fast in (True, True, False, False):
        body = {"input": {"prompt": "a fox", "seed": 7, "megapixels": "0.25", "go_fast": go_fast}}
        created = await create(http, emulator, body, path=schnell)
        await wait_done(emulator, created["id"])
        _, prediction = await get(http, created["urls"]["get"])
        images[go_fast].append((await download(http, prediction["output"][0]))[2])
    assert images[False][0] == images[False][1]
    assert images[True][0] != images[True][1]


async def test_safety_drops(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    rate = 0.5
    emulator = await make_emulator(safety_drop_rate=rate)
    some = next(s for s in range(1, 500) if 0 < sum(safety_dropped(s, i, rate) for i in range(4)) < 4)
    every = next(s for s in range(1, 500) if all(safety_dropped(s, i, rate) for i in range(4)))
    partial = await create(http, emulator, redux(num_outputs=4, seed=some))
    dropped = await create(http, emulator, redux(num_outputs=4, seed=every))
    unfiltered = await create(http, emulator, redux(num_outputs=4, seed=every, disable_safety_checker=True))
    await wait_done(emulator, unfiltered["id"])

    _, body = await get(http, partial["urls"]["get"])
    kept = [i for i in range(4) if not safety_dropped(some, i, rate)]
    assert [url.rsplit("/", 1)[1] for url in body["output"]] == [f"out-{i}.jpg" for i in kept]
    assert body["metrics"]["image_count"] == len(kept)
    _, body = await get(http, dropped["urls"]["get"])
    assert (body["status"], body["error"], body["output"]) == ("failed", NSFW_ERROR, None)
    _, body = await get(http, unfiltered["urls"]["get"])
    assert len(body["output"]) == 4


async def test_auth(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(api_keys=frozenset({"r8_good"}))
    url = f"{emulator.base_url}{REDUX_PATH}"
    async with http.post(url, json=redux()) as response:
        assert response.status == 401
        assert await response.json() == {"title": "Unauthenticated", "detail": NO_TOKEN, "status": 401}
    async with http.post(url, json=redux(), headers={"Authorization": "Bearer r8_bad"}) as response:
        assert (response.status, (await response.json())["detail"]) == (401, BAD_TOKEN)
    async with http.post(url, json=redux(), headers={"Authorization": "Token r8_good"}) as response:
        assert response.status == 201
    assert len(emulator.predictions) == 1


async def test_rate_limits(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(rpm=2, time_scale=0.01)  # a 0.6 s window
    url = f"{emulator.base_url}/v1/predictions/nope"
    statuses = []
    for _ in range(3):
        async with http.get(url, headers=AUTH) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert await response.json() == {
                    "detail": "Request was throttled. Your rate limit resets in ~1s.",
                    "status": 429,
                }
                assert response.headers["Retry-After"] == "1"
    assert statuses == [404, 404, 429]
    assert emulator.count_429 == 1
    # Downloads come from a CDN and never count.
    status, _, _ = await download(http, f"{emulator.base_url}/delivery/nope/out-0.jpg")
    assert status == 404
    await asyncio.sleep(0.62)
    async with http.get(url, headers=AUTH) as response:
        assert response.status == 404

    creates = await make_emulator(create_rpm=1)
    await create(http, creates, redux())
    async with http.post(f"{creates.base_url}{REDUX_PATH}", json=redux(), headers=AUTH) as response:
        assert response.status == 429
        assert "resets in ~" in (await response.json())["detail"]


async def test_fail_next_and_delay_next(http: aiohttp.ClientSession, emulator: ReplicateEmulator) -> None:
    emulator.fail_next(503, times=2, route="create")
    url = f"{emulator.base_url}{REDUX_PATH}"
    for _ in range(2):
        async with http.post(url, json=redux(), headers=AUTH) as response:
            assert response.status == 503
            assert response.content_type == "application/problem+json"
            assert await response.json() == {
                "title": "Service Unavailable",
                "detail": "Service Unavailable",
                "status": 503,
            }
    created = await create(http, emulator, redux())

    emulator.fail_next(429, route="get")
    async with http.get(created["urls"]["get"], headers=AUTH) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "30"
        assert (await response.json())["detail"] == "Request was throttled. Your rate limit resets in ~30s."

    emulator.delay_next(0.5, route="get")
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(created["urls"]["get"], headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    await wait_done(emulator, created["id"])
    _, body = await get(http, created["urls"]["get"])
    emulator.fail_next(500, route="file")
    status, _, _ = await download(http, body["output"][0])
    assert status == 500
    assert (await download(http, body["output"][0]))[0] == 200
    assert [r.status for r in emulator.requests if r.route == "create"] == [503, 503, 201]


async def test_expired_and_removed_data(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(time_scale=0.01, latency_median=5.0, queue_seconds=0.0, ttl_seconds=30.0)
    status, body = await get(http, f"{emulator.base_url}/v1/predictions/nope")
    assert (status, body["status"]) == (404, 404)

    kept = await create(http, emulator, redux())
    gone = await create(http, emulator, redux())
    emulator.expire(gone["id"])
    status, _ = await get(http, gone["urls"]["get"])
    assert status == 404
    async with http.post(gone["urls"]["cancel"], headers=AUTH) as response:
        assert response.status == 404

    await wait_done(emulator, kept["id"])
    _, body = await get(http, kept["urls"]["get"])
    url = body["output"][0]
    await asyncio.sleep(0.32)  # the 30 s retention at 1/100 scale
    status, body = await get(http, kept["urls"]["get"])
    assert (status, body["status"], body["output"], body["data_removed"], body["input"]) == (
        200,
        "succeeded",
        None,
        True,
        {},
    )
    assert (await download(http, url))[0] == 404


async def test_create_by_version_and_unknown_model(http: aiohttp.ClientSession, emulator: ReplicateEmulator) -> None:
    version = VERSIONS["black-forest-labs/flux-redux-dev"]
    for ref in (version, f"black-forest-labs/flux-redux-dev:{version}"):
        created = await create(
            http, emulator, {"version": ref, **redux(num_inference_steps=28)}, path="/v1/predictions"
        )
        assert (created["model"], created["version"]) == ("black-forest-labs/flux-redux-dev", version)
    async with http.post(
        f"{emulator.base_url}/v1/predictions", json={"version": "0" * 64, **redux()}, headers=AUTH
    ) as response:
        assert (response.status, (await response.json())["title"]) == (422, "Invalid version or not permitted")
    async with http.post(
        f"{emulator.base_url}/v1/models/black-forest-labs/flux-pro/predictions", json=redux(), headers=AUTH
    ) as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_insufficient_credit_is_402(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(credits=0.007)
    await create(http, emulator, redux(num_outputs=2))  # 0.006
    async with http.post(f"{emulator.base_url}{REDUX_PATH}", json=redux(), headers=AUTH) as response:
        assert response.status == 402
        assert (await response.json())["detail"] == NO_CREDIT
    assert emulator.balance == pytest.approx(0.001)


async def test_data_uri_outputs(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(output_mode="data")
    created = await create(http, emulator, redux(output_format="png", num_outputs=2), headers={"Prefer": "wait"})
    assert len(created["output"]) == 2
    for uri in created["output"]:
        assert uri.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2])))
        assert (image.size, image.format) == ((512, 512), "PNG")
    _, body = await get(http, created["urls"]["get"])
    assert body["output"] == created["output"]
