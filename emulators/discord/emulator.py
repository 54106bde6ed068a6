"""A local fake Discord (REST, gateway, CDN) that the real discord.py client connects to, driven by tests.

Point discord.py at it before the client logs in::

    discord.http.Route.BASE = emulator.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emulator.gateway_url)

Then act as guild members (`slash`, `click`, `autocomplete`, `context_menu`, `post_message`) and observe what the
bot did (`messages`, `requests`, `commands`, the returned `Interaction` handles). A member may also act through a
modified client: option values Discord's client would never send (`unchecked=`), changed interaction data
(`tamper=`), clicks on buttons a message does not carry (`forged=`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

from emulators.discord.commands import DiscordCommands, Upload
from emulators.discord.messages import (
    Interaction,
    RecordedRequest,
    StoredMessage,
    custom_ids,
    find_button,
    iter_components,
)
from emulators.discord.models import Json, Member, StoredAttachment
from emulators.discord.state import SyncedCommands

__all__ = [
    "DiscordEmulator",
    "Interaction",
    "Member",
    "RecordedRequest",
    "StoredAttachment",
    "StoredMessage",
    "SyncedCommands",
    "custom_ids",
    "find_button",
]

SELECT_TYPES: Final = frozenset({3, 5, 6, 7, 8})
#: the gateway intent a session needs to receive reaction events
GUILD_MESSAGE_REACTIONS: Final = 1 << 10

#: changes an interaction's `data` in place before it is dispatched, as a modified client could
Tamper = Callable[[Json], None]


class DiscordEmulator(DiscordCommands):
    """One guild ("general" and the age-restricted "art-18"), a bot application, and members to act as."""

    @property
    def ready(self) -> asyncio.Event:
        """Set while a client is IDENTIFYed (READY and GUILD_CREATE sent)."""
        return self.gateway.ready

    # -- observing -------------------------------------------------------------------------------

    def channel_messages(
        self, channel_id: int | None = None, *, include_ephemeral: bool = False
    ) -> list[StoredMessage]:
        """The channel's messages that were not deleted, oldest first; `channel_id` defaults to "general"."""
        wanted = self.channel_id if channel_id is None else channel_id
        return [
            message
            for message in self.messages.values()
            if message.channel_id == wanted and not message.deleted and (include_ephemeral or not message.ephemeral)
        ]

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - public test API
    ) -> None:
        """Return once `predicate()` holds; TimeoutError with the recent traffic otherwise."""
        await self.signal.wait_until(predicate, timeout, lambda: self._describe(f"condition not met in {timeout}s"))

    async def wait_for_message(
        self,
        predicate: Callable[[StoredMessage], bool],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - public test API
    ) -> StoredMessage:
        """The first stored message (any channel, any state) satisfying `predicate`."""
        found: list[StoredMessage] = []

        def check() -> bool:
            found[:] = [message for message in self.messages.values() if predicate(message)][:1]
            return bool(found)

        await self.signal.wait_until(check, timeout, lambda: self._describe(f"no matching message in {timeout}s"))
        return found[0]

    def _describe(self, headline: str) -> str:
        recent = "\n  ".join(str(request) for request in self.requests[-12:]) or "(none)"
        messages = "\n  ".join(repr(message) for message in list(self.messages.values())[-6:]) or "(none)"
        errors = f"\nemulator errors:\n{self.errors[-1]}" if self.errors else ""
        return f"{headline}\nrecent requests:\n  {recent}\nrecent messages:\n  {messages}{errors}"

    # -- test controls ---------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the emulated clock: snowflakes, timestamps and interaction-token expiry follow it."""
        self.clock.advance(seconds)

    def delete_message(self, message_id: int) -> None:
        """Delete a message as a moderator would; later calls on it answer 404 Unknown Message."""
        self.remove_message(self.live_message(message_id))

    def reconnect(self) -> None:
        """Ask the connected client to reconnect and RESUME (gateway op 7)."""
        self.gateway.request_reconnect()

    def post_message(
        self,
        *,
        author: Member,
        content: str = "",
        channel_id: int | None = None,
        attachments: list[Upload] | None = None,
    ) -> StoredMessage:
        """A member's message in a channel ("general" by default), dispatched as MESSAGE_CREATE."""
        channel = self.channel(self.channel_id if channel_id is None else channel_id)
        if author.id not in self.guild.members:
            raise KeyError(f"{author.name} is not a member of the guild; use add_member()")
        files = [self.store_attachment(channel.id, name, data, kind) for name, data, kind in attachments or []]
        return self.create_message(channel_id=channel.id, author=author, body={"content": content}, files=files)

    # -- acting as a member ----------------------------------------------------------------------

    async def slash(
        self,
        name: str,
        *,
        user: Member,
        channel_id: int | None = None,
        options: Mapping[str, object] | None = None,
        attachments: Mapping[str, Upload] | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        unchecked: bool = False,
        tamper: Tamper | None = None,
    ) -> Interaction:
        """Invoke a synced slash command; `attachments` maps option names to (filename, bytes, content type).

        As a modified client would: `unchecked` sends option values without the checks Discord's client makes
        (types, ranges, lengths, choices), and `tamper` may change the interaction's `data` before it is sent.
        """
        command, guild_id = self.find_command(name, 1)
        target = self.channel(self.channel_id if channel_id is None else channel_id).id
        self._check_visible(command, user, target)
        options_payload, resolved = self._options(
            command,
            dict(options or {}),
            dict(attachments or {}),
            target,
            subcommand,
            group,
            focused=None,
            unchecked=unchecked,
        )
        data = self._command_data(command, guild_id, options_payload, resolved)
        if tamper is not None:
            tamper(data)
        interaction = self.new_interaction(2, user=user, channel_id=target, data=data)
        await asyncio.sleep(0)
        return interaction

    async def autocomplete(
        self,
        name: str,
        *,
        user: Member,
        option: str,
        value: str,
        options: Mapping[str, object] | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        channel_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - public test API
    ) -> list[Json]:
        """Type `value` into `option` and return the choices the bot answered with."""
        command, guild_id = self.find_command(name, 1)
        target = self.channel(self.channel_id if channel_id is None else channel_id).id
        self._check_visible(command, user, target)
        values = dict(options or {}) | {option: value}
        options_payload, resolved = self._options(
            command, values, {}, target, subcommand, group, focused=option, unchecked=False
        )
        data = self._command_data(command, guild_id, options_payload, resolved)
        interaction = self.new_interaction(4, user=user, channel_id=target, data=data)
        await self.signal.wait_until(
            lambda: interaction.choices is not None,
            timeout,
            lambda: f"no autocomplete answer within {timeout}s: {interaction.describe()}",
        )
        return list(interaction.choices or [])

    async def context_menu(
        self, name: str, *, user: Member, message: StoredMessage, tamper: Tamper | None = None
    ) -> Interaction:
        """Run a message command ("Apps" menu) on `message`; `tamper` may change `data` first (a modified client)."""
        command, guild_id = self.find_command(name, 3)
        target = self.live_message(message.id)
        self._check_visible(command, user, target.channel_id)
        data: Json = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): target.to_payload()}},
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        if tamper is not None:
            tamper(data)
        interaction = self.new_interaction(2, user=user, channel_id=target.channel_id, data=data)
        await asyncio.sleep(0)
        return interaction

    async def click(
        self,
        message: StoredMessage,
        custom_id: str,
        *,
        user: Member,
        values: list[str] | None = None,
        forged: bool = False,
    ) -> Interaction:
        """Click a button (or pick `values` in a select) on the message as it is stored now.

        `forged` clicks a button with a `custom_id` the message does not carry, as a modified client could: the
        interaction's copy of the message shows that button in place of the message's own.
        """
        current = self.live_message(message.id)
        component = next((c for c in iter_components(current.components) if c.get("custom_id") == custom_id), None)
        shown: Json | None = None
        if component is None and forged:
            component = {"type": 2, "style": 2, "label": "forged", "custom_id": custom_id}
            shown = current.to_payload() | {"components": [{"type": 1, "components": [component]}]}
        if component is None:
            raise LookupError(f"no component {custom_id!r} on message {current.id}; it has {custom_ids(current)}")
        if component.get("disabled"):
            raise PermissionError(f"component {custom_id!r} on message {current.id} is disabled")
        data: Json = {"custom_id": custom_id, "component_type": component.get("type", 2)}
        if data["component_type"] in SELECT_TYPES:
            data["values"] = list(values or [])
        interaction = self.new_interaction(
            3, user=user, channel_id=current.channel_id, data=data, message=current, message_payload=shown
        )
        await asyncio.sleep(0)
        return interaction

    async def submit_modal(
        self, opened_by: Interaction, values: Mapping[str, str | list[str]], *, user: Member | None = None
    ) -> Interaction:
        """Fill in and submit the modal the bot opened in answer to `opened_by` (text inputs by custom id)."""
        modal = opened_by.modal
        if modal is None:
            raise LookupError(f"the bot opened no modal for {opened_by.describe()}")

        def answer(component: Json) -> Json:
            if component.get("type") == 1:
                return {"type": 1, "components": [answer(child) for child in component.get("components", [])]}
            if component.get("type") == 18:
                return {"type": 18, "component": answer(component["component"])}
            entry: Json = {"type": component.get("type"), "custom_id": component.get("custom_id")}
            value = values.get(str(component.get("custom_id")), "")
            entry |= {"values": value} if isinstance(value, list) else {"value": value}
            return entry

        data = {"custom_id": modal["custom_id"], "components": [answer(c) for c in modal.get("components", [])]}
        interaction = self.new_interaction(
            5, user=user or opened_by.user, channel_id=opened_by.channel_id, data=data, message=opened_by.message
        )
        await asyncio.sleep(0)
        return interaction

    def react(self, message: StoredMessage, emoji: str, *, user: Member, remove: bool = False) -> bool:
        """A member adds (or removes) a unicode-emoji reaction; False when the client did not ask for reactions.

        Discord sends MESSAGE_REACTION_ADD/REMOVE only to sessions that identified with GUILD_MESSAGE_REACTIONS.
        """
        current = self.live_message(message.id)
        if user.id not in self.guild.members:
            raise KeyError(f"{user.name} is not a member of the guild; use add_member()")
        if not self.gateway.intents & GUILD_MESSAGE_REACTIONS:
            return False
        payload: Json = {
            "user_id": str(user.id),
            "channel_id": str(current.channel_id),
            "message_id": str(current.id),
            "guild_id": str(self.guild_id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if not remove:
            payload["member"] = self.guild.member_payload(user)
            payload["message_author_id"] = str(current.author.id)
        sent = self.gateway.dispatch("MESSAGE_REACTION_REMOVE" if remove else "MESSAGE_REACTION_ADD", payload)
        self.signal.bump()
        return sent

    def describe(self) -> str:
        """A short summary of the traffic so far, for failure messages."""
        return self._describe(f"Discord emulator at {self._root}")

    def __repr__(self) -> str:
        return f"<DiscordEmulator root={self._root} messages={len(self.messages)} requests={len(self.requests)}>"
