"""The one way to answer an interaction, and the mapping from errors to what the member reads."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands

from bot.core.errors import UserError
from bot.core.text import truncate
from bot.ui.fit import fit_content, fit_embed
from bot.ui.options import option_problem

log = logging.getLogger(__name__)

#: in a command's `extras`: it answers with a form (a modal) first, so the tree must not acknowledge it
OPENS_FORM = "opens_form"


async def acknowledge(interaction: discord.Interaction[Any]) -> bool:
    """Defer privately ("thinking…") unless already answered; False when Discord no longer knows the interaction.

    Discord waits 3 s for this; every command and button calls it before touching the database or the network.
    """
    if interaction.response.is_done():
        return True
    try:
        await interaction.response.defer(ephemeral=True, thinking=True)
    except discord.NotFound:
        log.info("interaction %s expired before it was acknowledged", interaction.id)
        return False
    return True


async def reply(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer whether or not the interaction was already acknowledged; a dead token is logged, not raised.

    What is sent is cut to Discord's limits first: an answer Discord refuses would leave "thinking…" forever.
    """
    kwargs: dict[str, Any] = {"content": fit_content(content), "ephemeral": ephemeral}
    if embed is not None:
        kwargs["embed"] = fit_embed(embed)
    if file is not None:
        kwargs["file"] = file
    if view is not None:
        kwargs["view"] = view
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(**kwargs)
        elif interaction.is_expired():
            log.info("interaction %s expired before its answer: %s", interaction.id, content)
        else:
            await interaction.followup.send(**kwargs)
    except discord.NotFound:
        log.info("interaction %s is gone; answer dropped: %s", interaction.id, content)
    except discord.HTTPException as exc:
        if exc.status == 401:  # the token expired (15 minutes)
            log.info("interaction %s token expired; answer dropped", interaction.id)
        else:
            raise


def describe_error(error: BaseException) -> tuple[str, bool]:
    """The member-facing sentence for an error, and whether it was expected (no traceback needed)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, app_commands.AppCommandError) and isinstance(error.__cause__, UserError):
        error = error.__cause__  # a check that refused with the service layer's own sentence
    if isinstance(error, UserError):
        return error.message, True
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission for that; nothing was changed.", True
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here.", True
    if isinstance(error, app_commands.TransformerError):
        return f"`{truncate(str(error.value), 40)}` is not a valid value for that option.", True
    reference = secrets.token_hex(3)
    log.error("unexpected error (ref %s)", reference, exc_info=error)
    return f"Something went wrong on our side (ref `{reference}`); nothing was charged.", False


async def reply_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    message, _ = describe_error(error)
    await reply(interaction, message)


class FluxTree(app_commands.CommandTree[Any]):
    """Acknowledges every command first, refuses options that break their declaration, maps errors to sentences."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.type is not discord.InteractionType.application_command:
            return True  # autocomplete cannot be deferred; its handlers keep to short, bounded reads
        command = interaction.command
        if command is not None and command.extras.get(OPENS_FORM):
            return True  # its first answer is a form (a modal), which cannot follow a defer; it answers in time
        if not await acknowledge(interaction):
            return False
        problem = option_problem(interaction)
        if problem is not None:
            await reply(interaction, problem)
            return False
        return True

    async def on_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError) -> None:
        await reply_error(interaction, error)
