from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.core.errors import ProviderPermanentError, ProviderTransientError, UserError
from bot.core.jobs import JobState
from bot.core.limits import Limits, Policy
from bot.core.pricing import PriceList
from bot.core.requests import ImagineOptions
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from tests.jobs.fakes import FakeProvider, RecordingNotifier

CONFIG = EngineConfig(retry_base_delay=0.001, retry_max_delay=0.01, poll_min_interval=0.01, poll_max_interval=0.02)


def spec(count: int = 1, seed: int = 5):  # type: ignore[no-untyped-def]
    return ImagineOptions.parse(prompt="a red fox", count=count, megapixels="0.25", seed=seed).resolve()


def order(request_id: str, *, user: int = 7, count: int = 1) -> JobOrder:
    return JobOrder(request_id=request_id, guild_id=1, user_id=user, spec=spec(count))


EngineFactory = Callable[..., JobEngine]


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[EngineFactory]:
    opened: list[tuple[JobEngine, Database]] = []

    async def factory(
        provider: FakeProvider,
        notifier: RecordingNotifier,
        *,
        concurrency: int = 4,
        config: EngineConfig = CONFIG,
    ) -> JobEngine:
        db = await Database.open(tmp_path / "engine.db")
        ledger = LedgerRepo(db)
        engine = JobEngine(
            jobs=JobRepo(db, ledger),
            providers=[ProviderSlot(provider, ProviderGate(concurrency=concurrency, rpm=None))],
            notifier=notifier,
            prices=PriceList(),
            config=config,
            planner=PollPlanner(0.01, 0.02, defaults={m: 0.05 for m in spec().model.__class__}),
        )
        opened.append((engine, db))
        return engine

    yield factory  # type: ignore[misc]
    for engine, db in opened:
        await engine.stop()
        await db.close()


async def test_a_job_succeeds_is_delivered_once_and_charged_exactly(make_engine: EngineFactory) -> None:
    notifier = RecordingNotifier()
    engine = await make_engine(FakeProvider(), notifier)
    job = await engine.submit(order("r1", count=3))
    assert job.state is JobState.QUEUED and job.cost == 3  # schnell 2 × 0.25 MP → 1 per image
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.delivered and done.charged == 3
    assert notifier.done_log == [(job.id, 3)]
    balance = await engine.jobs.ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (17, 0)
    assert await engine.jobs.ledger.mismatches() == []


async def test_a_repeated_request_id_creates_nothing_new(make_engine: EngineFactory) -> None:
    engine = await make_engine(FakeProvider(), RecordingNotifier())
    first = await engine.submit(order("same"))
    second = await engine.submit(order("same"))
    assert first.id == second.id
    balance = await engine.jobs.ledger.balance(1, 7)
    assert balance is not None and balance.held == 1


async def test_transient_errors_are_retried(make_engine: EngineFactory) -> None:
    provider = FakeProvider(
        errors={
            "submit": [ProviderTransientError("503", provider="fake", status=503)],
            "status": [ProviderTransientError("timeout", provider="fake")] * 2,
            "result": [ProviderTransientError("reset", provider="fake")],
        }
    )
    notifier = RecordingNotifier()
    engine = await make_engine(provider, notifier)
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED
    assert provider.calls.count("submit") == 2 and provider.calls.count("result") == 2


