"""`/history`, `/show`, the ⭐ button and ⭐ reactions: stored results shown again, never a provider call.

The showcase post of a job is claimed in the database before it is made and recorded once made; a claim the
process left unrecorded is finished at the next start, after looking for the post in the channel, so each
result is showcased once across restarts and concurrent clicks.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.jobs import Job, StoredOutput
from bot.services import Services
from bot.ui import pages
from bot.ui.posts import post_result
from bot.ui.replies import acknowledge, reply, reply_error
from bot.ui.views import HISTORY_TEMPLATE, STAR_TEMPLATE, history_view, result_button
from cogs.context import requester
from storage.gallery import ShowcaseClaim

log = logging.getLogger(__name__)

STAR: Final = "⭐"
#: how far back in the showcase channel an interrupted post is looked for before it is made again
RECOVERY_HISTORY: Final = 50
TEXT: Final = {
    "shown": "Shown again: {url}",
}


class StarButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=STAR_TEMPLATE):
    """⭐ under a result: put it in the server's showcase; works after a restart."""

    def __init__(self, job_id: str) -> None:
        super().__init__(result_button("star", job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> StarButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = cast(commands.Bot, interaction.client).get_cog(GalleryCog.__cog_name__)
        if isinstance(cog, GalleryCog):
            await cog.on_star(interaction, self.job_id)


class HistoryButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=HISTORY_TEMPLATE):
    """◀ / ▶ under a `/history` page; shows the clicker's own results, so it needs no other check."""

    def __init__(self, page: int) -> None:
        super().__init__(discord.ui.Button(custom_id=f"fx:history:{page}"))
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> HistoryButton:
        return cls(int(match["page"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = cast(commands.Bot, interaction.client).get_cog(GalleryCog.__cog_name__)
        if isinstance(cog, GalleryCog):
            await cog.on_page(interaction, self.page)


class GalleryCog(commands.Cog, name="Gallery"):
    """A member's results, re-posts, and the showcase."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._recovered = False

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(StarButton, HistoryButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(StarButton, HistoryButton)

    # ------------------------------------------------------------------ /history

    @app_commands.command(name="history", description="Your results on this server, newest first")
    @app_commands.describe(page="Which page (8 results a page)")
    async def history(
        self, interaction: discord.Interaction[Any], page: app_commands.Range[int, 1, 10_000] = 1
    ) -> None:
        who = requester(interaction)
        shown = await self.services.gallery.history(who.guild_id, who.user_id, page)
        await reply(interaction, pages.history_text(shown, who.guild_id), view=history_view(shown.page, shown.pages))

    async def on_page(self, interaction: discord.Interaction[Any], page: int) -> None:
        """Turn a `/history` page in place."""
        try:
            who = requester(interaction)
            shown = await self.services.gallery.history(who.guild_id, who.user_id, page)
            view = history_view(shown.page, shown.pages)
            await interaction.response.edit_message(content=pages.history_text(shown, who.guild_id), view=view)
        except Exception as error:
            await reply_error(interaction, error)

    # ------------------------------------------------------------------ /show

    @app_commands.command(name="show", description="Post one of your results here again, with its buttons")
    @app_commands.describe(job="The job id (from /history or /jobs)")
    async def show(self, interaction: discord.Interaction[Any], job: app_commands.Range[str, 1, 40]) -> None:
        who = requester(interaction)
        found, outputs = await self.services.gallery.show(who, job)
        channel = self.bot.get_partial_messageable(interaction.channel_id or 0, guild_id=who.guild_id)
        message = await post_result(
            channel,
            found,
            outputs,
            pages.shown_content(found, who.user_id),
            upload_limit=interaction.filesize_limit,
            spoiler=await self.services.moderation.spoiler_for(who.guild_id, interaction.channel_id),
        )
        await self.services.gallery.shown(
            found, message_id=message.id, channel_id=message.channel.id, actor_id=who.user_id
        )
        url = pages.message_url(who.guild_id, message.channel.id, message.id)
        await reply(interaction, TEXT["shown"].format(url=url))

    # ------------------------------------------------------------------ showcase

    async def on_star(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        try:
            if not await acknowledge(interaction):
                return
            who = requester(interaction)
            claim, job, outputs = await self.services.gallery.claim_by_member(who, job_id)
            if claim.created:
                claim = await self._publish(claim, job, outputs, upload_limit=interaction.filesize_limit)
                key = "showcase_done"
            else:
                key = "showcase_already" if claim.message_id is not None else "showcase_pending"
            url = pages.message_url(job.guild_id, claim.channel_id, claim.message_id)
            await reply(interaction, pages.TEXT[key].format(job=job.id, url=url))
        except Exception as error:
            await reply_error(interaction, error)

    async def _publish(
        self,
        claim: ShowcaseClaim,
        job: Job,
        outputs: list[StoredOutput],
        *,
        upload_limit: int | None = None,
        look_first: bool = False,
    ) -> ShowcaseClaim:
        """Make the claimed post (after looking for it, when a previous process may have made it) and record it."""
        channel = self.bot.get_partial_messageable(claim.channel_id, guild_id=job.guild_id)
        content = pages.showcased_content(job)
        message_id = await self._already_posted(channel, job) if look_first else None
        if message_id is None:
            # Discord drops a repeated nonce from the same author for a few minutes: a retry right after a crash.
            message = await post_result(
                channel,
                job,
                outputs,
                content,
                upload_limit=upload_limit,
                showcased=True,
                nonce=f"sc-{job.id}",
                spoiler=await self.services.moderation.spoiler_for(job.guild_id, claim.channel_id),
            )
            message_id = message.id
        await self.services.gallery.posted(claim, message_id)
        log.info("job=%s showcased in channel %s", job.id, claim.channel_id)
        return ShowcaseClaim(claim.job_id, claim.channel_id, message_id, claim.created)

    async def _already_posted(self, channel: discord.PartialMessageable, job: Job) -> int | None:
        marker = f"job `{job.id}`"
        me = self.bot.user.id if self.bot.user else None
        async for message in channel.history(limit=RECOVERY_HISTORY):
            if message.author.id == me and marker in message.content:
                return message.id
        return None

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Finish the showcase posts a previous process claimed but did not record (once per process)."""
        if self._recovered:
            return
        self._recovered = True
        for claim, job, outputs in await self.services.gallery.unfinished():
            try:
                await self._publish(claim, job, outputs, look_first=True)
            except discord.HTTPException as exc:
                log.warning("job=%s showcase post could not be finished: %s", job.id, exc)

    async def _on_reaction(self, payload: discord.RawReactionActionEvent, *, add: bool) -> None:
        if str(payload.emoji) != STAR or payload.guild_id is None:
            return
        if self.bot.user is not None and payload.user_id == self.bot.user.id:
            return
        try:
            reached = await self.services.gallery.star(payload.guild_id, payload.message_id, payload.user_id, add=add)
            if reached is not None:
                await self._publish(*reached)
        except Exception:  # a reaction has nobody to answer; the log is where this goes
            log.warning("star reaction on message %s failed", payload.message_id, exc_info=True)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._on_reaction(payload, add=True)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._on_reaction(payload, add=False)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(GalleryCog(bot, Services.of(bot)))
