"""Option values checked against what each command declares.

Discord's own client keeps to a command's declared types, ranges, lengths and choices, but Discord does not
stop a modified client, and discord.py hands the callback whatever arrived. So the bot checks every declared
rule itself, for every command, here.
"""

from __future__ import annotations

import math
from typing import Any

import discord
from discord import AppCommandOptionType as OptionType
from discord import app_commands

from bot.core.text import echo

_KINDS: dict[OptionType, tuple[type | tuple[type, ...], str]] = {
    OptionType.string: (str, "text"),
    OptionType.integer: (int, "a whole number"),
    OptionType.number: ((int, float), "a number"),
    OptionType.boolean: (bool, "true or false"),
}


def option_problem(interaction: discord.Interaction[Any]) -> str | None:
    """One sentence about the first option that breaks its command's declaration, or None."""
    command = interaction.command
    if not isinstance(command, app_commands.Command):
        return None  # context menus take no options
    values = dict(iter(interaction.namespace))  # a Namespace answers None to any attribute, `keys` too
    for parameter in command.parameters:
        name = parameter.display_name
        if name not in values:
            if parameter.required:
                return f"`{name}` is required."
            continue
        problem = _problem(parameter, name, values[name])
        if problem is not None:
            return problem
    return None


def _problem(parameter: app_commands.Parameter, name: str, value: object) -> str | None:
    kind = _KINDS.get(parameter.type)
    if kind is None:
        return None  # members, roles, channels and attachments are resolved (or refused) by discord.py
    expected, described = kind
    if not isinstance(value, expected) or (parameter.type is not OptionType.boolean and isinstance(value, bool)):
        return f"`{name}` must be {described} (got {echo(value)})."
    choices = [choice.value for choice in parameter.choices]
    if choices and value not in choices:
        return f"`{name}` must be one of {', '.join(map(str, choices))} (got {echo(value)})."
    low, high = parameter.min_value, parameter.max_value
    if isinstance(value, str):
        if low is not None and len(value) < low:
            return f"`{name}` must be at least {_number(low)} characters long."
        if high is not None and len(value) > high:
            return f"`{name}` must be at most {_number(high)} characters (it has {len(value)})."
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"`{name}` must be {described} (got {echo(value)})."
    assert isinstance(value, int | float)
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            span = f"between {_number(low)} and {_number(high)}"
        else:
            span = f"at least {_number(low)}" if low is not None else f"at most {_number(high)}"
        return f"`{name}` must be {span} (got {echo(value)})."
    return None


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
