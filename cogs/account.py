"""`/credits`, `/jobs`, `/cancel` and the status message's Cancel button.

The command tree has acknowledged each command before it runs; the button acknowledges its click itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Final, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.credits import plural
from bot.services import Services
from bot.ui import render
from bot.ui.fit import fit_choices
from bot.ui.replies import acknowledge, reply, reply_error
from bot.ui.views import CANCEL_TEMPLATE, result_button
from cogs.context import requester

log = logging.getLogger(__name__)

#: Autocomplete cannot be deferred and Discord drops an answer after 3 s: a slower read answers nothing.
AUTOCOMPLETE_SECONDS = 2.0

TEXT: Final = {
    "cancelled": "Cancelled job `{job}`; {credits} refunded.",
    "cancelled_for": "Cancelled job `{job}` of <@{author}>; their {credits} were refunded.",
}


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CANCEL_TEMPLATE):
    """✖️ Cancel on a status message, for the member who asked or a moderator; works after a restart."""

    def __init__(self, job_id: str) -> None:
        super().__init__(result_button("cancel", job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = cast(commands.Bot, interaction.client).get_cog(AccountCog.__cog_name__)
        if isinstance(cog, AccountCog):
            await cog.on_cancel(interaction, self.job_id)


class AccountCog(commands.Cog, name="Account"):
    """A member's credits and jobs."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(CancelButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(CancelButton)

    @app_commands.command(name="credits", description="Your credits: what you can spend, what is held, prices")
    @app_commands.describe(member="Another member (needs Manage Server)")
    async def credits(self, interaction: discord.Interaction[Any], member: discord.Member | None = None) -> None:
        target: discord.abc.User = member or interaction.user
        roles = frozenset(role.id for role in getattr(target, "roles", []))
        view = await self.services.generation.member_credits(requester(interaction), target.id, roles)
        await reply(interaction, embed=render.credits_embed(view, target.display_name))

    @app_commands.command(name="jobs", description="Your last 10 jobs")
    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        who = requester(interaction)
        jobs = await self.services.generation.recent_jobs(who.guild_id, who.user_id)
        await reply(interaction, render.jobs_text(jobs, who.guild_id))

    @app_commands.command(name="cancel", description="Cancel one of your queued or running jobs")
    @app_commands.describe(job="The job id (pick from the list)")
    async def cancel(self, interaction: discord.Interaction[Any], job: str) -> None:
        cancelled = await self.services.generation.cancel(requester(interaction), job)
        await reply(interaction, TEXT["cancelled"].format(job=cancelled.id, credits=plural(cancelled.cost, "credit")))

    async def on_cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """The status message's Cancel: refunds as `/cancel` does; the job's message then says it was cancelled.

        Buttons have no CommandTree.on_error, so errors are mapped here.
        """
        try:
            if not await acknowledge(interaction):
                return
            who = requester(interaction)
            cancelled = await self.services.generation.cancel(who, job_id, from_status=True)
            credits = plural(cancelled.cost, "credit")
            key = "cancelled" if cancelled.user_id == who.user_id else "cancelled_for"
            await reply(interaction, TEXT[key].format(job=cancelled.id, author=cancelled.user_id, credits=credits))
        except Exception as error:
            await reply_error(interaction, error)

    @cancel.autocomplete("job")
    async def cancel_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        try:
            async with asyncio.timeout(AUTOCOMPLETE_SECONDS):
                active = await self.services.generation.active_jobs(interaction.guild_id, interaction.user.id)
        except TimeoutError:
            log.info("cancel autocomplete gave up on a slow read")
            return []
        return fit_choices(
            app_commands.Choice(name=f"{job.id} · {job.state.value} · {render.what(job)}", value=job.id)
            for job in active
            if current.lower() in job.id
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AccountCog(bot, Services.of(bot)))
