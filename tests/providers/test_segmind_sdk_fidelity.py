"""The official segmind SDK against the emulator: if the SDK is happy, the emulator speaks Segmind."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from PIL import Image
from segmind import AsyncJob, InferenceFailed, SegmindClient, SegmindError

from emulators.common import EmulatorConfig
from emulators.segmind import SegmindEmulator


def data_uri() -> str:
    image = Image.new("RGB", (256, 192), (90, 160, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


REDUX: dict[str, Any] = {
    "redux_image": data_uri(),
    "aspect_ratio": "16:9",
    "megapixels": "0.25",
    "num_outputs": 1,
    "num_inference_steps": 4,
    "output_format": "png",
    "output_quality": 80,
    "seed": 98566,
    "disable_safety_checker": False,
}


@pytest.fixture
async def emulator() -> AsyncIterator[SegmindEmulator]:
    config = EmulatorConfig(latency_median=0.15, latency_sigma=0.0, queue_seconds=0.05)
    async with SegmindEmulator(config) as running:
        yield running


@pytest.fixture
def client(emulator: SegmindEmulator) -> Iterator[SegmindClient]:
    sdk = SegmindClient(api_key="SG_test", base_url=f"{emulator.base_url}/v1", timeout=10)
    yield sdk
    # The SDK never closes its httpx client itself.
    sdk._client.close()


def download(client: SegmindClient, url: str) -> bytes:
    response = client._client.get(url)
    response.raise_for_status()
    data: bytes = response.content
    return data


async def test_submit_and_wait_returns_downloadable_output(emulator: SegmindEmulator, client: SegmindClient) -> None:
    job = await asyncio.to_thread(client.submit_async, "flux-redux-schnell", **REDUX)
    assert job.status_url.startswith(emulator.base_url)
    result = await asyncio.to_thread(job.wait, interval=0.05)
    assert result["status"] == "COMPLETED"
    assert result["request_id"] == job.request_id
    assert isinstance(result["output"], str)
    image = Image.open(io.BytesIO(await asyncio.to_thread(download, client, result["output"])))
    assert (image.size, image.format) == ((672, 384), "PNG")
    assert emulator.jobs[job.request_id].detected_at is not None


async def test_failed_job_raises_inference_failed(emulator: SegmindEmulator, client: SegmindClient) -> None:
    emulator.next_outcome(error="boom")
    job = await asyncio.to_thread(client.submit_async, "flux-redux-schnell", **REDUX)
    with pytest.raises(InferenceFailed) as caught:
        await asyncio.to_thread(job.wait, interval=0.05)
    assert caught.value.detail == "boom"
    assert caught.value.status_body["status"] == "FAILED"


async def test_validation_failure_reaches_the_sdk(client: SegmindClient) -> None:
    job = await asyncio.to_thread(client.submit_async, "flux-schnell", prompt="a fox", width=384, height=512)
    with pytest.raises(InferenceFailed) as caught:
        await asyncio.to_thread(job.wait, interval=0.05)
    assert caught.value.detail is not None
    assert "width" in caught.value.detail


async def test_unknown_id_raises_404(emulator: SegmindEmulator, client: SegmindClient) -> None:
    base = emulator.base_url
    job = AsyncJob(
        request_id="bogus",
        status_url=f"{base}/v2/requests/bogus/status",
        response_url=f"{base}/v2/requests/bogus",
        submit_response={},
        _client=client,
    )
    for call in (job.status, job.result):
        with pytest.raises(SegmindError) as caught:
            await asyncio.to_thread(call)
        assert caught.value.status == 404
        assert caught.value.detail == "Request bogus not found"


async def test_run_sync_returns_image_bytes(client: SegmindClient) -> None:
    response = await asyncio.to_thread(client.run_sync, "flux-redux-schnell", **{**REDUX, "output_format": "jpg"})
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-seed-value"] == "98566"
    assert "x-remaining-credits" in response.headers
    image = Image.open(io.BytesIO(response.content))
    assert (image.size, image.format) == ((672, 384), "JPEG")


async def test_sdk_errors_carry_status(emulator: SegmindEmulator, client: SegmindClient) -> None:
    emulator.fail_next(500, route="submit", body={"error": "Internal Server Error"})
    with pytest.raises(SegmindError) as caught:
        await asyncio.to_thread(client.submit_async, "flux-redux-schnell", **REDUX)
    assert (caught.value.status, caught.value.detail) == (500, "Internal Server Error")

    anonymous = SegmindClient(api_key="", base_url=f"{emulator.base_url}/v1", timeout=10)
    # An empty key falls back to the environment, which must not leak a real key into the test.
    anonymous.api_key = None
    anonymous._client.headers.pop("x-api-key", None)
    try:
        with pytest.raises(SegmindError) as caught:
            await asyncio.to_thread(anonymous.submit_async, "flux-redux-schnell", **REDUX)
        assert caught.value.status == 401
    finally:
        anonymous._client.close()
