"""A member's `seed:0` reproduces: the cog picks its own seed for 0, and the job records the one it used."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.core.images import normalize_input
from bot.core.jobs import JobState
from bot.core.pricing import PriceList
from bot.core.requests import ModelId, VaryOptions
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.replicate import ReplicateProvider
from emulators.common import EmulatorConfig
from emulators.replicate import ReplicateEmulator
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from tests.conftest import make_png
from tests.jobs.fakes import RecordingNotifier


async def test_seed_zero_is_stored_as_the_seed_the_model_used(tmp_path: Path) -> None:
    image = normalize_input(make_png(320, 200))
    spec = VaryOptions.parse(megapixels="0.25", seed=0).resolve(image.source_size)
    db = await Database.open(tmp_path / "seeds.db")
    async with (
        ReplicateEmulator(EmulatorConfig(latency_median=0.2, latency_sigma=0.0)) as emulator,
        aiohttp.ClientSession() as http,
    ):
        engine = JobEngine(
            jobs=JobRepo(db, LedgerRepo(db)),
            providers=[
                ProviderSlot(
                    ReplicateProvider(http, api_key="r8_test", base_url=emulator.base_url),
                    ProviderGate(concurrency=2, rpm=None),
                )
            ],
            notifier=RecordingNotifier(),
            prices=PriceList(),
            config=EngineConfig(poll_min_interval=0.02, poll_max_interval=0.1),
            planner=PollPlanner(0.02, 0.1, defaults={model: 0.2 for model in ModelId}),
        )
        try:
            job = await engine.submit(JobOrder("r1", 1, 7, spec, input_image=image))
            await engine.start()
            await engine.run_until_idle()
            done = await engine.jobs.get(job.id)
            used = next(iter(emulator.predictions.values())).seed
            assert spec.seed == 0 and used != 0
            assert done is not None and done.state is JobState.SUCCEEDED and done.spec.seed == used
        finally:
            await engine.stop()
            await db.close()
