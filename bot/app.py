"""Composition root: settings → storage → HTTP session → providers → engine (→ Discord client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from bot.jobs.engine import EngineConfig, JobEngine, ProviderSlot
from bot.jobs.gate import ProviderGate
from bot.jobs.notifier import JobNotifier
from bot.providers.segmind import SegmindProvider
from bot.settings import Settings
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the front ends need, built once."""

    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    ledger: LedgerRepo
    jobs: JobRepo
    engine: JobEngine


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        daily_allowance=settings.daily_allowance,
        max_attempts=settings.max_attempts,
        retry_base_delay=settings.retry_base_delay,
        retry_max_delay=settings.retry_max_delay,
        job_deadline=settings.job_deadline,
        poll_min_interval=settings.poll_min_interval,
        poll_max_interval=settings.poll_max_interval,
        output_max_pixels=int(settings.max_input_megapixels * 1_000_000),
    )


def build_providers(settings: Settings, http: aiohttp.ClientSession) -> list[ProviderSlot]:
    """One slot per configured provider with a key, in the operator's order."""
    slots: list[ProviderSlot] = []
    for name in settings.providers:
        key = settings.provider_key(name)
        if not key:
            continue
        if name == "segmind":
            provider = SegmindProvider(
                http,
                api_key=key,
                base_url=settings.segmind_base_url,
                timeout=settings.request_timeout,
                max_output_bytes=settings.max_output_bytes,
            )
            gate = ProviderGate(concurrency=settings.segmind_concurrency, rpm=settings.segmind_rpm)
            slots.append(ProviderSlot(provider, gate))
    return slots


@asynccontextmanager
async def open_services(settings: Settings, *, notifier: JobNotifier) -> AsyncIterator[Services]:
    """Open the database and HTTP session, build providers and the engine; close all on exit."""
    db = await Database.open(settings.database)
    try:
        async with aiohttp.ClientSession() as http:
            ledger = LedgerRepo(db)
            jobs = JobRepo(db, ledger)
            engine = JobEngine(
                jobs=jobs,
                providers=build_providers(settings, http),
                notifier=notifier,
                prices=settings.prices,
                config=engine_config(settings),
            )
            try:
                yield Services(settings=settings, db=db, http=http, ledger=ledger, jobs=jobs, engine=engine)
            finally:
                await engine.stop()
    finally:
        await db.close()
