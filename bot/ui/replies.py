"""The one way to answer an interaction, and the mapping from errors to what the member reads."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands

from bot.core.errors import UserError

log = logging.getLogger(__name__)


async def reply(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer whether or not the interaction was already acknowledged; a dead token is logged, not raised."""
    kwargs: dict[str, Any] = {"content": content, "ephemeral": ephemeral}
    if embed is not None:
        kwargs["embed"] = embed
    if file is not None:
        kwargs["file"] = file
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
    if isinstance(error, UserError):
        return error.message, True
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission for that; nothing was changed.", True
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here.", True
    if isinstance(error, app_commands.TransformerError):
        return f"`{error.value}` is not a valid value for that option.", True
    reference = secrets.token_hex(3)
    log.error("unexpected error (ref %s)", reference, exc_info=error)
    return f"Something went wrong on our side (ref `{reference}`); nothing was charged.", False


async def reply_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    message, _ = describe_error(error)
    await reply(interaction, message)


class FluxTree(app_commands.CommandTree[Any]):
    """Routes every command error through `describe_error`."""

    async def on_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError) -> None:
        await reply_error(interaction, error)
