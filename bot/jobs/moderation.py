"""A server's prompt blocklist (checked on every prompt before anything is charged) and its spoiler policy."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from bot.core.blocklist import MAX_ENTRIES, BlockEntry, Blocklist, PromptRefusedError, parse_entry
from bot.core.blocklist import TEXT as BLOCKLIST_TEXT
from bot.core.errors import InvalidRequestError
from bot.core.jobs import Clock
from bot.core.spoilers import MAX_TARGETS, SpoilerPolicy
from bot.core.text import truncate
from storage.moderation import BlocklistRepo, SpoilerRepo

log = logging.getLogger(__name__)

#: how much of a refused prompt the log keeps
LOGGED_PROMPT_CHARS: Final = 80

TEXT: Final = {
    "name_one": "Name a channel, a role, or both.",
    "full": "This server already lists {limit} spoiler channels and roles; remove one first.",
}


class ModerationService:
    """The blocklist of each server, compiled once per change and kept in memory."""

    def __init__(self, repo: BlocklistRepo, *, clock: Clock, spoilers: SpoilerRepo | None = None) -> None:
        self.repo = repo
        self.clock = clock
        self.spoilers = spoilers
        self._compiled: dict[int, Blocklist] = {}

    async def blocklist(self, guild_id: int) -> Blocklist:
        compiled = self._compiled.get(guild_id)
        if compiled is None:
            compiled = self._compiled[guild_id] = Blocklist(await self.repo.entries(guild_id))
        return compiled

    async def add(self, guild_id: int, text: str, *, actor_id: int | None) -> tuple[BlockEntry, bool]:
        """Add a word or `re:pattern`; (entry, False) when it was already there."""
        entry = parse_entry(text)
        outcome = await self.repo.add(guild_id, entry, limit=MAX_ENTRIES, actor_id=actor_id, now=self.clock.now())
        if outcome == "full":
            raise InvalidRequestError(BLOCKLIST_TEXT["full"].format(limit=MAX_ENTRIES))
        self._compiled.pop(guild_id, None)
        log.info("guild=%s blocklist add %s by %s", guild_id, entry.kind, actor_id)
        return entry, outcome == "added"

    async def remove(self, guild_id: int, text: str) -> tuple[BlockEntry, bool]:
        entry = parse_entry(text)
        removed = await self.repo.remove(guild_id, entry)
        self._compiled.pop(guild_id, None)
        return entry, removed

    async def entries(self, guild_id: int) -> list[BlockEntry]:
        return await self.repo.entries(guild_id)

    async def check_prompt(self, guild_id: int, user_id: int, prompt: str) -> None:
        """Refuse a prompt the server's blocklist matches, with one sentence, and log who tried what."""
        try:
            (await self.blocklist(guild_id)).check(prompt)
        except PromptRefusedError as refusal:
            log.warning(
                "guild=%s user=%s prompt refused by blocklist %s %r: %r",
                guild_id,
                user_id,
                refusal.entry.kind,
                refusal.entry.pattern,
                truncate(prompt, LOGGED_PROMPT_CHARS),
            )
            raise

    # ------------------------------------------------------------------ spoilers

    async def spoiler_policy(self, guild_id: int) -> SpoilerPolicy:
        return await self.spoilers.policy(guild_id) if self.spoilers is not None else SpoilerPolicy()

    async def spoiler_for(self, guild_id: int, channel_id: int | None, role_ids: Iterable[int] = ()) -> bool:
        """Whether a result made in `channel_id` for a member with `role_ids` is posted as a spoiler."""
        return (await self.spoiler_policy(guild_id)).applies(channel_id, role_ids)

    async def set_spoilers(
        self, guild_id: int, *, channel_id: int | None, role_id: int | None, on: bool
    ) -> SpoilerPolicy:
        """Add (`on`) or remove a channel, a role or both; the policy afterwards."""
        if channel_id is None and role_id is None:
            raise InvalidRequestError(TEXT["name_one"])
        assert self.spoilers is not None
        targets = [("channel", channel_id), ("role", role_id)]
        if on and len(await self.spoiler_policy(guild_id)) + sum(t is not None for _, t in targets) > MAX_TARGETS:
            raise InvalidRequestError(TEXT["full"].format(limit=MAX_TARGETS))
        if channel_id is not None:
            await self.spoilers.set(guild_id, "channel", channel_id, on=on)
        if role_id is not None:
            await self.spoilers.set(guild_id, "role", role_id, on=on)
        log.info("guild=%s spoilers %s channel=%s role=%s", guild_id, "add" if on else "remove", channel_id, role_id)
        return await self.spoiler_policy(guild_id)

    async def clear_spoilers(self, guild_id: int) -> SpoilerPolicy:
        if self.spoilers is not None:
            await self.spoilers.clear(guild_id)
        return SpoilerPolicy()
