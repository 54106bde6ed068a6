"""`/vary`, `/imagine`, the "Vary with FLUX" message menu and the result buttons: thin adapters onto GenerationService.

The command tree has already acknowledged every command (bot/ui/replies.py) before these run.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.credits import plural
from bot.core.errors import InvalidRequestError
from bot.core.jobs import Job
from bot.core.requests import (
    MAX_COUNT,
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_QUALITY,
    MAX_SEED,
    ImagineOptions,
    OnOff,
    OutputFormat,
    VaryAspectRatio,
    VaryModel,
    VaryOptions,
)
from bot.core.sizes import AspectRatio, Megapixels
from bot.jobs.access import Action
from bot.jobs.service import Requester
from bot.services import Services
from bot.ui import render
from bot.ui.notifier import DiscordNotifier
from bot.ui.replies import acknowledge, reply, reply_error
from bot.ui.views import TEMPLATE, result_button
from cogs.context import requester

DESCRIPTIONS = {
    "count": f"How many images (1-{MAX_COUNT})",
    "megapixels": "Output size: 1 (about 1024×1024) or 0.25 (about 512×512)",
    "seed": "Seed for reproducible results (random if left out)",
    "output_format": "Image format",
    "quality": f"Compression quality 0-{MAX_QUALITY} (ignored for png)",
    "safety": "The provider's safety filter; off only in age-restricted channels where allowed",
}


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=TEMPLATE):
    """A click on a result button; works after a restart because the custom_id carries the action and job."""

    def __init__(self, action: str, job_id: str, n: int | None = None) -> None:
        super().__init__(result_button(action, job_id, n))
        self.action = action
        self.job_id = job_id
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ResultButton:
        # Parse only: exceptions here are swallowed by the library and the 3 s budget applies.
        n = match["n"]
        return cls(match["action"], match["job"], int(n) if n else None)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = cast(commands.Bot, interaction.client).get_cog(GenerateCog.__cog_name__)
        if isinstance(cog, GenerateCog):
            await cog.on_result_button(interaction, self.action, self.job_id, self.n)


class GenerateCog(commands.Cog, name="Generate"):
    """Image generation commands and the buttons under their results."""

    def __init__(self, bot: commands.Bot, services: Services, notifier: DiscordNotifier) -> None:
        self.bot = bot
        self.services = services
        self.notifier = notifier
        self.menu = app_commands.ContextMenu(name="Vary with FLUX", callback=self.vary_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(ResultButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ResultButton)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def _queued(self, interaction: discord.Interaction[Any], job: Job, sentence: str) -> None:
        self.notifier.learn_upload_limit(interaction.guild_id, interaction.filesize_limit)
        await self.notifier.announce(job)
        await reply(interaction, sentence)

    async def _download(self, interaction: discord.Interaction[Any], attachment: discord.Attachment) -> bytes:
        return await self.services.generation.fetch_input(
            attachment.url,
            size=attachment.size,
            content_type=attachment.content_type,
            upload_limit=interaction.filesize_limit,
        )

    async def _vary(
        self, interaction: discord.Interaction[Any], attachment: discord.Attachment, options: VaryOptions
    ) -> None:
        who = requester(interaction)
        service = self.services.generation
        policy = await service.admit(who, options)  # cheap refusals before the download
        data = await self._download(interaction, attachment)
        job = await service.vary(who, options, data, policy)
        await self._queued(interaction, job, _queued_sentence(job))

    @app_commands.command(name="vary", description="Vary an image with FLUX.1 Redux")
    @app_commands.rename(output_format="format")
    @app_commands.describe(
        image="The image to vary (PNG, JPEG, WebP or GIF)",
        model="schnell (fast, cheap) or dev (finer, 28 steps)",
        aspect_ratio="Output shape; auto picks the one nearest your image",
        steps="Denoising steps: schnell 1-4, dev 1-50",
        guidance="How closely to follow the image, 0-10 (dev only)",
        **DESCRIPTIONS,
    )
    async def vary(
        self,
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        model: VaryModel = "schnell",
        count: app_commands.Range[int, 1, MAX_COUNT] = 1,
        aspect_ratio: VaryAspectRatio = "auto",
        megapixels: Megapixels = "1",
        steps: app_commands.Range[int, 1, 50] | None = None,
        guidance: app_commands.Range[float, 0.0, MAX_GUIDANCE] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        output_format: OutputFormat = "webp",
        quality: app_commands.Range[int, 0, MAX_QUALITY] = 80,
        safety: OnOff = "on",
    ) -> None:
        options = VaryOptions.parse(
            model=model,
            count=count,
            aspect_ratio=aspect_ratio,
            megapixels=megapixels,
            steps=steps,
            guidance=guidance,
            seed=seed,
            output_format=output_format,
            quality=quality,
            safety=safety,
        )
        await self._vary(interaction, image, options)

    @app_commands.command(name="imagine", description="Generate images from a prompt with FLUX.1 schnell")
    @app_commands.rename(output_format="format")
    @app_commands.describe(
        prompt="What to draw", aspect_ratio="Output shape", steps="Denoising steps, 1-4", **DESCRIPTIONS
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        count: app_commands.Range[int, 1, MAX_COUNT] = 1,
        aspect_ratio: AspectRatio = "1:1",
        megapixels: Megapixels = "1",
        steps: app_commands.Range[int, 1, 4] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        output_format: OutputFormat = "webp",
        quality: app_commands.Range[int, 0, MAX_QUALITY] = 80,
        safety: OnOff = "on",
    ) -> None:
        options = ImagineOptions.parse(
            prompt=prompt,
            count=count,
            aspect_ratio=aspect_ratio,
            megapixels=megapixels,
            steps=steps,
            seed=seed,
            output_format=output_format,
            quality=quality,
            safety=safety,
        )
        job = await self.services.generation.imagine(requester(interaction), options)
        await self._queued(interaction, job, _queued_sentence(job))

    async def vary_message(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """The message menu: the first image attached to the message, with the default options."""
        attachment = next(
            (a for a in message.attachments if (a.content_type or "").startswith("image/") or a.width), None
        )
        if attachment is None:
            raise InvalidRequestError("That message has no image attached; pick a message with an image.")
        await self._vary(interaction, attachment, VaryOptions.parse())

    # ------------------------------------------------------------------ result buttons

    async def on_result_button(
        self, interaction: discord.Interaction[Any], action: str, job_id: str, n: int | None
    ) -> None:
        """🔁, V1…V4, ℹ️ and 🗑️; buttons have no CommandTree.on_error, so errors are mapped here."""
        try:
            if not await acknowledge(interaction):
                return
            who = requester(interaction)
            service = self.services.generation
            if action == "info":
                job = await service.job_for(who, Action.INFO, job_id)
                await reply(interaction, embed=render.info_embed(job))
            elif action == "delete":
                await self._delete(interaction, who, job_id)
            elif action == "reroll":
                job = await service.reroll(who, job_id)
                await self._queued(interaction, job, f"Re-rolling as job `{job.id}` for {plural(job.cost, 'credit')}.")
            else:
                assert n is not None
                job = await service.variation(who, job_id, n)
                await self._queued(
                    interaction, job, f"Varying image {n} as job `{job.id}` for {plural(job.cost, 'credit')}."
                )
        except Exception as error:
            await reply_error(interaction, error)

    async def _delete(self, interaction: discord.Interaction[Any], who: Requester, job_id: str) -> None:
        """Delete the clicked result; the owner checked is the owner of the job that message shows."""
        message = interaction.message
        await self.services.generation.job_for(
            who, Action.DELETE, job_id, message_id=message.id if message is not None else None
        )
        if message is not None:
            with contextlib.suppress(discord.NotFound):  # already gone is what was asked for
                await message.delete()
        await reply(interaction, "Deleted.")


def _queued_sentence(job: Job) -> str:
    return f"Queued job `{job.id}` for {plural(job.cost, 'credit')}; the result will appear in this channel."


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(GenerateCog(bot, Services.of(bot), getattr(bot, "notifier")))  # noqa: B009
