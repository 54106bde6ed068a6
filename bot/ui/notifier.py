"""The job's public status message: posted with the bot token, edited at most every few seconds, then the result."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

import discord

from bot.core.images import OutputImage, shrink_to_fit_async
from bot.core.jobs import Clock, Job, StoredOutput, SystemClock
from bot.jobs.notifier import Progress
from bot.ui import render
from bot.ui.views import result_view
from storage.jobs import JobRepo

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
NO_PINGS = discord.AllowedMentions.none()


class DiscordNotifier:
    """Implements the engine's JobNotifier for Discord. Progress never fails a job; results raise if undelivered."""

    def __init__(self, jobs: JobRepo, *, edit_interval: float = 2.0, clock: Clock | None = None) -> None:
        self.jobs = jobs
        self.edit_interval = edit_interval
        self.clock = clock or SystemClock()
        self.client: discord.Client | None = None
        self._messages: dict[str, int] = {}
        self._gone: set[str] = set()
        self._finished: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, tuple[Job, Progress]] = {}
        self._editors: dict[str, asyncio.Task[None]] = {}
        self._last_edit: dict[str, float] = {}
        self._last_content: dict[str, str] = {}
        self._upload_limits: dict[int, int] = {}

    def attach(self, client: discord.Client) -> None:
        self.client = client

    # ------------------------------------------------------------------ helpers

    def _channel(self, job: Job) -> discord.PartialMessageable | None:
        if self.client is None or job.channel_id is None:
            return None
        return self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

    def _message_id(self, job: Job) -> int | None:
        if job.id in self._gone:
            return None
        return self._messages.get(job.id) or job.message_id

    async def _remember(self, job: Job, message_id: int | None) -> None:
        if message_id is None:
            self._messages.pop(job.id, None)
            self._gone.add(job.id)
        else:
            self._messages[job.id] = message_id
            self._gone.discard(job.id)
        await self.jobs.set_message(job.id, message_id, now=self.clock.now())

    # ------------------------------------------------------------------ status

    async def announce(self, job: Job) -> None:
        """Post the status message for a new job (once; a repeated call does nothing)."""
        channel = self._channel(job)
        if channel is None:
            return
        async with self._lock(job.id):
            if self._message_id(job) is not None or job.id in self._finished:
                return
            content = render.status_content(job, Progress(job.state))
            try:
                message = await channel.send(content, allowed_mentions=NO_PINGS)
            except discord.HTTPException as exc:
                log.warning("job=%s status message could not be posted: %s", job.id, exc)
                return
            self._last_edit[job.id] = time.monotonic()
            self._last_content[job.id] = content
            await self._remember(job, message.id)

    async def progress(self, job: Job, progress: Progress) -> None:
        if job.id in self._finished or job.channel_id is None:
            return
        self._pending[job.id] = (job, progress)
        editor = self._editors.get(job.id)
        if editor is None or editor.done():
            self._editors[job.id] = asyncio.create_task(self._edit_loop(job.id), name=f"fluxcord-status-{job.id}")

    async def _edit_loop(self, job_id: str) -> None:
        try:
            await self._edit_pending(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a status line must never take anything down with it
            log.warning("job=%s status update failed", job_id, exc_info=True)

    async def close(self) -> None:
        """Stop the pending status edits (the client is going away)."""
        editors = list(self._editors.values())
        for editor in editors:
            editor.cancel()
        await asyncio.gather(*editors, return_exceptions=True)
        self._editors.clear()

    async def _edit_pending(self, job_id: str) -> None:
        while job_id in self._pending:
            wait = self._last_edit.get(job_id, float("-inf")) + self.edit_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            entry = self._pending.pop(job_id, None)
            if entry is None:
                return
            job, progress = entry
            async with self._lock(job_id):
                if job_id in self._finished:
                    return
                await self._edit_status(job, render.status_content(job, progress))

    async def _edit_status(self, job: Job, content: str) -> None:
        if content == self._last_content.get(job.id):
            return
        message_id = self._message_id(job)
        channel = self._channel(job)
        if channel is None or message_id is None:
            return
        try:
            await channel.get_partial_message(message_id).edit(content=content, allowed_mentions=NO_PINGS)
        except discord.NotFound:
            log.info("job=%s status message was deleted; the result will be posted anew", job.id)
            await self._remember(job, None)
        except discord.HTTPException as exc:
            log.warning("job=%s status edit failed: %s", job.id, exc)
        else:
            self._last_content[job.id] = content
        self._last_edit[job.id] = time.monotonic()

    def _stop_progress(self, job_id: str) -> None:
        self._finished.add(job_id)
        self._pending.pop(job_id, None)
        editor = self._editors.pop(job_id, None)
        if editor is not None and editor is not asyncio.current_task():
            editor.cancel()

    # ------------------------------------------------------------------ results

    def learn_upload_limit(self, guild_id: int | None, limit: int) -> None:
        """Interactions carry the server's real upload limit (boosts raise it); remember the latest."""
        if guild_id is not None and limit > 0:
            self._upload_limits[guild_id] = limit

    async def _upload_limit(self, job: Job) -> int:
        if job.guild_id in self._upload_limits:
            return self._upload_limits[job.guild_id]
        guild = self.client.get_guild(job.guild_id) if self.client else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _prepared(self, job: Job, outputs: list[StoredOutput]) -> list[tuple[str, bytes]]:
        """Outputs re-encoded smaller when together they would not fit in one message."""
        limit = await self._upload_limit(job)
        total = sum(len(output.data) for output in outputs)
        share = limit if total <= limit else limit // max(1, len(outputs))
        prepared = []
        for output in outputs:
            image = OutputImage(output.data, output.width, output.height, output.format)
            smaller = await shrink_to_fit_async(image, share - 16 * 1024)
            prepared.append((f"{job.id}-{output.index + 1}.{smaller.format}", smaller.data))
        return prepared

    async def _publish(
        self,
        job: Job,
        content: str,
        *,
        embed: discord.Embed | None,
        files: list[tuple[str, bytes]],
        view: discord.ui.View | None,
    ) -> None:
        channel = self._channel(job)
        if channel is None:
            return

        def attachments() -> list[discord.File]:
            return [discord.File(io.BytesIO(data), filename=name) for name, data in files]

        message_id = self._message_id(job)
        if message_id is not None:
            try:
                kwargs: dict[str, Any] = {
                    "content": content,
                    "embed": embed,
                    "attachments": attachments(),
                    "allowed_mentions": NO_PINGS,
                    "view": view,
                }
                await channel.get_partial_message(message_id).edit(**kwargs)
                return
            except discord.NotFound:
                log.info("job=%s status message was deleted; posting the result as a new message", job.id)
                await self._remember(job, None)
        send: dict[str, Any] = {"content": content, "files": attachments(), "allowed_mentions": NO_PINGS}
        if embed is not None:
            send["embed"] = embed
        if view is not None:
            send["view"] = view
        message = await channel.send(**send)
        await self._remember(job, message.id)

    async def done(self, job: Job, outputs: list[StoredOutput]) -> None:
        self._stop_progress(job.id)
        async with self._lock(job.id):
            await self._publish(
                job,
                render.result_content(job, outputs),
                embed=render.result_embed(job, outputs),
                files=await self._prepared(job, outputs),
                view=result_view(job, outputs),
            )

    async def failed(self, job: Job) -> None:
        self._stop_progress(job.id)
        async with self._lock(job.id):
            await self._publish(job, render.failure_content(job), embed=None, files=[], view=None)
