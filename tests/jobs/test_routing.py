"""Provider choice: failover before acceptance, circuit breakers, the whole-provider pause after a 429."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.core.errors import ProviderPermanentError, ProviderTransientError
from bot.core.jobs import JobState
from bot.core.pricing import PriceList
from bot.core.requests import ImagineOptions, ModelId
from bot.jobs.circuit import CircuitBreaker, CircuitState
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.segmind import SegmindProvider
from emulators.common import EmulatorConfig
from emulators.segmind import SegmindEmulator
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from tests.jobs.fakes import FakeProvider, RecordingNotifier

CONFIG = EngineConfig(retry_base_delay=0.01, retry_max_delay=0.02, poll_min_interval=0.01, poll_max_interval=0.02)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def order(request_id: str, user: int = 7) -> JobOrder:
    spec = ImagineOptions.parse(prompt="a fox", megapixels="0.25").resolve()
    return JobOrder(request_id=request_id, guild_id=1, user_id=user, spec=spec)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "f.db")
    yield database
    await database.close()


def engine_with(db: Database, *slots: ProviderSlot) -> JobEngine:
    ledger = LedgerRepo(db)
    return JobEngine(
        jobs=JobRepo(db, ledger),
        providers=list(slots),
        notifier=RecordingNotifier(),
        prices=PriceList(),
        config=CONFIG,
        planner=PollPlanner(0.01, 0.02, defaults={m: 0.05 for m in ModelId}),
    )


async def test_a_503_on_submit_fails_over_to_the_next_provider(db: Database) -> None:
    first = FakeProvider(name="first", errors={"submit": [ProviderTransientError("503", provider="first", status=503)]})
    second = FakeProvider(name="second")
    engine = engine_with(
        db,
        ProviderSlot(first, ProviderGate(concurrency=2, rpm=None)),
        ProviderSlot(second, ProviderGate(concurrency=2, rpm=None)),
    )
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    await engine.stop()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.provider == "second"
    assert first.calls == ["submit"] and first.submitted == {}
    assert second.calls[0] == "submit"


async def test_a_provider_out_of_credits_is_skipped_and_reported_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    broke = FakeProvider(
        name="broke",
        errors={
            "submit": [ProviderPermanentError("Insufficient credits", provider="broke", status=406, operator=True)] * 3
        },
    )
    backup = FakeProvider(name="backup")
    engine = engine_with(
        db,
        ProviderSlot(broke, ProviderGate(concurrency=1, rpm=None)),
        ProviderSlot(backup, ProviderGate(concurrency=2, rpm=None)),
    )
    for i in range(3):
        await engine.submit(order(f"r{i}", user=i))
    await engine.start()
    await engine.run_until_idle()
    await engine.stop()
    jobs = [await engine.jobs.by_request(f"r{i}") for i in range(3)]
    assert [job.provider for job in jobs if job] == ["backup"] * 3
    assert broke.calls == ["submit"]  # after that the provider is skipped
    loud = [r for r in caplog.records if r.levelname == "ERROR" and "provider=broke" in r.getMessage()]
    assert len(loud) == 1


async def test_an_open_circuit_moves_new_jobs_to_the_next_provider(db: Database) -> None:
    flaky = FakeProvider(name="flaky")
    steady = FakeProvider(name="steady")
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, cooldown=30, clock=clock)
    engine = engine_with(
        db,
        ProviderSlot(flaky, ProviderGate(concurrency=2, rpm=None), breaker),
        ProviderSlot(steady, ProviderGate(concurrency=2, rpm=None)),
    )
    breaker.failure()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    await engine.stop()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.provider == "steady" and flaky.calls == []


def test_the_circuit_opens_after_repeated_failures_and_half_opens_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.failure()
    assert breaker.state is CircuitState.CLOSED and breaker.available()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.available()
    assert breaker.reopens_in == 10
    clock.now = 9.9
    assert not breaker.available()
    clock.now = 10.0
    assert breaker.state is CircuitState.HALF_OPEN and breaker.available()
    breaker.begin()  # the one trial job
    assert not breaker.available()
    breaker.failure()  # the trial failed: open again for a full cool-down
    assert breaker.state is CircuitState.OPEN and breaker.reopens_in == 10
    clock.now = 20.0
    breaker.begin()
    breaker.success()
    assert breaker.state is CircuitState.CLOSED and breaker.failures == 0


async def test_a_429_pauses_every_request_to_that_provider(db: Database) -> None:
    async with (
        SegmindEmulator(EmulatorConfig(latency_median=0.6, latency_sigma=0, queue_seconds=0.02)) as emulator,
        aiohttp.ClientSession() as http,
    ):
        adapter = SegmindProvider(http, api_key="SG_test", base_url=emulator.base_url)
        engine = engine_with(db, ProviderSlot(adapter, ProviderGate(concurrency=4, rpm=None)))
        reset = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        emulator.fail_next(429, route="status", headers={"x-rate-limit-reset-at-utc": reset})
        for i in range(3):
            await engine.submit(order(f"r{i}", user=i))
        await engine.start()
        await engine.run_until_idle()
        await engine.stop()
        hit = next(r for r in emulator.requests if r.status == 429)
        after = [r.at - hit.at for r in emulator.requests if r.at > hit.at]
        # Nothing went to the provider until the reset time had passed, whichever job asked (requests
        # already on the wire when the 429 came back arrive within a few milliseconds of it).
        assert [gap for gap in after if 0.02 < gap < 0.5] == []
        assert max(after) >= 0.5
        states = [(await engine.jobs.by_request(f"r{i}")).state for i in range(3)]  # type: ignore[union-attr]
        assert states == [JobState.SUCCEEDED] * 3


async def test_the_request_budget_is_never_exceeded(db: Database) -> None:
    rpm, window = 6, 0.5
    async with (
        SegmindEmulator(
            EmulatorConfig(latency_median=0.1, latency_sigma=0, queue_seconds=0.01, rpm=rpm, time_scale=window / 60)
        ) as emulator,
        aiohttp.ClientSession() as http,
    ):
        adapter = SegmindProvider(http, api_key="SG_test", base_url=emulator.base_url)
        engine = engine_with(db, ProviderSlot(adapter, ProviderGate(concurrency=4, rpm=rpm, window=window)))
        for i in range(5):
            await engine.submit(order(f"r{i}", user=i))
        await engine.start()
        await engine.run_until_idle()
        await engine.stop()
        assert emulator.count_429 == 0
        states = [(await engine.jobs.by_request(f"r{i}")).state for i in range(5)]  # type: ignore[union-attr]
        assert states == [JobState.SUCCEEDED] * 5
        times = sorted(r.at for r in emulator.requests if r.route != "file")
        assert all(sum(1 for t in times if start <= t < start + window) <= rpm for start in times)
        await asyncio.sleep(0)


async def test_failover_over_real_http_from_segmind_503_to_replicate(db: Database) -> None:
    from bot.providers.replicate import ReplicateProvider
    from emulators.replicate import ReplicateEmulator

    fast = EmulatorConfig(latency_median=0.2, latency_sigma=0, queue_seconds=0.02)
    async with SegmindEmulator(fast) as segmind, ReplicateEmulator(fast) as replicate, aiohttp.ClientSession() as http:
        segmind.fail_next(503, route="submit")
        engine = engine_with(
            db,
            ProviderSlot(
                SegmindProvider(http, api_key="SG", base_url=segmind.base_url), ProviderGate(concurrency=2, rpm=None)
            ),
            ProviderSlot(
                ReplicateProvider(http, api_key="r8", base_url=replicate.base_url),
                ProviderGate(concurrency=2, rpm=None),
            ),
        )
        job = await engine.submit(order("r"))
        await engine.start()
        await engine.run_until_idle()
        await engine.stop()
        done = await engine.jobs.get(job.id)
        assert done is not None and done.state is JobState.SUCCEEDED and done.provider == "replicate"
        assert [r.status for r in segmind.requests] == [503]
        assert replicate.counts["create"] == 1
        outputs = await engine.jobs.outputs(job.id)
        assert [(o.width, o.height) for o in outputs] == [(512, 512)]
