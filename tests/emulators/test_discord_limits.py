"""The Discord emulator refuses what Discord refuses (400, code 50035) and can act as a modified client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from emulators.discord.emulator import DiscordEmulator
from tests.emulators.test_discord_emulator import emulator

__all__ = ["emulator"]  # the fixture, shared with the emulator's other tests

CALLBACK = "POST /interactions/{interaction}/{token}/callback"


class LimitBot(commands.Bot):
    """Answers autocomplete with whatever the test put in `choices`; records what its commands received."""

    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.choices: list[app_commands.Choice[str]] = []
        self.received: list[object] = []
        self.failures: list[BaseException] = []

    async def setup_hook(self) -> None:
        @app_commands.command(name="size", description="Takes a number from 1 to 4")
        async def size(interaction: discord.Interaction, count: app_commands.Range[int, 1, 4]) -> None:
            self.received.append(count)
            await interaction.response.send_message("ok")

        @app_commands.command(name="find", description="Autocompletes")
        async def find(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(name)

        @find.autocomplete("name")
        async def suggest(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return self.choices

        self.tree.add_command(size)
        self.tree.add_command(find)
        await self.tree.sync()


class ClickBot(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"job:(?P<id>\w+)"):
    def __init__(self, job: str) -> None:
        super().__init__(discord.ui.Button(label="Go", custom_id=f"job:{job}"))
        self.job = job

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> ClickBot:
        return cls(match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"clicked {self.job}", ephemeral=True)


@pytest.fixture
async def bot(emulator: DiscordEmulator) -> AsyncIterator[LimitBot]:
    client = LimitBot()
    client.add_dynamic_items(ClickBot)
    task = asyncio.create_task(client.start(emulator.token))
    await asyncio.wait_for(client.wait_until_ready(), 5)
    yield client
    await client.close()
    await asyncio.wait_for(task, 5)


async def test_over_long_messages_are_refused_with_the_fields_path(emulator: DiscordEmulator, bot: LimitBot) -> None:
    channel = bot.get_channel(emulator.channel_id)
    assert isinstance(channel, discord.TextChannel)
    too_much = [
        {"content": "c" * 2001},
        {"embed": discord.Embed(description="d" * 4097)},
        {"embed": discord.Embed(title="t" * 257)},
        {"embed": discord.Embed().add_field(name="n", value="v" * 1025)},
        {"embed": discord.Embed().set_footer(text="f" * 2049)},
        {"embeds": [discord.Embed(description="d" * 4000), discord.Embed(description="d" * 2001)]},
    ]
    paths = []
    for kwargs in too_much:
        with pytest.raises(discord.HTTPException) as refused:
            await channel.send(**kwargs)
        assert (refused.value.status, refused.value.code) == (400, 50035)
        paths.append(refused.value.text.splitlines()[-1].split(":")[0])
    assert paths == [
        "In content",
        "In embeds.0.description",
        "In embeds.0.title",
        "In embeds.0.fields.0.value",
        "In embeds.0.footer.text",
        "In embeds",
    ]
    await channel.send("c" * 2000, embed=discord.Embed(description="d" * 4000))
    assert len(emulator.channel_messages()) == 1


@pytest.mark.parametrize(
    ("choices", "path"),
    [
        ([app_commands.Choice(name="n" * 101, value="v")], "data.choices.0.name"),
        ([app_commands.Choice(name="n", value="v" * 101)], "data.choices.0.value"),
        ([app_commands.Choice(name=f"c{n}", value=f"c{n}") for n in range(26)], "data.choices"),
    ],
    ids=["long-name", "long-value", "26-choices"],
)
async def test_autocomplete_answers_over_the_limits_are_refused(
    emulator: DiscordEmulator,
    bot: LimitBot,
    caplog: pytest.LogCaptureFixture,
    choices: list[app_commands.Choice[str]],
    path: str,
) -> None:
    bot.choices = choices
    with pytest.raises(TimeoutError, match="no autocomplete answer"):
        await emulator.autocomplete("find", user=emulator.add_member("ann"), option="name", value="", timeout=1)
    [refused] = [call for call in emulator.calls(CALLBACK) if call.status == 400]
    assert refused.json["type"] == 8
    assert f"In {path}:" in caplog.text  # discord.py logged Discord's error, path and all

    bot.choices = [app_commands.Choice(name="n" * 100, value="v" * 100)] * 25  # exactly at the limits
    assert len(await emulator.autocomplete("find", user=emulator.add_member("bo"), option="name", value="")) == 25


async def test_a_modified_client_sends_what_discords_client_would_not(emulator: DiscordEmulator, bot: LimitBot) -> None:
    member = emulator.add_member("cy")
    with pytest.raises(ValueError, match="outside"):
        await emulator.slash("size", user=member, options={"count": 99})
    sent = await emulator.slash("size", user=member, options={"count": 99}, unchecked=True)
    await sent.wait_answered()
    tampered = await emulator.slash(
        "size", user=member, options={"count": 2}, tamper=lambda data: data["options"][0].update(value=-7)
    )
    await tampered.wait_answered()
    assert bot.received == [99, -7]  # discord.py passes declared ranges through unchecked

    channel = bot.get_channel(emulator.channel_id)
    assert isinstance(channel, discord.TextChannel)
    view = discord.ui.View(timeout=None).add_item(ClickBot("mine"))
    message = emulator.messages[(await channel.send("buttons", view=view)).id]
    with pytest.raises(LookupError):
        await emulator.click(message, "job:theirs", user=member)
    forged = await emulator.click(message, "job:theirs", user=member, forged=True)
    assert (await forged.wait_content("clicked")).content == "clicked theirs"
    assert message.components[0]["components"][0]["custom_id"] == "job:mine"  # the stored message is unchanged
