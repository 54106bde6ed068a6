"""Input a modified client sends: attachments from elsewhere or endless, over-long echoes, out-of-range values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from bot.client import FluxcordBot
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction
from emulators.discord.models import Json
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, png


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def nothing_charged_or_queued(bot: FluxcordBot, discord_emu: DiscordEmulator, member: Member) -> None:
    assert await bot.services.jobs.recent_for_member(discord_emu.guild_id, member.id) == []
    balance = await bot.services.ledger.balance(discord_emu.guild_id, member.id)
    assert balance is None or (balance.spendable, balance.held) == (20, 0)


class Elsewhere:
    """A web server that is not Discord's, serving a perfectly good PNG and counting who fetched it."""

    def __init__(self) -> None:
        self.hits = 0
        self.url = ""

    async def image(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(body=png(), content_type="image/png")


@pytest.fixture
async def elsewhere() -> AsyncIterator[Elsewhere]:
    server = Elsewhere()
    app = web.Application()
    app.router.add_get("/cat.png", server.image)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/cat.png"
    yield server
    await runner.cleanup()


def point_attachments_at(url: str) -> Callable[[Json], None]:
    def tamper(data: Json) -> None:
        resolved = data["resolved"]
        attachments = list(resolved.get("attachments", {}).values())
        for message in resolved.get("messages", {}).values():
            attachments += message["attachments"]
        for attachment in attachments:
            attachment["url"] = attachment["proxy_url"] = url

    return tamper


async def test_attachments_are_fetched_only_from_discord(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start, elsewhere: Elsewhere
) -> None:
    bot = await start_bot()
    mallory = discord_emu.add_member("mallory")
    refusal = "That attachment is not stored on Discord; attach the image itself."

    vary = await discord_emu.slash(
        "vary",
        user=mallory,
        attachments={"image": ("cat.png", png(), "image/png")},
        tamper=point_attachments_at(elsewhere.url),
    )
    assert await answer(vary) == refusal
    posted = discord_emu.post_message(author=mallory, attachments=[("cat.png", png(), "image/png")])
    menu = await discord_emu.context_menu(
        "Vary with FLUX",
        user=mallory,
        message=posted,
        tamper=point_attachments_at(elsewhere.url),
    )
    assert await answer(menu) == refusal

    assert elsewhere.hits == 0
    assert segmind.requests == []
    await nothing_charged_or_queued(bot, discord_emu, mallory)


async def test_an_attachment_is_read_only_up_to_the_limit(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    discord_emu.upload_limit = 1_000_000  # the server's upload limit, which every interaction carries
    bot = await start_bot()
    mallory = discord_emu.add_member("mallory")
    endless: list[int] = []

    def serve_endlessly(data: Json) -> None:
        # The attachment declares its true small size; the CDN keeps sending after it.
        endless.extend(int(key) for key in data["resolved"]["attachments"])
        discord_emu.endless_attachments.update(endless)

    vary = await discord_emu.slash(
        "vary",
        user=mallory,
        attachments={"image": ("cat.png", png(), "image/png")},
        tamper=serve_endlessly,
    )
    # Reading to the end would never end: the refusal arriving at all shows the read stopped at the limit.
    assert await answer(vary) == "That image is larger than the 1 MB limit."
    await discord_emu.wait_for(lambda: set(endless) <= discord_emu.endless_abandoned)
    assert segmind.requests == []
    await nothing_charged_or_queued(bot, discord_emu, mallory)


LONG = "x" * 3000


@pytest.mark.parametrize(
    ("command", "options", "expected"),
    [
        ("cancel", {"job": LONG}, "There is no job `xxxxxxxxxxxxxxxxxxxxxxx…` on this server."),
        ("imagine", {"prompt": "a fox", "aspect_ratio": LONG}, "`aspect_ratio` must be one of 1:1, 16:9,"),
        ("imagine", {"prompt": LONG}, "`prompt` must be at most 1000 characters (it has 3000)."),
        ("vary", {"aspect_ratio": LONG}, "`aspect_ratio` must be one of auto, 1:1, 16:9,"),
    ],
    ids=["cancel-job-id", "imagine-aspect-ratio", "imagine-prompt", "vary-aspect-ratio"],
)
async def test_refusals_that_echo_input_fit_in_a_reply(
    discord_emu: DiscordEmulator,
    start_bot: Start,
    command: str,
    options: dict[str, object],
    expected: str,
) -> None:
    bot = await start_bot()
    mallory = discord_emu.add_member("mallory")
    attachments = {"image": ("cat.png", png(), "image/png")} if command == "vary" else None
    ack = await discord_emu.slash(command, user=mallory, options=options, attachments=attachments, unchecked=True)
    text = await answer(ack)  # Discord refuses anything longer: "thinking…" would never resolve
    assert text.startswith(expected) and len(text) <= 200
    assert "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" not in text
    assert all(request.status < 400 for request in discord_emu.requests)
    await nothing_charged_or_queued(bot, discord_emu, mallory)


ADMIN_CASES = [
    ("grant", {"amount": -5}, "`amount` must be between 1 and 1000000 (got -5)."),
    ("revoke", {"amount": -5}, "`amount` must be between 1 and 1000000 (got -5)."),
    ("grant", {"amount": "five"}, "`amount` must be a whole number (got 'five')."),
    ("grant", {"amount": 5, "reason": "r" * 500}, "`reason` must be at most 200 characters (it has 500)."),
    ("allowance", {"amount": -1}, "`amount` must be at least 0 (got -1)."),
    ("budget", {"amount": -1}, "`amount` must be at least 0 (got -1)."),
    ("role-bonus", {"amount": -3}, "`amount` must be between 0 and 1000000 (got -3)."),
    ("limits", {"jobs_per_minute": 0}, "`jobs_per_minute` must be at least 1 (got 0)."),
    ("limits", {"active": 0}, "`active` must be at least 1 (got 0)."),
    ("limits", {"queued": -1}, "`queued` must be at least 0 (got -1)."),
    ("usage", {"days": 0}, "`days` must be between 1 and 90 (got 0)."),
    ("usage", {"days": 100000}, "`days` must be between 1 and 90 (got 100000)."),
    ("nsfw", {"policy": "sometimes"}, "`policy` must be one of allow, deny (got 'sometimes')."),
]


async def test_admin_values_outside_their_declared_ranges_change_nothing(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    admin, alice = discord_emu.add_member("admin", manage_guild=True), discord_emu.add_member("alice")
    role = discord_emu.add_role("artists")
    before = await bot.services.guilds.settings(discord_emu.guild_id)
    for subcommand, options, expected in ADMIN_CASES:
        targets: dict[str, object] = {}
        if subcommand in ("grant", "revoke"):
            targets["member"] = alice
        if subcommand == "role-bonus":
            targets["role"] = role
        ack = await discord_emu.slash(
            "fluxadmin", subcommand=subcommand, user=admin, options=targets | options, unchecked=True
        )
        message = await ack.wait_reply(lambda m: not m.loading)
        assert (message.content, message.attachments) == (expected, []), subcommand
    assert await bot.services.guilds.settings(discord_emu.guild_id) == before
    assert await bot.services.ledger.entries(discord_emu.guild_id, alice.id, limit=5) == []


async def test_generation_values_outside_their_declared_ranges_cost_nothing(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    mallory = discord_emu.add_member("mallory")
    image = {"image": ("cat.png", png(), "image/png")}
    cases = [
        ({"count": 99}, "`count` must be between 1 and 4 (got 99)."),
        ({"quality": -1}, "`quality` must be between 0 and 100 (got -1)."),
        ({"seed": -1}, "`seed` must be between 0 and 4294967295 (got -1)."),
        ({"guidance": 11.5, "model": "dev"}, "`guidance` must be between 0 and 10 (got 11.5)."),
        ({"steps": 51, "model": "dev"}, "`steps` must be between 1 and 50 (got 51)."),
    ]
    for options, expected in cases:
        ack = await discord_emu.slash("vary", user=mallory, options=options, attachments=image, unchecked=True)
        assert await answer(ack) == expected
    assert segmind.requests == []
    await nothing_charged_or_queued(bot, discord_emu, mallory)
