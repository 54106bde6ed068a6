"""Composition root: settings → storage → HTTP session → providers → engine (→ Discord client)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.core.jobs import SystemClock
from bot.jobs.admin import AdminService
from bot.jobs.balances import BalanceBook
from bot.jobs.downloads import AttachmentFetcher
from bot.jobs.engine import EngineConfig, JobEngine
from bot.jobs.gallery import GalleryService
from bot.jobs.gate import ProviderGate
from bot.jobs.moderation import ModerationService
from bot.jobs.modlog import ModLogService, ModLogWriter
from bot.jobs.notifier import JobNotifier
from bot.jobs.pool import ProviderSlot
from bot.jobs.preferences import PreferenceService
from bot.jobs.service import GenerationService
from bot.jobs.timing import PollPlanner
from bot.providers.base import Provider
from bot.providers.eachlabs import EachlabsProvider
from bot.providers.onemin import OneMinProvider
from bot.providers.replicate import ReplicateProvider
from bot.providers.segmind import SegmindProvider
from bot.redact import install as install_redaction
from bot.services import Services
from bot.settings import KNOWN_PROVIDERS, Settings
from storage.db import Database
from storage.gallery import GalleryRepo
from storage.guilds import GuildRepo
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from storage.meta import MetaRepo
from storage.moderation import BlocklistRepo, SpoilerRepo
from storage.modlog import ModLogRepo
from storage.preferences import PreferenceRepo

if TYPE_CHECKING:
    from bot.client import FluxcordBot


def protect_secrets(settings: Settings) -> None:
    """Mask the Discord token and every provider key in every log line from now on (any logger, any handler)."""
    token = settings.discord_token.get_secret_value() if settings.discord_token else None
    install_redaction([token, *(settings.provider_key(name) for name in KNOWN_PROVIDERS)])


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
        limits=settings.operator_policy.defaults,
    )


def build_provider(name: str, settings: Settings, http: aiohttp.ClientSession, key: str) -> Provider:
    cap, timeout = settings.max_output_bytes, settings.request_timeout
    if name == "segmind":
        return SegmindProvider(
            http,
            api_key=key,
            base_url=settings.segmind_base_url,
            timeout=timeout,
            max_output_bytes=cap,
            upload_url=settings.segmind_upload_url or None,
            image_input=settings.segmind_image_input,
        )
    if name == "replicate":
        return ReplicateProvider(
            http,
            api_key=key,
            base_url=settings.replicate_base_url,
            timeout=timeout,
            max_output_bytes=cap,
            wait_seconds=settings.replicate_wait_seconds,
        )
    if name == "eachlabs":
        return EachlabsProvider(
            http, api_key=key, base_url=settings.eachlabs_base_url, timeout=timeout, max_output_bytes=cap
        )
    if name == "onemin":
        # One blocking call renders the images: it needs far longer than a status request.
        return OneMinProvider(
            http,
            api_key=key,
            base_url=settings.onemin_base_url,
            asset_base_url=settings.onemin_asset_base_url,
            timeout=max(120.0, timeout),
            max_output_bytes=cap,
        )
    raise ValueError(f"unknown provider {name!r}")


def build_providers(settings: Settings, http: aiohttp.ClientSession) -> list[ProviderSlot]:
    """One slot per configured provider with a key, in the operator's order."""
    slots: list[ProviderSlot] = []
    for name in settings.providers:
        key = settings.provider_key(name)
        if not key:
            continue
        gate = ProviderGate(concurrency=getattr(settings, f"{name}_concurrency"), rpm=getattr(settings, f"{name}_rpm"))
        slots.append(ProviderSlot(build_provider(name, settings, http, key), gate))
    return slots


