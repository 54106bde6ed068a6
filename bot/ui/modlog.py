"""Mod-log entries: what moderators read about each job, posted through the notifier's paced writes.

An entry looks like this (the prompt line only for `/imagine` jobs)::

    📋 job `k7m2q9xw4p` · @alice in #general · 2 images with FLUX.1 schnell
    Prompt: “a lighthouse at dawn”
    ✅ 2 images, 4 credits charged · [result](https://discord.com/channels/…)
    [ 🗑️ Delete and refund ]

No line of it ends the way a status or result message's header does (`· job `…``), so the notifier never takes
an entry for a job's own message, even in the job's channel.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

import discord

from bot.core.credits import plural
from bot.core.jobs import Job, JobState
from bot.core.text import truncate
from bot.jobs.modlog import Refund
from bot.ui.fit import fit_content
from bot.ui.notifier import NO_PINGS, DiscordNotifier, nonce
from bot.ui.pages import message_url
from bot.ui.render import STATE_ICONS, what
from bot.ui.views import refund_view
from storage.modlog import ModLogEntry

log = logging.getLogger(__name__)

#: how much of the channel is read, from a little before the claim, when looking for an earlier post
LOOK_BACK: Final = 200
_SLACK: Final = timedelta(minutes=1)
#: how much of a prompt an entry quotes
PROMPT_CHARS: Final = 1500

TEXT: Final = {
    "entry": "📋 job `{job}` · <@{author}> in <#{channel}> · {what}",
    "entry_elsewhere": "📋 job `{job}` · <@{author}> · {what}",
    "imagined": "{images} with {model}",
    "prompt": "Prompt: “{prompt}”",
    "done": "✅ {images}, {charged} charged{link}",
    "ended": "{icon} {state}, nothing charged{link}",
    "link": " · [result]({url})",
    "refunded": "🗑️ Deleted by <@{moderator}>; {credits} refunded.",
    "refunded_before": "🗑️ Deleted by <@{moderator}>; the {credits} had been refunded already.",
    "refunded_nothing": "🗑️ Deleted by <@{moderator}>; nothing had been charged.",
}


def marker(job: Job) -> str:
    """How every entry of `job` begins (what a look through the channel matches)."""
    return f"📋 job `{job.id}`"


def entry_content(job: Job, refund: Refund | None = None, *, moderator: int | None = None) -> str:
    """The entry of a job, and (after a moderator's delete-and-refund) what became of it."""
    spec = job.spec
    described = (
        TEXT["imagined"].format(images=plural(spec.count, "image"), model=spec.model.label)
        if spec.prompt is not None
        else what(job)
    )
    template = TEXT["entry"] if job.channel_id is not None else TEXT["entry_elsewhere"]
    lines = [template.format(job=job.id, author=job.user_id, channel=job.channel_id, what=described)]
    if spec.prompt is not None:
        # One line, whatever the member typed: nothing after it can pass for another message's header.
        prompt = " ".join(spec.prompt.split())
        lines.append(TEXT["prompt"].format(prompt=truncate(prompt, PROMPT_CHARS)))
    url = message_url(job.guild_id, job.channel_id, job.message_id)
    link = TEXT["link"].format(url=url) if url else ""
    if job.state is JobState.SUCCEEDED:
        charged = plural(job.charged or 0, "credit")
        lines.append(TEXT["done"].format(images=plural(_delivered(job), "image"), charged=charged, link=link))
    else:
        icon = STATE_ICONS.get(job.state, "❌")
        lines.append(TEXT["ended"].format(icon=icon, state=job.state.value.capitalize(), link=link))
    if refund is not None and moderator is not None:
        key = "refunded_nothing" if not refund.amount else "refunded_before" if refund.again else "refunded"
        lines.append(TEXT[key].format(moderator=moderator, credits=plural(refund.amount, "credit")))
    return fit_content("\n".join(lines)) or ""


def _delivered(job: Job) -> int:
    """Images delivered, from what was charged (each image costs the same share of the price)."""
    return (job.charged or 0) // job.per_image if job.per_image else job.spec.count


class DiscordModLog:
    """Implements the mod-log's writer for Discord: entries go through the notifier's lanes, after results."""

    def __init__(self, notifier: DiscordNotifier) -> None:
        self.notifier = notifier

    async def log(self, job: Job, entry: ModLogEntry, *, look_first: bool) -> int | None:
        client = self.notifier.client
        if client is None:
            raise RuntimeError("the mod-log has no Discord client yet")
        channel = client.get_partial_messageable(entry.channel_id, guild_id=entry.guild_id)
        if look_first and (found := await self._find(channel, job, entry)) is not None:
            return found
        content = entry_content(job)
        view = refund_view(job) if job.state is JobState.SUCCEEDED else None

        async def post() -> discord.Message:
            if view is None:
                return await channel.send(content, nonce=nonce("l", job), allowed_mentions=NO_PINGS)
            return await channel.send(content, nonce=nonce("l", job), allowed_mentions=NO_PINGS, view=view)

        try:
            message = await self.notifier.write(entry.channel_id, post)
        except (discord.Forbidden, discord.NotFound) as exc:  # the channel is gone or closed to the bot
            log.warning("job=%s mod-log entry cannot be posted in channel %s: %s", job.id, entry.channel_id, exc)
            return None
        if message is None:
            raise RuntimeError("the mod-log entry was dropped before it was posted")
        return message.id

    async def _find(self, channel: discord.PartialMessageable, job: Job, entry: ModLogEntry) -> int | None:
        """An entry an earlier process posted without recording it, looked for from just before its claim."""
        user = self.notifier.client.user if self.notifier.client else None
        after = discord.Object(discord.utils.time_snowflake(entry.claimed_at - _SLACK))
        try:
            async for message in channel.history(limit=LOOK_BACK, after=after, oldest_first=True):
                if user is not None and message.author.id == user.id and message.content.startswith(marker(job)):
                    return message.id
        except discord.HTTPException as exc:  # no Read Message History, say: the nonce is what is left
            log.warning("job=%s could not look for an earlier mod-log entry: %s", job.id, exc)
        return None
