"""The prompt blocklist: whole words, RE2 patterns, and the patterns refused when added."""

from __future__ import annotations

import pytest

from bot.core.blocklist import MAX_PATTERN_CHARS, BlockEntry, Blocklist, PromptRefusedError, parse_entry
from bot.core.errors import InvalidRequestError


def test_words_match_whole_words_in_any_case_and_spacing() -> None:
    blocklist = Blocklist([parse_entry("Gore"), parse_entry("blood   bath"), parse_entry("c++")])
    assert blocklist.match("a sea of GORE") == BlockEntry("word", "gore")
    assert blocklist.match("gored ox") is None and blocklist.match("ignore it") is None
    assert blocklist.match("a blood\n bath") == BlockEntry("word", "blood bath")
    assert blocklist.match("learn c++ today") == BlockEntry("word", "c++")
    assert blocklist.match("a calm sea") is None


def test_patterns_are_case_insensitive_and_linear() -> None:
    blocklist = Blocklist([parse_entry("re:(a+)+!$"), parse_entry(r"re:\bnud(e|ity)\b")])
    # Python's backtracking engine would take longer than the age of the universe on this; RE2 does not backtrack.
    assert blocklist.match("a" * 50_000 + "!") == BlockEntry("regex", "(a+)+!$")
    assert blocklist.match("a" * 50_000 + "?") is None
    assert blocklist.match("Artistic NUDITY") == BlockEntry("regex", r"\bnud(e|ity)\b")


@pytest.mark.parametrize(
    ("entry", "sentence"),
    [
        (r"re:(a)\1", "is not a regular expression Fluxcord can use"),
        ("re:(?=x)y", "is not a regular expression Fluxcord can use"),
        ("re:[", "is not a regular expression Fluxcord can use"),
        (r"re:[\p{L}\d]{1000}", "would take too much memory"),
        ("re:", "Give a word"),
        ("   ", "Give a word"),
        ("x" * (MAX_PATTERN_CHARS + 1), f"at most {MAX_PATTERN_CHARS} characters"),
    ],
)
def test_entries_that_cannot_be_matched_safely_are_refused(entry: str, sentence: str) -> None:
    with pytest.raises(InvalidRequestError, match=sentence.replace("{", r"\{")):
        parse_entry(entry)


def test_a_refusal_names_a_word_but_not_a_pattern() -> None:
    with pytest.raises(PromptRefusedError, match="contains “gore”") as word:
        Blocklist([parse_entry("gore")]).check("GORE")
    assert word.value.entry == BlockEntry("word", "gore")
    with pytest.raises(PromptRefusedError) as pattern:
        Blocklist([parse_entry("re:secret[0-9]+")]).check("secret42")
    assert "secret" not in pattern.value.message
