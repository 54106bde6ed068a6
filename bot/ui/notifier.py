"""The job's public status message: posted with the bot token, kept current while the job runs, then the result.

Every job shown in this process has one `StatusMessage` record, dropped when its outcome is shown. Writes go
through the channel's lanes (`pacing`), so a result never waits behind a status line. A post is idempotent:
it carries a nonce derived from the job (Discord returns the earlier message instead of posting twice), and
for a job an earlier process may already have shown, the channel is looked at before anything new is posted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import discord

from bot.core.images import OutputImage, shrink_to_fit
from bot.core.jobs import Job, JobState, StoredOutput
from bot.jobs.notifier import Progress
from bot.ui import render
from bot.ui.finder import MessageIndex, Shown
from bot.ui.pacing import GlobalPace, Lane, RateWatch
from bot.ui.views import result_view, status_view

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
NO_PINGS = discord.AllowedMentions.none()
#: room left in an upload for the multipart envelope and the JSON payload
_ENVELOPE = 16 * 1024
#: jobs whose outcome was shown recently, so a progress line that arrives late is ignored
_ENDED_KEPT = 4096


def nonce(kind: str, job: Job) -> str:
    """Discord's nonce (25 characters at most) for the job's status post (`s`), result post (`r`) or mod-log entry
    (`l`)."""
    return f"fx{kind}{job.id}"


@dataclass(eq=False)
class StatusMessage:
    """One live job: the message that shows it, the line it shows, and the newer line to show next."""

    job: Job
    notifier: DiscordNotifier
    message_id: int | None = None
    #: shown by an earlier process, or by an attempt whose answer was lost: look before posting anew
    adopted: bool = False
    shown: str | None = None
    wanted: str | None = None
    last_edit: float = float("-inf")
    post: asyncio.Future[int | None] | None = None
    posting: bool = False
    ended: bool = False
    #: when the outcome is expected (`time.monotonic()`), from the latest progress; None if unknown
    finish_at: float | None = None

    @property
    def ready_at(self) -> float:
        return self.last_edit + self.notifier.edit_interval

    async def refresh(self) -> None:
        await self.notifier.refresh(self)


class DiscordNotifier:
    """Implements the engine's JobNotifier for Discord. Progress never fails a job; outcomes raise if not shown."""

    def __init__(self, *, edit_interval: float = 2.0, watch: RateWatch | None = None) -> None:
        self.edit_interval = edit_interval
        self.watch = watch or RateWatch()
        self.client: discord.Client | None = None
        self._jobs: dict[str, StatusMessage] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._lanes: dict[tuple[int, str], Lane] = {}
        self._pace = GlobalPace()
        self._index = MessageIndex()

    @property
    def live(self) -> int:
        """Jobs the notifier keeps a record for: those shown by this process and not yet ended."""
        return len(self._jobs)

    def connect(self, client: discord.Client) -> None:
        """The client that posts; the composition root connects it once both exist."""
        self.client = client

    def write(self, channel_id: int, action: Callable[[], Awaitable[T]]) -> asyncio.Future[T | None]:
        """Another new message in a channel (a mod-log entry), paced as new status messages are: after results."""
        return self._lane(channel_id, "post").run(action, urgent=False)

    # ------------------------------------------------------------------ plumbing

    def _channel(self, job: Job) -> discord.PartialMessageable | None:
        if self.client is None or job.channel_id is None:
            return None
        return self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    def _lane(self, channel_id: int, kind: str) -> Lane:
        key = (channel_id, kind)
        lane = self._lanes.get(key)
        if lane is None:

            def idle() -> None:
                if self._lanes.get(key) is lane:
                    del self._lanes[key]
                    self.watch.drop(channel_id, kind)

            def due(before: float) -> int:
                return sum(
                    1
                    for record in self._jobs.values()
                    if record.job.channel_id == channel_id
                    and not record.ended
                    and record.finish_at is not None
                    and record.finish_at <= before
                )

            lane = self._lanes[key] = Lane(self.watch.bucket(channel_id, kind), self._pace, on_idle=idle, due=due)
        return lane

    def _record(self, job: Job) -> StatusMessage:
        """The job's record; a job met first here was shown by an earlier process."""
        record = self._jobs.get(job.id)
        if record is None:
            record = self._jobs[job.id] = StatusMessage(job, self, message_id=job.message_id, adopted=True)
        return record

    def _drop(self, record: StatusMessage) -> None:
        if self._jobs.get(record.job.id) is record:
            del self._jobs[record.job.id]
        self._ended[record.job.id] = None
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    async def close(self) -> None:
        """Stop every lane (the engine is stopping); what was not shown is shown by the next start."""
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
        self._jobs.clear()

    # ------------------------------------------------------------------ queued and progress

    async def queued(self, job: Job) -> int | None:
        channel = self._channel(job)
        if channel is None or job.channel_id is None:
            return None
        record = self._jobs[job.id] = StatusMessage(job, self, wanted=render.status_content(job, Progress(job.state)))
        record.post = self._lane(job.channel_id, "post").run(
            lambda: self._post_status(record, channel), urgent=False, obsolete=lambda: record.ended
        )
        # Shielded: the engine giving up on the answer must not take back a post that is on its way.
        return await asyncio.shield(record.post)

    async def _post_status(self, record: StatusMessage, channel: discord.PartialMessageable) -> int | None:
        if record.ended:  # the outcome is ready first and takes the status message's place
            return None
        record.posting = True
        content = record.wanted or ""
        job = record.job
        try:
            # ✖️ Cancel rides on this post; the outcome's edit replaces it, so it costs no write of its own.
            message = await channel.send(
                content, nonce=nonce("s", job), allowed_mentions=NO_PINGS, view=status_view(job)
            )
        except discord.NotFound:  # posted with this nonce and deleted since, by an earlier attempt
            return None
        except discord.HTTPException as exc:
            log.warning("job=%s status message could not be posted: %s", job.id, exc)
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("job=%s status post may or may not have landed: %s", job.id, exc)
            record.adopted = True
            return None
        record.message_id, record.shown, record.last_edit = message.id, content, time.monotonic()
        if record.wanted != content and not record.ended and job.channel_id is not None:
            self._lane(job.channel_id, "edit").want(job.id, record)
        return message.id

    def progress(self, job: Job, progress: Progress) -> None:
        record = self._jobs.get(job.id)
        if record is None:
            if job.id in self._ended or job.message_id is None or self._channel(job) is None:
                return
            record = self._record(job)
        if record.ended:
            return
        left = progress.eta_seconds if progress.state is JobState.QUEUED else progress.remaining_seconds
        record.finish_at = None if left is None else time.monotonic() + left
        content = render.status_content(record.job, progress)
        if content == record.wanted:
            return
        record.wanted = content
        if record.message_id is not None and content != record.shown and job.channel_id is not None:
            self._lane(job.channel_id, "edit").want(job.id, record)

    async def refresh(self, record: StatusMessage) -> None:
        """Show the record's newest line (called by its lane when the budget allows)."""
        channel = self._channel(record.job)
        content = record.wanted
        if record.ended or channel is None or record.message_id is None or content in (None, record.shown):
            return
        try:
            await channel.get_partial_message(record.message_id).edit(content=content, allowed_mentions=NO_PINGS)
        except discord.NotFound:
            log.info("job=%s status message was deleted; the outcome will be posted anew", record.job.id)
            record.message_id = None
        except discord.HTTPException as exc:
            log.warning("job=%s status edit failed: %s", record.job.id, exc)
        else:
            record.shown = content
        record.last_edit = time.monotonic()

    # ------------------------------------------------------------------ outcomes

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None:
        record = self._end(job)
        try:
            files = await self._prepared(job, outputs)
            return await self._show(
                record,
                render.result_content(job, outputs),
                embed=render.result_embed(job, outputs),
                files=files,
                view=result_view(job, outputs),
            )
        finally:
            self._drop(record)

    async def failed(self, job: Job) -> int | None:
        record = self._end(job)
        try:
            return await self._show(record, render.failure_content(job), embed=None, files=[], view=None)
        finally:
            self._drop(record)

    def _end(self, job: Job) -> StatusMessage:
        record = self._record(job)
        record.job, record.ended = job, True
        if job.channel_id is not None and (lane := self._lanes.get((job.channel_id, "edit"))) is not None:
            lane.forget(job.id)
        return record

    def _upload_limit(self, job: Job) -> int:
        if job.upload_limit:
            return job.upload_limit
        guild = self.client.get_guild(job.guild_id) if self.client else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _prepared(self, job: Job, outputs: list[StoredOutput]) -> list[tuple[str, bytes]]:
        """The files, re-encoded smaller only when together they would not fit in one message."""
        limit = self._upload_limit(job)
        files = [(f"{job.id}-{output.index + 1}.{output.format}", output.data) for output in outputs]
        if sum(len(data) for _, data in files) + _ENVELOPE * len(files) <= limit:
            return files
        share = limit // max(1, len(outputs)) - _ENVELOPE

        def shrink() -> list[tuple[str, bytes]]:
            smaller = [
                shrink_to_fit(OutputImage(output.data, output.width, output.height, output.format), share)
                for output in outputs
            ]
            return [(f"{job.id}-{o.index + 1}.{s.format}", s.data) for o, s in zip(outputs, smaller, strict=True)]

        return await asyncio.to_thread(shrink)

    async def _show(
        self,
        record: StatusMessage,
        content: str,
        *,
        embed: discord.Embed | None,
        files: list[tuple[str, bytes]],
        view: discord.ui.View | None,
    ) -> int | None:
        """Turn the job's message into its outcome, or post the outcome once if there is no message."""
        job = record.job
        channel = self._channel(job)
        channel_id = job.channel_id
        if channel is None or channel_id is None:
            return None
        if record.post is not None and record.posting and not record.post.done():
            await asyncio.shield(record.post)  # on its way: edit it rather than post beside it

        def attachments() -> list[discord.File]:
            return [discord.File(io.BytesIO(data), filename=name, spoiler=job.spoiler) for name, data in files]

        async def edit(message_id: int) -> int | None:
            try:
                await self._lane(channel_id, "edit").run(
                    lambda: channel.get_partial_message(message_id).edit(
                        content=content, embed=embed, attachments=attachments(), allowed_mentions=NO_PINGS, view=view
                    ),
                    urgent=True,
                )
            except discord.NotFound:
                return None
            return message_id

        if record.message_id is not None:
            if (shown := await edit(record.message_id)) is not None:
                return shown
            log.info("job=%s status message was deleted; posting the outcome as a new message", job.id)
            record.message_id = None
        if record.adopted:
            try:
                found = await self._index.find(channel, channel_id, job, self._bot_id())
            except discord.HTTPException as exc:  # no Read Message History, say: the nonce is what is left
                log.warning("job=%s could not look for an earlier post of its outcome: %s", job.id, exc)
                found = Shown()
            if found.outcome is not None:  # shown before; only leftover status lines remain to clear
                await self._delete(channel, found.statuses)
                return found.outcome
            for position, status_id in enumerate(found.statuses):
                if (shown := await edit(status_id)) is not None:
                    await self._delete(channel, found.statuses[position + 1 :])
                    return shown
        send: dict[str, Any] = {"content": content, "nonce": nonce("r", job), "allowed_mentions": NO_PINGS}
        if embed is not None:
            send["embed"] = embed
        if view is not None:
            send["view"] = view

        async def post() -> discord.Message:
            return await channel.send(files=attachments(), **send)

        try:
            message = await self._lane(channel_id, "post").run(post, urgent=True)
        except discord.NotFound:  # posted with this nonce moments ago and deleted since: it was shown
            return None
        return message.id if message is not None else None

    def _bot_id(self) -> int:
        user = self.client.user if self.client else None
        return user.id if user is not None else 0

    @staticmethod
    async def _delete(channel: discord.PartialMessageable, message_ids: tuple[int, ...]) -> None:
        for message_id in message_ids:
            try:
                await channel.get_partial_message(message_id).delete()
            except discord.HTTPException as exc:
                log.warning("a leftover status message could not be removed: %s", exc)


__all__ = ["DEFAULT_UPLOAD_LIMIT", "DiscordNotifier", "StatusMessage", "nonce"]
