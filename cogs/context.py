"""What an interaction says about who asks and where, in the service layer's terms."""

from __future__ import annotations

from typing import Any

import discord

from bot.core.errors import UserError
from bot.jobs.service import Requester


def requester(interaction: discord.Interaction[Any]) -> Requester:
    """The member, server, channel and permissions behind an interaction; its id keys the request."""
    if interaction.guild_id is None:
        raise UserError("Fluxcord works in servers, not in direct messages.")
    channel = interaction.channel
    is_nsfw = getattr(channel, "is_nsfw", None)
    roles = getattr(interaction.user, "roles", [])
    permissions = interaction.permissions
    return Requester(
        guild_id=interaction.guild_id,
        user_id=interaction.user.id,
        channel_id=interaction.channel_id,
        request_id=str(interaction.id),
        role_ids=frozenset(role.id for role in roles),
        channel_nsfw=bool(is_nsfw()) if callable(is_nsfw) else False,
        moderator=permissions.manage_messages,
        manager=permissions.manage_guild,
        upload_limit=interaction.filesize_limit,
    )
