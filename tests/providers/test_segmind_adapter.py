"""The Segmind adapter against the Segmind emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.images import check_output, normalize_input
from bot.core.requests import GenerationSpec, ImagineOptions, VaryOptions
from bot.providers.base import ProviderResult, ProviderState
from bot.providers.segmind import SegmindProvider, reset_seconds
from emulators.common import NSFW_ERROR, EmulatorConfig
from emulators.segmind import SegmindEmulator
from tests.conftest import make_png

FAST = EmulatorConfig(latency_median=0.15, latency_sigma=0.0, queue_seconds=0.02)


@pytest.fixture
async def emulator() -> AsyncIterator[SegmindEmulator]:
    async with SegmindEmulator(FAST) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def provider(
    session: aiohttp.ClientSession, emulator: SegmindEmulator, *, key: str = "SG_test", timeout: float = 5.0
) -> SegmindProvider:
    return SegmindProvider(session, api_key=key, base_url=emulator.base_url, timeout=timeout)


INPUT = normalize_input(make_png(300, 200)).data


def vary_spec(**options: object) -> GenerationSpec:
    return VaryOptions.parse(**options).resolve((300, 200))  # type: ignore[arg-type]


async def run_to_result(adapter: SegmindProvider, spec: GenerationSpec, image: bytes | None) -> ProviderResult:
    submission = await adapter.submit(spec, image)
    for _ in range(200):
        status = await adapter.status(submission.job_id)
        if status.state is ProviderState.SUCCEEDED:
            return await adapter.result(submission.job_id, spec)
        assert status.state is not ProviderState.FAILED, status.error
        await asyncio.sleep(0.02)
    raise AssertionError("the job never finished")


async def test_redux_job_runs_to_images_of_the_requested_size(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = vary_spec(count=4, aspect_ratio="16:9", output_format="webp", seed=11)
    result = await run_to_result(provider(session, emulator), spec, INPUT)
    assert len(result.images) == 4
    for data in result.images:
        image = check_output(data, expected_size=(1344, 768), expected_format="webp", quality=80)
        assert (image.width, image.height, image.format) == (1344, 768, "webp")
        assert image.data == data  # already right: not re-encoded
    assert result.inference_seconds is not None
    body = emulator.jobs[next(iter(emulator.jobs))].body
    assert body["redux_image"].startswith("data:image/jpeg;base64,")
    assert body["num_outputs"] == 4 and body["aspect_ratio"] == "16:9" and body["seed"] == 11


async def test_schnell_quarter_megapixel_is_rendered_larger_and_fitted(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = ImagineOptions.parse(prompt="a fox", aspect_ratio="16:9", megapixels="0.25", output_format="png").resolve()
    result = await run_to_result(provider(session, emulator), spec, None)
    job = next(iter(emulator.jobs.values()))
    assert (job.body["width"], job.body["height"]) == (1344, 768)  # Segmind's minimum side is 512
    image = check_output(result.images[0], expected_size=(672, 384), expected_format="png", quality=80)
    assert (image.width, image.height, image.format) == (672, 384, "png")


async def test_failed_job_is_reported_as_failed(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=True, error="boom")
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    for _ in range(100):
        status = await adapter.status(submission.job_id)
        if status.state is ProviderState.FAILED:
            break
        await asyncio.sleep(0.02)
    assert status.state is ProviderState.FAILED and status.error == "boom" and not status.blocked
    with pytest.raises(ProviderPermanentError, match="boom"):
        await adapter.result(submission.job_id, vary_spec())


async def test_every_output_dropped_is_a_blocked_failure(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=True, error=NSFW_ERROR)
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    await asyncio.sleep(0.3)
    status = await adapter.status(submission.job_id)
    assert status.state is ProviderState.FAILED and status.blocked
    with pytest.raises(ProviderBlockedError):
        await adapter.result(submission.job_id, vary_spec())


async def test_unknown_and_expired_ids_raise_expired(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status("no-such-id")
    submission = await adapter.submit(vary_spec(), INPUT)
    emulator.expire(submission.job_id)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status(submission.job_id)


async def test_429_carries_the_reset_time_and_then_succeeds(session, emulator) -> None:  # type: ignore[no-untyped-def]
    reset = (datetime.now(UTC) + timedelta(seconds=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    emulator.fail_next(429, route="submit", headers={"x-rate-limit-reset-at-utc": reset})
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(), INPUT)
    assert caught.value.rate_limited and caught.value.retry_after is not None
    assert 5 <= caught.value.retry_after <= 7
    result = await run_to_result(adapter, vary_spec(), INPUT)
    assert len(result.images) == 1


async def test_rpm_budget_429_is_rate_limited(session) -> None:  # type: ignore[no-untyped-def]
    async with SegmindEmulator(EmulatorConfig(latency_median=0.1, latency_sigma=0, rpm=2)) as emulator:
        adapter = provider(session, emulator)
        await adapter.submit(vary_spec(), INPUT)
        await adapter.submit(vary_spec(), INPUT)
        with pytest.raises(ProviderTransientError) as caught:
            await adapter.submit(vary_spec(), INPUT)
        assert caught.value.rate_limited and caught.value.retry_after is not None
        assert emulator.count_429 == 1


async def test_500_then_success(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(500, route="result")
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.status(submission.job_id)
    assert caught.value.status == 500 and not caught.value.rate_limited
    assert (await adapter.status(submission.job_id)).state in set(ProviderState)


async def test_timeout_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.delay_next(1.0, route="result")
    adapter = provider(session, emulator, timeout=0.2)
    submission = await adapter.submit(vary_spec(), INPUT)
    with pytest.raises(ProviderTransientError, match="did not answer"):
        await adapter.status(submission.job_id)
    assert (await adapter.status(submission.job_id)).state in set(ProviderState)


async def test_malformed_json_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(200, route="submit", raw='{"request_id": "abc", "stat')
    with pytest.raises(ProviderTransientError, match="malformed JSON"):
        await provider(session, emulator).submit(vary_spec(), INPUT)


async def test_connection_refused_is_transient(session) -> None:  # type: ignore[no-untyped-def]
    server = SegmindEmulator(FAST)
    await server.start()
    base = server.base_url
    await server.stop()
    adapter = SegmindProvider(session, api_key="k", base_url=base, timeout=2)
    with pytest.raises(ProviderTransientError, match="could not reach"):
        await adapter.submit(vary_spec(), INPUT)


async def test_bad_key_and_no_credits_are_the_operators_problem(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys=frozenset({"SG_good"}), credits=0.005, latency_median=0.1)
    async with SegmindEmulator(config) as emulator:
        with pytest.raises(ProviderPermanentError) as bad_key:
            await provider(session, emulator, key="SG_bad").submit(vary_spec(), INPUT)
        assert bad_key.value.operator and bad_key.value.status == 401
        good = provider(session, emulator, key="SG_good")
        await good.submit(vary_spec(), INPUT)  # 0.004 of 0.005
        with pytest.raises(ProviderPermanentError) as broke:
            await good.submit(vary_spec(), INPUT)
        assert broke.value.operator and broke.value.status == 406


def test_reset_header_forms() -> None:
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert reset_seconds("2026-11-21T10:00:30Z", now) == 30
    assert reset_seconds(str(now.timestamp() + 12), now) == 12
    assert reset_seconds("2026-11-21T09:00:00Z", now) == 0
    assert reset_seconds("soon", now) is None
    assert reset_seconds(None, now) is None
