"""Persistent result buttons: the custom_id carries the action and job (`fx:<action>:<job_id>[:<n>]`)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar, cast

import discord

from bot.core.credits import plural
from bot.core.errors import UserError
from bot.core.jobs import Job, StoredOutput
from bot.jobs.service import Requester
from bot.ui import render
from bot.ui.replies import reply, reply_error

if TYPE_CHECKING:
    from bot.client import FluxcordBot

log = logging.getLogger(__name__)

TEMPLATE = r"fx:(?P<action>reroll|vary|info|delete):(?P<job>[a-z0-9]{4,20})(?::(?P<n>[1-4]))?"


def custom_id(action: str, job_id: str, n: int | None = None) -> str:
    return f"fx:{action}:{job_id}" + (f":{n}" if n is not None else "")


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=TEMPLATE):
    """One button under a result; works after a restart because everything it needs is in the custom_id."""

    STYLE: ClassVar[dict[str, tuple[str | None, str | None, discord.ButtonStyle]]] = {
        "reroll": ("Re-roll", "🔁", discord.ButtonStyle.primary),
        "info": (None, "ℹ️", discord.ButtonStyle.secondary),
        "delete": (None, "🗑️", discord.ButtonStyle.danger),
    }

    def __init__(self, action: str, job_id: str, n: int | None = None) -> None:
        label, emoji, style = self.STYLE.get(action, (f"V{n}", None, discord.ButtonStyle.secondary))
        row = 1 if action == "vary" else 0
        super().__init__(
            discord.ui.Button(custom_id=custom_id(action, job_id, n), label=label, emoji=emoji, style=style, row=row)
        )
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
        bot = cast("FluxcordBot", interaction.client)
        try:
            await handle_action(bot, interaction, self.action, self.job_id, self.n)
        except Exception as error:  # buttons have no CommandTree.on_error; same mapping by hand
            await reply_error(interaction, error)


def result_view(job: Job, outputs: list[StoredOutput]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("reroll", job.id))
    view.add_item(ResultButton("info", job.id))
    view.add_item(ResultButton("delete", job.id))
    for output in outputs:
        view.add_item(ResultButton("vary", job.id, output.index + 1))
    return view


def requester(interaction: discord.Interaction[Any]) -> Requester:
    if interaction.guild_id is None:
        raise UserError("Fluxcord works in servers, not in direct messages.")
    channel = interaction.channel
    is_nsfw = getattr(channel, "is_nsfw", None)
    roles = getattr(interaction.user, "roles", [])
    return Requester(
        guild_id=interaction.guild_id,
        user_id=interaction.user.id,
        channel_id=interaction.channel_id,
        request_id=str(interaction.id),
        role_ids=frozenset(role.id for role in roles),
        channel_nsfw=bool(is_nsfw()) if callable(is_nsfw) else False,
        upload_limit=interaction.filesize_limit,
    )


async def handle_action(
    bot: FluxcordBot, interaction: discord.Interaction[Any], action: str, job_id: str, n: int | None
) -> None:
    service = bot.services.generation
    if action == "info":
        await reply(interaction, embed=render.info_embed(await service.job(job_id)))
        return
    if action == "delete":
        job = await service.job(job_id)
        permissions = interaction.permissions
        if interaction.user.id != job.user_id and not permissions.manage_messages:
            raise UserError("Only the member who asked for this job, or a moderator, can delete it.")
        await interaction.response.defer(ephemeral=True)
        if interaction.message is not None:
            await interaction.message.delete()
        await reply(interaction, "Deleted.")
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    who = requester(interaction)
    if action == "reroll":
        job = await service.reroll(who, job_id)
    else:
        assert n is not None
        job = await service.variation(who, job_id, n)
    verb = "Re-rolling" if action == "reroll" else f"Varying image {n}"
    await reply(interaction, f"{verb} as job `{job.id}` for {plural(job.cost, 'credit')}.")


__all__ = ["ResultButton", "custom_id", "handle_action", "requester", "result_view"]
