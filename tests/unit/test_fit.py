"""Replies cut to Discord's limits: content, every part of an embed, autocomplete choices."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.core.text import echo, truncate
from bot.ui.fit import MAX_EMBED_TOTAL, fit_choices, fit_content, fit_embed


def test_truncate_and_echo() -> None:
    assert truncate("abc", 3) == "abc" and truncate("abcd", 3) == "ab…" and truncate("abc", 0) == ""
    assert echo("x" * 3000) == "'" + "x" * 38 + "…" and echo(-5) == "-5"


def test_content_is_cut_to_2000() -> None:
    assert fit_content(None) is None
    assert len(fit_content("y" * 5000) or "") == 2000


def test_every_part_of_an_embed_fits() -> None:
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for index in range(30):
        embed.add_field(name="n" * 300, value="v" * 2000 if index else "")
    embed.set_footer(text="f" * 3000)
    embed.set_author(name="a" * 300)
    data = fit_embed(embed).to_dict()
    assert len(data["title"]) == 256 and len(data["footer"]["text"]) == 2048 and len(data["author"]["name"]) == 256
    assert len(data["fields"]) <= 25
    assert all(1 <= len(f["name"]) <= 256 and 1 <= len(f["value"]) <= 1024 for f in data["fields"])
    total = len(data["title"]) + len(data.get("description", "")) + len(data["footer"]["text"])
    total += len(data["author"]["name"]) + sum(len(f["name"]) + len(f["value"]) for f in data["fields"])
    assert total <= MAX_EMBED_TOTAL


def test_a_small_embed_is_unchanged() -> None:
    embed = discord.Embed(title="Job abc", description="a fox")
    embed.add_field(name="Seed", value="`1`")
    assert fit_embed(embed).to_dict() == embed.to_dict()


def test_choices_fit() -> None:
    choices = [app_commands.Choice(name=f"{n} " + "z" * 200, value=f"job{n}") for n in range(40)]
    choices.append(app_commands.Choice(name="too long a value", value="v" * 101))
    fitted = fit_choices(choices)
    assert len(fitted) == 25 and all(len(choice.name) <= 100 for choice in fitted)
    assert [choice.value for choice in fitted] == [f"job{n}" for n in range(25)]
    assert fit_choices([app_commands.Choice(name="x", value="v" * 101)]) == []
