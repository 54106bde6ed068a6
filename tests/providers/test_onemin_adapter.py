"""The 1min.ai adapter against the 1min.ai emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.images import check_output, normalize_input
from bot.core.requests import GenerationSpec, ImagineOptions, ModelId, VaryOptions
from bot.providers.base import ProviderResult, ProviderState
from bot.providers.onemin import RESULT_CACHE_SIZE, OneMinProvider, retry_after_seconds
from emulators.common import NSFW_ERROR, EmulatorConfig
from emulators.onemin import OneMinEmulator
from tests.conftest import make_png

FAST = EmulatorConfig(latency_median=0.1, latency_sigma=0.0, queue_seconds=0.0)
INPUT = normalize_input(make_png(300, 200)).data


@pytest.fixture
async def emulator() -> AsyncIterator[OneMinEmulator]:
    async with OneMinEmulator(FAST) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def provider(
    session: aiohttp.ClientSession, emulator: OneMinEmulator, *, key: str = "1min_test", timeout: float = 5.0
) -> OneMinProvider:
    return OneMinProvider(
        session, api_key=key, base_url=emulator.base_url, timeout=timeout, asset_base_url=emulator.asset_base_url
    )


def vary_spec(**options: object) -> GenerationSpec:
    return VaryOptions.parse(**options).resolve((300, 200))


def imagine_spec(**options: object) -> GenerationSpec:
    return ImagineOptions.parse(prompt="a fox in snow", **options).resolve()


async def finished(adapter: OneMinProvider, spec: GenerationSpec, image: bytes | None = INPUT) -> ProviderResult:
    submission = await adapter.submit(spec, image)
    assert submission.result is not None
    return submission.result


def test_public_surface() -> None:
    assert OneMinProvider.name == "onemin"
    assert OneMinProvider.models == frozenset({ModelId.REDUX_SCHNELL, ModelId.REDUX_DEV, ModelId.SCHNELL})
    assert OneMinProvider.can_cancel is False


async def test_redux_submit_returns_the_finished_images(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    spec = vary_spec(count=2, aspect_ratio="16:9", megapixels="0.25", output_format="png", seed=11)
    submission = await adapter.submit(spec, INPUT)
    assert submission.result is not None and len(submission.result.images) == 2
    for data in submission.result.images:
        image = check_output(data, expected_size=(672, 384), expected_format="png", quality=80)
        assert (image.width, image.height, image.format) == (672, 384, "png")
        assert image.data == data  # already right: not re-encoded
    assert submission.result.inference_seconds is not None and submission.result.inference_seconds >= 0.1

    record = emulator.records[submission.job_id]  # the job id is the aiRecord uuid
    sent = record.prompt_object
    asset_path = next(iter(emulator.assets))
    assert sent["imageUrl"] == asset_path and not asset_path.startswith(("/", "http"))
    assert (sent["format"], sent["aspect_ratio"], sent["num_outputs"], sent["seed"]) == ("png", "16:9", 2, 11)
    assert "output_format" not in sent
    # One upload, one blocking call, then the relative result paths fetched from the asset host.
    routes = [(r.route, r.method) for r in emulator.requests]
    assert routes == [("asset", "POST"), ("features", "POST"), ("file", "GET"), ("file", "GET")]
    file_paths = sorted(r.path for r in emulator.requests if r.route == "file")
    assert file_paths == sorted(f"{emulator.asset_prefix}/{path}" for path in record.paths)


async def test_status_and_result_come_from_memory(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    spec = vary_spec(megapixels="0.25")
    submission = await adapter.submit(spec, INPUT)
    status = await adapter.status(submission.job_id)
    assert status.state is ProviderState.SUCCEEDED
    assert status.inference_seconds == submission.result.inference_seconds  # type: ignore[union-attr]
    assert await adapter.result(submission.job_id, spec) is submission.result
    calls = len(emulator.requests)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status("unknown-id")
    with pytest.raises(ProviderJobExpiredError):
        await adapter.result("unknown-id", spec)
    assert len(emulator.requests) == calls  # nothing to ask: 1min.ai has no lookup
    await adapter.cancel(submission.job_id)  # a no-op
    assert len(emulator.requests) == calls


async def test_memory_is_bounded(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    first = await adapter.submit(imagine_spec(megapixels="0.25"), None)
    for index in range(RESULT_CACHE_SIZE):
        adapter._remember(f"filler-{index}", ProviderResult(images=[]))
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status(first.job_id)


async def test_redux_dev_sends_guidance(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = vary_spec(model="dev", steps=28, guidance=4.5, megapixels="0.25", output_format="jpg")
    result = await finished(provider(session, emulator), spec)
    image = check_output(result.images[0], expected_size=spec.size, expected_format="jpg", quality=80)
    assert (image.width, image.height) == spec.size
    record = next(iter(emulator.records.values()))
    assert record.model == "black-forest-labs/flux-redux-dev"
    assert (record.prompt_object["guidance"], record.prompt_object["num_inference_steps"]) == (4.5, 28)


@pytest.mark.parametrize(
    ("aspect", "sent_ratio", "size"),
    [("3:2", "3:2", (608, 416)), ("21:9", "custom", (768, 320)), ("3:4", "custom", (448, 576))],
)
async def test_schnell_sizes(session, emulator, aspect: str, sent_ratio: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    spec = imagine_spec(aspect_ratio=aspect, megapixels="0.25", output_format="webp", count=2)
    result = await finished(provider(session, emulator), spec, None)
    assert len(result.images) == 2
    for data in result.images:
        image = check_output(data, expected_size=size, expected_format="webp", quality=80)
        assert (image.width, image.height, image.format) == (*size, "webp")
    sent = next(iter(emulator.records.values())).prompt_object
    assert sent["aspect_ratio"] == sent_ratio and sent["prompt"] == "a fox in snow"
    if sent_ratio == "custom":
        assert (sent["width"], sent["height"]) == size
    assert emulator.counts["asset"] == 0  # text-to-image uploads nothing


async def test_temporary_url_is_the_fallback(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    asset_path = next(iter(emulator.assets))
    body = {
        "aiRecord": {"uuid": "rec-1", "status": "SUCCESS", "temporaryUrl": f"{emulator.asset_base_url}/{asset_path}"}
    }
    emulator.fail_next(200, route="features", body=body)
    submission = await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    assert submission.job_id == "rec-1"
    assert submission.result is not None and len(submission.result.images) == 1


async def test_result_object_at_the_top_level_or_as_a_string(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    asset_path = next(iter(emulator.assets))
    emulator.fail_next(200, route="features", body={"resultObject": "/" + asset_path})
    submission = await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    assert submission.job_id.startswith("onemin-")
    assert submission.result is not None and len(submission.result.images) == 1
    emulator.fail_next(200, route="features", body={"aiRecord": {"uuid": "x"}})
    with pytest.raises(ProviderPermanentError, match="no result paths"):
        await adapter.submit(vary_spec(), INPUT)


async def test_model_failure_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(error="boom")
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError, match="boom") as caught:
        await adapter.submit(vary_spec(), INPUT)
    assert caught.value.status == 500


async def test_every_output_dropped_is_blocked(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=False, dropped={0})
    with pytest.raises(ProviderBlockedError, match="NSFW"):
        await provider(session, emulator).submit(vary_spec(), INPUT)


async def test_failed_record_in_a_200(session) -> None:  # type: ignore[no-untyped-def]
    async with OneMinEmulator(FAST, failed_as_record=True) as emulator:
        adapter = provider(session, emulator)
        emulator.next_outcome(error="boom")
        with pytest.raises(ProviderPermanentError, match="boom") as caught:
            await adapter.submit(vary_spec(), INPUT)
        assert not isinstance(caught.value, ProviderBlockedError)
        emulator.next_outcome(error=NSFW_ERROR)
        with pytest.raises(ProviderBlockedError):
            await adapter.submit(vary_spec(), INPUT)


async def test_some_outputs_dropped_gives_fewer_images(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=False, dropped={0, 2})
    result = await finished(provider(session, emulator), vary_spec(count=3, megapixels="0.25"))
    assert len(result.images) == 1


async def test_429_carries_retry_after_and_then_succeeds(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(429, route="features", headers={"Retry-After": "9"})
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    assert caught.value.rate_limited and caught.value.retry_after == 9
    assert len((await finished(adapter, vary_spec(megapixels="0.25"))).images) == 1


async def test_rpm_budget_429_is_rate_limited(session) -> None:  # type: ignore[no-untyped-def]
    async with OneMinEmulator(EmulatorConfig(latency_median=0.05, latency_sigma=0, queue_seconds=0, rpm=3)) as emulator:
        adapter = provider(session, emulator)
        await adapter.submit(vary_spec(megapixels="0.25"), INPUT)  # asset + features
        with pytest.raises(ProviderTransientError) as caught:
            await adapter.submit(vary_spec(megapixels="0.25"), INPUT)  # asset, then features is refused
        assert caught.value.rate_limited and caught.value.retry_after is not None
        assert 50 <= caught.value.retry_after <= 60
        assert emulator.count_429 == 1


@pytest.mark.parametrize(("route", "status"), [("asset", 502), ("features", 504), ("file", 503)])
async def test_5xx_then_success(session, emulator, route: str, status: int) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(status, route=route)
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    assert caught.value.status == status and not caught.value.rate_limited
    assert len((await finished(adapter, vary_spec(megapixels="0.25"))).images) == 1


async def test_timeout_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.delay_next(1.0, route="features")
    adapter = provider(session, emulator, timeout=0.3)
    with pytest.raises(ProviderTransientError, match="did not answer"):
        await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    assert len((await finished(adapter, vary_spec(megapixels="0.25"))).images) == 1


@pytest.mark.parametrize("route", ["asset", "features"])
async def test_malformed_json_is_transient(session, emulator, route: str) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(200, route=route, raw='{"aiRecord": {"uu')
    with pytest.raises(ProviderTransientError, match="malformed JSON"):
        await provider(session, emulator).submit(vary_spec(), INPUT)


async def test_refusals_are_permanent(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys=frozenset({"good"}), credits=150, latency_median=0.05, queue_seconds=0)
    async with OneMinEmulator(config) as emulator:
        with pytest.raises(ProviderPermanentError) as bad_key:
            await provider(session, emulator, key="bad").submit(vary_spec(), INPUT)
        assert bad_key.value.operator and bad_key.value.status == 401
        good = provider(session, emulator, key="good")
        with pytest.raises(ProviderPermanentError) as bad_input:
            await good.submit(vary_spec(), b"not an image")
        assert not bad_input.value.operator and bad_input.value.status == 400
        await good.submit(vary_spec(megapixels="0.25"), INPUT)  # 100 of 150 credits
        with pytest.raises(ProviderPermanentError) as broke:
            await good.submit(vary_spec(), INPUT)
        assert broke.value.operator and "Insufficient credits" in broke.value.message
        emulator.fail_next(422, route="features", body={"error": {"message": "Invalid", "details": ["seed bad"]}})
        with pytest.raises(ProviderPermanentError, match="Invalid: seed bad") as invalid:
            await good.submit(vary_spec(), INPUT)
        assert not invalid.value.operator


async def test_connection_refused_is_transient(session) -> None:  # type: ignore[no-untyped-def]
    server = OneMinEmulator(FAST)
    await server.start()
    base = server.base_url
    await server.stop()
    adapter = OneMinProvider(session, api_key="k", base_url=base, timeout=2)
    with pytest.raises(ProviderTransientError, match="could not reach"):
        await adapter.submit(imagine_spec(), None)


def test_relative_paths_resolve_against_the_asset_host(session) -> None:  # type: ignore[no-untyped-def]
    adapter = OneMinProvider(session, api_key="k")
    assert adapter._url("images/a.png") == "https://asset.1min.ai/images/a.png"
    assert adapter._url("/images/a.png") == "https://asset.1min.ai/images/a.png"
    assert adapter._url("https://cdn.example/x.png") == "https://cdn.example/x.png"


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("4", now) == 4
    assert retry_after_seconds("Sat, 21 Nov 2026 10:00:30 GMT", now) == 30
    assert retry_after_seconds("later", now) is None
    assert retry_after_seconds(None, now) is None
