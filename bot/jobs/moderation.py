"""A server's prompt blocklist: managed by its admins, checked on every prompt before anything is charged."""

from __future__ import annotations

import logging
from typing import Final

from bot.core.blocklist import MAX_ENTRIES, TEXT, BlockEntry, Blocklist, PromptRefusedError, parse_entry
from bot.core.errors import InvalidRequestError
from bot.core.jobs import Clock
from bot.core.text import truncate
from storage.moderation import BlocklistRepo

log = logging.getLogger(__name__)

#: how much of a refused prompt the log keeps
LOGGED_PROMPT_CHARS: Final = 80


class ModerationService:
    """The blocklist of each server, compiled once per change and kept in memory."""

    def __init__(self, repo: BlocklistRepo, *, clock: Clock) -> None:
        self.repo = repo
        self.clock = clock
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
            raise InvalidRequestError(TEXT["full"].format(limit=MAX_ENTRIES))
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
