"""The mod-log's 🗑️ Delete and refund, and the entries a stopped process claimed but never posted.

`/fluxadmin modlog` and `/fluxadmin spoilers` live with the other server settings in the admin cog.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final, cast

import discord
from discord.ext import commands

from bot.core.credits import plural
from bot.jobs.modlog import Refund
from bot.services import Services
from bot.ui.modlog import entry_content
from bot.ui.notifier import NO_PINGS
from bot.ui.replies import acknowledge, reply, reply_error
from bot.ui.views import REFUND_TEMPLATE, result_button
from cogs.context import requester

log = logging.getLogger(__name__)

TEXT: Final = {
    "refunded": "Deleted job `{job}` of <@{author}> and refunded their {credits}.",
    "refunded_before": "Deleted job `{job}` of <@{author}>; its {credits} had been refunded already.",
    "refunded_nothing": "Deleted job `{job}` of <@{author}>; nothing had been charged.",
}


class RefundButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=REFUND_TEMPLATE):
    """🗑️ Delete and refund under a mod-log entry, for moderators; works after a restart."""

    def __init__(self, job_id: str) -> None:
        super().__init__(result_button("refund", job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RefundButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = cast(commands.Bot, interaction.client).get_cog(ModerationCog.__cog_name__)
        if isinstance(cog, ModerationCog):
            await cog.on_refund(interaction, self.job_id)


class ModerationCog(commands.Cog, name="Moderation"):
    """What moderators do from the mod-log."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._recovered = False

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(RefundButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(RefundButton)

    async def on_refund(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Refund what the job was charged (once), delete its result and re-posts, and say so in the mod-log.

        Every step may be repeated: a click after an interrupted one finishes what is left.
        """
        try:
            if not await acknowledge(interaction):
                return
            who = requester(interaction)
            refund = await self.services.modlog.refund(who, job_id)
            for channel_id, message_id in refund.messages:
                await self._delete(refund, channel_id, message_id)
            if refund.entry is not None and refund.entry.message_id is not None:
                await self._say_in_log(refund, who.user_id)
            key = "refunded_nothing" if not refund.amount else "refunded_before" if refund.again else "refunded"
            job = refund.job
            await reply(
                interaction,
                TEXT[key].format(job=job.id, author=job.user_id, credits=plural(refund.amount, "credit")),
            )
        except Exception as error:
            await reply_error(interaction, error)

    async def _delete(self, refund: Refund, channel_id: int, message_id: int) -> None:
        channel = self.bot.get_partial_messageable(channel_id, guild_id=refund.job.guild_id)
        try:
            await channel.get_partial_message(message_id).delete()
        except discord.NotFound:
            pass  # already gone is what was asked for
        except discord.HTTPException as exc:
            log.warning("job=%s message %s could not be deleted: %s", refund.job.id, message_id, exc)

    async def _say_in_log(self, refund: Refund, moderator: int) -> None:
        """The entry says who deleted the job and what was refunded; its button goes."""
        entry = refund.entry
        assert entry is not None and entry.message_id is not None
        channel = self.bot.get_partial_messageable(entry.channel_id, guild_id=entry.guild_id)
        content = entry_content(refund.job, refund, moderator=moderator)
        try:
            await channel.get_partial_message(entry.message_id).edit(
                content=content, view=None, allowed_mentions=NO_PINGS
            )
        except discord.HTTPException as exc:
            log.warning("job=%s mod-log entry could not be updated: %s", refund.job.id, exc)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Post the mod-log entries a previous process claimed but did not post (once per process)."""
        if self._recovered:
            return
        self._recovered = True
        try:
            posted = await self.services.modlog.recover()
        except Exception:  # the database is unavailable, say: the next start tries again
            log.warning("unposted mod-log entries could not be looked at", exc_info=True)
            return
        if posted:
            log.info("posted %d mod-log entries left by the previous run", posted)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ModerationCog(bot, Services.of(bot)))
