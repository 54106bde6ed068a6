"""The Segmind adapter against the Segmind emulator, over real HTTP on 127.0.0.1, under every variant of
what Segmind's docs leave open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

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
from bot.providers.base import ProviderResult, ProviderState, Submission
from bot.providers.segmind import SegmindProvider, default_upload_url, reset_seconds
from emulators.common import NSFW_ERROR, EmulatorConfig
from emulators.segmind import SegmindEmulator
from tests.conftest import make_png

FAST = EmulatorConfig(latency_median=0.15, latency_sigma=0.0, queue_seconds=0.02)
PENDING = ("status", "404", "202")
SHAPES = ("auto", "list", "json")


@pytest.fixture
async def emulator() -> AsyncIterator[SegmindEmulator]:
    async with SegmindEmulator(FAST) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def provider(
    session: aiohttp.ClientSession,
    emulator: SegmindEmulator,
    *,
    key: str = "SG_test",
    timeout: float = 5.0,
    image_input: str = "upload",
) -> SegmindProvider:
    return SegmindProvider(
        session,
        api_key=key,
        base_url=emulator.base_url,
        timeout=timeout,
        image_input=image_input,  # type: ignore[arg-type]
    )


INPUT = normalize_input(make_png(300, 200)).data


def vary_spec(**options: object) -> GenerationSpec:
    return VaryOptions.parse(**options).resolve((300, 200))  # type: ignore[arg-type]


async def run_to_result(adapter: SegmindProvider, spec: GenerationSpec, image: bytes | None) -> ProviderResult:
    submission = await adapter.submit(spec, image)
    return await finish(adapter, submission, spec)


async def finish(adapter: SegmindProvider, submission: Submission, spec: GenerationSpec) -> ProviderResult:
    for _ in range(200):
        status = await adapter.status(submission.job_id, submission.handle)
        if status.state is ProviderState.SUCCEEDED:
            return await adapter.result(submission.job_id, spec, submission.handle)
        assert status.state is not ProviderState.FAILED, status.error
        await asyncio.sleep(0.02)
    raise AssertionError("the job never finished")


@pytest.mark.parametrize("pending", PENDING)
@pytest.mark.parametrize("shape", SHAPES)
async def test_a_redux_job_runs_to_images_whatever_the_response_url_answers_while_pending(
    session: aiohttp.ClientSession, pending: str, shape: str
) -> None:
    async with SegmindEmulator(FAST, pending_response=pending, output_shape=shape) as emulator:  # type: ignore[arg-type]
        spec = vary_spec(count=4, aspect_ratio="16:9", output_format="webp", seed=11)
        adapter = provider(session, emulator)
        submission = await adapter.submit(spec, INPUT)
        # The URLs the submit answer gave are what the job is followed by.
        assert submission.handle == {
            "status_url": f"{emulator.base_url}/v2/requests/{submission.job_id}/status",
            "response_url": f"{emulator.base_url}/v2/requests/{submission.job_id}",
        }
        result = await finish(adapter, submission, spec)
        assert len(result.images) == 4
        for data in result.images:
            image = check_output(data, expected_size=(1344, 768), expected_format="webp", quality=80)
            assert (image.width, image.height, image.format) == (1344, 768, "webp")
        assert result.inference_seconds is not None
        # Polls went to the status URL; the response URL was read once, after COMPLETED.
        assert emulator.counts["result"] == 1 and emulator.counts["status"] >= 1


@pytest.mark.parametrize("pending", PENDING)
async def test_the_response_url_read_early_is_not_ready_never_expired(
    session: aiohttp.ClientSession, pending: str
) -> None:
    config = EmulatorConfig(latency_median=5.0, latency_sigma=0.0, queue_seconds=0.0)
    async with SegmindEmulator(config, pending_response=pending) as emulator:  # type: ignore[arg-type]
        adapter = provider(session, emulator)
        submission = await adapter.submit(vary_spec(), INPUT)
        with pytest.raises(ProviderTransientError, match="not ready"):
            await adapter.result(submission.job_id, vary_spec(), submission.handle)
        assert (await adapter.status(submission.job_id, submission.handle)).state in (
            ProviderState.QUEUED,
            ProviderState.RUNNING,
        )


async def test_a_restart_polls_the_urls_the_submit_gave(session: aiohttp.ClientSession, emulator) -> None:  # type: ignore[no-untyped-def]
    first = provider(session, emulator)
    submission = await first.submit(vary_spec(), INPUT)
    stored = json.loads(json.dumps(submission.handle))  # as the job row keeps it
    second = provider(session, emulator)  # a new process: nothing in memory
    result = await finish(second, Submission(submission.job_id, handle=stored), vary_spec())
    assert len(result.images) == 1
    assert {r.path for r in emulator.requests if r.route == "status"} == {f"/v2/requests/{submission.job_id}/status"}


async def test_the_image_is_uploaded_to_segmind_storage_once_and_sent_as_its_url(
    session: aiohttp.ClientSession, emulator: SegmindEmulator
) -> None:
    adapter = provider(session, emulator)
    await run_to_result(adapter, vary_spec(seed=1), INPUT)
    await run_to_result(adapter, vary_spec(seed=2), INPUT)  # a re-roll of the same image
    assert emulator.counts["upload"] == 1
    url = next(iter(emulator.assets))
    assert all(job.body["redux_image"] == url for job in emulator.jobs.values())
    assert default_upload_url("https://api.segmind.com") == "https://workflows-api.segmind.com/upload-asset"


@pytest.mark.parametrize("upload_key", ["urls", "file_urls"])
async def test_either_upload_answer_key_is_read(session: aiohttp.ClientSession, upload_key: str) -> None:
    async with SegmindEmulator(FAST, upload_key=upload_key) as emulator:  # type: ignore[arg-type]
        assert len((await run_to_result(provider(session, emulator), vary_spec(), INPUT)).images) == 1


async def test_inline_images_refused_fail_the_job_while_uploads_work(session: aiohttp.ClientSession) -> None:
    async with SegmindEmulator(FAST, inline_images=False) as emulator:
        inline = provider(session, emulator, image_input="data-uri")
        submission = await inline.submit(vary_spec(), INPUT)
        for _ in range(100):
            status = await inline.status(submission.job_id, submission.handle)
            if status.state is ProviderState.FAILED:
                break
            await asyncio.sleep(0.02)
        assert status.state is ProviderState.FAILED and "URI" in (status.error or "")
        assert len((await run_to_result(provider(session, emulator), vary_spec(), INPUT)).images) == 1


async def test_schnell_quarter_megapixel_is_rendered_larger_and_fitted(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = ImagineOptions.parse(prompt="a fox", aspect_ratio="16:9", megapixels="0.25", output_format="png").resolve()
    result = await run_to_result(provider(session, emulator), spec, None)
    job = next(iter(emulator.jobs.values()))
    assert (job.body["width"], job.body["height"]) == (1344, 768)  # Segmind's minimum side is 512
    image = check_output(result.images[0], expected_size=(672, 384), expected_format="png", quality=80)
    assert (image.width, image.height, image.format) == (672, 384, "png")
    assert emulator.counts["upload"] == 0


@pytest.mark.parametrize("pending", PENDING)
async def test_failed_job_is_reported_as_failed(session: aiohttp.ClientSession, pending: str) -> None:
    async with SegmindEmulator(FAST, pending_response=pending) as emulator:  # type: ignore[arg-type]
        emulator.next_outcome(failed=True, error="boom")
        adapter = provider(session, emulator)
        submission = await adapter.submit(vary_spec(), INPUT)
        for _ in range(100):
            status = await adapter.status(submission.job_id, submission.handle)
            if status.state is ProviderState.FAILED:
                break
            await asyncio.sleep(0.02)
        assert status.state is ProviderState.FAILED and status.error == "boom" and not status.blocked
        with pytest.raises(ProviderPermanentError, match="boom"):
            await adapter.result(submission.job_id, vary_spec(), submission.handle)


async def test_every_output_dropped_is_a_blocked_failure(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(failed=True, error=NSFW_ERROR)
    adapter = provider(session, emulator)
    submission = await adapter.submit(vary_spec(), INPUT)
    await asyncio.sleep(0.3)
    status = await adapter.status(submission.job_id, submission.handle)
    assert status.state is ProviderState.FAILED and status.blocked
    with pytest.raises(ProviderBlockedError):
        await adapter.result(submission.job_id, vary_spec(), submission.handle)


async def test_unknown_and_expired_ids_raise_expired(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status("no-such-id")
    submission = await adapter.submit(vary_spec(), INPUT)
    emulator.expire(submission.job_id)
    with pytest.raises(ProviderJobExpiredError):
        await adapter.status(submission.job_id, submission.handle)


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


async def test_rpm_budget_429_is_rate_limited_and_uploads_are_not_counted(session) -> None:  # type: ignore[no-untyped-def]
    async with SegmindEmulator(EmulatorConfig(latency_median=0.1, latency_sigma=0, rpm=2)) as emulator:
        adapter = provider(session, emulator)
        await adapter.submit(vary_spec(), INPUT)
        await adapter.submit(vary_spec(), INPUT)
        with pytest.raises(ProviderTransientError) as caught:
            await adapter.submit(vary_spec(), INPUT)
        assert caught.value.rate_limited and caught.value.retry_after is not None
        assert emulator.count_429 == 1 and emulator.counts["upload"] == 1


async def test_a_5xx_on_a_submit_is_a_refusal_but_a_504_leaves_it_unknown(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    emulator.fail_next(500, route="submit")
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(), INPUT)
    assert caught.value.status == 500 and not caught.value.rate_limited
    emulator.fail_next(504, route="submit")
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)


async def test_a_poll_5xx_or_timeout_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator, timeout=0.3)
    submission = await adapter.submit(vary_spec(), INPUT)
    emulator.fail_next(503, route="status")
    with pytest.raises(ProviderTransientError):
        await adapter.status(submission.job_id, submission.handle)
    emulator.delay_next(1.0, route="status")
    with pytest.raises(ProviderTransientError, match="did not answer"):
        await adapter.status(submission.job_id, submission.handle)
    assert (await adapter.status(submission.job_id, submission.handle)).state in set(ProviderState)


async def test_a_submit_that_times_out_or_is_reset_has_an_unknown_outcome(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator, timeout=0.3)
    await adapter.submit(vary_spec(), INPUT)  # uploads the image, so only the submit is slow below
    emulator.delay_next(1.0, route="submit")
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)
    emulator.reset_next(route="submit", after=True)
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)
    # A success without a request id may be a job too.
    emulator.fail_next(200, route="submit", raw='{"request_id": "abc", "stat')
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(), INPUT)


async def test_connection_refused_is_transient(session) -> None:  # type: ignore[no-untyped-def]
    server = SegmindEmulator(FAST)
    await server.start()
    base = server.base_url
    await server.stop()
    adapter = SegmindProvider(session, api_key="k", base_url=base, timeout=2, image_input="data-uri")
    with pytest.raises(ProviderTransientError, match="could not connect"):
        await adapter.submit(vary_spec(), INPUT)


@pytest.mark.parametrize("out_of_credits", [402, 406])
async def test_bad_key_and_no_credits_are_the_operators_problem(session, out_of_credits: int) -> None:  # type: ignore[no-untyped-def]
    config = EmulatorConfig(api_keys=frozenset({"SG_good"}), credits=0.005, latency_median=0.1)
    async with SegmindEmulator(config, out_of_credits=out_of_credits) as emulator:
        with pytest.raises(ProviderPermanentError) as bad_key:
            await provider(session, emulator, key="SG_bad").submit(vary_spec(), INPUT)
        assert bad_key.value.operator and bad_key.value.status == 401
        good = provider(session, emulator, key="SG_good")
        await good.submit(vary_spec(), INPUT)  # 0.004 of 0.005
        with pytest.raises(ProviderPermanentError) as broke:
            await good.submit(vary_spec(), INPUT)
        assert broke.value.operator and broke.value.status == out_of_credits


async def test_the_api_key_echoed_in_an_error_body_is_masked(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(401, route="upload", body={"error": "key {api_key} is not valid"})
    with pytest.raises(ProviderPermanentError) as caught:
        await provider(session, emulator, key="SG_0123456789abcdef").submit(vary_spec(), INPUT)
    assert "SG_0123456789abcdef" not in str(caught.value) and "[redacted]" in caught.value.message


def test_reset_header_forms() -> None:
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert reset_seconds("2026-11-21T10:00:30Z", now) == 30
    assert reset_seconds(str(now.timestamp() + 12), now) == 12
    assert reset_seconds("2026-11-21T09:00:00Z", now) == 0
    assert reset_seconds("soon", now) is None
    assert reset_seconds(None, now) is None
