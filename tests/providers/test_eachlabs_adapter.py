"""The Eachlabs adapter against the Eachlabs emulator, over real HTTP on 127.0.0.1, under every variant of
what Eachlabs' docs leave open."""

from __future__ import annotations

import asyncio
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
from bot.core.requests import GenerationSpec, ImagineOptions, ModelId, VaryOptions
from bot.providers.base import ProviderResult, ProviderState, ProviderStatus
from bot.providers.eachlabs import EachlabsProvider, retry_after_seconds
from emulators.common import NSFW_ERROR, EmulatorConfig
from emulators.eachlabs import EachlabsEmulator
from tests.conftest import make_png

FAST = EmulatorConfig(latency_median=0.15, latency_sigma=0.0, queue_seconds=0.02)
INPUT = normalize_input(make_png(300, 200)).data


@pytest.fixture
async def emulator() -> AsyncIterator[EachlabsEmulator]:
    async with EachlabsEmulator(FAST) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def provider(
    session: aiohttp.ClientSession, emulator: EachlabsEmulator, *, key: str = "ek_test", timeout: float = 5.0
) -> EachlabsProvider:
    return EachlabsProvider(session, api_key=key, base_url=emulator.base_url, timeout=timeout)


def vary_spec(**options: object) -> GenerationSpec:
    return VaryOptions.parse(**options).resolve((300, 200))


async def wait_terminal(adapter: EachlabsProvider, job_id: str) -> ProviderStatus:
    for _ in range(200):
        status = await adapter.status(job_id)
        if status.state in (ProviderState.SUCCEEDED, ProviderState.FAILED):
            return status
        await asyncio.sleep(0.02)
    raise AssertionError("the prediction never finished")


async def run_to_result(adapter: EachlabsProvider, spec: GenerationSpec) -> ProviderResult:
    submission = await adapter.submit(spec, INPUT)
    assert submission.result is None
    status = await wait_terminal(adapter, submission.job_id)
    assert status.state is ProviderState.SUCCEEDED, status.error
    return await adapter.result(submission.job_id, spec)


def test_public_surface() -> None:
    assert EachlabsProvider.name == "eachlabs"
    # The two FLUX models with an Eachlabs model page; Redux dev has none.
    assert EachlabsProvider.models == frozenset({ModelId.REDUX_SCHNELL, ModelId.SCHNELL})
    assert EachlabsProvider.can_cancel is True


