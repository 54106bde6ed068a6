"""`/credits`, `/jobs` and `/cancel`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.credits import plural
from bot.core.errors import UserError
from bot.ui import render
from bot.ui.replies import reply
from bot.ui.views import requester

if TYPE_CHECKING:
    from bot.client import FluxcordBot


class AccountCog(commands.Cog, name="Account"):
    """A member's credits and jobs."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="credits", description="Your credits: what you can spend, what is held, prices")
    @app_commands.describe(member="Another member (needs Manage Server)")
    async def credits(self, interaction: discord.Interaction[Any], member: discord.Member | None = None) -> None:
        who = requester(interaction)
        target: discord.abc.User = member or interaction.user
        if target.id != interaction.user.id and not interaction.permissions.manage_guild:
            raise UserError("Viewing another member's credits needs the Manage Server permission.")
        roles = frozenset(role.id for role in getattr(target, "roles", []))
        view = await self.bot.services.generation.credits(who.guild_id, target.id, roles)
        await reply(interaction, embed=render.credits_embed(view, target.display_name))

    @app_commands.command(name="jobs", description="Your last 10 jobs")
    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        who = requester(interaction)
        jobs = await self.bot.services.generation.recent_jobs(who.guild_id, who.user_id)
        await reply(interaction, render.jobs_text(jobs, who.guild_id))

    @app_commands.command(name="cancel", description="Cancel one of your queued or running jobs")
    @app_commands.describe(job="The job id (pick from the list)")
    async def cancel(self, interaction: discord.Interaction[Any], job: str) -> None:
        await interaction.response.defer(ephemeral=True)
        cancelled = await self.bot.services.generation.cancel(requester(interaction), job)
        await reply(interaction, f"Cancelled job `{cancelled.id}`; {plural(cancelled.cost, 'credit')} refunded.")

    @cancel.autocomplete("job")
    async def cancel_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        active = await self.bot.services.generation.active_jobs(interaction.guild_id, interaction.user.id)
        return [
            app_commands.Choice(name=f"{job.id} · {job.state.value} · {render.what(job)}"[:100], value=job.id)
            for job in active
            if current.lower() in job.id
        ][:25]


async def setup(bot: FluxcordBot) -> None:
    await bot.add_cog(AccountCog(bot))
