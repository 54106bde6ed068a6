"""Shortening text a member gave before it is shown back: Discord refuses replies over its limits."""

from __future__ import annotations

#: how much of a member's own input a sentence echoes back
ECHO_CHARS = 40


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    if limit < 1:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """A member's value as a sentence quotes it (`'abc'`, `12`), never longer than `limit` characters."""
    return truncate(repr(value) if isinstance(value, str) else str(value), limit)
