"""`/vary`, `/imagine` and the "Vary with FLUX" message menu: thin adapters onto GenerationService."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.credits import plural
from bot.core.errors import InvalidRequestError
from bot.core.jobs import Job
from bot.core.requests import MAX_PROMPT_CHARS, MAX_SEED, ImagineOptions, VaryOptions
from bot.ui.replies import reply, reply_error
from bot.ui.views import requester

if TYPE_CHECKING:
    from bot.client import FluxcordBot

AspectRatio = Literal["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
VaryAspectRatio = Literal["auto", "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
Megapixels = Literal["1", "0.25"]
Format = Literal["webp", "jpg", "png"]
OnOff = Literal["on", "off"]

DESCRIPTIONS = {
    "count": "How many images (1-4)",
    "megapixels": "Output size: 1 (about 1024×1024) or 0.25 (about 512×512)",
    "seed": "Seed for reproducible results (random if left out)",
    "output_format": "Image format",
    "quality": "Compression quality 0-100 (ignored for png)",
    "safety": "The provider's safety filter; off only in age-restricted channels where allowed",
}


class GenerateCog(commands.Cog, name="Generate"):
    """Image generation commands."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Vary with FLUX", callback=self.vary_message)
        self.menu.on_error = self._menu_error

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def _menu_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError) -> None:
        await reply_error(interaction, error)

    async def _queued(self, interaction: discord.Interaction[Any], job: Job) -> None:
        await reply(
            interaction,
            f"Queued job `{job.id}` for {plural(job.cost, 'credit')}; the result will appear in this channel.",
        )

    async def _download(self, interaction: discord.Interaction[Any], attachment: discord.Attachment) -> bytes:
        self.bot.services.generation.check_attachment(
            size=attachment.size, content_type=attachment.content_type, upload_limit=interaction.filesize_limit
        )
        try:
            return await attachment.read()
        except discord.HTTPException:
            raise InvalidRequestError("The attachment could not be downloaded; please attach it again.") from None

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
        model: Literal["schnell", "dev"] = "schnell",
        count: app_commands.Range[int, 1, 4] = 1,
        aspect_ratio: VaryAspectRatio = "auto",
        megapixels: Megapixels = "1",
        steps: app_commands.Range[int, 1, 50] | None = None,
        guidance: app_commands.Range[float, 0.0, 10.0] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        output_format: Format = "webp",
        quality: app_commands.Range[int, 0, 100] = 80,
        safety: OnOff = "on",
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
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
        who = requester(interaction)
        service = self.bot.services.generation
        policy = await service.admit(who, options)  # cheap refusals before the download
        data = await self._download(interaction, image)
        job = await service.vary(who, options, data, policy)
        await self._queued(interaction, job)

    @app_commands.command(name="imagine", description="Generate images from a prompt with FLUX.1 schnell")
    @app_commands.rename(output_format="format")
    @app_commands.describe(
        prompt="What to draw", aspect_ratio="Output shape", steps="Denoising steps, 1-4", **DESCRIPTIONS
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        count: app_commands.Range[int, 1, 4] = 1,
        aspect_ratio: AspectRatio = "1:1",
        megapixels: Megapixels = "1",
        steps: app_commands.Range[int, 1, 4] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        output_format: Format = "webp",
        quality: app_commands.Range[int, 0, 100] = 80,
        safety: OnOff = "on",
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
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
        job = await self.bot.services.generation.imagine(requester(interaction), options)
        await self._queued(interaction, job)

    async def vary_message(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """The message menu: the first image attached to the message, with the default options."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        attachment = next(
            (a for a in message.attachments if (a.content_type or "").startswith("image/") or a.width), None
        )
        if attachment is None:
            raise InvalidRequestError("That message has no image attached; pick a message with an image.")
        who = requester(interaction)
        options = VaryOptions.parse()
        service = self.bot.services.generation
        policy = await service.admit(who, options)
        data = await self._download(interaction, attachment)
        job = await service.vary(who, options, data, policy)
        await self._queued(interaction, job)


async def setup(bot: FluxcordBot) -> None:
    await bot.add_cog(GenerateCog(bot))
