"""Option forms (modals): a member edits the options of a job before it starts.

A form only collects text; the request models check every value, so a typo gets the same one sentence as a
bad slash-command option. Forms live in memory while open: one left open across a restart is answered by
Discord with its own "something went wrong", and the member opens it again from the button.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import discord

from bot.core.requests import MAX_PROMPT_CHARS
from bot.ui.replies import acknowledge, reply_error

log = logging.getLogger(__name__)

#: how long an opened form waits for its answer
FORM_SECONDS: Final = 15 * 60

TEXT: Final = {
    "remix_title": "Remix",
    "vary_title": "Vary with FLUX",
    "prompt": "Prompt",
    "model": "Model",
    "model_hint": "schnell (fast, cheap) or dev (finer)",
    "count": "How many images",
    "count_hint": "1 to 4",
    "aspect_ratio": "Aspect ratio",
    "aspect_ratio_hint": "auto, 1:1, 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, 3:4, 4:3, 9:16 or 9:21",
    "imagine_ratio_hint": "1:1, 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, 3:4, 4:3, 9:16 or 9:21",
    "megapixels": "Megapixels",
    "megapixels_hint": "1 (about 1024×1024) or 0.25 (about 512×512)",
    "seed": "Seed",
    "seed_hint": "Leave empty for a new random seed",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One text box of a form."""

    name: str
    label: str
    default: str | None = None
    hint: str | None = None
    paragraph: bool = False
    max_length: int = 20
    required: bool = False


Submit = Callable[[discord.Interaction[Any], dict[str, str | None]], Awaitable[None]]


class OptionsForm(discord.ui.Modal):
    """A modal of text boxes; on submit it acknowledges, then hands the values (None for empty) to `submit`."""

    def __init__(self, *, title: str, custom_id: str, fields: list[Field], submit: Submit) -> None:
        super().__init__(title=title, custom_id=custom_id, timeout=FORM_SECONDS)
        self._submit = submit
        self._inputs: dict[str, discord.ui.TextInput[OptionsForm]] = {}
        for field in fields:
            box: discord.ui.TextInput[OptionsForm] = discord.ui.TextInput(
                style=discord.TextStyle.paragraph if field.paragraph else discord.TextStyle.short,
                default=field.default,
                required=field.required,
                max_length=field.max_length,
            )
            self._inputs[field.name] = box
            self.add_item(discord.ui.Label(text=field.label, description=field.hint, component=box))

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        try:
            if not await acknowledge(interaction):
                return
            values = {name: (box.value.strip() or None) for name, box in self._inputs.items()}
            await self._submit(interaction, values)
        except Exception as error:
            await reply_error(interaction, error)


def remix_fields(prompt: str, options: Mapping[str, object]) -> list[Field]:
    """The prompt and the options a remix may change, filled in from the job it starts from."""
    return [
        Field("prompt", TEXT["prompt"], prompt, paragraph=True, max_length=MAX_PROMPT_CHARS, required=True),
        Field("aspect_ratio", TEXT["aspect_ratio"], str(options["aspect_ratio"]), TEXT["imagine_ratio_hint"]),
        Field("count", TEXT["count"], str(options["count"]), TEXT["count_hint"]),
        Field("megapixels", TEXT["megapixels"], str(options["megapixels"]), TEXT["megapixels_hint"]),
        Field("seed", TEXT["seed"], str(options["seed"]), TEXT["seed_hint"]),
    ]


def vary_fields(options: Mapping[str, object]) -> list[Field]:
    """The options of a variation, filled in from the member's defaults."""
    return [
        Field("model", TEXT["model"], str(options["model"]), TEXT["model_hint"]),
        Field("count", TEXT["count"], str(options["count"]), TEXT["count_hint"]),
        Field("aspect_ratio", TEXT["aspect_ratio"], str(options["aspect_ratio"]), TEXT["aspect_ratio_hint"]),
        Field("megapixels", TEXT["megapixels"], str(options["megapixels"]), TEXT["megapixels_hint"]),
        Field("seed", TEXT["seed"], None, TEXT["seed_hint"]),
    ]
