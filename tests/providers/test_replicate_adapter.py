"""The Replicate adapter against the Replicate emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from bot.core.errors import (
    ProviderBlockedError,
    ProviderJobExpiredError,
    ProviderOutcomeUnknownError,
    ProviderPermanentError,
    ProviderTransientError,
)
from bot.core.images import check_output, normalize_input
from bot.core.requests import GenerationSpec, ImagineOptions, VaryOptions
from bot.providers.base import ProviderResult, ProviderState
from bot.providers.replicate import ReplicateProvider, retry_after_seconds
from emulators.common import NSFW_ERROR, EmulatorConfig
from emulators.replicate import ReplicateEmulator
from tests.conftest import make_png

FAST = EmulatorConfig(latency_median=0.15, latency_sigma=0.0, queue_seconds=0.02)


@pytest.fixture
async def emulator() -> AsyncIterator[ReplicateEmulator]:
    async with ReplicateEmulator(FAST) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def provider(
    session: aiohttp.ClientSession,
    emulator: ReplicateEmulator,
    *,
    key: str = "r8_test",
    timeout: float = 5.0,
    wait_seconds: int = 0,
) -> ReplicateProvider:
    return ReplicateProvider(
        session, api_key=key, base_url=emulator.base_url, timeout=timeout, wait_seconds=wait_seconds
    )


INPUT = normalize_input(make_png(300, 200)).data


def vary_spec(**options: object) -> GenerationSpec:
    return VaryOptions.parse(**options).resolve((300, 200))


async def wait_for(adapter: ReplicateProvider, job_id: str, state: ProviderState) -> None:
    for _ in range(200):
        status = await adapter.status(job_id)
        if status.state is state:
            return
        assert status.state not in (ProviderState.FAILED, ProviderState.SUCCEEDED), status
        await asyncio.sleep(0.02)
    raise AssertionError("the prediction never got there")


async def run_to_result(adapter: ReplicateProvider, spec: GenerationSpec, image: bytes | None) -> ProviderResult:
    submission = await adapter.submit(spec, image)
    assert submission.result is None
    await wait_for(adapter, submission.job_id, ProviderState.SUCCEEDED)
    return await adapter.result(submission.job_id, spec)


async def test_redux_prediction_runs_to_images_of_the_requested_size(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = vary_spec(model="dev", count=3, aspect_ratio="16:9", output_format="webp", seed=11, steps=30)
    result = await run_to_result(provider(session, emulator), spec, INPUT)
    assert len(result.images) == 3
    for data in result.images:
        image = check_output(data, expected_size=(1344, 768), expected_format="webp", quality=80)
        assert (image.width, image.height, image.data) == (1344, 768, data)
    assert result.inference_seconds == pytest.approx(0.15, abs=0.01)
    assert result.queue_seconds == pytest.approx(0.02, abs=0.01)
    prediction = next(iter(emulator.predictions.values()))
    assert prediction.model == "black-forest-labs/flux-redux-dev" and prediction.version == "hidden"
    sent = prediction.input
    # Re-encoded at 768 px (Redux sees 384×384) so the data URL stays within Replicate's 256 KB advice.
    assert sent["redux_image"].startswith("data:image/jpeg;base64,")
    assert len(base64.b64decode(sent["redux_image"].split(",", 1)[1])) <= 256 * 1024
    assert (sent["megapixels"], sent["num_outputs"], sent["seed"], sent["guidance"]) == ("1", 3, 11, 3.0)
    assert sent["num_inference_steps"] == 30 and sent["disable_safety_checker"] is False


async def test_schnell_quarter_megapixel_is_exact_and_reproducible(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = ImagineOptions.parse(prompt="a fox", aspect_ratio="21:9", megapixels="0.25", output_format="png").resolve(
        seed=5
    )
    adapter = provider(session, emulator)
    first = await run_to_result(adapter, spec, None)
    again = await run_to_result(adapter, spec, None)
    image = check_output(first.images[0], expected_size=(768, 320), expected_format="png", quality=80)
    assert (image.width, image.height) == (768, 320)
    assert first.images == again.images
    sent = next(iter(emulator.predictions.values())).input
    assert (sent["prompt"], sent["go_fast"], sent["megapixels"]) == ("a fox", False, "0.25")
    assert "redux_image" not in sent and "guidance" not in sent


async def test_lifecycle_states_map(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    assert (await adapter.status(submission.job_id)).state is ProviderState.QUEUED
    await wait_for(adapter, submission.job_id, ProviderState.RUNNING)
    with pytest.raises(ProviderTransientError, match="not ready"):
        await adapter.result(submission.job_id, vary_spec())
    await wait_for(adapter, submission.job_id, ProviderState.SUCCEEDED)
    status = await adapter.status(submission.job_id)
    assert status.inference_seconds == pytest.approx(0.15, abs=0.01) and status.error is None


async def test_failed_prediction(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=True, error="boom")
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    await asyncio.sleep(0.25)
    status = await adapter.status(submission.job_id)
    assert (status.state, status.error, status.blocked) == (ProviderState.FAILED, "boom", False)
    with pytest.raises(ProviderPermanentError, match="boom"):
        await adapter.result(submission.job_id, vary_spec())


async def test_every_output_dropped_is_blocked_and_some_dropped_is_fewer(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=False, dropped={0, 1})
    adapter = provider(session, emulator)
    result = await run_to_result(adapter, vary_spec(count=3), INPUT)
    assert len(result.images) == 1

    emulator.next_outcome(failed=False, dropped={0})
    submission = await adapter.submit(vary_spec(), INPUT)
    await asyncio.sleep(0.25)
    status = await adapter.status(submission.job_id)
    assert (status.state, status.error, status.blocked) == (ProviderState.FAILED, NSFW_ERROR, True)
    with pytest.raises(ProviderBlockedError):
        await adapter.result(submission.job_id, vary_spec())


async def test_unknown_expired_and_removed_predictions(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(latency_median=0.1, latency_sigma=0.0, queue_seconds=0.0, ttl_seconds=0.3)
    async with ReplicateEmulator(config) as emulator:
        adapter = provider(session, emulator)
        with pytest.raises(ProviderJobExpiredError):
            await adapter.status("nosuchprediction")
        gone = await adapter.submit(vary_spec(), INPUT)
        emulator.expire(gone.job_id)
        with pytest.raises(ProviderJobExpiredError):
            await adapter.status(gone.job_id)
        with pytest.raises(ProviderJobExpiredError):
            await adapter.cancel(gone.job_id)
        old = await adapter.submit(vary_spec(), INPUT)
        await asyncio.sleep(0.35)
        assert (await adapter.status(old.job_id)).state is ProviderState.SUCCEEDED
        with pytest.raises(ProviderJobExpiredError, match="removed"):
            await adapter.result(old.job_id, vary_spec())


async def test_429_then_success(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(429, route="create", headers={"Retry-After": "7"})
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(), INPUT)
    assert caught.value.rate_limited and caught.value.retry_after == 7
    # Without a Retry-After header the wait is read from the detail text.
    emulator.fail_next(429, route="get", body={"detail": "Request was throttled. Your rate limit resets in ~12s."})
    submission = await adapter.submit(vary_spec(), INPUT)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.status(submission.job_id)
    assert caught.value.rate_limited and caught.value.retry_after == 12
    await wait_for(adapter, submission.job_id, ProviderState.SUCCEEDED)
    assert len((await adapter.result(submission.job_id, vary_spec())).images) == 1


async def test_rpm_budget_429_is_rate_limited(session) -> None:  # type: ignore[no-untyped-def]
    async with ReplicateEmulator(EmulatorConfig(latency_median=0.1, latency_sigma=0, rpm=2)) as emulator:
        adapter = provider(session, emulator)
        await adapter.submit(vary_spec(), INPUT)
        await adapter.submit(vary_spec(), INPUT)
        with pytest.raises(ProviderTransientError) as caught:
            await adapter.submit(vary_spec(), INPUT)
        assert caught.value.rate_limited and caught.value.retry_after is not None
        assert 1 <= caught.value.retry_after <= 60
        assert emulator.count_429 == 1


async def test_5xx_then_success(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    await wait_for(adapter, submission.job_id, ProviderState.SUCCEEDED)
    emulator.fail_next(502, route="get")
    emulator.fail_next(503, route="file")
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.status(submission.job_id)
    assert caught.value.status == 502 and not caught.value.rate_limited
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.result(submission.job_id, vary_spec())
    assert caught.value.status == 503
    assert len((await adapter.result(submission.job_id, vary_spec())).images) == 1


async def test_a_poll_timeout_and_a_refused_connection_are_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator, timeout=0.2)
    submission = await adapter.submit(vary_spec(), INPUT)
    emulator.delay_next(1.0, route="get")
    with pytest.raises(ProviderTransientError, match="did not answer"):
        await adapter.status(submission.job_id)
    assert (await adapter.status(submission.job_id)).state in set(ProviderState)

    closed = ReplicateEmulator(FAST)
    await closed.start()
    base = closed.base_url
    await closed.stop()
    with pytest.raises(ProviderTransientError, match="could not connect"):
        await ReplicateProvider(session, api_key="k", base_url=base, timeout=2).submit(vary_spec(), INPUT)


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "reset", "malformed"])
async def test_a_create_with_an_unknown_outcome_is_never_resent(session, emulator, fault: str) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator, timeout=0.3)
    if fault in ("500", "503"):
        emulator.fail_next(int(fault), route="create")
    elif fault == "timeout":
        emulator.delay_next(1.0, route="create")
    elif fault == "reset":
        emulator.reset_next(route="create", after=True)
    else:
        emulator.fail_next(201, route="create", raw='{"id": "abc", "stat')
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)


@pytest.mark.parametrize("data_url_limit", [None, 256 * 1024])
async def test_a_large_input_goes_through_the_files_api(session, data_url_limit: int | None) -> None:  # type: ignore[no-untyped-def]
    async with ReplicateEmulator(FAST, data_url_limit=data_url_limit) as emulator:
        adapter = ReplicateProvider(
            session, api_key="r8_test", base_url=emulator.base_url, timeout=5, max_data_url_bytes=1000
        )
        result = await run_to_result(adapter, vary_spec(megapixels="0.25"), INPUT)
        assert len(result.images) == 1
        sent = next(iter(emulator.predictions.values())).input["redux_image"]
        assert sent in emulator.files and emulator.counts["upload"] == 1


async def test_the_compact_data_url_passes_a_strict_256_kb_limit(session) -> None:  # type: ignore[no-untyped-def]
    noisy = normalize_input(make_png(1024, 1024)).data
    async with ReplicateEmulator(FAST, data_url_limit=256 * 1024) as emulator:
        result = await run_to_result(provider(session, emulator), vary_spec(megapixels="0.25"), noisy)
        assert len(result.images) == 1 and emulator.counts["upload"] == 0


async def test_seed_zero_reports_the_seed_the_model_used(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = vary_spec(seed=0, megapixels="0.25")
    result = await run_to_result(provider(session, emulator), spec, INPUT)
    used = next(iter(emulator.predictions.values())).seed
    assert result.seed == used and used != 0


async def test_cancel_ends_the_prediction_as_failed(session) -> None:  # type: ignore[no-untyped-def]
    async with ReplicateEmulator(EmulatorConfig(latency_median=5.0, queue_seconds=0.0)) as emulator:
        adapter = provider(session, emulator)
        submission = await adapter.submit(vary_spec(), INPUT)
        await adapter.cancel(submission.job_id)
        assert emulator.predictions[submission.job_id].state_at(emulator.now()) == "canceled"
        status = await adapter.status(submission.job_id)
        assert status.state is ProviderState.FAILED and not status.blocked
        assert status.error is not None and "canceled" in status.error
        assert ReplicateProvider.can_cancel
        assert emulator.counts["cancel"] == 1


async def test_waited_create_returns_the_finished_result(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator, wait_seconds=10)
    spec = vary_spec(count=2, aspect_ratio="3:4", megapixels="0.25", output_format="jpg")
    submission = await adapter.submit(spec, INPUT)
    assert submission.result is not None
    assert len(submission.result.images) == 2
    for data in submission.result.images:
        image = check_output(data, expected_size=(448, 576), expected_format="jpg", quality=80)
        assert (image.width, image.height) == (448, 576)
    assert submission.result.inference_seconds == pytest.approx(0.15, abs=0.01)
    assert [r.route for r in emulator.requests] == ["create", "file", "file"]


async def test_waited_create_that_runs_long_is_polled(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(latency_median=3.0, latency_sigma=0.0, queue_seconds=0.2, time_scale=0.1)
    async with ReplicateEmulator(config) as emulator:
        adapter = provider(session, emulator, wait_seconds=1)  # 0.1 s at this scale; the job takes 0.32 s
        submission = await adapter.submit(vary_spec(), INPUT)
        assert submission.result is None
        assert emulator.predictions[submission.job_id].waited
        await wait_for(adapter, submission.job_id, ProviderState.SUCCEEDED)

        emulator.next_outcome(error="boom", latency=0.1)
        failed = await adapter.submit(vary_spec(), INPUT)
        assert failed.result is None  # a failure is reported by the next status poll
        assert (await adapter.status(failed.job_id)).error == "boom"


async def test_waited_create_whose_download_fails_is_not_created_again(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(500, route="file")
    adapter = provider(session, emulator, wait_seconds=10)
    submission = await adapter.submit(vary_spec(), INPUT)
    assert submission.result is None
    assert len((await adapter.result(submission.job_id, vary_spec())).images) == 1
    assert emulator.counts["create"] == 1


async def test_outputs_are_downloaded_with_the_token(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys=frozenset({"r8_good"}), latency_median=0.1, latency_sigma=0.0, queue_seconds=0.0)
    async with ReplicateEmulator(config) as emulator:
        adapter = provider(session, emulator, key="r8_good", wait_seconds=5)
        submission = await adapter.submit(vary_spec(), INPUT)
        assert submission.result is not None and len(submission.result.images) == 1
        url = f"{emulator.base_url}/delivery/{submission.job_id}/out-0.webp"
        async with session.get(url) as response:
            assert response.status == 401
        assert [r.status for r in emulator.requests if r.route == "file"] == [200, 401]


async def test_bad_token_no_credit_and_bad_input_are_permanent(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys=frozenset({"r8_good"}), credits=0.004, latency_median=0.1)
    async with ReplicateEmulator(config) as emulator:
        with pytest.raises(ProviderPermanentError) as bad_key:
            await provider(session, emulator, key="r8_bad").submit(vary_spec(), INPUT)
        assert bad_key.value.operator and bad_key.value.status == 401
        good = provider(session, emulator, key="r8_good")
        await good.submit(vary_spec(), INPUT)  # 0.003 of 0.004
        with pytest.raises(ProviderPermanentError) as broke:
            await good.submit(vary_spec(), INPUT)
        assert broke.value.operator and broke.value.status == 402
        emulator.fail_next(
            422, route="create", body={"title": "Input validation failed", "detail": "- input.seed: Invalid type"}
        )
        with pytest.raises(ProviderPermanentError, match=r"input\.seed") as invalid:
            await good.submit(vary_spec(), INPUT)
        assert not invalid.value.operator and not isinstance(invalid.value, ProviderBlockedError)


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30
    assert retry_after_seconds("Sat, 21 Nov 2026 10:00:45 GMT", now=now) == 45
    assert retry_after_seconds(None, "Request was throttled. Your rate limit resets in ~8s.") == 8
    assert retry_after_seconds("", "Request was throttled. Expected available in 3 seconds.") == 3
    assert retry_after_seconds("soon", "throttled") is None
