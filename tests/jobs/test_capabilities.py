"""Jobs that tune a field (Subtle/Strong's guidance) go only to providers whose model is declared to take it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.core.errors import UserError
from bot.core.jobs import JobState
from bot.core.pricing import PriceList
from bot.core.requests import DEFAULT_GUIDANCE, GenerationSpec, ModelId, VaryOptions
from bot.core.variants import TUNINGS, Strength
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.base import tunes
from bot.providers.eachlabs import EachlabsProvider
from bot.providers.onemin import OneMinProvider
from bot.providers.replicate import ReplicateProvider
from bot.providers.segmind import SegmindProvider
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from tests.jobs.fakes import FakeProvider, RecordingNotifier


@dataclass
class NoGuidanceProvider(FakeProvider):
    """Like 1min.ai: steps for every model, no guidance."""

    tunable: Mapping[ModelId, frozenset[str]] = field(
        default_factory=lambda: {model: frozenset({"steps"}) for model in ModelId}
    )


def dev_spec(guidance: float | None, steps: int | None = None) -> GenerationSpec:
    return VaryOptions.parse(model="dev", guidance=guidance, steps=steps, megapixels="0.25").resolve((64, 64), seed=5)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "f.db")
    yield database
    await database.close()


def engine_with(db: Database, *providers: FakeProvider) -> JobEngine:
    return JobEngine(
        jobs=JobRepo(db, LedgerRepo(db)),
        providers=[ProviderSlot(p, ProviderGate(concurrency=2, rpm=None)) for p in providers],
        notifier=RecordingNotifier(),
        prices=PriceList(),
        config=EngineConfig(retry_base_delay=0.01, poll_min_interval=0.01, poll_max_interval=0.02),
        planner=PollPlanner(0.01, 0.02, defaults={m: 0.05 for m in ModelId}),
    )


def test_tuned_fields_are_those_set_away_from_the_models_defaults() -> None:
    assert dev_spec(None).tuned_fields() == frozenset()
    assert dev_spec(DEFAULT_GUIDANCE).tuned_fields() == frozenset()
    assert dev_spec(4.5).tuned_fields() == {"guidance"}
    assert dev_spec(4.5, 36).tuned_fields() == {"guidance", "steps"}


def test_the_adapters_declare_what_their_vendors_document() -> None:
    subtle = dev_spec(TUNINGS[Strength.SUBTLE].guidance, TUNINGS[Strength.SUBTLE].steps)
    plain = dev_spec(None)
    assert tunes(SegmindProvider, subtle) and tunes(ReplicateProvider, subtle)
    # 1min.ai's Redux dev page lists no guidance: plain dev jobs go there, tuned ones do not.
    assert tunes(OneMinProvider, plain) and not tunes(OneMinProvider, subtle)
    assert ModelId.REDUX_DEV not in EachlabsProvider.models  # Redux schnell and schnell only


async def test_a_tuned_job_skips_a_preferred_provider_that_does_not_take_the_field(db: Database) -> None:
    partial, full = NoGuidanceProvider(name="partial"), FakeProvider(name="full")
    engine = engine_with(db, partial, full)
    spec = dev_spec(TUNINGS[Strength.STRONG].guidance, TUNINGS[Strength.STRONG].steps)
    plain = dev_spec(None)
    tuned = await engine.submit(JobOrder(request_id="t", guild_id=1, user_id=2, spec=spec))
    untouched = await engine.submit(JobOrder(request_id="u", guild_id=1, user_id=3, spec=plain))
    await engine.start()
    await engine.run_until_idle()
    await engine.stop()
    done = {job.id: job for job in [await engine.jobs.get(tuned.id), await engine.jobs.get(untouched.id)] if job}
    assert done[tuned.id].state is JobState.SUCCEEDED and done[tuned.id].provider == "full"
    assert done[untouched.id].provider == "partial"  # the operator's first choice still serves plain jobs
    assert [s.guidance for s, _ in full.submitted.values()] == [TUNINGS[Strength.STRONG].guidance]


async def test_with_no_provider_taking_the_field_the_job_is_refused_before_anything_is_held(db: Database) -> None:
    engine = engine_with(db, NoGuidanceProvider(name="partial"))
    spec = dev_spec(TUNINGS[Strength.SUBTLE].guidance)
    with pytest.raises(UserError):
        await engine.submit(JobOrder(request_id="t", guild_id=1, user_id=2, spec=spec))
    assert await engine.jobs.recent_for_member(1, 2) == []
    assert await LedgerRepo(db).balance(1, 2) is None
