"""`/credits`, `/jobs` and `/cancel`; the command tree has acknowledged each before it runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.credits import plural
from bot.services import Services
from bot.ui import render
from bot.ui.fit import fit_choices
from bot.ui.replies import reply
from cogs.context import requester

log = logging.getLogger(__name__)

#: Autocomplete cannot be deferred and Discord drops an answer after 3 s: a slower read answers nothing.
AUTOCOMPLETE_SECONDS = 2.0


class AccountCog(commands.Cog, name="Account"):
    """A member's credits and jobs."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

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
        await reply(interaction, f"Cancelled job `{cancelled.id}`; {plural(cancelled.cost, 'credit')} refunded.")

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
