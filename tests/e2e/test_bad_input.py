"""Bad input through Discord: one private sentence, no job, no charge, nothing sent to the provider."""

from __future__ import annotations

import pytest

from bot.client import FluxcordBot
from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, png

CASES = [
    ({}, ("notes.txt", b"just some text", "text/plain"), "That attachment is not an image"),
    ({}, ("broken.png", png()[:400], "image/png"), "The image is damaged or incomplete"),
    ({}, ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "image/png"), "not an image Fluxcord can read"),
    ({"guidance": 3.0}, ("a.png", png(), "image/png"), "`guidance` only applies to the dev model"),
    ({"steps": 7}, ("a.png", png(), "image/png"), "`steps` must be between 1 and 4 for FLUX.1 Redux schnell"),
    ({"model": "dev", "count": 4}, ("a.png", png(), "image/png"), "You have 20 credits; this job costs 32."),
]


@pytest.mark.parametrize(
    ("options", "attachment", "expected"),
    CASES,
    ids=[
        "text-file",
        "truncated-png",
        "garbage-png",
        "guidance-with-schnell",
        "steps-out-of-range",
        "not-enough-credits",
    ],
)
async def test_bad_vary_input_costs_nothing(
    discord_emu: DiscordEmulator,
    segmind: SegmindEmulator,
    start_bot: Start,
    options: dict[str, object],
    attachment: tuple[str, bytes, str],
    expected: str,
) -> None:
    bot: FluxcordBot = await start_bot()
    alice = discord_emu.add_member("alice")
    posted_before = len(discord_emu.channel_messages())
    ack = await discord_emu.slash("vary", user=alice, options=options, attachments={"image": attachment})
    reply = await ack.wait_reply(lambda message: not message.loading)
    assert reply.ephemeral
    assert expected in reply.content
    assert reply.content.strip().endswith(".") and "\n" not in reply.content.strip()
    assert len(discord_emu.channel_messages()) == posted_before  # no status message
    assert await bot.services.jobs.recent_for_member(discord_emu.guild_id, alice.id) == []
    balance = await bot.services.ledger.balance(discord_emu.guild_id, alice.id)
    assert balance is None or (balance.spendable, balance.held) == (20, 0)
    assert segmind.requests == []


async def test_an_empty_prompt_is_refused(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    alice = discord_emu.add_member("alice")
    ack = await discord_emu.slash("imagine", user=alice, options={"prompt": "   "})
    reply = await ack.wait_reply(lambda message: not message.loading)
    assert reply.ephemeral and "`prompt` must not be empty." in reply.content
