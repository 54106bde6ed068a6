"""The discord.py bot: loads the cogs (which register their persistent buttons), syncs commands when they change."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.core.credits import plural
from bot.core.limits import NOT_SERVED
from bot.ui.replies import FluxTree, reply

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.generate",
    "cogs.variations",
    "cogs.gallery",
    "cogs.settings",
    "cogs.account",
    "cogs.admin",
    "cogs.moderation",
)
SCOPES = ("bot", "applications.commands")
#: what the bot needs to post a status message, edit it into the result and attach the images (117760)
PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, attach_files=True, read_message_history=True
)


def invite_url(application_id: int) -> str:
    """The link that adds the bot to a server with the scopes and permissions it needs."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)


class OperatorTree(FluxTree):
    """Every command passes the operator's allow-list first (FLUXCORD_ALLOWED_GUILDS)."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        bot = interaction.client
        if not isinstance(bot, FluxcordBot) or bot.serves(interaction.guild_id):
            return await super().interaction_check(interaction)
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        else:
            await reply(interaction, NOT_SERVED)
        return False


class FluxcordBot(commands.Bot):
    """Wired by the composition root; `setup_hook` does async wiring only."""

    def __init__(self, services: Services, **options: Any) -> None:
        # Fluxcord never joins voice: the warnings about missing voice libraries would only confuse.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=OperatorTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.services = services
        # The `sync` CLI logs in without running jobs and syncs by force instead.
        self.start_engine = True
        self.sync_on_start = True
        self._synced: str = "commands not synced"
        self._announced = False

    def serves(self, guild_id: int | None) -> bool:
        """Whether the operator lets this server use the bot (an empty allow-list lets every server)."""
        return self.services.jobs.guard.serves(guild_id)

    async def load_commands(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def setup_hook(self) -> None:
        await self.load_commands()
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
        where = f"in server {guild.id}" if guild else "globally"
        if not force and await self.services.meta.get(key) == digest:
            self._synced = f"commands unchanged {where}"
            log.debug("commands unchanged; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        await self.services.meta.set(key, digest)
        self._synced = f"{plural(len(synced), 'command')} synced {where}"
        log.debug("synced %d commands %s", len(synced), where)
        return True

    async def on_ready(self) -> None:
        """Say once who the bot is, where it is and how to invite it; warn about settings that cost the operator."""
        if self._announced or self.user is None:
            return
        self._announced = True
        guilds = self.guilds
        served = [g for g in guilds if self.serves(g.id)]
        where = plural(len(guilds), "server")
        if len(served) != len(guilds):
            where = f"{where} ({len(served)} served, FLUXCORD_ALLOWED_GUILDS)"
        invite = invite_url(self.application_id or self.user.id)
        log.info("Logged in as %s (id %s) on %s; %s; invite: %s", self.user, self.user.id, where, self._synced, invite)
        for guild in guilds:
            if not self.serves(guild.id):
                log.warning(
                    "server %s (id %s) is not in FLUXCORD_ALLOWED_GUILDS; commands there are refused", guild, guild.id
                )
        try:
            application = await self.application_info()
        except discord.HTTPException:
            return
        if application.bot_public:
            log.warning(
                "Public Bot is on: anyone with the invite link can add the bot and spend your provider credits; "
                "switch it off in the developer portal (Bot → Public Bot)"
            )

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if not self.serves(guild.id):
            log.warning(
                "added to server %s (id %s), which FLUXCORD_ALLOWED_GUILDS does not list; commands there are refused",
                guild,
                guild.id,
            )
        else:
            log.info("added to server %s (id %s)", guild, guild.id)

    async def close(self) -> None:
        await self.services.engine.stop()  # which also stops the status messages' pending edits
        await super().close()
