"""The discord.py bot: loads the cogs, registers the persistent buttons, syncs commands when they change."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.ui.replies import FluxTree
from bot.ui.views import ResultButton

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.generate", "cogs.account", "cogs.admin")


class FluxcordBot(commands.Bot):
    """Wired by the composition root; `setup_hook` does async wiring only."""

    def __init__(self, services: Services, **options: Any) -> None:
        # Fluxcord never joins voice: the warnings about missing voice libraries would only confuse.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=FluxTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.services = services
        # The `sync` CLI logs in without running jobs and syncs by force instead.
        self.start_engine = True
        self.sync_on_start = True

    async def load_commands(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def setup_hook(self) -> None:
        await self.load_commands()
        self.add_dynamic_items(ResultButton)
        if self.sync_on_start:
            await self.sync_commands()
        if self.start_engine:
            await self.services.engine.start()

    def _sync_target(self) -> discord.Object | None:
        guild_id = self.services.settings.dev_guild_id
        if guild_id is None:
            return None
        guild = discord.Object(id=guild_id)
        self.tree.copy_global_to(guild=guild)
        return guild

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync the command set when it differs from the last one synced (a hash kept in the database)."""
        guild = self._sync_target()
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        key = f"commands:{guild.id if guild else 'global'}"
        if not force and await self.services.meta.get(key) == digest:
            log.info("commands unchanged; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        await self.services.meta.set(key, digest)
        log.info("synced %d commands %s", len(synced), f"to guild {guild.id}" if guild else "globally")
        return True

    async def close(self) -> None:
        await self.services.engine.stop()  # which also stops the status messages' pending edits
        await super().close()
