"""The 1min.ai adapter against the 1min.ai emulator, over real HTTP on 127.0.0.1, under every variant of
what 1min.ai's docs leave open."""

from __future__ import annotations

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
    # One upload, one blocking call; the output the presigned temporaryUrl names comes from there, the
    # other from the asset host.
    routes = sorted((r.route, r.method) for r in emulator.requests)
    assert routes == [("asset", "POST"), ("features", "POST"), ("file", "GET"), ("presigned", "GET")]
    assert [r.path for r in emulator.requests if r.route == "file"] == [f"{emulator.asset_prefix}/{record.paths[1]}"]


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


async def test_redux_dev_sends_no_guidance_and_refuses_another(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    assert not adapter.accepts(vary_spec(model="dev", guidance=4.5))
    spec = vary_spec(model="dev", steps=28, megapixels="0.25", output_format="jpg")
    assert adapter.accepts(spec)
    result = await finished(adapter, spec)
    image = check_output(result.images[0], expected_size=spec.size, expected_format="jpg", quality=80)
    assert (image.width, image.height) == spec.size
    record = next(iter(emulator.records.values()))
    assert record.model == "black-forest-labs/flux-redux-dev"
    assert "guidance" not in record.prompt_object and record.prompt_object["num_inference_steps"] == 28


@pytest.mark.parametrize("undocumented", ["honor", "ignore", "refuse"])
@pytest.mark.parametrize(("aspect", "size"), [("3:2", (608, 416)), ("9:16", (384, 672))])
async def test_schnell_sends_only_documented_fields(  # type: ignore[no-untyped-def]
    session, undocumented: str, aspect: str, size: tuple[int, int]
) -> None:
    async with OneMinEmulator(FAST, undocumented=undocumented) as emulator:  # type: ignore[arg-type]
        spec = imagine_spec(aspect_ratio=aspect, megapixels="0.25", output_format="png", seed=9)
        result = await finished(provider(session, emulator), spec, None)
        image = check_output(result.images[0], expected_size=size, expected_format="png", quality=80)
        assert (image.width, image.height, image.format) == (*size, "png")
        sent = next(iter(emulator.records.values())).prompt_object
        assert set(sent) == {
            "prompt",
            "aspect_ratio",
            "output_quality",
            "num_inference_steps",
            "megapixels",
            "go_fast",
            "disable_safety_checker",
            "seed",
        }
        assert sent["go_fast"] is False and sent["aspect_ratio"] == aspect
        assert emulator.counts["asset"] == 0  # text-to-image uploads nothing


async def test_schnell_seeds_reproduce(session, emulator) -> None:  # type: ignore[no-untyped-def]
    spec = imagine_spec(megapixels="0.25", seed=123)
    first = await finished(provider(session, emulator), spec, None)
    second = await finished(provider(session, emulator), spec, None)
    assert first.images == second.images


async def test_schnell_takes_one_image_of_a_listed_ratio(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    assert adapter.accepts(imagine_spec(aspect_ratio="5:4"))
    assert not adapter.accepts(imagine_spec(aspect_ratio="21:9"))
    assert not adapter.accepts(imagine_spec(count=2))


@pytest.mark.parametrize("asset_host", ["serve", "403"])
@pytest.mark.parametrize("temporary_url", [True, False])
async def test_outputs_come_from_the_presigned_url_first(session, asset_host: str, temporary_url: bool) -> None:  # type: ignore[no-untyped-def]
    async with OneMinEmulator(FAST, asset_host=asset_host, temporary_url=temporary_url) as emulator:  # type: ignore[arg-type]
        adapter = provider(session, emulator)
        spec = vary_spec(megapixels="0.25")
        submission = await adapter.submit(spec, INPUT)
        if asset_host == "403" and not temporary_url:
            # Nowhere to download from: billed, so never resubmitted; the engine fails it through `result`.
            assert submission.result is None and emulator.counts["features"] == 1
            with pytest.raises(ProviderPermanentError):
                await adapter.result(submission.job_id, spec, submission.handle)
            return
        assert submission.result is not None and len(submission.result.images) == 1
        assert emulator.counts["presigned" if temporary_url else "file"] == 1
        assert emulator.counts["file" if temporary_url else "presigned"] == 0


async def test_a_failed_download_is_fetched_again_through_result_not_resubmitted(session, emulator) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator)
    spec = vary_spec(megapixels="0.25")
    emulator.fail_next(503, route="presigned")
    emulator.fail_next(503, route="file")
    submission = await adapter.submit(spec, INPUT)
    assert submission.result is None and "sources" in submission.handle
    again = OneMinProvider(  # a restart: only the stored handle is left
        session, api_key="k", base_url=emulator.base_url, asset_base_url=emulator.asset_base_url
    )
    assert (await again.status(submission.job_id, submission.handle)).state is ProviderState.SUCCEEDED
    assert len((await again.result(submission.job_id, spec, submission.handle)).images) == 1
    assert emulator.counts["features"] == 1


async def test_a_temporary_url_alone_is_enough(session, emulator) -> None:  # type: ignore[no-untyped-def]
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


async def test_a_5xx_from_the_blocking_call_leaves_the_outcome_unknown(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.next_outcome(error="boom")
    adapter = provider(session, emulator)
    with pytest.raises(ProviderOutcomeUnknownError, match="boom") as caught:
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


async def test_an_upload_5xx_is_a_refusal(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(502, route="asset")
    adapter = provider(session, emulator)
    with pytest.raises(ProviderTransientError) as caught:
        await adapter.submit(vary_spec(megapixels="0.25"), INPUT)
    assert caught.value.status == 502 and emulator.counts["features"] == 0
    assert len((await finished(adapter, vary_spec(megapixels="0.25"))).images) == 1


@pytest.mark.parametrize("fault", ["504", "timeout", "reset", "malformed"])
async def test_the_blocking_call_is_never_resent_after_an_unknown_outcome(session, emulator, fault: str) -> None:  # type: ignore[no-untyped-def]
    adapter = provider(session, emulator, timeout=0.3)
    if fault == "504":
        emulator.fail_next(504, route="features")
    elif fault == "timeout":
        emulator.delay_next(1.0, route="features")
    elif fault == "reset":
        emulator.reset_next(route="features", after=True)
    else:
        emulator.fail_next(200, route="features", raw='{"aiRecord": {"uu')
    with pytest.raises(ProviderOutcomeUnknownError):
        await adapter.submit(vary_spec(megapixels="0.25"), INPUT)


async def test_asset_upload_malformed_json_is_transient(session, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.fail_next(200, route="asset", raw='{"fileContent": {"pa')
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
    with pytest.raises(ProviderTransientError, match="could not connect"):
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
