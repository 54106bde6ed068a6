"""A member's defaults and a server's presets, and how they fill the options a member left out.

An option given in the command wins; then the chosen preset's; then the member's own default; then the
command's. Values are checked by the request models, so a stale default gets the same sentence as a typo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Final

from bot.core.errors import InvalidRequestError
from bot.core.requests import MAX_PROMPT_CHARS, ImagineOptions, VaryOptions
from bot.core.text import echo

MAX_PRESET_NAME: Final = 32
MAX_TEMPLATE_CHARS: Final = 500
MAX_PRESETS: Final = 25
PROMPT_SLOT: Final = "{prompt}"

TEXT: Final = {
    "bad_name": "A preset name is 1–{limit} letters, digits, spaces, dashes or underscores (got {name}).",
    "no_slot": "A prompt template must contain {slot} where the member's prompt goes (got {template}).",
    "template_too_long": "A prompt template must be at most {limit} characters (it has {length}).",
    "prompt_too_long": "With the preset's template your prompt has {length} characters; the limit is {limit}.",
}


@dataclass(frozen=True, slots=True)
class OptionSet:
    """Options a member or a preset may set; None leaves the choice to the next in line."""

    model: str | None = None
    count: int | None = None
    aspect_ratio: str | None = None
    output_format: str | None = None
    megapixels: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> OptionSet:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})  # type: ignore[arg-type]

    def check(self) -> OptionSet:
        """Refuse, in one sentence, a value no command would accept (`auto` stays: `/vary` takes it)."""
        values = self.as_dict()
        model = values.pop("model", "schnell")
        VaryOptions.parse(model=model, **{k: v for k, v in values.items()})
        return self


OPTION_NAMES: Final = tuple(f.name for f in fields(OptionSet))


@dataclass(frozen=True, slots=True)
class Preset:
    """A server's named option set, with an optional prompt template for `/imagine`."""

    name: str
    template: str | None = None
    options: OptionSet = field(default_factory=OptionSet)

    def prompt(self, prompt: str) -> str:
        """The member's prompt put into the template (the template's own text is the admin's, never parsed)."""
        if self.template is None:
            return prompt
        result = self.template.replace(PROMPT_SLOT, prompt.strip())
        if len(result) > MAX_PROMPT_CHARS:
            raise InvalidRequestError(TEXT["prompt_too_long"].format(length=len(result), limit=MAX_PROMPT_CHARS))
        return result


def check_preset_name(name: str) -> str:
    cleaned = " ".join(name.split()).lower()
    if not cleaned or len(cleaned) > MAX_PRESET_NAME or not all(c.isalnum() or c in " -_" for c in cleaned):
        raise InvalidRequestError(TEXT["bad_name"].format(limit=MAX_PRESET_NAME, name=echo(name)))
    return cleaned


def check_template(template: str | None) -> str | None:
    if template is None or not template.strip():
        return None
    text = template.strip()
    if len(text) > MAX_TEMPLATE_CHARS:
        raise InvalidRequestError(TEXT["template_too_long"].format(limit=MAX_TEMPLATE_CHARS, length=len(text)))
    if PROMPT_SLOT not in text:
        raise InvalidRequestError(TEXT["no_slot"].format(slot=f"`{PROMPT_SLOT}`", template=echo(text)))
    return text


def _filled(given: Mapping[str, object], *layers: OptionSet) -> dict[str, object]:
    values = {name: value for name, value in given.items() if value is not None}
    for layer in layers:
        for name, value in layer.as_dict().items():
            values.setdefault(name, value)
    return values


def vary_options(given: Mapping[str, object], *, preset: Preset | None, defaults: OptionSet) -> VaryOptions:
    """`/vary` options: what was given, then the preset's, then the member's defaults, then the command's."""
    layers = [preset.options] if preset is not None else []
    return VaryOptions.parse(**_filled(given, *layers, defaults))


def imagine_options(given: Mapping[str, object], *, preset: Preset | None, defaults: OptionSet) -> ImagineOptions:
    """`/imagine` options likewise; a preset's template wraps the prompt, and `/vary`-only choices are skipped."""
    layers = [preset.options] if preset is not None else []
    values = _filled(given, *layers, defaults)
    values.pop("model", None)  # /imagine has one model
    if values.get("aspect_ratio") == "auto" and given.get("aspect_ratio") is None:
        values.pop("aspect_ratio")
    prompt = str(values.pop("prompt", "") or "")
    if preset is not None and prompt.strip():
        prompt = preset.prompt(prompt)
    return ImagineOptions.parse(prompt=prompt, **values)
