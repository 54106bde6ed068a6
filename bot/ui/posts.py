"""A stored result posted again as a channel message (with the bot token), its images fitted to the upload limit."""

from __future__ import annotations

import io

import discord

from bot.core.images import OutputImage, shrink_to_fit_async
from bot.core.jobs import Job, StoredOutput
from bot.ui import render
from bot.ui.fit import fit_content, fit_embed
from bot.ui.views import result_view

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
NO_PINGS = discord.AllowedMentions.none()


async def result_files(
    job: Job, outputs: list[StoredOutput], upload_limit: int, *, spoiler: bool = False
) -> list[discord.File]:
    """The outputs as files (spoilers if asked), each re-encoded smaller when together they would not fit."""
    total = sum(len(output.data) for output in outputs)
    share = upload_limit if total <= upload_limit else upload_limit // max(1, len(outputs))
    files = []
    for output in outputs:
        image = OutputImage(output.data, output.width, output.height, output.format)
        smaller = await shrink_to_fit_async(image, share - 16 * 1024)
        name = f"{job.id}-{output.index + 1}.{smaller.format}"
        files.append(discord.File(io.BytesIO(smaller.data), filename=name, spoiler=spoiler))
    return files


async def post_result(
    channel: discord.abc.Messageable,
    job: Job,
    outputs: list[StoredOutput],
    content: str,
    *,
    upload_limit: int | None,
    showcased: bool = False,
    nonce: str | None = None,
    spoiler: bool = False,
) -> discord.Message:
    """Post the result's images, embed and buttons under `content`; `nonce` makes a repeated post a no-op.

    The images are spoilers when the job's were, or when `spoiler` asks (the channel's policy).
    """
    files = await result_files(job, outputs, upload_limit or DEFAULT_UPLOAD_LIMIT, spoiler=job.spoiler or spoiler)
    embed = fit_embed(render.result_embed(job, outputs))
    view = result_view(job, outputs, showcased=showcased)
    text = fit_content(content)
    if nonce is None:
        return await channel.send(text, embed=embed, files=files, view=view, allowed_mentions=NO_PINGS)
    return await channel.send(text, embed=embed, files=files, view=view, allowed_mentions=NO_PINGS, nonce=nonce)
