"""HD, Vary (Subtle) / Vary (Strong), the reframe buttons and Remix under a result.

Each click is a new job paid by whoever clicks, started through the generate cog's `_queued`, exactly as 🔁 and
V1…V4 are. The buttons are DynamicItems: their custom_id carries the action, the job and the image.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any, Final, cast

import discord
from discord.ext import commands

from bot.core.credits import plural
from bot.core.jobs import Job
from bot.core.variants import Strength
from bot.jobs.access import Action
from bot.services import Services
from bot.ui.forms import TEXT as FORM_TEXT
from bot.ui.forms import OptionsForm, remix_fields
from bot.ui.replies import acknowledge, reply, reply_error
from bot.ui.views import REFRAME_ACTIONS, VARIANT_TEMPLATE, picker_view, result_button
from cogs.context import requester
from cogs.generate import FORM_READ_SECONDS, GenerateCog

TEXT: Final = {
    "hd": "Re-rendering as job `{job}` at 1 MP (the same seed and options as `{parent}`) for {cost}.",
    "subtle": "Varying image {n} subtly as job `{job}` for {cost}.",
    "strong": "Varying image {n} strongly as job `{job}` for {cost}.",
    "reframe": "Reframing image {n} at {ratio} as job `{job}` for {cost}.",
    "remix": "Remixing as job `{job}` (from `{parent}`) for {cost}; the result will appear in this channel.",
    "busy": "Fluxcord is busy right now; click Remix again in a moment.",
    "pick_subtle": "Vary (Subtle): which image?",
    "pick_strong": "Vary (Strong): which image?",
    "pick_reframe": "Reframe at {ratio}: which image?",
}


class VariantButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=VARIANT_TEMPLATE):
    """A click on HD, Subtle, Strong, a reframe shape or Remix; works after a restart."""

    def __init__(self, action: str, job_id: str, n: int | None = None) -> None:
        super().__init__(result_button(action, job_id, n))
        self.action = action
        self.job_id = job_id
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> VariantButton:
        n = match["n"]
        return cls(match["action"], match["job"], int(n) if n else None)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = cast(commands.Bot, interaction.client).get_cog(VariationsCog.__cog_name__)
        if isinstance(cog, VariationsCog):
            await cog.on_click(interaction, self.action, self.job_id, self.n)


class VariationsCog(commands.Cog, name="Variations"):
    """The buttons that start a changed job from a result."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(VariantButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(VariantButton)

    async def _queued(self, interaction: discord.Interaction[Any], job: Job, sentence: str) -> None:
        """The generate cog's `_queued`: one place announces every new job."""
        generate = self.bot.get_cog(GenerateCog.__cog_name__)
        assert isinstance(generate, GenerateCog)
        await generate._queued(interaction, job, sentence)

    async def on_click(self, interaction: discord.Interaction[Any], action: str, job_id: str, n: int | None) -> None:
        """Buttons have no CommandTree.on_error, so errors are mapped here."""
        try:
            if action == "remix":
                await self._open_remix(interaction, job_id)  # a form must be the first answer: no defer
                return
            if not await acknowledge(interaction):
                return
            who = requester(interaction)
            service = self.services.generation
            if action == "hd":
                job = await service.hd(who, job_id)
                await self._queued(interaction, job, TEXT["hd"].format(parent=job_id, job=job.id, cost=_cost(job)))
                return
            ratio = REFRAME_ACTIONS.get(action)
            if n is None:
                await self._pick(interaction, action, job_id, ratio)
                return
            if ratio is not None:
                job = await service.variation(who, job_id, n, aspect_ratio=ratio)
                sentence = TEXT["reframe"].format(n=n, ratio=ratio, job=job.id, cost=_cost(job))
            else:
                strength = Strength(action)
                job = await service.variation(who, job_id, n, strength=strength)
                sentence = TEXT[strength.value].format(n=n, job=job.id, cost=_cost(job))
            await self._queued(interaction, job, sentence)
        except Exception as error:
            await reply_error(interaction, error)

    async def _pick(self, interaction: discord.Interaction[Any], action: str, job_id: str, ratio: str | None) -> None:
        """A result with several images: ask which one, privately, with buttons that name it."""
        who = requester(interaction)
        service = self.services.generation
        job = await service.job_for(who, Action.REFRAME if ratio else Action.VARY, job_id)
        outputs = await service.outputs(job.id)
        question = TEXT["pick_reframe"].format(ratio=ratio) if ratio else TEXT[f"pick_{action}"]
        await reply(interaction, question, view=picker_view(action, job.id, len(outputs)))

    async def _open_remix(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        # The form must be Discord's first answer (within 3 s), so the read that fills it in is bounded.
        try:
            async with asyncio.timeout(FORM_READ_SECONDS):
                source = await self.services.generation.remix_source(requester(interaction), job_id)
        except TimeoutError:
            await reply(interaction, TEXT["busy"])
            return
        spec = source.spec
        form = OptionsForm(
            title=FORM_TEXT["remix_title"],
            custom_id=f"fx:remix-form:{interaction.id}",
            fields=remix_fields(
                spec.prompt or "",
                {
                    "aspect_ratio": spec.aspect_ratio,
                    "count": spec.count,
                    "megapixels": spec.megapixels,
                    "seed": spec.seed,
                },
            ),
            submit=functools.partial(self._remix, source.id),
        )
        await interaction.response.send_modal(form)

    async def _remix(self, job_id: str, interaction: discord.Interaction[Any], values: dict[str, str | None]) -> None:
        job = await self.services.generation.remix(requester(interaction), job_id, values)
        await self._queued(interaction, job, TEXT["remix"].format(parent=job_id, job=job.id, cost=_cost(job)))


def _cost(job: Job) -> str:
    return plural(job.cost, "credit")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VariationsCog(bot, Services.of(bot)))