@asynccontextmanager
async def open_services(
    settings: Settings, *, notifier: JobNotifier, modlog_writer: ModLogWriter | None = None
) -> AsyncIterator[Services]:
    """Open the database and HTTP session, build providers and the engine; close all on exit.

    Without a `modlog_writer` (the command line) nothing is logged in mod-log channels.
    """
    protect_secrets(settings)
    db = await Database.open(settings.database)
    try:
        async with aiohttp.ClientSession() as http:
            ledger = LedgerRepo(db)
            jobs = JobRepo(db, ledger, settings.operator_guard)
            meta = MetaRepo(db)
            clock = SystemClock()
            balances = BalanceBook(meta, thresholds=settings.low_balances, clock=clock)
            gallery = GalleryRepo(db)
            modlog = ModLogService(
                ModLogRepo(db), jobs=jobs, ledger=ledger, gallery=gallery, clock=clock, writer=modlog_writer
            )
            engine = JobEngine(
                jobs=jobs,
                providers=build_providers(settings, http),
                notifier=notifier,
                prices=settings.prices,
                config=engine_config(settings),
                planner=PollPlanner(
                    settings.poll_min_interval, settings.poll_max_interval, defaults=dict(settings.expected_seconds)
                ),
                clock=clock,
                balances=balances,
                hooks=modlog if modlog_writer is not None else None,
            )
            guilds = GuildRepo(db)
            moderation = ModerationService(BlocklistRepo(db), clock=clock, spoilers=SpoilerRepo(db))
            generation = GenerationService(
                engine=engine,
                jobs=jobs,
                ledger=ledger,
                guilds=guilds,
                operator=settings.operator_policy,
                fetcher=AttachmentFetcher(http, origins=settings.attachment_origins, timeout=settings.request_timeout),
                max_input_bytes=settings.max_input_bytes,
                max_input_pixels=int(settings.max_input_megapixels * 1_000_000),
                moderation=moderation,
                gallery=gallery,
            )
            try:
                yield Services(
                    settings=settings,
                    db=db,
                    http=http,
                    ledger=ledger,
                    jobs=jobs,
                    meta=meta,
                    guilds=guilds,
                    engine=engine,
                    generation=generation,
                    admin=AdminService(
                        ledger=ledger,
                        guilds=guilds,
                        operator=settings.operator_policy,
                        clock=engine.clock,
                        providers=tuple(slot.provider.name for slot in engine.pool.slots),
                        balances=balances,
                    ),
                    balances=balances,
                    preferences=PreferenceService(PreferenceRepo(db), clock=clock),
                    moderation=moderation,
                    gallery=GalleryService(jobs=jobs, gallery=gallery, clock=clock),
                    modlog=modlog,
                )
            finally:
                await engine.stop()
    finally:
        await db.close()


def point_discord_at(settings: Settings) -> None:
    """Send REST and gateway traffic to another Discord (a proxy or an emulator); must run before login."""
    import discord.gateway
    import discord.http
    import yarl

    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


@asynccontextmanager
async def open_bot(settings: Settings, **bot_options: Any) -> AsyncIterator[FluxcordBot]:
    """Services plus the Discord client wired to them; the caller logs in or starts it."""
    from bot.client import FluxcordBot
    from bot.ui.modlog import DiscordModLog
    from bot.ui.notifier import DiscordNotifier

    point_discord_at(settings)
    notifier = DiscordNotifier(edit_interval=settings.status_edit_interval)
    async with open_services(settings, notifier=notifier, modlog_writer=DiscordModLog(notifier)) as services:
        # The notifier reads Discord's rate-limit headers off the client's own requests to pace itself.
        bot = FluxcordBot(services, http_trace=notifier.watch.trace_config(), **bot_options)
        notifier.connect(bot)
        async with bot:
            yield bot


async def run_bot(settings: Settings) -> None:
    """Run until the process is told to stop; SIGTERM (docker stop) closes cleanly."""
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    async with open_bot(settings) as bot:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        closing: list[asyncio.Future[None]] = []

        def stop() -> None:
            stopping.set()
            closing.append(asyncio.ensure_future(bot.close()))

        for signame in ("SIGTERM", "SIGINT"):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(getattr(signal, signame), stop)
        try:
            await bot.start(token)
        except AttributeError:
            # discord.py 2.7 trips over its missing websocket when the first gateway connection never
            # opened: when it retries (the gateway is unreachable) and when it is closed meanwhile.
            if stopping.is_set():
                return
            if bot.ws is None:
                raise GatewayUnreachableError(str(discord_gateway())) from None
            raise
        except Exception:
            if not stopping.is_set():
                raise


class GatewayUnreachableError(ConnectionError):
    """Discord's REST API answered but its gateway (the websocket events arrive on) could not be reached."""

    def __init__(self, url: str) -> None:
        super().__init__(f"could not reach the gateway {url}")
        self.url = url


def discord_gateway() -> object:
    import discord.gateway

    return discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
