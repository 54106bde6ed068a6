"""`/vary`, `/imagine`, the "Vary with FLUX" message menu and the result buttons: thin adapters onto GenerationService.

The command tree has already acknowledged every command (bot/ui/replies.py) before these run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from typing import Any, Final, cast

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
from bot.ui import pages, render
from bot.ui.fit import fit_choices
from bot.ui.forms import TEXT as FORM_TEXT
from bot.ui.forms import OptionsForm, vary_fields
from bot.ui.replies import OPENS_FORM, acknowledge, reply, reply_error
from bot.ui.views import TEMPLATE, result_button
from cogs.context import requester

log = logging.getLogger(__name__)

#: Autocomplete cannot be deferred and Discord drops an answer after 3 s: a slower read answers nothing.
AUTOCOMPLETE_SECONDS: Final = 2.0
#: the same bound for the reads made before a form opens
FORM_READ_SECONDS: Final = 2.0

DESCRIPTIONS = {
    "count": f"How many images (1-{MAX_COUNT})",
    "megapixels": "Output size: 1 (about 1024×1024) or 0.25 (about 512×512)",
    "seed": "Seed for reproducible results (random if left out)",
    "output_format": "Image format",
    "quality": f"Compression quality 0-{MAX_QUALITY} (ignored for png)",
    "safety": "The provider's safety filter; off only in age-restricted channels where allowed",
    "preset": "One of this server's presets (options, and for /imagine a prompt template)",
}
TEXT: Final = {
    "no_image": "That message has no image attached; pick a message with an image.",
    "queued": "Queued job `{job}` for {cost}; the result will appear in this channel.",
    "rerolling": "Re-rolling as job `{job}` for {cost}.",
    "varying": "Varying image {n} as job `{job}` for {cost}.",
    "deleted": "Deleted.",
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

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.menu = app_commands.ContextMenu(
            name="Vary with FLUX", callback=self.vary_message, extras={OPENS_FORM: True}
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(ResultButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ResultButton)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def _queued(self, interaction: discord.Interaction[Any], job: Job, sentence: str) -> None:
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
        model: VaryModel | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        aspect_ratio: VaryAspectRatio | None = None,
        megapixels: Megapixels | None = None,
        steps: app_commands.Range[int, 1, 50] | None = None,
        guidance: app_commands.Range[float, 0.0, MAX_GUIDANCE] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        output_format: OutputFormat | None = None,
        quality: app_commands.Range[int, 0, MAX_QUALITY] = 80,
        safety: OnOff = "on",
        preset: str | None = None,
    ) -> None:
        # Options left out come from the preset, then the member's /settings, then the command's defaults.
        who = requester(interaction)
        given = {
            "model": model,
            "count": count,
            "aspect_ratio": aspect_ratio,
            "megapixels": megapixels,
            "steps": steps,
            "guidance": guidance,
            "seed": seed,
            "output_format": output_format,
            "quality": quality,
            "safety": safety,
        }
        options = await self.services.preferences.vary_options(who.guild_id, who.user_id, given, preset)
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
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        aspect_ratio: AspectRatio | None = None,
        megapixels: Megapixels | None = None,
        steps: app_commands.Range[int, 1, 4] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        output_format: OutputFormat | None = None,
        quality: app_commands.Range[int, 0, MAX_QUALITY] = 80,
        safety: OnOff = "on",
        preset: str | None = None,
    ) -> None:
        who = requester(interaction)
        given = {
            "prompt": prompt,
            "count": count,
            "aspect_ratio": aspect_ratio,
            "megapixels": megapixels,
            "steps": steps,
            "seed": seed,
            "output_format": output_format,
            "quality": quality,
            "safety": safety,
        }
        options = await self.services.preferences.imagine_options(who.guild_id, who.user_id, given, preset)
        job = await self.services.generation.imagine(who, options)
        await self._queued(interaction, job, _queued_sentence(job))

    @vary.autocomplete("preset")
    @imagine.autocomplete("preset")
    async def preset_names(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        try:
            async with asyncio.timeout(AUTOCOMPLETE_SECONDS):
                presets = await self.services.preferences.presets(interaction.guild_id)
        except TimeoutError:
            log.info("preset autocomplete gave up on a slow read")
            return []
        typed = current.strip().lower()
        return fit_choices(
            app_commands.Choice(name=pages.preset_line(preset), value=preset.name)
            for preset in presets
            if typed in preset.name
        )

    async def vary_message(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """The message menu: the message's first image, with the options asked in a form (filled from /settings)."""
        attachment = next(
            (a for a in message.attachments if (a.content_type or "").startswith("image/") or a.width), None
        )
        if attachment is None:
            raise InvalidRequestError(TEXT["no_image"])
        who = requester(interaction)
        service = self.services.generation
        # Everything that can refuse without the image is asked before the form, so nobody fills one in vain.
        service.check_input(
            attachment.url,
            size=attachment.size,
            content_type=attachment.content_type,
            upload_limit=interaction.filesize_limit,
        )
        # A form must be Discord's first answer (within 3 s): the reads that fill it in and refuse early are
        # bounded, and skipped when the database is slow (the form's answer is checked in full anyway).
        defaults = VaryOptions.parse()
        try:
            async with asyncio.timeout(FORM_READ_SECONDS):
                defaults = await self.services.preferences.vary_options(who.guild_id, who.user_id, {})
                await service.admit(who, defaults)
        except TimeoutError:
            log.info("the Vary with FLUX form opened without the member's defaults: the database was slow")
        form = OptionsForm(
            title=FORM_TEXT["vary_title"],
            custom_id=f"fx:vary-form:{interaction.id}",
            fields=vary_fields(
                {
                    "model": "dev" if defaults.model.value.endswith("dev") else "schnell",
                    "count": defaults.count,
                    "aspect_ratio": defaults.aspect_ratio,
                    "megapixels": defaults.megapixels,
                }
            ),
            submit=functools.partial(self._vary_form, attachment),
        )
        await interaction.response.send_modal(form)

    async def _vary_form(
        self, attachment: discord.Attachment, interaction: discord.Interaction[Any], values: dict[str, str | None]
    ) -> None:
        who = requester(interaction)
        options = await self.services.preferences.vary_options(who.guild_id, who.user_id, values)
        await self._vary(interaction, attachment, options)

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
                cost = plural(job.cost, "credit")
                await self._queued(interaction, job, TEXT["rerolling"].format(job=job.id, cost=cost))
            else:
                assert n is not None
                job = await service.variation(who, job_id, n)
                cost = plural(job.cost, "credit")
                await self._queued(interaction, job, TEXT["varying"].format(n=n, job=job.id, cost=cost))
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
        await reply(interaction, TEXT["deleted"])


def _queued_sentence(job: Job) -> str:
    return TEXT["queued"].format(job=job.id, cost=plural(job.cost, "credit"))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(GenerateCog(bot, Services.of(bot)))
