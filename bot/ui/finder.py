"""The look before a repeat post: which of the bot's messages in a channel already show which job.

Needed only for jobs an earlier process (or an attempt whose answer was lost) may have shown without recording
it. The channel's history is read once per process and channel, from the oldest such job on, and kept as an
index from job id to message ids.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import discord

from bot.core.jobs import Job
from bot.ui import render

log = logging.getLogger(__name__)

#: the most history read per channel; past it, a repeat post stays possible and is logged
MAX_SCANNED = 2000
# Messages are looked for from a little before the job was created (clocks differ).
_SLACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Shown:
    """The bot's live messages naming one job, oldest first: the one with its outcome, and status lines."""

    outcome: int | None = None
    statuses: tuple[int, ...] = ()


@dataclass(slots=True)
class _ChannelIndex:
    since: int  # snowflake: everything after it was read
    by_job: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MessageIndex:
    """Per channel: the bot's messages by the job they name, read from history on first need."""

    def __init__(self) -> None:
        self._channels: dict[int, _ChannelIndex] = {}

    async def find(self, channel: discord.abc.Messageable, channel_id: int, job: Job, bot_id: int) -> Shown:
        after = discord.utils.time_snowflake(job.created_at - _SLACK)
        index = self._channels.get(channel_id)
        if index is None:
            now = discord.utils.time_snowflake(discord.utils.utcnow())
            index = self._channels[channel_id] = _ChannelIndex(since=now)
        async with index.lock:
            if after < index.since:
                await self._read(channel, index, after, bot_id)
            found = sorted(index.by_job.get(job.id, []))
        outcome = next((message_id for message_id, final in reversed(found) if final), None)
        statuses = tuple(message_id for message_id, final in found if not final)
        return Shown(outcome, statuses)

    async def _read(self, channel: discord.abc.Messageable, index: _ChannelIndex, after: int, bot_id: int) -> None:
        """Add the messages between `after` and what was read before to the index."""
        scanned = 0
        async for message in channel.history(
            limit=MAX_SCANNED, after=discord.Object(after), before=discord.Object(index.since), oldest_first=True
        ):
            scanned += 1
            if message.author.id != bot_id:
                continue
            job_id = render.job_named(message.content)
            if job_id is not None:
                index.by_job.setdefault(job_id, []).append((message.id, render.shows_outcome(message.content)))
        if scanned >= MAX_SCANNED:
            log.warning("read %d messages of channel history and stopped; a result may be posted twice", scanned)
        index.since = after
