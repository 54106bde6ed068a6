"""`Services`: everything the front ends need, built once by the composition root (bot/app.py)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.jobs.admin import AdminService
from bot.jobs.balances import BalanceBook
from bot.jobs.engine import JobEngine
from bot.jobs.gallery import GalleryService
from bot.jobs.moderation import ModerationService
from bot.jobs.modlog import ModLogService
from bot.jobs.preferences import PreferenceService
from bot.jobs.service import GenerationService
from bot.settings import Settings
from storage.db import Database
from storage.guilds import GuildRepo
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo
from storage.meta import MetaRepo


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the front ends need, built once."""

    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    ledger: LedgerRepo
    jobs: JobRepo
    meta: MetaRepo
    guilds: GuildRepo
    engine: JobEngine
    generation: GenerationService
    admin: AdminService
    balances: BalanceBook
    preferences: PreferenceService
    moderation: ModerationService
    gallery: GalleryService
    modlog: ModLogService

    @classmethod
    def of(cls, bot: object) -> Services:
        """The services a bot was built with; cogs reach them this way instead of importing the bot's class."""
        services = getattr(bot, "services", None)
        if not isinstance(services, cls):
            raise TypeError(f"{type(bot).__name__} carries no Services")
        return services
