"""What Discord refuses in a message or an autocomplete answer: 400 with code 50035 and the field's path.

Limits from Discord's documentation (Message resource, Embed limits, Autocomplete): content 2,000 characters,
10 embeds with title 256, description 4,096, 25 fields (name 256, value 1,024), footer 2,048, author 256 and
6,000 characters of text in all embeds of a message; up to 25 choices named with 1–100 characters.
"""

from __future__ import annotations

from typing import Any, Final

from emulators.discord.models import IS_COMPONENTS_V2, Json, error_body, form_error

MAX_CONTENT: Final = 2000
MAX_EMBEDS: Final = 10
MAX_ROWS: Final = 5
MAX_CHOICES: Final = 25
MAX_CHOICE_CHARS: Final = 100
MAX_EMBED_TOTAL: Final = 6000
# (path of a text inside one embed, its largest length)
_EMBED_TEXTS: Final = (
    (("title",), 256),
    (("description",), 4096),
    (("footer", "text"), 2048),
    (("author", "name"), 256),
)
MAX_FIELDS: Final = 25
MAX_FIELD_NAME: Final = 256
MAX_FIELD_VALUE: Final = 1024


def _too_long(path: str, limit: int) -> Json:
    return form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_length(path: str, low: int, high: int) -> Json:
    return form_error(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _embed_problem(index: int, embed: Any) -> tuple[Json | None, int]:
    """The first problem in one embed, and the length of its text (for the message-wide total)."""
    if not isinstance(embed, dict):
        return form_error(f"embeds.{index}", "DICT_TYPE_CONVERT", "Only dictionaries may be used."), 0
    total = 0
    for path, limit in _EMBED_TEXTS:
        value: Any = embed
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        text = _text(value)
        if len(text) > limit:
            return _too_long(f"embeds.{index}.{'.'.join(path)}", limit), 0
        total += len(text)
    fields = embed.get("fields") or []
    if len(fields) > MAX_FIELDS:
        return _too_long(f"embeds.{index}.fields", MAX_FIELDS), 0
    for number, field in enumerate(fields):
        name, value = _text(field.get("name")), _text(field.get("value"))
        if not 1 <= len(name) <= MAX_FIELD_NAME:
            return _bad_length(f"embeds.{index}.fields.{number}.name", 1, MAX_FIELD_NAME), 0
        if not 1 <= len(value) <= MAX_FIELD_VALUE:
            return _bad_length(f"embeds.{index}.fields.{number}.value", 1, MAX_FIELD_VALUE), 0
        total += len(name) + len(value)
    return None, total


def message_problem(content: str, embeds: list[Json], components: list[Json], flags: int, files: int) -> Json | None:
    """Discord's error body for a message create or edit it would refuse, or None."""
    if flags & IS_COMPONENTS_V2:
        if content or embeds:
            return form_error("content", "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2", "Invalid")
    elif len(components) > MAX_ROWS:
        return _too_long("components", MAX_ROWS)
    if len(content) > MAX_CONTENT:
        return _too_long("content", MAX_CONTENT)
    if len(embeds) > MAX_EMBEDS:
        return _too_long("embeds", MAX_EMBEDS)
    total = 0
    for index, embed in enumerate(embeds):
        problem, length = _embed_problem(index, embed)
        if problem is not None:
            return problem
        total += length
    if total > MAX_EMBED_TOTAL:
        return form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}")
    if not (content or embeds or components or files):
        return error_body("Cannot send an empty message", 50006)
    return None


def choices_problem(choices: Any) -> Json | None:
    """Discord's error body for an autocomplete answer it would refuse, or None."""
    if not isinstance(choices, list):
        return form_error("data.choices", "LIST_TYPE_CONVERT", "Must be an array.")
    if len(choices) > MAX_CHOICES:
        return _too_long("data.choices", MAX_CHOICES)
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            return form_error(f"data.choices.{index}", "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
        if not 1 <= len(_text(choice.get("name"))) <= MAX_CHOICE_CHARS:
            return _bad_length(f"data.choices.{index}.name", 1, MAX_CHOICE_CHARS)
        value = choice.get("value")
        if isinstance(value, str) and not 1 <= len(value) <= MAX_CHOICE_CHARS:
            return _bad_length(f"data.choices.{index}.value", 1, MAX_CHOICE_CHARS)
    return None
