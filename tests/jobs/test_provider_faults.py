"""Money-safe provider calls: the engine against the provider emulators over real HTTP, on a real SQLite file.

A submit whose outcome is unknown is never sent again (nor to another provider): the job fails, refunded,
and the operator's log says a provider job may have been billed. A job the provider accepted is polled
through transient errors until its deadline, which counts from the stored submit across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.core.images import normalize_input
from bot.core.jobs import Job, JobState
from bot.core.pricing import PriceList
from bot.core.requests import ModelId, VaryOptions
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.replicate import ReplicateProvider
from bot.providers.segmind import SegmindProvider
from emulators.common import EmulatorConfig
from emulators.replicate import ReplicateEmulator
from emulators.segmind import SegmindEmulator
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from tests.conftest import make_png
from tests.jobs.fakes import RecordingNotifier

CONFIG = EngineConfig(retry_base_delay=0.02, retry_max_delay=0.1, poll_min_interval=0.02, poll_max_interval=0.1)
BILLED = "one provider job may have been billed"
IMAGE = normalize_input(make_png(320, 200))


class ShiftedClock:
    """The real clock, moved forward by `offset` (a process started that much later)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Opened:
    engine: JobEngine
    db: Database
    notifier: RecordingNotifier


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def segmind() -> AsyncIterator[SegmindEmulator]:
    config = EmulatorConfig(latency_median=0.3, latency_sigma=0.0, queue_seconds=0.02)
    async with SegmindEmulator(config, pending_response="404") as server:
        yield server


@pytest.fixture
async def replicate() -> AsyncIterator[ReplicateEmulator]:
    async with ReplicateEmulator(EmulatorConfig(latency_median=0.2, latency_sigma=0.0)) as server:
        yield server


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    engines: list[Opened] = []

    async def open_engine(
        *slots: ProviderSlot, config: EngineConfig = CONFIG, clock: ShiftedClock | None = None
    ) -> Opened:
        db = await Database.open(tmp_path / "faults.db")
        notifier = RecordingNotifier()
        engine = JobEngine(
            jobs=JobRepo(db, LedgerRepo(db)),
            providers=list(slots),
            notifier=notifier,
            prices=PriceList(),
            config=config,
            planner=PollPlanner(0.02, 0.1, defaults={model: 0.3 for model in ModelId}),
            clock=clock,
        )
        engines.append(Opened(engine, db, notifier))
        return engines[-1]

    yield open_engine
    for one in engines:
        await one.engine.stop()
        await one.db.close()


def segmind_slot(session: aiohttp.ClientSession, emulator: SegmindEmulator, *, timeout: float = 5.0) -> ProviderSlot:
    adapter = SegmindProvider(session, api_key="SG_test", base_url=emulator.base_url, timeout=timeout)
    return ProviderSlot(adapter, ProviderGate(concurrency=4, rpm=None))


def replicate_slot(session: aiohttp.ClientSession, emulator: ReplicateEmulator) -> ProviderSlot:
    adapter = ReplicateProvider(session, api_key="r8_test", base_url=emulator.base_url, timeout=5.0)
    return ProviderSlot(adapter, ProviderGate(concurrency=4, rpm=None))


def order(request_id: str = "r1") -> JobOrder:
    spec = VaryOptions.parse(megapixels="0.25").resolve(IMAGE.source_size, seed=7)
    return JobOrder(request_id=request_id, guild_id=1, user_id=7, spec=spec, input_image=IMAGE)


async def settled(one: Opened, job: Job) -> Job:
    await one.engine.run_until_idle()
    done = await one.engine.jobs.get(job.id)
    assert done is not None
    return done


async def assert_refunded(one: Opened) -> None:
    balance = await one.engine.jobs.ledger.balance(1, 7)
    assert balance is not None and (balance.allowance, balance.held) == (20, 0)
    assert await one.engine.jobs.ledger.mismatches() == []


