"""A server's prompt blocklist: whole words and regular expressions, matched in time linear in the prompt.

Regular expressions run on RE2, which has no backtracking: a pattern such as `(a+)+$` cannot stall the bot
however long the prompt. Features only a backtracking engine has (back-references, look-arounds) are refused
when an admin adds the pattern, as are patterns whose automaton would be too large.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import re2  # type: ignore[import-untyped]

from bot.core.errors import InvalidRequestError, UserError
from bot.core.text import echo, truncate

MAX_PATTERN_CHARS: Final = 200
MAX_ENTRIES: Final = 100
#: the most memory RE2 may give one pattern's automaton; larger ones are refused when added
_MAX_PATTERN_MEMORY: Final = 1 << 20
_REGEX_PREFIX: Final = "re:"

Kind = Literal["word", "regex"]

TEXT: Final = {
    "empty": "Give a word, or a regular expression written as `re:pattern`.",
    "too_long": "A blocklist entry must be at most {limit} characters (it has {length}).",
    "bad_regex": "{pattern} is not a regular expression Fluxcord can use ({reason}); nothing was added.",
    "too_large": "{pattern} would take too much memory to match; write a simpler pattern.",
    "full": "This server's blocklist already has {limit} entries; remove one first.",
    "refused_word": "Your prompt contains “{word}”, which this server does not allow; nothing was charged.",
    "refused_regex": "Your prompt matches a pattern this server does not allow; nothing was charged.",
}


class PromptRefusedError(UserError):
    """A prompt matched the server's blocklist; `entry` is what it matched."""

    def __init__(self, message: str, *, entry: BlockEntry) -> None:
        super().__init__(message)
        self.entry = entry


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """One entry: a word (or phrase) matched as whole words, or a regular expression."""

    kind: Kind
    pattern: str

    @property
    def shown(self) -> str:
        """How admins see and type it: the word itself, or `re:` and the pattern."""
        return self.pattern if self.kind == "word" else f"{_REGEX_PREFIX}{self.pattern}"


def _options() -> object:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = _MAX_PATTERN_MEMORY
    options.log_errors = False
    return options


def _compile(pattern: str) -> object:
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if "too large" in reason or "out of memory" in reason:
            raise InvalidRequestError(TEXT["too_large"].format(pattern=echo(pattern))) from None
        raise InvalidRequestError(
            TEXT["bad_regex"].format(pattern=echo(pattern), reason=truncate(reason, 80))
        ) from None


def parse_entry(text: str) -> BlockEntry:
    """An admin's entry: `re:pattern` is a regular expression, anything else a word or phrase (case-insensitive)."""
    raw = text.strip()
    is_regex = raw.lower().startswith(_REGEX_PREFIX)
    body = raw[len(_REGEX_PREFIX) :].strip() if is_regex else " ".join(raw.split()).casefold()
    if not body:
        raise InvalidRequestError(TEXT["empty"])
    if len(body) > MAX_PATTERN_CHARS:
        raise InvalidRequestError(TEXT["too_long"].format(limit=MAX_PATTERN_CHARS, length=len(body)))
    if is_regex:
        _compile(body)
        return BlockEntry("regex", body)
    return BlockEntry("word", body)


class Blocklist:
    """Compiled entries of one server; `check` raises PromptRefusedError on the first entry a prompt matches."""

    def __init__(self, entries: Iterable[BlockEntry]) -> None:
        self.entries = tuple(entries)
        self._words = [
            # Escaped literals with look-arounds: linear, and they work for words that start or end in a symbol.
            (entry, re.compile(rf"(?<!\w){re.escape(entry.pattern)}(?!\w)", re.IGNORECASE))
            for entry in self.entries
            if entry.kind == "word"
        ]
        self._patterns = [(entry, _compile(entry.pattern)) for entry in self.entries if entry.kind == "regex"]

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, prompt: str) -> BlockEntry | None:
        """The first entry the prompt matches, or None."""
        text = " ".join(prompt.split())
        for entry, word in self._words:
            if word.search(text):
                return entry
        for entry, pattern in self._patterns:
            if pattern.search(text) is not None:  # type: ignore[attr-defined]
                return entry
        return None

    def check(self, prompt: str) -> None:
        entry = self.match(prompt)
        if entry is None:
            return
        if entry.kind == "word":
            raise PromptRefusedError(TEXT["refused_word"].format(word=entry.pattern), entry=entry)
        raise PromptRefusedError(TEXT["refused_regex"], entry=entry)
