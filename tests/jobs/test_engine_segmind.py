"""The engine with the real Segmind adapter against the emulator, on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.core.images import normalize_input
from bot.core.jobs import JobState
from bot.core.pricing import PriceList
from bot.core.requests import ModelId, VaryOptions
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
from tests.conftest import make_png
from tests.jobs.fakes import RecordingNotifier

CONFIG = EngineConfig(retry_base_delay=0.01, retry_max_delay=0.05, poll_min_interval=0.02, poll_max_interval=0.05)


@pytest.fixture
async def emulator() -> AsyncIterator[SegmindEmulator]:
    async with SegmindEmulator(EmulatorConfig(latency_median=0.4, latency_sigma=0.0, queue_seconds=0.05)) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def open_engine(
    path: Path, session: aiohttp.ClientSession, emulator: SegmindEmulator, notifier: RecordingNotifier
) -> tuple[JobEngine, Database]:
    db = await Database.open(path)
    ledger = LedgerRepo(db)
    engine = JobEngine(
        jobs=JobRepo(db, ledger),
        providers=[
            ProviderSlot(
                SegmindProvider(session, api_key="SG_test", base_url=emulator.base_url),
                ProviderGate(concurrency=4, rpm=None),
            )
        ],
        notifier=notifier,
        prices=PriceList(),
        config=CONFIG,
        planner=PollPlanner(0.02, 0.05, defaults={model: 0.3 for model in ModelId}),
    )
    return engine, db


def vary_order(request_id: str, count: int = 2) -> JobOrder:
    image = normalize_input(make_png(320, 200))
    spec = VaryOptions.parse(count=count, aspect_ratio="auto", megapixels="0.25").resolve(image.source_size)
    return JobOrder(request_id=request_id, guild_id=1, user_id=7, spec=spec, input_image=image)


async def test_a_vary_job_runs_through_segmind(tmp_path: Path, session, emulator) -> None:  # type: ignore[no-untyped-def]
    notifier = RecordingNotifier()
    engine, db = await open_engine(tmp_path / "f.db", session, emulator, notifier)
    try:
        job = await engine.submit(vary_order("r1", count=4))
        assert job.spec.aspect_ratio == "3:2"  # 320×200 is nearest 3:2
        await engine.start()
        await engine.run_until_idle()
        done = await engine.jobs.get(job.id)
        assert done is not None and done.state is JobState.SUCCEEDED and done.charged == 4
        outputs = await engine.jobs.outputs(job.id)
        assert [(o.width, o.height, o.format) for o in outputs] == [(608, 416, "webp")] * 4
        assert notifier.done_log == [(job.id, 4)]
        # Polls go to the status URL; the response URL is read once, after COMPLETED.
        assert emulator.counts["submit"] == 1 and emulator.counts["status"] >= 1
        assert emulator.counts["result"] == 1
    finally:
        await engine.stop()
        await db.close()


async def test_recovery_resumes_a_submitted_job_and_settles_it_once(
    tmp_path: Path,
    session,
    emulator,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "f.db"
    first_notifier = RecordingNotifier()
    engine, db = await open_engine(path, session, emulator, first_notifier)
    job = await engine.submit(vary_order("r1"))
    await engine.start()
    while (current := await engine.jobs.get(job.id)) is None or current.state is JobState.QUEUED:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert current.state is JobState.SUBMITTED
    await engine.stop()  # the process dies with the job at the provider
    await db.close()
    assert first_notifier.done_log == []

    notifier = RecordingNotifier()
    engine, db = await open_engine(path, session, emulator, notifier)
    try:
        await engine.start()
        await engine.run_until_idle()
        done = await engine.jobs.get(job.id)
        assert done is not None and done.state is JobState.SUCCEEDED and done.delivered
        assert notifier.done_log == [(job.id, 2)]
        assert emulator.counts["submit"] == 1  # resumed by its provider id, not submitted again
        kinds = [entry.kind for entry in await engine.jobs.ledger.entries(1, 7)]
        assert kinds.count("hold") == 1 and kinds.count("capture") == 1 and "release" not in kinds
        assert await engine.jobs.ledger.mismatches() == []
        # A third start finds nothing to do: the result is not posted again.
        await engine.stop()
        engine.notifier = notifier
        await engine.start()
        await engine.run_until_idle()
        assert notifier.done_log == [(job.id, 2)]
    finally:
        await engine.stop()
        await db.close()


async def test_recovery_delivers_a_finished_but_undelivered_result_once(
    tmp_path: Path,
    session,
    emulator,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "f.db"
    broken = RecordingNotifier(fail_deliveries=100)
    engine, db = await open_engine(path, session, emulator, broken)
    job = await engine.submit(vary_order("r1"))
    await engine.start()
    await engine.run_until_idle()
    await engine.stop()
    await db.close()
    assert broken.done_log == []

    notifier = RecordingNotifier()
    engine, db = await open_engine(path, session, emulator, notifier)
    try:
        await engine.start()
        await engine.run_until_idle()
        assert notifier.done_log == [(job.id, 2)]
        assert emulator.counts["submit"] == 1
        done = await engine.jobs.get(job.id)
        assert done is not None and done.delivered and done.charged == 2
    finally:
        await engine.stop()
        await db.close()


async def test_a_queued_job_is_requeued_after_a_restart(tmp_path: Path, session, emulator) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "f.db"
    engine, db = await open_engine(path, session, emulator, RecordingNotifier())
    job = await engine.submit(vary_order("r1"))  # never started
    await db.close()
    notifier = RecordingNotifier()
    engine, db = await open_engine(path, session, emulator, notifier)
    try:
        await engine.start()
        await engine.run_until_idle()
        assert notifier.done_log == [(job.id, 2)]
    finally:
        await engine.stop()
        await db.close()