@pytest.mark.parametrize("fault", ["timeout", "reset"])
async def test_a_submit_with_an_unknown_outcome_is_not_resent_nor_failed_over(
    session,
    segmind,
    replicate,
    opened,
    caplog,
    fault: str,  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level(logging.INFO)
    one = await opened(segmind_slot(session, segmind, timeout=0.4), replicate_slot(session, replicate))
    await one.engine.start()
    await one.engine.submit(order("warm"))  # uploads the image, so only the submit below can fail
    await one.engine.run_until_idle()
    if fault == "timeout":
        segmind.delay_next(1.5, route="submit")
    else:
        segmind.reset_next(route="submit", after=True)
    job = await one.engine.submit(order())
    done = await settled(one, job)
    assert done.state is JobState.FAILED and done.charged == 0
    assert done.error == "The provider did not confirm that it received the job, so it was stopped."
    await one.engine.stop()
    await asyncio.wait_for(_until(lambda: len(segmind.jobs) == 2), 5)  # the slow one arrives after all
    assert segmind.counts["submit"] == 2  # the warm-up and this one, once
    assert replicate.counts["create"] == 0  # no failover either: that could bill twice
    assert BILLED in caplog.text
    assert await one.engine.jobs.ledger.mismatches() == []


async def test_a_clean_stop_lets_a_submit_in_flight_finish_and_the_job_resumes(
    session,
    segmind,
    opened,  # type: ignore[no-untyped-def]
) -> None:
    first = await opened(segmind_slot(session, segmind))
    segmind.delay_next(0.5, route="submit")
    job = await first.engine.submit(order())
    await first.engine.start()
    await asyncio.wait_for(_until(lambda: segmind.counts["upload"] == 1), 5)
    await asyncio.sleep(0.1)  # the submit is on the wire
    await first.engine.stop()  # SIGTERM: the answer is waited for and recorded
    stored = await first.engine.jobs.get(job.id)
    assert stored is not None and stored.state is JobState.SUBMITTED and stored.submitting_to is None
    await first.db.close()

    second = await opened(segmind_slot(session, segmind))
    await second.engine.start()
    done = await settled(second, job)
    assert done.state is JobState.SUCCEEDED and done.charged == done.cost
    assert segmind.counts["submit"] == 1
    await second.engine.stop()


async def test_a_process_killed_during_a_submit_fails_the_job_on_restart(
    session,
    segmind,
    opened,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    first = await opened(segmind_slot(session, segmind))
    segmind.delay_next(1.0, route="submit")
    job = await first.engine.submit(order())
    await first.engine.start()
    await asyncio.wait_for(_until(lambda: segmind.counts["upload"] == 1), 5)
    await asyncio.sleep(0.2)  # the submit is on the wire
    first.engine.config = replace(first.engine.config, stop_grace=0.0)  # a killed process waits for nothing
    await first.engine.stop()  # the process dies
    stored = await first.engine.jobs.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED and stored.submitting_to == "segmind"
    await first.db.close()

    second = await opened(segmind_slot(session, segmind))
    await second.engine.start()
    done = await settled(second, job)
    assert done.state is JobState.FAILED and done.charged == 0 and done.delivered
    assert second.notifier.failed_log == [(job.id, done.error)]
    await asyncio.wait_for(_until(lambda: len(segmind.jobs) == 1), 5)
    assert segmind.counts["submit"] == 1  # the provider got it once, and was not sent it again
    assert BILLED in caplog.text
    await assert_refunded(second)


async def test_refusals_are_retried_and_failed_over(session, segmind, replicate, opened) -> None:  # type: ignore[no-untyped-def]
    # A 429 and a documented-safe 5xx prove nothing was accepted: retried at the same provider.
    segmind.fail_next(429, route="submit", headers={"x-rate-limit-reset-at-utc": "1970-01-01T00:00:00Z"})
    segmind.fail_next(500, route="submit")
    one = await opened(segmind_slot(session, segmind))
    job = await one.engine.submit(order())
    await one.engine.start()
    done = await settled(one, job)
    assert done.state is JobState.SUCCEEDED and done.provider == "segmind" and done.attempts == 3
    assert done.submitting_to is None
    await one.engine.stop()
    await one.db.close()

    # A refused connection (nothing sent) fails over to the next provider.
    closed = SegmindEmulator(EmulatorConfig())
    await closed.start()
    unreachable = segmind_slot(session, closed)
    await closed.stop()
    other = await opened(unreachable, replicate_slot(session, replicate))
    job = await other.engine.submit(order("r2"))
    await other.engine.start()
    done = await settled(other, job)
    assert done.state is JobState.SUCCEEDED and done.provider == "replicate"


async def test_a_validation_refusal_fails_at_once(session, segmind, opened) -> None:  # type: ignore[no-untyped-def]
    segmind.fail_next(400, route="submit", body={"error": "num_outputs must be between 1 and 4"})
    one = await opened(segmind_slot(session, segmind))
    job = await one.engine.submit(order())
    await one.engine.start()
    done = await settled(one, job)
    assert done.state is JobState.FAILED and done.error == "The provider could not run this job."
    assert segmind.counts["submit"] == 1
    await assert_refunded(one)


async def test_an_accepted_job_is_polled_through_transient_errors(session, segmind, opened) -> None:  # type: ignore[no-untyped-def]
    segmind.fail_next(503, route="status", times=6)
    segmind.reset_next(route="status", times=2)
    segmind.fail_next(502, route="result", times=3)
    one = await opened(segmind_slot(session, segmind))
    job = await one.engine.submit(order())
    await one.engine.start()
    done = await settled(one, job)
    assert done.state is JobState.SUCCEEDED and done.charged == 1
    assert segmind.counts["submit"] == 1 and one.notifier.done_log == [(job.id, 1)]


async def test_the_deadline_counts_from_the_stored_submit_across_a_restart(
    session,
    opened,  # type: ignore[no-untyped-def]
) -> None:
    config = EmulatorConfig(latency_median=60.0, latency_sigma=0.0, queue_seconds=0.0)
    async with SegmindEmulator(config) as slow:
        deadline = replace(CONFIG, job_deadline=30.0)
        first = await opened(segmind_slot(session, slow), config=deadline)
        job = await first.engine.submit(order())
        await first.engine.start()
        await asyncio.wait_for(_until(lambda: slow.counts["status"] >= 1), 5)
        await first.engine.stop()
        await first.db.close()

        # Started again 31 s after the submit (by its clock): the deadline has passed, whatever this process
        # thinks. One last look, then the job expires at once instead of waiting another 30 s.
        second = await opened(segmind_slot(session, slow), config=deadline, clock=ShiftedClock(timedelta(seconds=31)))
        polls_before = slow.counts["status"]
        await second.engine.start()
        done = await asyncio.wait_for(settled(second, job), 10)
        assert done.state is JobState.EXPIRED and done.charged == 0
        assert done.error == "The job took longer than the time limit."
        assert slow.counts["status"] == polls_before + 1 and slow.counts["submit"] == 1


async def test_a_job_finished_during_the_downtime_is_delivered_past_its_deadline(
    session,
    segmind,
    opened,  # type: ignore[no-untyped-def]
) -> None:
    deadline = replace(CONFIG, job_deadline=30.0)
    first = await opened(segmind_slot(session, segmind), config=deadline)
    job = await first.engine.submit(order())
    await first.engine.start()
    await asyncio.wait_for(_until(lambda: segmind.counts["submit"] == 1), 5)
    await first.engine.stop()
    await first.db.close()
    await asyncio.wait_for(_until(lambda: all(j.state == "COMPLETED" for j in segmind.jobs.values())), 5)

    second = await opened(segmind_slot(session, segmind), config=deadline, clock=ShiftedClock(timedelta(seconds=40)))
    await second.engine.start()
    done = await settled(second, job)
    assert done.state is JobState.SUCCEEDED and second.notifier.done_log == [(job.id, 1)]


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - the emulator has no event to wait on
        await asyncio.sleep(0.01)
