"""Every command, button and menu is acknowledged before it touches the database: it is, even while it is busy."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from emulators.discord.emulator import DiscordEmulator
from emulators.discord.messages import Interaction
from storage.db import Database
from tests.e2e.conftest import Start, job_id_from, png, wait_result


class BusyDatabase:
    """Holds the writer's lock (a transaction left open) and the reader's thread (a query that waits)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.release = threading.Event()
        self.writer_held = asyncio.Event()
        self.tasks: list[asyncio.Task[object]] = []

    def _wait(self) -> int:
        self.release.wait(60)
        return 1

    async def _hold_writer(self) -> None:
        async with self.db.transaction():
            self.writer_held.set()
            await asyncio.to_thread(self.release.wait, 60)

    async def __aenter__(self) -> BusyDatabase:
        async with self.db.reading() as reader:
            await reader.create_function("fluxcord_wait", 0, self._wait)
        self.tasks = [
            asyncio.create_task(self.db.fetchone("SELECT fluxcord_wait()")),
            asyncio.create_task(self._hold_writer()),
        ]
        await self.writer_held.wait()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release.set()
        await asyncio.gather(*self.tasks)


async def test_everything_is_acknowledged_while_the_database_is_busy(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice, admin = discord_emu.add_member("alice"), discord_emu.add_member("admin", manage_guild=True)
    role = discord_emu.add_role("artists")
    image = {"image": ("cat.png", png(), "image/png")}
    queued = await discord_emu.slash("vary", user=alice, options={"megapixels": "0.25"}, attachments=image)
    job_id = job_id_from((await queued.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)
    posted = discord_emu.post_message(author=alice, attachments=[("cat.png", png(), "image/png")])
    imagined = await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox", "megapixels": "0.25"})
    imagine_id = job_id_from((await imagined.wait_content("Queued job")).content)
    imagine_result = await wait_result(discord_emu, imagine_id)

    admin_commands: list[tuple[str, dict[str, object]]] = [
        ("grant", {"member": alice, "amount": 5}),
        ("revoke", {"member": alice, "amount": 1}),
        ("allowance", {"amount": 25}),
        ("role-bonus", {"role": role, "amount": 3}),
        ("budget", {"amount": 500}),
        ("limits", {"jobs_per_minute": 10}),
        ("channels", {"action": "list"}),
        ("nsfw", {"policy": "deny"}),
        ("provider", {"name": "segmind"}),
        ("block", {"member": discord_emu.add_member("spammer")}),
        ("unblock", {"member": alice}),
        ("ledger", {"member": alice}),
        ("usage", {"days": 3}),
    ]
    async with BusyDatabase(bot.services.db):
        sent: list[Interaction] = [
            await discord_emu.slash("credits", user=alice),
            await discord_emu.slash("credits", user=admin, options={"member": alice}),
            await discord_emu.slash("jobs", user=alice),
            await discord_emu.slash("cancel", user=alice, options={"job": job_id}),
            await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox"}),
            await discord_emu.slash("vary", user=alice, attachments=image),
            *[
                await discord_emu.slash("fluxadmin", subcommand=name, user=admin, options=options)
                for name, options in admin_commands
            ],
            *[
                await discord_emu.click(result, custom_id, user=alice)
                for custom_id in (f"fx:info:{job_id}", f"fx:reroll:{job_id}", f"fx:vary:{job_id}:1")
            ],
        ]
        # The menu and Remix answer with a form, which cannot follow a defer: they answer in time all the same.
        forms = [
            await discord_emu.context_menu("Vary with FLUX", user=alice, message=posted),
            await discord_emu.click(imagine_result, f"fx:remix:{imagine_id}", user=alice),
        ]
        for interaction in sent:
            await interaction.wait_answered()
            assert interaction.deferred and interaction.ephemeral, interaction.describe()
        for interaction in forms:
            await interaction.wait_answered()
            assert interaction.modal is not None or interaction.ephemeral, interaction.describe()
        # Autocomplete cannot be deferred: it gives up on a slow read and answers in time, with nothing.
        assert await discord_emu.autocomplete("cancel", user=alice, option="job", value="") == []
        assert all(reply.loading for interaction in sent for reply in interaction.replies)

    for interaction in sent:
        answer = await interaction.wait_reply(lambda message: not message.loading)
        assert answer.content or answer.embeds, interaction.describe()
        assert "Something went wrong" not in answer.content