async def test_redux_job_runs_to_images_of_the_requested_size(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = vary_spec(count=3, aspect_ratio="16:9", megapixels="0.25", output_format="png", seed=11)
    result = await run_to_result(provider(session, emulator), spec)
    assert len(result.images) == 3
    for data in result.images:
        image = check_output(data, expected_size=(672, 384), expected_format="png", quality=80)
        assert (image.width, image.height, image.format) == (672, 384, "png")
        assert image.data == data  # already right: not re-encoded
    prediction = next(iter(emulator.predictions.values()))
    assert prediction.model == "flux-redux-schnell"
    sent = prediction.input
    # Uploaded as documented (presign, then PUT with the required headers) and sent as its public URL.
    assert emulator.uploads[sent["redux_image"]] == INPUT
    assert emulator.counts["presign"] == 1 and emulator.counts["put"] == 1
    # Numbers go out as strings, like the model page's example.
    assert (sent["num_outputs"], sent["seed"], sent["output_quality"], sent["num_inference_steps"]) == (
        "3",
        "11",
        "80",
        "4",
    )
    assert (sent["aspect_ratio"], sent["megapixels"], sent["output_format"]) == ("16:9", "0.25", "png")


async def test_string_typed_metrics_are_read_as_numbers(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    status = await wait_terminal(adapter, submission.job_id)
    assert status.inference_seconds == pytest.approx(0.15)
    result = await adapter.result(submission.job_id, vary_spec(megapixels="0.25"))
    assert result.inference_seconds == pytest.approx(0.15)


@pytest.mark.parametrize("shape", ["list", "string", "object"])
@pytest.mark.parametrize("numbers_as_strings", [True, False])
async def test_every_output_shape_and_metric_type(session, shape: str, numbers_as_strings: bool) -> None:  # type: ignore[no-untyped-def]
    async with EachlabsEmulator(FAST, numbers_as_strings=numbers_as_strings, output_shape=shape) as emulator:  # type: ignore[arg-type]
        spec = vary_spec(aspect_ratio="9:21", megapixels="0.25", output_format="jpg")
        result = await run_to_result(provider(session, emulator), spec)
    image = check_output(result.images[0], expected_size=(320, 768), expected_format="jpg", quality=80)
    assert (image.width, image.height, image.format) == (320, 768, "jpg")
    assert result.inference_seconds == pytest.approx(0.15)


async def test_flux_schnell_with_go_fast_off(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = ImagineOptions.parse(prompt="a fox", count=2, megapixels="0.25", seed=5).resolve()
    adapter = provider(session, emulator)
    submission = await adapter.submit(spec, None)
    status = await wait_terminal(adapter, submission.job_id)
    assert status.state is ProviderState.SUCCEEDED, status.error
    result = await adapter.result(submission.job_id, spec)
    assert len(result.images) == 2
    sent = emulator.predictions[submission.job_id].input
    assert (sent["prompt"], sent["go_fast"], sent["num_outputs"]) == ("a fox", False, "2")
    assert emulator.counts["presign"] == 0


@pytest.mark.parametrize("seed_logs", [True, False])
async def test_the_seed_the_model_used_is_reported_when_the_logs_say(session, seed_logs: bool) -> None:  # type: ignore[no-untyped-def]
    async with EachlabsEmulator(FAST, seed_logs=seed_logs) as emulator:
        result = await run_to_result(provider(session, emulator), vary_spec(seed=0, megapixels="0.25"))
        used = next(iter(emulator.predictions.values())).seed
    assert result.seed == (used if seed_logs else None)


async def test_a_redux_job_needs_its_image(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    with pytest.raises(ProviderPermanentError, match="input image"):
        await adapter.submit(vary_spec(), None)
    assert not adapter.accepts(vary_spec(model="dev"))
    assert emulator.counts["create"] == 0


@pytest.mark.parametrize("failed_status", ["failed", "error"])
async def test_failed_prediction(session, failed_status: str) -> None:  # type: ignore[no-untyped-def]
    async with EachlabsEmulator(FAST, failed_status=failed_status) as emulator:
        emulator.next_outcome(error="boom")
        adapter = provider(session, emulator)
        submission = await adapter.submit(vary_spec(), INPUT)
        status = await wait_terminal(adapter, submission.job_id)
        assert (status.state, status.error, status.blocked) == (ProviderState.FAILED, "boom", False)
        with pytest.raises(ProviderPermanentError, match="boom"):
            await adapter.result(submission.job_id, vary_spec())


async def test_every_output_dropped_is_blocked(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(dropped={0, 1}, failed=False)
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(count=2), INPUT)
    status = await wait_terminal(adapter, submission.job_id)
    assert status.state is ProviderState.FAILED and status.blocked and status.error == NSFW_ERROR
    with pytest.raises(ProviderBlockedError):
        await adapter.result(submission.job_id, vary_spec(count=2))


async def test_some_outputs_dropped_gives_fewer_images(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(dropped={1}, failed=False)
    result = await run_to_result(provider(session, emulator), vary_spec(count=3, megapixels="0.25"))
    assert len(result.images) == 2


async def test_unknown_and_expired_ids_raise_expired(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status("no-such-id")
    submission = await adapter.submit(vary_spec(), INPUT)
    emulator.expire(submission.job_id)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status(submission.job_id)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.result(submission.job_id, vary_spec())


async def test_cancel_stops_a_running_prediction(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    await adapter.cancel(submission.job_id)
    status = await adapter.status(submission.job_id)
    assert status.state is ProviderState.FAILED and not status.blocked
    assert status.error is not None and "cancel" in status.error.lower()
    assert [r.path for r in emulator.requests if r.route == "cancel"] == [f"/v1/prediction/{submission.job_id}/cancel"]
    with pytest.raises(ProviderJobExpiredError):
        await adapter.cancel("no-such-id")


async def test_429_carries_retry_after_and_then_succeeds(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(429, route="create", headers={"Retry-After": "7"}, body={"error": "Too many requests"})
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(), INPUT)
    assert caught.value.rate_limited and caught.value.retry_after == 7 and caught.value.status == 429
    result = await run_to_result(adapter, vary_spec(megapixels="0.25"))
    assert len(result.images) == 1


async def test_rpm_budget_429_is_rate_limited(session) -> None:  # type: ignore[no-untyped-def]
    async with EachlabsEmulator(EmulatorConfig(latency_median=0.1, latency_sigma=0, rpm=2)) as emulator:
        adapter = provider(session, emulator)
        await adapter.submit(vary_spec(), INPUT)  # the presign and the create
        with pytest.raises(ProviderTransientError) as caught:
            await adapter.submit(vary_spec(), INPUT)
        assert caught.value.rate_limited and caught.value.retry_after is not None
        assert 50 <= caught.value.retry_after <= 60
        assert emulator.count_429 == 1


async def test_a_create_that_fails_to_create_is_a_refusal_any_other_5xx_is_unknown(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    emulator.fail_next(500, route="create", body={"error": "Failed to create prediction"})
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(), INPUT)
    assert caught.value.status == 500 and not caught.value.rate_limited
    for status in (500, 502, 504):
        emulator.fail_next(status, route="create")
        with pytest.raises(ProviderOutcomeUnknownError):
            await adapter.submit(vary_spec(), INPUT)


@pytest.mark.parametrize("route", ["presign", "get", "file"])
async def test_5xx_then_success(session, emulator, route: str) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(503 if route == "file" else 500, route=route)
    adapter = provider(session, emulator)
    spec = vary_spec(megapixels="0.25")
    if route == "presign":
        with pytest.raises(ProviderTransientError) as caught:
            await adapter.submit(spec, INPUT)
        assert caught.value.status == 500 and emulator.counts["create"] == 0
    submission = await adapter.submit(spec, INPUT)
    if route == "get":
        with pytest.raises(ProviderTransientError):
            await adapter.status(submission.job_id)
    await wait_terminal(adapter, submission.job_id)
    if route == "file":
        with pytest.raises(ProviderTransientError, match="503"):
            await adapter.result(submission.job_id, spec)
    assert len((await adapter.result(submission.job_id, spec)).images) == 1


async def test_result_before_success_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    with pytest.raises(ProviderTransientError, match="not ready"):
        await adapter.result(submission.job_id, vary_spec())


async def test_a_poll_timeout_is_transient_a_create_timeout_or_reset_unknown(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.delay_next(1.0, route="get")
    adapter = provider(session, emulator, timeout=0.3)
    submission = await adapter.submit(vary_spec(), INPUT)
    with pytest.raises(ProviderTransientError, match="did not answer"):
        await adapter.status(submission.job_id)
    assert (await adapter.status(submission.job_id)).state in set(ProviderState)
    emulator.delay_next(1.0, route="create")
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)
    emulator.reset_next(route="create", after=True)
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)


async def test_malformed_create_answer_has_an_unknown_outcome(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(200, route="create", raw='{"predictionID": "ab')
    with pytest.raises(ProviderOutcomeUnknownError, match="malformed JSON"):
        await provider(session, emulator).submit(vary_spec(), INPUT)


async def test_html_get_answer_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    emulator.fail_next(200, route="get", raw="<html>oops</html>")
    with pytest.raises(ProviderTransientError, match="malformed JSON"):
        await adapter.status(submission.job_id)


async def test_output_over_the_size_cap_is_refused(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = EachlabsProvider(session, api_key="k", base_url=emulator.base_url, max_output_bytes=1000)
    submission = await adapter.submit(vary_spec(), INPUT)
    await wait_terminal(adapter, submission.job_id)
    with pytest.raises(ProviderPermanentError, match="size cap"):
        await adapter.result(submission.job_id, vary_spec())


async def test_bad_input_bad_key_and_no_balance(session) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys=frozenset({"good"}), credits=0.004, latency_median=0.1)
    async with EachlabsEmulator(config) as emulator:
        with pytest.raises(ProviderPermanentError) as bad_key:
            await provider(session, emulator, key="bad").submit(vary_spec(), INPUT)
        assert bad_key.value.operator and bad_key.value.status == 401
        good = provider(session, emulator, key="good")
        with pytest.raises(ProviderPermanentError) as bad_input:
            await good.submit(vary_spec(), b"not an image")
        assert not bad_input.value.operator and bad_input.value.status == 400
        assert "redux_image" in bad_input.value.message
        await good.submit(vary_spec(), INPUT)  # 0.003 of 0.004
        with pytest.raises(ProviderPermanentError) as broke:
            await good.submit(vary_spec(), INPUT)
        assert broke.value.operator and broke.value.status == 402


async def test_connection_refused_is_transient(session) -> None:  # type: ignore[no-untyped-def]
    server = EachlabsEmulator(FAST)
    await server.start()
    base = server.base_url
    await server.stop()
    adapter = EachlabsProvider(session, api_key="k", base_url=base, timeout=2)
    with pytest.raises(ProviderTransientError, match="could not connect"):
        await adapter.submit(vary_spec(), INPUT)


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": "12"}, now) == 12
    assert retry_after_seconds({"retry-after": "Sat, 21 Nov 2026 10:00:30 GMT"}, now) == 30
    assert retry_after_seconds({"x-ratelimit-reset": str(now.timestamp() + 20)}, now) == 20
    assert retry_after_seconds({"x-ratelimit-reset": "15"}, now) == 15
    assert retry_after_seconds({"retry-after": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None
