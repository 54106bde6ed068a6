"""Members' own defaults and servers' presets, and the options they make of what a member typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bot.core.errors import InvalidRequestError
from bot.core.jobs import Clock
from bot.core.preferences import (
    MAX_PRESETS,
    OptionSet,
    Preset,
    check_preset_name,
    check_template,
    imagine_options,
    vary_options,
)
from bot.core.requests import ImagineOptions, VaryOptions
from bot.core.text import echo
from storage.preferences import PreferenceRepo

TEXT: Final = {
    "unknown_preset": "This server has no preset {name}; pick one from the list.",
    "too_many": "This server already has {limit} presets; remove one first.",
    "empty_preset": "A preset needs a prompt template or at least one option.",
}


class PreferenceService:
    """What `/settings`, `/fluxadmin preset` and the `preset:` option do."""

    def __init__(self, repo: PreferenceRepo, *, clock: Clock) -> None:
        self.repo = repo
        self.clock = clock

    async def defaults(self, guild_id: int, user_id: int) -> OptionSet:
        return await self.repo.defaults(guild_id, user_id)

    async def change_defaults(
        self, guild_id: int, user_id: int, changes: Mapping[str, object], *, reset: bool = False
    ) -> OptionSet:
        """Set the given defaults (after `reset`, only those), checked as a command would check them."""
        current = OptionSet() if reset else await self.repo.defaults(guild_id, user_id)
        updated = OptionSet.from_mapping({**current.as_dict(), **{k: v for k, v in changes.items() if v is not None}})
        return await self.repo.set_defaults(guild_id, user_id, updated.check(), now=self.clock.now())

    async def presets(self, guild_id: int) -> list[Preset]:
        return await self.repo.presets(guild_id)

    async def preset(self, guild_id: int, name: str | None) -> Preset | None:
        """The named preset (None for no name); one sentence if the server has none by that name."""
        if name is None or not name.strip():
            return None
        found = await self.repo.preset(guild_id, " ".join(name.split()).lower())
        if found is None:
            raise InvalidRequestError(TEXT["unknown_preset"].format(name=echo(name)))
        return found

    async def save_preset(
        self, guild_id: int, name: str, *, template: str | None, options: Mapping[str, object], actor_id: int
    ) -> Preset:
        preset = Preset(check_preset_name(name), check_template(template), OptionSet.from_mapping(options).check())
        if preset.template is None and not preset.options.as_dict():
            raise InvalidRequestError(TEXT["empty_preset"])
        existing = await self.repo.presets(guild_id)
        if len(existing) >= MAX_PRESETS and all(p.name != preset.name for p in existing):
            raise InvalidRequestError(TEXT["too_many"].format(limit=MAX_PRESETS))
        await self.repo.save_preset(guild_id, preset, actor_id=actor_id, now=self.clock.now())
        return preset

    async def remove_preset(self, guild_id: int, name: str) -> bool:
        return await self.repo.remove_preset(guild_id, " ".join(name.split()).lower())

    async def vary_options(
        self, guild_id: int, user_id: int, given: Mapping[str, object], preset: str | None = None
    ) -> VaryOptions:
        return vary_options(
            given, preset=await self.preset(guild_id, preset), defaults=await self.repo.defaults(guild_id, user_id)
        )

    async def imagine_options(
        self, guild_id: int, user_id: int, given: Mapping[str, object], preset: str | None = None
    ) -> ImagineOptions:
        return imagine_options(
            given, preset=await self.preset(guild_id, preset), defaults=await self.repo.defaults(guild_id, user_id)
        )
