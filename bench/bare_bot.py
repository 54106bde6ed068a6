"""A bare discord.py bot that does Fluxcord's visible job and nothing else: the baseline of bench/overhead.py.

`/vary` sends the attachment to Segmind as it is, `/imagine` sends the prompt; both wait the known provider time,
poll until the job is done and post the images to the channel with the bot token. `/credits` and `/jobs`
answer at once. No database, no checks, no queue, no status message. Configured by environment variables:

    BARE_TOKEN BARE_API_BASE BARE_GATEWAY BARE_SEGMIND BARE_PROVIDER_SECONDS

    python -m bench.bare_bot
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import random
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands
from discord.ext import commands

POLL_SECONDS = 0.05


class BareBot(commands.Bot):
    def __init__(self, segmind: str, provider_seconds: float) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.segmind = segmind.rstrip("/")
        self.provider_seconds = provider_seconds
        self.http_session: aiohttp.ClientSession | None = None

    async def setup_hook(self) -> None:
        self.http_session = aiohttp.ClientSession(headers={"x-api-key": "bare"})
        self.tree.add_command(app_commands.Command(name="vary", description="Vary an image", callback=vary))
        self.tree.add_command(app_commands.Command(name="imagine", description="Draw a prompt", callback=imagine))
        self.tree.add_command(app_commands.Command(name="credits", description="Your credits", callback=credits))
        self.tree.add_command(app_commands.Command(name="jobs", description="Your jobs", callback=jobs))
        await self.tree.sync()

    async def close(self) -> None:
        if self.http_session is not None:
            await self.http_session.close()
        await super().close()

    async def generate(self, interaction: discord.Interaction[Any], slug: str, body: dict[str, Any]) -> None:
        assert self.http_session is not None
        async with self.http_session.post(f"{self.segmind}/v2/{slug}", json=body) as response:
            request_id = (await response.json())["request_id"]
        await interaction.followup.send(f"Queued {request_id}", ephemeral=True)
        await asyncio.sleep(self.provider_seconds)
        while True:
            async with self.http_session.get(f"{self.segmind}/v2/requests/{request_id}") as response:
                answer = await response.json()
            if answer.get("status") in ("COMPLETED", "FAILED"):
                break
            await asyncio.sleep(POLL_SECONDS)
        urls = answer.get("output") or []
        files = []
        for n, url in enumerate([urls] if isinstance(urls, str) else urls):
            async with self.http_session.get(url) as response:
                files.append(discord.File(io.BytesIO(await response.read()), filename=f"{request_id}-{n}.webp"))
        channel = self.get_partial_messageable(interaction.channel_id or 0, guild_id=interaction.guild_id)
        await channel.send(f"result for {interaction.id} ({request_id})", files=files)


async def vary(interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    data = await image.read()
    uri = f"data:{image.content_type or 'image/png'};base64,{base64.b64encode(data).decode()}"
    body = {
        "redux_image": uri,
        "aspect_ratio": "1:1",
        "megapixels": "1",
        "num_outputs": 1,
        "num_inference_steps": 4,
        "seed": random.randrange(2**32),
        "output_format": "webp",
        "output_quality": 80,
    }
    bot = interaction.client
    assert isinstance(bot, BareBot)
    await bot.generate(interaction, "flux-redux-schnell", body)


async def imagine(interaction: discord.Interaction[Any], prompt: str, megapixels: str = "1") -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    side = 512 if megapixels == "0.25" else 1024
    body = {"prompt": prompt, "steps": 4, "seed": random.randrange(2**32), "samples": 1, "width": side, "height": side}
    bot = interaction.client
    assert isinstance(bot, BareBot)
    await bot.generate(interaction, "flux-schnell", body)


async def credits(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.send_message("You have 20 credits.", ephemeral=True)


async def jobs(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.send_message("You have no jobs yet.", ephemeral=True)


def main() -> None:
    discord.http.Route.BASE = os.environ["BARE_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["BARE_GATEWAY"])
    bot = BareBot(os.environ["BARE_SEGMIND"], float(os.environ["BARE_PROVIDER_SECONDS"]))
    bot.run(os.environ["BARE_TOKEN"], log_handler=None)


if __name__ == "__main__":
    main()
