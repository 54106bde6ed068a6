"""The official replicate client against the emulator: if the client is happy, the emulator speaks Replicate."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput

from emulators.common import NSFW_ERROR, EmulatorConfig
from emulators.replicate import VERSIONS, ReplicateEmulator

MODEL = "black-forest-labs/flux-redux-schnell"
# At a tenth of full scale: 0.05 s starting, 0.15 s processing, and `wait=1` holds a create for 0.1 s.
FAST: dict[str, Any] = {"latency_median": 1.5, "latency_sigma": 0.0, "queue_seconds": 0.5, "time_scale": 0.1}


def data_uri() -> str:
    image = Image.new("RGB", (256, 192), (90, 160, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


REDUX: dict[str, Any] = {
    "redux_image": data_uri(),
    "aspect_ratio": "16:9",
    "megapixels": "0.25",
    "num_outputs": 2,
    "num_inference_steps": 4,
    "output_format": "png",
    "output_quality": 80,
    "seed": 98566,
}


@pytest.fixture
async def emulator() -> AsyncIterator[ReplicateEmulator]:
    async with ReplicateEmulator(EmulatorConfig(**FAST)) as running:
        yield running


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Client]]:
    # An empty token would fall back to the environment, which must not leak a real token into the test.
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    made: list[Client] = []

    def make(emulator: ReplicateEmulator, token: str = "r8_test") -> Client:
        client = Client(api_token=token, base_url=emulator.base_url)
        client.poll_interval = 0.05
        made.append(client)
        return client

    yield make
    # The client never closes the httpx client it builds lazily.
    for client in made:
        client._client.close()


@pytest.fixture
def client(emulator: ReplicateEmulator, make_client: Callable[..., Client]) -> Client:
    return make_client(emulator)


def png_size(data: bytes) -> tuple[tuple[int, int], str | None]:
    image = Image.open(io.BytesIO(data))
    return image.size, image.format


async def test_create_wait_and_download(emulator: ReplicateEmulator, client: Client) -> None:
    prediction = await asyncio.to_thread(client.models.predictions.create, model=MODEL, input=REDUX)
    assert (prediction.status, prediction.model, prediction.version) == ("starting", MODEL, "hidden")
    assert prediction.urls is not None and prediction.urls["get"].startswith(emulator.base_url)
    await asyncio.to_thread(prediction.wait)
    assert prediction.status == "succeeded"
    assert prediction.metrics is not None and prediction.metrics["predict_time"] == pytest.approx(0.15, abs=0.01)
    assert prediction.logs == "Using seed: 98566\nGenerated 2 image(s)\n"
    await asyncio.to_thread(prediction.reload)
    assert isinstance(prediction.output, list) and len(prediction.output) == 2
    for url in prediction.output:
        # The client's own httpx client carries the token, as Replicate's delivery URLs require.
        response = await asyncio.to_thread(client._client.get, url)
        assert response.status_code == 200
        assert png_size(response.content) == ((672, 384), "PNG")
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(url)).status_code == 401


async def test_waited_create_is_terminal_or_starting(emulator: ReplicateEmulator, client: Client) -> None:
    done = await asyncio.to_thread(client.models.predictions.create, model=MODEL, input=REDUX, wait=5)
    assert done.status == "succeeded" and done.output is not None and len(done.output) == 2

    emulator.next_outcome(failed=False, latency=4.0)
    held = await asyncio.to_thread(client.models.predictions.create, model=MODEL, input=REDUX, wait=1)
    returned: str = held.status
    assert returned == "starting"  # never `processing`, which client.run would take as final
    await asyncio.to_thread(held.wait)
    assert held.status == "succeeded"


async def test_run_returns_file_outputs(make_client: Callable[..., Client]) -> None:
    async with ReplicateEmulator(EmulatorConfig(**FAST), output_mode="data") as emulator:
        client = make_client(emulator)
        outputs = await asyncio.to_thread(client.run, MODEL, input=REDUX)
        assert isinstance(outputs, list) and len(outputs) == 2
        for output in outputs:
            assert isinstance(output, FileOutput)
            assert png_size(await asyncio.to_thread(output.read)) == ((672, 384), "PNG")
        raw = await asyncio.to_thread(client.run, MODEL, input=REDUX, use_file_output=False)
        assert all(isinstance(item, str) and item.startswith("data:image/png;base64,") for item in raw)


async def test_run_with_url_outputs(client: Client) -> None:
    outputs = await asyncio.to_thread(client.run, MODEL, input={**REDUX, "output_format": "webp"})
    # Only https: and data: strings are wrapped; loopback http URLs come back as plain strings.
    assert isinstance(outputs, list) and all(isinstance(item, str) for item in outputs)
    data = await asyncio.to_thread(FileOutput(outputs[0], client).read)
    assert png_size(data) == ((672, 384), "WEBP")


async def test_run_slower_than_the_wait_polls_to_the_end(emulator: ReplicateEmulator, client: Client) -> None:
    emulator.next_outcome(failed=False, latency=4.0)
    outputs = await asyncio.to_thread(client.run, MODEL, input=REDUX, wait=1)
    assert isinstance(outputs, list) and len(outputs) == 2
    assert emulator.counts["get"] >= 1


async def test_failures_raise_model_error(emulator: ReplicateEmulator, client: Client) -> None:
    emulator.next_outcome(error="boom")
    with pytest.raises(ModelError) as caught:
        await asyncio.to_thread(client.run, MODEL, input=REDUX)
    assert str(caught.value) == "boom"
    assert caught.value.prediction.status == "failed"

    emulator.next_outcome(failed=False, dropped={0, 1}, latency=4.0)
    with pytest.raises(ModelError, match="NSFW") as caught:
        await asyncio.to_thread(client.run, MODEL, input=REDUX, wait=1)
    assert caught.value.prediction.error == NSFW_ERROR


async def test_cancel(emulator: ReplicateEmulator, client: Client) -> None:
    emulator.next_outcome(failed=False, latency=50.0)
    prediction = await asyncio.to_thread(client.models.predictions.create, model=MODEL, input=REDUX)
    await asyncio.to_thread(prediction.cancel)
    assert prediction.status == "canceled" and prediction.output is None
    await asyncio.to_thread(prediction.reload)
    assert prediction.status == "canceled"
    assert emulator.counts["cancel"] == 1


async def test_create_by_version(client: Client) -> None:
    version = VERSIONS["black-forest-labs/flux-redux-dev"]
    prediction = await asyncio.to_thread(
        client.predictions.create, version=version, input={**REDUX, "num_inference_steps": 28, "guidance": 2.5}
    )
    assert (prediction.model, prediction.version) == ("black-forest-labs/flux-redux-dev", version)
    await asyncio.to_thread(prediction.wait)
    assert prediction.status == "succeeded"


async def test_api_errors_reach_the_client(
    emulator: ReplicateEmulator, client: Client, make_client: Callable[..., Client]
) -> None:
    with pytest.raises(ReplicateError) as caught:
        await asyncio.to_thread(client.models.predictions.create, model=MODEL, input={**REDUX, "num_outputs": 9})
    assert (caught.value.status, caught.value.title) == (422, "Input validation failed")
    assert caught.value.detail == "- input.num_outputs: Must be less than or equal to 4\n"

    with pytest.raises(ReplicateError) as caught:
        await asyncio.to_thread(client.predictions.get, "nosuchprediction")
    assert caught.value.status == 404

    # The client retries a throttled GET itself, honouring Retry-After.
    prediction = await asyncio.to_thread(client.models.predictions.create, model=MODEL, input=REDUX)
    emulator.fail_next(429, route="get", headers={"Retry-After": "0"})
    fetched = await asyncio.to_thread(client.predictions.get, prediction.id)
    assert fetched.id == prediction.id and emulator.count_429 == 1

    async with ReplicateEmulator(EmulatorConfig(**FAST, api_keys=frozenset({"r8_good"}))) as guarded:
        with pytest.raises(ReplicateError) as caught:
            await asyncio.to_thread(make_client(guarded, "r8_bad").run, MODEL, input=REDUX)
        assert caught.value.status == 401
        assert caught.value.detail == "You did not pass a valid authentication token"
