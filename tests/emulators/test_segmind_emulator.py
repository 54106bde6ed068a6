"""The Segmind emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from PIL import Image

from emulators.common import NSFW_ERROR, EmulatorConfig, safety_dropped
from emulators.segmind import SegmindEmulator

KEY = {"x-api-key": "SG_0123456789abcdef"}
# Fast but ordered: queued for 50 ms, then 150 ms of processing, no jitter.
FAST: dict[str, Any] = {"latency_median": 0.15, "latency_sigma": 0.0, "queue_seconds": 0.05}

MakeEmulator = Callable[..., Awaitable[SegmindEmulator]]


def data_uri(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (200, 60, 30)) -> str:
    image = Image.new("RGB", size, colour)
    image.paste((20, 120, 220), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


SOURCE = data_uri()


def redux(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "redux_image": SOURCE,
        "aspect_ratio": "1:1",
        "megapixels": "0.25",
        "num_outputs": 1,
        "num_inference_steps": 4,
        "output_format": "jpg",
        "output_quality": 80,
        "seed": 1234,
    }
    body.update(overrides)
    return body


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    started: list[SegmindEmulator] = []

    async def make(**overrides: Any) -> SegmindEmulator:
        emulator = SegmindEmulator(EmulatorConfig(**{**FAST, **overrides}))
        await emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        await emulator.stop()


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> SegmindEmulator:
    return await make_emulator()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def submit(
    http: aiohttp.ClientSession,
    emulator: SegmindEmulator,
    body: dict[str, Any],
    slug: str = "flux-redux-schnell",
) -> dict[str, Any]:
    async with http.post(f"{emulator.base_url}/v2/{slug}", json=body, headers=KEY) as response:
        assert response.status == 200, await response.text()
        submitted: dict[str, Any] = await response.json()
        return submitted


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url, headers=KEY) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def wait_done(http: aiohttp.ClientSession, emulator: SegmindEmulator, request_id: str) -> None:
    job = emulator.jobs[request_id]
    await asyncio.sleep(max(0.0, job.completes_at - emulator.now()) + 0.01)


async def outputs(http: aiohttp.ClientSession, emulator: SegmindEmulator, body: dict[str, Any]) -> list[bytes]:
    """Submit, wait, and download every output."""
    submitted = await submit(http, emulator, body, body.pop("_slug", "flux-redux-schnell"))
    await wait_done(http, emulator, submitted["request_id"])
    status, result = await get(http, submitted["response_url"])
    assert status == 200, result
    urls = result["output"] if isinstance(result["output"], list) else [result["output"]]
    images = []
    for url in urls:
        async with http.get(url) as response:
            assert response.status == 200
            images.append(await response.read())
    return images


async def test_lifecycle_queued_processing_completed(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(queue_seconds=0.2, latency_median=0.2)
    submitted = await submit(http, emulator, redux())
    request_id = submitted["request_id"]
    base = emulator.base_url
    assert submitted == {
        "request_id": request_id,
        "status": "QUEUED",
        "poll_url": f"{base}/v1/requests/{request_id}",
        "status_url": f"{base}/v2/requests/{request_id}/status",
        "response_url": f"{base}/v2/requests/{request_id}",
    }

    status, body = await get(http, submitted["status_url"])
    assert (status, body["status"], body["metrics"]) == (200, "QUEUED", {})
    assert body["response_url"] == submitted["response_url"]
    status, body = await get(http, submitted["response_url"])
    assert (status, body["status"], body["output"]) == (200, "QUEUED", None)

    job = emulator.jobs[request_id]
    await asyncio.sleep(job.started_at - emulator.now() + 0.02)
    status, body = await get(http, submitted["status_url"])
    assert (status, body["status"]) == (200, "PROCESSING")
    assert job.detected_at is None

    await wait_done(http, emulator, request_id)
    status, body = await get(http, submitted["status_url"])
    assert (status, body["status"]) == (200, "COMPLETED")
    assert body["metrics"]["inference_time"] == pytest.approx(0.2, abs=0.01)
    assert job.detected_at is not None
    assert job.detected_at >= job.completes_at

    status, result = await get(http, submitted["response_url"])
    assert status == 200
    assert result["output"] == f"{base}/files/{request_id}/out-0.jpg"
    assert set(result["metrics"]) >= {
        "inference_time",
        "queue_time",
        "total_time",
        "cost",
        "remaining_credits",
    }
    assert result["metrics"]["cost"] == 0.004
    status, legacy = await get(http, submitted["poll_url"])
    assert (status, legacy["output"]) == (200, result["output"])
    assert emulator.counts["submit"] == 1
    assert emulator.counts["status"] == 3


@pytest.mark.parametrize(
    ("aspect", "megapixels", "fmt", "size", "pil_format", "content_type"),
    [
        ("16:9", "1", "webp", (1344, 768), "WEBP", "image/webp"),
        ("16:9", "0.25", "webp", (672, 384), "WEBP", "image/webp"),
        ("9:21", 0.25, "png", (320, 768), "PNG", "image/png"),
        ("4:5", 1, "jpg", (896, 1088), "JPEG", "image/jpeg"),
    ],
)
async def test_output_size_and_format(
    http: aiohttp.ClientSession,
    emulator: SegmindEmulator,
    aspect: str,
    megapixels: str | float,
    fmt: str,
    size: tuple[int, int],
    pil_format: str,
    content_type: str,
) -> None:
    submitted = await submit(http, emulator, redux(aspect_ratio=aspect, megapixels=megapixels, output_format=fmt))
    await wait_done(http, emulator, submitted["request_id"])
    _, result = await get(http, submitted["response_url"])
    async with http.get(result["output"]) as response:
        assert response.content_type == content_type
        image = Image.open(io.BytesIO(await response.read()))
    assert (image.size, image.format) == (size, pil_format)


async def test_seed_determinism(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    first = await outputs(http, emulator, redux(num_outputs=2))
    again = await outputs(http, emulator, redux(num_outputs=2))
    other = await outputs(http, emulator, redux(num_outputs=2, seed=99))
    assert first == again
    assert first[0] != first[1]
    assert other[0] not in first


async def test_missing_seed_is_drawn_and_recorded(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    submitted = await submit(http, emulator, redux(seed=0))
    seed = emulator.jobs[submitted["request_id"]].seed
    assert seed is not None
    assert 0 <= seed < 65536


async def test_failed_is_422_on_status_and_result(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    emulator.next_outcome(error="boom")
    submitted = await submit(http, emulator, redux())
    await wait_done(http, emulator, submitted["request_id"])
    for url in (submitted["status_url"], submitted["response_url"], submitted["poll_url"]):
        status, body = await get(http, url)
        assert status == 422
        assert body["status"] == "FAILED"
        assert body["error"] == "boom"
        assert set(body["metrics"]) == {"inference_time", "queue_time", "total_time"}


@pytest.mark.parametrize(
    ("slug", "body", "message"),
    [
        ("flux-redux-schnell", redux(aspect_ratio="custom"), "aspect_ratio"),
        ("flux-redux-schnell", redux(num_inference_steps=5), "num_inference_steps"),
        ("flux-redux-dev", redux(num_inference_steps=50, guidance=11), "guidance"),
        ("flux-redux-schnell", redux(megapixels="match_input"), "megapixels"),
        ("flux-redux-schnell", redux(redux_image="data:image/png;base64,aGVsbG8="), "redux_image"),
        ("flux-redux-schnell", {"aspect_ratio": "1:1"}, "redux_image"),
        ("flux-schnell", {"prompt": "a fox", "width": 384, "height": 512}, "width"),
        ("flux-schnell", {"width": 512, "height": 512}, "Prompt"),
    ],
)
async def test_validation_fails_the_job(
    http: aiohttp.ClientSession, emulator: SegmindEmulator, slug: str, body: dict[str, Any], message: str
) -> None:
    submitted = await submit(http, emulator, body, slug)
    await wait_done(http, emulator, submitted["request_id"])
    status, result = await get(http, submitted["status_url"])
    assert (status, result["status"]) == (422, "FAILED")
    assert message in result["error"]
    assert emulator.jobs[submitted["request_id"]].cost == 0


async def test_flux_schnell_is_exact_width_height(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    body = {
        "prompt": "a fox in snow",
        "width": 768,
        "height": 512,
        "samples": 2,
        "seed": 5,
        "_slug": "flux-schnell",
    }
    images = await outputs(http, emulator, body)
    assert len(images) == 2
    for data in images:
        image = Image.open(io.BytesIO(data))
        assert (image.size, image.format) == ((768, 512), "JPEG")


async def test_unknown_and_expired_ids_are_404(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(time_scale=0.01, latency_median=5.0, queue_seconds=0.0, ttl_seconds=30.0)
    base = emulator.base_url
    status, body = await get(http, f"{base}/v2/requests/nope/status")
    assert (status, body) == (404, {"error": "Request nope not found"})

    kept = await submit(http, emulator, redux())
    expired = await submit(http, emulator, redux())
    emulator.expire(expired["request_id"])
    for url in (expired["status_url"], expired["response_url"], expired["poll_url"]):
        status, body = await get(http, url)
        assert (status, body) == (404, {"error": f"Request {expired['request_id']} not found"})
    status, _ = await get(http, kept["status_url"])
    assert status == 200

    await asyncio.sleep(0.32)  # the 30 s TTL at 1/100 scale
    status, _ = await get(http, kept["status_url"])
    assert status == 404


async def test_auth(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(api_keys=frozenset({"SG_good"}))
    url = f"{emulator.base_url}/v2/flux-redux-schnell"
    async with http.post(url, json=redux()) as response:
        assert response.status == 401
        assert await response.json() == {"error": "Missing Authorization or x-api-key in header"}
    async with http.post(url, json=redux(), headers={"Authorization": "Bearer SG_good"}) as response:
        assert response.status == 401
    async with http.post(url, json=redux(), headers={"x-api-key": "SG_bad"}) as response:
        assert response.status == 401
        assert "invalid" in (await response.json())["error"]
    async with http.post(url, json=redux(), headers={"x-api-key": "SG_good"}) as response:
        assert response.status == 200
    assert len(emulator.jobs) == 1


async def test_request_errors(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    base = emulator.base_url
    async with http.post(f"{base}/v2/flux-pro", json=redux(), headers=KEY) as response:
        assert response.status == 404
        assert "error" in await response.json()
    async with http.post(f"{base}/v2/flux-redux-schnell", data="seed=1", headers=KEY) as response:
        assert (response.status, await response.json()) == (406, {"error": "Invalid content type"})
    async with http.get(f"{base}/v2/flux-redux-schnell", headers=KEY) as response:
        assert response.status == 405
        assert response.content_type == "text/html"


async def test_insufficient_credits_is_402_on_v2(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(credits=0.01)
    first = await submit(http, emulator, redux(num_outputs=2))
    url = f"{emulator.base_url}/v2/flux-redux-schnell"
    async with http.post(url, json=redux(num_outputs=1), headers=KEY) as response:
        assert response.status == 402  # "An empty balance is 402 on /v2 and 406 on /v1"
        assert (await response.json())["error"].startswith("Insufficient credits")
    v1 = f"{emulator.base_url}/v1/flux-redux-schnell"
    async with http.post(v1, json=redux(num_outputs=1), headers=KEY) as response:
        assert response.status == 406
        assert (await response.json())["error"].startswith("Insufficient credits")
    await wait_done(http, emulator, first["request_id"])
    _, result = await get(http, first["response_url"])
    assert result["metrics"]["cost"] == 0.008
    assert result["metrics"]["remaining_credits"] == pytest.approx(0.002)


async def test_rate_limit(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(rpm=2, time_scale=0.01)  # a 0.6 s window
    url = f"{emulator.base_url}/v2/requests/nope/status"
    statuses = []
    for _ in range(3):
        async with http.get(url, headers=KEY) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert await response.json() == {"error": "Rate limit exceeded"}
                assert "Retry-After" not in response.headers
                reset = datetime.strptime(response.headers["x-rate-limit-reset-at-utc"], "%Y-%m-%dT%H:%M:%SZ")
                delta = reset.replace(tzinfo=UTC) - datetime.now(UTC)
                assert 0 < delta.total_seconds() <= 2
    assert statuses == [404, 404, 429]
    assert emulator.count_429 == 1
    # Downloads are not API calls and never count.
    async with http.get(f"{emulator.base_url}/files/nope/out-0.jpg") as response:
        assert response.status == 404
    await asyncio.sleep(0.62)
    async with http.get(url, headers=KEY) as response:
        assert response.status == 404


async def test_fail_next_and_delay_next(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    emulator.fail_next(503, times=2, route="submit")
    url = f"{emulator.base_url}/v2/flux-redux-schnell"
    for _ in range(2):
        async with http.post(url, json=redux(), headers=KEY) as response:
            assert response.status == 503
            assert "error" in await response.json()
    submitted = await submit(http, emulator, redux())

    emulator.fail_next(429, route="status")
    async with http.get(submitted["status_url"], headers=KEY) as response:
        assert response.status == 429
        assert "x-rate-limit-reset-at-utc" in response.headers

    emulator.delay_next(0.5, route="status")
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(submitted["status_url"], headers=KEY, timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    status, _ = await get(http, submitted["status_url"])
    assert status == 200
    assert [r.status for r in emulator.requests if r.route == "submit"] == [503, 503, 200]


async def test_safety_drops(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    rate = 0.5
    emulator = await make_emulator(safety_drop_rate=rate)
    some = next(s for s in range(1, 500) if 0 < sum(safety_dropped(s, i, rate) for i in range(4)) < 4)
    every = next(s for s in range(1, 500) if all(safety_dropped(s, i, rate) for i in range(4)))

    partial = await submit(http, emulator, redux(num_outputs=4, seed=some))
    dropped = await submit(http, emulator, redux(num_outputs=4, seed=every))
    unfiltered = await submit(http, emulator, redux(num_outputs=4, seed=every, disable_safety_checker=True))
    await wait_done(http, emulator, unfiltered["request_id"])

    _, result = await get(http, partial["response_url"])
    kept = [i for i in range(4) if not safety_dropped(some, i, rate)]
    output = result["output"] if isinstance(result["output"], list) else [result["output"]]
    assert [url.rsplit("/", 1)[1] for url in output] == [f"out-{i}.jpg" for i in kept]

    status, body = await get(http, dropped["status_url"])
    assert (status, body["error"]) == (422, NSFW_ERROR)
    _, result = await get(http, unfiltered["response_url"])
    assert len(result["output"]) == 4


async def test_v1_sync_image_mode(http: aiohttp.ClientSession, emulator: SegmindEmulator) -> None:
    url = f"{emulator.base_url}/v1/flux-redux-schnell"
    async with http.post(url, json=redux(output_format="png", num_outputs=2), headers=KEY) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        image = Image.open(io.BytesIO(await response.read()))
        headers = response.headers
    assert image.size == (512, 512)
    assert headers["x-seed-value"] == "1234"
    assert headers["x-cost"] == "0.008"
    assert float(headers["x-remaining-credits"]) > 0
    assert float(headers["x-generation-time"]) == pytest.approx(0.15, abs=0.01)
    assert headers["x-request-id"] in emulator.sync_jobs
    async with http.post(url, json=redux(aspect_ratio="7:3"), headers=KEY) as response:
        assert response.status == 400
        assert "aspect_ratio" in (await response.json())["error"]


async def test_v1_sync_json_mode(http: aiohttp.ClientSession, make_emulator: MakeEmulator) -> None:
    emulator = await make_emulator(v1_mode="json")
    url = f"{emulator.base_url}/v1/flux-redux-schnell"
    async with http.post(url, json=redux(aspect_ratio="3:2"), headers=KEY) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert (image.size, image.format) == ((608, 416), "JPEG")
    assert emulator.counts["v1"] == 1


@pytest.mark.parametrize(("pending", "code"), [("status", 200), ("404", 404), ("202", 202)])
async def test_what_the_response_url_answers_while_pending_is_a_switch(
    http: aiohttp.ClientSession, pending: str, code: int
) -> None:
    config = EmulatorConfig(**{**FAST, "latency_median": 0.3})
    async with SegmindEmulator(config, pending_response=pending) as emulator:  # type: ignore[arg-type]
        submitted = await submit(http, emulator, redux())
        async with http.get(submitted["response_url"], headers=KEY) as response:
            assert response.status == code
        status, body = await get(http, submitted["status_url"])
        assert status == 200 and body["status"] in ("QUEUED", "PROCESSING")  # the status URL is documented
        await wait_done(http, emulator, submitted["request_id"])
        status, body = await get(http, submitted["response_url"])
        assert status == 200 and body["status"] == "COMPLETED" and body["output"]


async def test_outputs_as_a_json_encoded_list(http: aiohttp.ClientSession) -> None:
    async with SegmindEmulator(EmulatorConfig(**FAST), output_shape="json") as emulator:
        submitted = await submit(http, emulator, redux(num_outputs=2))
        await wait_done(http, emulator, submitted["request_id"])
        _, body = await get(http, submitted["response_url"])
        assert isinstance(body["output"], str) and len(json.loads(body["output"])) == 2


async def test_segmind_storage_upload_and_inline_images_switch(http: aiohttp.ClientSession) -> None:
    async with SegmindEmulator(EmulatorConfig(**FAST), inline_images=False) as emulator:
        async with http.post(f"{emulator.base_url}/upload-asset", json={"data_urls": [SOURCE]}, headers=KEY) as r:
            assert r.status == 200
            url = (await r.json())["urls"][0]
        async with http.get(url) as r:
            assert r.status == 200 and await r.read() == base64.b64decode(SOURCE.split(",", 1)[1])
        by_url = await submit(http, emulator, redux(redux_image=url))
        inline = await submit(http, emulator, redux())
        await wait_done(http, emulator, by_url["request_id"])
        status, body = await get(http, by_url["response_url"])
        assert status == 200 and body["status"] == "COMPLETED"
        status, body = await get(http, inline["status_url"])
        assert status == 422 and body["status"] == "FAILED" and "URI" in body["error"]
        assert emulator.counts["upload"] == 1


async def test_a_fault_can_echo_the_key_and_a_reset_drops_the_connection(http: aiohttp.ClientSession) -> None:
    async with SegmindEmulator(EmulatorConfig(**FAST)) as emulator:
        emulator.fail_next(500, route="submit", body={"error": "bad key {api_key}"})
        async with http.post(f"{emulator.base_url}/v2/flux-redux-schnell", json=redux(), headers=KEY) as r:
            assert r.status == 500 and (await r.json())["error"] == f"bad key {KEY['x-api-key']}"
        emulator.reset_next(route="submit", after=True)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await submit(http, emulator, redux())
        assert len(emulator.jobs) == 1  # accepted, though its answer never arrived