async def test_a_permanent_error_fails_the_job_and_refunds(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    provider = FakeProvider(errors={"submit": [ProviderPermanentError("bad request", provider="fake")]})
    notifier = RecordingNotifier()
    engine = await make_engine(provider, notifier)
    job = await engine.submit(order("r", count=4))
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.FAILED and done.charged == 0
    # The member reads a plain sentence; the provider's own words go to the operator's log only.
    assert notifier.failed_log == [(job.id, "The provider could not run this job.")]
    assert "bad request" in caplog.text
    balance = await engine.jobs.ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (20, 0)


async def test_retries_run_out_and_the_job_fails_refunded(make_engine: EngineFactory) -> None:
    provider = FakeProvider(errors={"submit": [ProviderTransientError("503", provider="fake")] * 10})
    engine = await make_engine(provider, RecordingNotifier())
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.FAILED
    assert provider.calls.count("submit") == CONFIG.max_attempts


async def test_a_provider_failure_status_fails_the_job(make_engine: EngineFactory) -> None:
    engine = await make_engine(
        FakeProvider(fail_with="All generated images contained NSFW content."), RecordingNotifier()
    )
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.FAILED and done.charged == 0


async def test_only_delivered_images_are_charged(make_engine: EngineFactory) -> None:
    notifier = RecordingNotifier()
    engine = await make_engine(FakeProvider(drop=1), notifier)
    job = await engine.submit(order("r", count=4))
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.charged == 3
    assert notifier.done_log == [(job.id, 3)]
    balance = await engine.jobs.ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (17, 0)


async def test_cancel_releases_the_hold_and_cancels_at_the_provider(make_engine: EngineFactory) -> None:
    provider = FakeProvider(duration=30)
    notifier = RecordingNotifier()
    engine = await make_engine(provider, notifier)
    job = await engine.submit(order("r", count=2))
    await engine.start()
    while not provider.submitted:  # noqa: ASYNC110 - the fake has no event to wait on
        await asyncio.sleep(0.01)
    with pytest.raises(UserError):
        await engine.cancel(job.id, user_id=999)
    cancelled = await engine.cancel(job.id, user_id=7)
    await engine.run_until_idle()
    assert cancelled.state is JobState.CANCELLED and provider.cancelled == ["p0"]
    assert [entry[0] for entry in notifier.failed_log] == [job.id]
    balance = await engine.jobs.ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (20, 0)


async def test_a_job_past_its_deadline_expires_refunded(make_engine: EngineFactory) -> None:
    config = EngineConfig(retry_base_delay=0.001, poll_min_interval=0.01, poll_max_interval=0.02, job_deadline=0.2)
    engine = await make_engine(FakeProvider(duration=30), RecordingNotifier(), config=config)
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    done = await engine.jobs.get(job.id)
    assert done is not None and done.state is JobState.EXPIRED and done.charged == 0


async def test_a_failed_delivery_is_retried(make_engine: EngineFactory) -> None:
    notifier = RecordingNotifier(fail_deliveries=1)
    engine = await make_engine(FakeProvider(), notifier)
    job = await engine.submit(order("r"))
    await engine.start()
    await engine.run_until_idle()
    assert notifier.done_log == [(job.id, 1)]


async def test_fair_order_serves_a_second_member_within_the_first_two_slots(
    make_engine: EngineFactory,
) -> None:
    provider = FakeProvider(duration=0.02)
    engine = await make_engine(provider, RecordingNotifier(), concurrency=1)
    for i in range(5):
        await engine.submit(order(f"a{i}", user=1))
    loner = await engine.submit(order("b0", user=2))
    await engine.start()
    await engine.run_until_idle()
    assert len(provider.submitted) == 6
    started = sorted(provider.submitted.items(), key=lambda item: item[1][1])
    first_two = [job_id for job_id, _ in started[:2]]
    loner_done = await engine.jobs.get(loner.id)
    assert loner_done is not None and loner_done.provider_job_id in first_two


async def test_member_and_server_concurrency_hold_jobs_in_line(make_engine: EngineFactory) -> None:
    provider = FakeProvider(duration=0.15)
    engine = await make_engine(provider, RecordingNotifier(), concurrency=10)
    limits = Limits(jobs_per_minute=100, max_active=1, max_queued=100, server_concurrency=2)
    policy = Policy(daily_allowance=20, limits=limits)
    for i in range(3):
        await engine.submit(order(f"a{i}", user=1), policy)
    await engine.submit(order("b0", user=2), policy)
    await engine.submit(order("c0", user=3), policy)
    await engine.start()
    await asyncio.sleep(0.08)
    # One job of member 1 (max_active=1) and one other: the server may run 2 at once.
    running = await engine.jobs.in_states([JobState.SUBMITTED, JobState.RUNNING])
    assert sorted(job.user_id for job in running) == [1, 2]
    assert len(provider.submitted) == 2 and len(engine.queue) == 3
    await engine.run_until_idle()
    assert len(provider.submitted) == 5
