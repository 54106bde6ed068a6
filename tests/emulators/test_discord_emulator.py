"""The Discord emulator driven by the real discord.py client (a small test bot, not the project's)."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from emulators.discord.emulator import DiscordEmulator, custom_ids, find_button
from tests.conftest import make_png

EDIT_ROUTE = "PATCH /channels/{channel}/messages/{message}"


class FxButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"fx:(?P<action>\w+):(?P<id>\w+)"):
    """A persistent button: any client that registered it can answer clicks on old messages."""

    def __init__(self, action: str, job_id: str) -> None:
        super().__init__(discord.ui.Button(label=action.title(), emoji="🔁", custom_id=f"fx:{action}:{job_id}"))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> FxButton:
        return cls(match["action"], match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        assert isinstance(client, FxBot)
        client.clicks.append((self.action, self.job_id, interaction.user.id))
        await interaction.response.send_message(f"{self.action} of {self.job_id} queued", ephemeral=True)


class FxBot(commands.Bot):
    """A bot with one command of each kind the emulator must carry."""

    def __init__(self, emulator: DiscordEmulator, *, sync: bool, intents: discord.Intents | None = None) -> None:
        super().__init__(command_prefix="!", intents=intents or discord.Intents.default(), guild_ready_timeout=0.05)
        self.emulator = emulator
        self.sync = sync
        self.clicks: list[tuple[str, str, int]] = []
        self.errors: list[BaseException] = []
        self.pending: list[discord.Interaction] = []
        self.seen_attachments: list[tuple[str, bytes]] = []

    async def setup_hook(self) -> None:
        guild = discord.Object(self.emulator.guild_id)
        self.add_dynamic_items(FxButton)
        self.tree.on_error = self.on_tree_error  # type: ignore[method-assign]
        for command in guild_commands():
            self.tree.add_command(command, guild=guild)
        self.tree.add_command(app_commands.ContextMenu(name="Vary this", callback=vary_this))
        if self.sync:
            await self.tree.sync(guild=guild)
            await self.tree.sync()

    async def on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        self.errors.append(error)


@app_commands.describe(image="The image to vary")
async def vary(interaction: discord.Interaction, image: discord.Attachment, note: str = "") -> None:
    client = interaction.client
    assert isinstance(client, FxBot) and isinstance(interaction.channel, discord.TextChannel)
    await interaction.response.defer(ephemeral=True, thinking=True)
    data = await image.read()
    client.seen_attachments.append((image.filename, data))
    view = discord.ui.View(timeout=None)
    view.add_item(FxButton("upscale", "j42"))
    status = await interaction.channel.send(
        f"Queued {note}".strip(), file=discord.File(io.BytesIO(data), "input.png"), view=view
    )
    await interaction.followup.send(f"job j42 queued ({len(data)} bytes)", ephemeral=True)
    status = await status.edit(content="Running")
    result = discord.File(io.BytesIO(data[::-1]), "result.png")
    await status.edit(content="Done", attachments=[*status.attachments, result])


async def ping(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("pong")
    await interaction.followup.send("only you can see this", ephemeral=True)


async def ok(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(f"ok, {interaction.permissions.manage_guild}")


async def later(interaction: discord.Interaction) -> None:
    client = interaction.client
    assert isinstance(client, FxBot)
    await interaction.response.defer()
    client.pending.append(interaction)


STYLES = ["anime", "analog film", "watercolor", "pixel art"]


async def styles(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=style, value=style) for style in STYLES if current.lower() in style]


@app_commands.autocomplete(style=styles)
async def pick(interaction: discord.Interaction, style: str) -> None:
    await interaction.response.send_message(f"style {style}")


async def vary_this(interaction: discord.Interaction, message: discord.Message) -> None:
    data = await message.attachments[0].read()
    await interaction.response.send_message(
        f"{message.attachments[0].filename}: {len(data)} bytes, {message.attachments[0].width}px", ephemeral=True
    )


class NameModal(discord.ui.Modal, title="Name the job"):
    name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(label="Name", custom_id="name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"named {self.name.value}", view=None)


class RenameView(discord.ui.View):
    @discord.ui.button(label="Rename", custom_id="rename")
    async def rename(self, interaction: discord.Interaction, button: discord.ui.Button[RenameView]) -> None:
        await interaction.response.send_modal(NameModal())


async def rename(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("unnamed", view=RenameView())


def guild_commands() -> list[app_commands.Command[Any, ..., None]]:
    admin: app_commands.Command[Any, ..., None] = app_commands.Command(
        name="admin", description="Admin only", callback=ok
    )
    return [
        app_commands.Command(name="vary", description="Vary an image", callback=vary),
        app_commands.Command(name="ping", description="Ping", callback=ping),
        app_commands.Command(name="later", description="Defer and wait", callback=later),
        app_commands.Command(name="pick", description="Pick a style", callback=pick),
        app_commands.Command(name="rename", description="Rename", callback=rename),
        app_commands.Command(name="spicy", description="Age-restricted", callback=ok, nsfw=True),
        app_commands.default_permissions(manage_guild=True)(admin),
    ]


Boot = Callable[..., Awaitable[FxBot]]


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with DiscordEmulator() as fake:
        discord.http.Route.BASE = fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
        try:
            yield fake
        finally:
            discord.http.Route.BASE = base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
    assert fake.errors == []


@pytest.fixture
async def boot(emulator: DiscordEmulator) -> AsyncIterator[Boot]:
    """Start test bots as tasks; close them all afterwards and fail on any crash or command error."""
    started: list[tuple[FxBot, asyncio.Task[None]]] = []

    async def start(*, sync: bool = True, intents: discord.Intents | None = None) -> FxBot:
        bot = FxBot(emulator, sync=sync, intents=intents)
        task = asyncio.create_task(bot.start(emulator.token))
        started.append((bot, task))
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()
            pytest.fail("the test bot did not become ready within 5 s")
        return bot

    yield start
    for bot, task in started:
        await bot.close()
        await asyncio.wait_for(task, 5)
    for bot, _ in started:
        assert bot.errors == []


async def test_boot_reaches_ready_and_records_the_sync(emulator: DiscordEmulator, boot: Boot) -> None:
    began = time.perf_counter()
    bot = await boot()
    elapsed = time.perf_counter() - began

    assert elapsed < 0.5
    assert emulator.ready.is_set()
    assert [request.route for request in emulator.requests[:5]] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "PUT /applications/{app}/guilds/{guild}/commands",
        "PUT /applications/{app}/commands",
        "GET /gateway",
    ]
    assert emulator.commands["sync_count"] == 2
    synced = {c["name"] for c in emulator.commands["guilds"][emulator.guild_id]}
    assert synced == {"vary", "ping", "later", "pick", "rename", "spicy", "admin"}
    assert [(c["name"], c["type"]) for c in emulator.commands["global"]] == [("Vary this", 3)]
    assert bot.application_id == emulator.application_id
    assert bot.user is not None and bot.user.id == emulator.bot_user_id
    guild = bot.get_guild(emulator.guild_id)
    assert guild is not None and guild.member_count == len(guild.members)
    nsfw = guild.get_channel(emulator.nsfw_channel_id)
    assert isinstance(nsfw, discord.TextChannel) and nsfw.is_nsfw() and nsfw.name == "art-18"
    assert emulator.unknown_requests == []


async def test_rest_answers_exact_json_and_refuses_a_wrong_token(emulator: DiscordEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.api_base}/users/@me"
        async with http.get(url, headers={"Authorization": f"Bot {emulator.token}"}) as ok:
            assert ok.status == 200 and ok.headers["Content-Type"] == "application/json"
            assert "X-RateLimit-Remaining" not in ok.headers
        async with http.get(url, headers={"Authorization": "Bot nope"}) as refused:
            assert refused.status == 401
        async with http.get(f"{emulator.api_base}/voice/regions") as unknown:
            assert unknown.status == 404 and (await unknown.json()) == {"message": "404: Not Found", "code": 0}
    assert [request.path for request in emulator.unknown_requests] == ["/api/v10/voice/regions"]


async def test_slash_with_attachment_status_edits_and_a_click_after_restart(
    emulator: DiscordEmulator, boot: Boot
) -> None:
    first = await boot()
    alice = emulator.add_member("alice")
    png = make_png(64, 48)

    interaction = await emulator.slash(
        "vary", user=alice, options={"note": "please"}, attachments={"image": ("cat.png", png, "image/png")}
    )
    await interaction.wait_answered()
    assert interaction.deferred and interaction.ephemeral
    reply = await interaction.wait_content("job j42 queued")
    assert reply is interaction.original and reply.ephemeral and not reply.loading
    status = await emulator.wait_for_message(lambda m: m.content == "Done")
    assert first.seen_attachments == [("cat.png", png)]

    assert status.contents == ["Queued please", "Running", "Done"]
    assert [state.attachments for state in status.edits] == [["input.png"], ["input.png"], ["input.png", "result.png"]]
    assert status.attachments[0].content_type == "image/png" and status.attachments[0].width == 64
    assert status.attachments[1].data == png[::-1]
    assert emulator.channel_messages() == [status]
    assert emulator.channel_messages(include_ephemeral=True) == [reply, status]
    assert custom_ids(status) == ["fx:upscale:j42"]
    assert find_button(status, "🔁")["label"] == "Upscale"
    assert [r.files for r in emulator.calls(EDIT_ROUTE)] == [(), ("result.png",)]

    await first.close()
    second = await boot(sync=False)
    click = await emulator.click(status, find_button(status, "Upscale")["custom_id"], user=alice)
    await click.wait_answered()

    assert second.clicks == [("upscale", "j42", alice.id)]
    assert first.clicks == []
    assert click.text == "upscale of j42 queued" and click.ephemeral
    assert emulator.commands["sync_count"] == 2


async def test_followups_are_separate_messages_with_their_own_visibility(emulator: DiscordEmulator, boot: Boot) -> None:
    await boot()
    bob = emulator.add_member("bob")

    interaction = await emulator.slash("ping", user=bob)
    secret = await interaction.wait_content("only you")

    assert not interaction.deferred and not interaction.ephemeral
    assert [m.content for m in interaction.replies] == ["pong", "only you can see this"]
    assert interaction.followups == [secret] and secret.ephemeral
    assert secret.to_payload()["interaction_metadata"]["user"]["id"] == str(bob.id)
    assert [m.content for m in emulator.channel_messages()] == ["pong"]


async def test_autocomplete_returns_the_bots_choices(emulator: DiscordEmulator, boot: Boot) -> None:
    await boot()
    carol = emulator.add_member("carol")

    choices = await emulator.autocomplete("pick", user=carol, option="style", value="an")

    assert [choice["value"] for choice in choices] == ["anime", "analog film"]


async def test_context_menu_reads_a_members_image(emulator: DiscordEmulator, boot: Boot) -> None:
    await boot()
    dave = emulator.add_member("dave")
    png = make_png(32, 16)
    posted = emulator.post_message(author=dave, content="look", attachments=[("art.png", png, "image/png")])

    interaction = await emulator.context_menu("Vary this", user=dave, message=posted)
    await interaction.wait_answered()

    assert interaction.text == f"art.png: {len(png)} bytes, 32px"
    assert interaction.ephemeral


async def test_rate_limited_edit_is_retried_and_lands(emulator: DiscordEmulator, boot: Boot) -> None:
    bot = await boot()
    channel = bot.get_channel(emulator.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("before")
    emulator.inject_429("PATCH", r"/channels/\d+/messages/\d+$", retry_after=0.2)

    began = time.perf_counter()
    await sent.edit(content="after")

    assert time.perf_counter() - began >= 0.2
    assert [r.status for r in emulator.calls(EDIT_ROUTE)] == [429, 200]
    assert emulator.messages[sent.id].contents == ["before", "after"]


async def test_followup_with_an_expired_token_is_refused(emulator: DiscordEmulator, boot: Boot) -> None:
    bot = await boot()
    erin = emulator.add_member("erin")
    await (await emulator.slash("later", user=erin)).wait_answered()
    [interaction] = bot.pending

    emulator.advance(16 * 60)
    with pytest.raises(discord.HTTPException) as refused:
        await interaction.followup.send("too late")

    assert refused.value.status == 401 and refused.value.code == 50027


async def test_editing_a_deleted_message_is_not_found(emulator: DiscordEmulator, boot: Boot) -> None:
    bot = await boot()
    channel = bot.get_channel(emulator.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("soon gone")

    emulator.delete_message(sent.id)
    with pytest.raises(discord.NotFound) as missing:
        await sent.edit(content="still here?")

    assert missing.value.code == 10008
    assert emulator.messages[sent.id].deleted
    assert emulator.channel_messages() == []


async def test_commands_that_were_not_synced_fail_loudly(emulator: DiscordEmulator, boot: Boot) -> None:
    await boot(sync=False)
    frank = emulator.add_member("frank")

    with pytest.raises(LookupError, match="was not synced"):
        await emulator.slash("vary", user=frank)


async def test_a_view_button_opens_a_modal_whose_submit_updates_the_message(
    emulator: DiscordEmulator, boot: Boot
) -> None:
    await boot()
    gina = emulator.add_member("gina")
    reply = await (await emulator.slash("rename", user=gina)).wait_content("unnamed")

    click = await emulator.click(reply, "rename", user=gina)
    await click.wait_answered()
    assert click.modal is not None and click.modal["title"] == "Name the job"
    submitted = await emulator.submit_modal(click, {"name": "sunset"})
    await submitted.wait_answered()

    assert reply.contents == ["unnamed", "named sunset"]
    assert reply.components == []


async def test_the_client_resumes_after_a_reconnect_request(emulator: DiscordEmulator, boot: Boot) -> None:
    bot = await boot()
    resumed = asyncio.Event()

    async def on_resumed() -> None:
        resumed.set()

    bot.add_listener(on_resumed)
    emulator.reconnect()
    await asyncio.wait_for(resumed.wait(), 5)
    answer = await emulator.slash("ping", user=emulator.add_member("hank"))

    assert (await answer.wait_content("pong")).content == "pong"
    assert (emulator.gateway.identify_count, emulator.gateway.resume_count) == (1, 1)


async def test_world_changes_reach_a_bot_with_privileged_intents(emulator: DiscordEmulator, boot: Boot) -> None:
    began = time.perf_counter()
    bot = await boot(intents=discord.Intents.all())
    assert time.perf_counter() - began < 0.5
    guild = bot.get_guild(emulator.guild_id)
    assert guild is not None and guild.chunked

    role_id = emulator.add_role("artists")
    ivy = emulator.add_member("ivy", roles=[role_id], manage_messages=True)
    channel_id = emulator.add_channel("gallery")
    await emulator.wait_for(lambda: None not in (guild.get_member(ivy.id), guild.get_channel(channel_id)))
    heard = asyncio.create_task(bot.wait_for("message", timeout=5))
    emulator.post_message(author=ivy, content="hello", channel_id=channel_id)
    message = await heard

    assert message.content == "hello" and message.author.id == ivy.id
    member = guild.get_member(ivy.id)
    assert member is not None and role_id in [role.id for role in member.roles]
    assert member.guild_permissions.manage_messages and not member.guild_permissions.manage_guild


async def test_commands_hidden_by_permissions_or_age_restriction_cannot_be_run(
    emulator: DiscordEmulator, boot: Boot
) -> None:
    await boot()
    member = emulator.add_member("jo")
    manager = emulator.add_member("kim", manage_guild=True)

    with pytest.raises(PermissionError, match="cannot see /admin"):
        await emulator.slash("admin", user=member)
    with pytest.raises(PermissionError, match="age-restricted"):
        await emulator.slash("spicy", user=member)
    admin = await emulator.slash("admin", user=manager)
    spicy = await emulator.slash("spicy", user=member, channel_id=emulator.nsfw_channel_id)

    assert (await admin.wait_content("ok")).content == "ok, True"
    assert (await spicy.wait_content("ok")).channel_id == emulator.nsfw_channel_id


async def test_uploads_over_the_limit_are_refused(emulator: DiscordEmulator, boot: Boot) -> None:
    bot = await boot()
    channel = bot.get_channel(emulator.channel_id)
    assert isinstance(channel, discord.TextChannel)
    emulator.upload_limit = 1000

    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(file=discord.File(io.BytesIO(bytes(1001)), "big.bin"))
    await channel.send(file=discord.File(io.BytesIO(bytes(1000)), "fits.bin"))

    assert refused.value.status == 413 and refused.value.code == 40005
    [message] = emulator.channel_messages()
    assert message.attachments[0].filename == "fits.bin" and message.attachments[0].size == 1000
