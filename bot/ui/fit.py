"""Discord's size limits on what the bot sends, applied in one place so no answer is refused for its length."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, TypeVar

import discord
from discord import app_commands

from bot.core.text import truncate

MAX_CONTENT: Final = 2000
MAX_CHOICES: Final = 25
MAX_CHOICE_CHARS: Final = 100
# Per embed: title, description, fields (count, name, value), footer, author; and all of its text together.
MAX_TITLE: Final = 256
MAX_DESCRIPTION: Final = 4096
MAX_FIELDS: Final = 25
MAX_FIELD_NAME: Final = 256
MAX_FIELD_VALUE: Final = 1024
MAX_FOOTER: Final = 2048
MAX_AUTHOR: Final = 256
MAX_EMBED_TOTAL: Final = 6000

ChoiceValue = TypeVar("ChoiceValue", str, int, float)


def fit_content(content: str | None) -> str | None:
    return None if content is None else truncate(content, MAX_CONTENT)


def _text_length(data: dict[str, Any]) -> int:
    fields = data.get("fields") or []
    return (
        len(data.get("title") or "")
        + len(data.get("description") or "")
        + sum(len(field.get("name") or "") + len(field.get("value") or "") for field in fields)
        + len((data.get("footer") or {}).get("text") or "")
        + len((data.get("author") or {}).get("name") or "")
    )


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """A copy of `embed` within every per-part limit and the 6,000-character total (the description gives way)."""
    data: dict[str, Any] = dict(embed.to_dict())
    if data.get("title"):
        data["title"] = truncate(data["title"], MAX_TITLE)
    if data.get("description"):
        data["description"] = truncate(data["description"], MAX_DESCRIPTION)
    fields = [
        field
        | {"name": truncate(field.get("name") or "", MAX_FIELD_NAME) or "\u200b"}
        | {"value": truncate(field.get("value") or "", MAX_FIELD_VALUE) or "\u200b"}
        for field in data.get("fields") or []
    ][:MAX_FIELDS]
    if fields:
        data["fields"] = fields
    for part, limit in (("footer", MAX_FOOTER), ("author", MAX_AUTHOR)):
        key = "text" if part == "footer" else "name"
        if data.get(part) and data[part].get(key):
            data[part] = data[part] | {key: truncate(data[part][key], limit)}
    over = _text_length(data) - MAX_EMBED_TOTAL
    if over > 0 and data.get("description"):
        data["description"] = truncate(data["description"], max(1, len(data["description"]) - over))
    while _text_length(data) > MAX_EMBED_TOTAL and data.get("fields"):
        data["fields"] = data["fields"][:-1]
    return discord.Embed.from_dict(data)


def fit_choices(choices: Iterable[app_commands.Choice[ChoiceValue]]) -> list[app_commands.Choice[ChoiceValue]]:
    """At most 25 choices, names of 1–100 characters; a choice whose text value is too long is left out."""
    fitted: list[app_commands.Choice[ChoiceValue]] = []
    for choice in choices:
        if isinstance(choice.value, str) and not 1 <= len(choice.value) <= MAX_CHOICE_CHARS:
            continue
        name = truncate(choice.name, MAX_CHOICE_CHARS) or str(choice.value)[:MAX_CHOICE_CHARS]
        fitted.append(app_commands.Choice(name=name, value=choice.value))
        if len(fitted) == MAX_CHOICES:
            break
    return fitted
