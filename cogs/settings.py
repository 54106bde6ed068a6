"""`/settings`: a member's own defaults on this server, used whenever they leave an option out."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.requests import MAX_COUNT, OutputFormat, VaryAspectRatio, VaryModel
from bot.core.sizes import Megapixels
from bot.services import Services
from bot.ui import pages
from bot.ui.replies import reply
from cogs.context import requester


class SettingsCog(commands.Cog, name="Settings"):
    """A member's defaults."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

    @app_commands.command(
        name="settings", description="Your defaults for /vary and /imagine (leave all out to see them)"
    )
    @app_commands.rename(output_format="format")
    @app_commands.describe(
        model="/vary model when you leave it out",
        count="How many images when you leave it out",
        aspect_ratio="Shape when you leave it out (auto applies to /vary only)",
        output_format="Image format when you leave it out",
        megapixels="Output size when you leave it out",
        reset="Clear your defaults first (the options given here are then your only ones)",
    )
    async def settings(
        self,
        interaction: discord.Interaction[Any],
        model: VaryModel | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        aspect_ratio: VaryAspectRatio | None = None,
        output_format: OutputFormat | None = None,
        megapixels: Megapixels | None = None,
        reset: bool = False,
    ) -> None:
        who = requester(interaction)
        changes = {
            "model": model,
            "count": count,
            "aspect_ratio": aspect_ratio,
            "output_format": output_format,
            "megapixels": megapixels,
        }
        preferences = self.services.preferences
        if reset or any(value is not None for value in changes.values()):
            current = await preferences.change_defaults(who.guild_id, who.user_id, changes, reset=reset)
        else:
            current = await preferences.defaults(who.guild_id, who.user_id)
        await reply(interaction, pages.settings_text(current))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(SettingsCog(bot, Services.of(bot)))
