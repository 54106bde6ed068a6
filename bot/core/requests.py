"""Request models: the options a member gives, validated, and the resolved spec a job runs with."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from bot.core.errors import InvalidRequestError
from bot.core.sizes import ASPECT_RATIOS, AspectRatio, Megapixels, nearest_aspect_ratio, output_size
from bot.core.text import echo

OutputFormat = Literal["webp", "jpg", "png"]
#: `/vary` also takes `auto`: the listed ratio nearest the input image's
VaryAspectRatio = Literal["auto", AspectRatio]
VaryModel = Literal["schnell", "dev"]
OnOff = Literal["on", "off"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
MEGAPIXELS: tuple[Megapixels, ...] = get_args(Megapixels)
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 1000
MAX_COUNT = 4
MAX_GUIDANCE = 10.0
MAX_QUALITY = 100
#: FLUX.1 Redux dev's own default guidance; a job asking for another value needs a provider that takes the field
DEFAULT_GUIDANCE = 3.0


class ModelId(StrEnum):
    """The FLUX.1 models Fluxcord runs."""

    REDUX_SCHNELL = "flux-redux-schnell"
    REDUX_DEV = "flux-redux-dev"
    SCHNELL = "flux-schnell"

    @property
    def is_redux(self) -> bool:
        return self is not ModelId.SCHNELL

    @property
    def label(self) -> str:
        return {
            ModelId.REDUX_SCHNELL: "FLUX.1 Redux schnell",
            ModelId.REDUX_DEV: "FLUX.1 Redux dev",
            ModelId.SCHNELL: "FLUX.1 schnell",
        }[self]

    @property
    def max_steps(self) -> int:
        return 50 if self is ModelId.REDUX_DEV else 4

    @property
    def default_steps(self) -> int:
        return 28 if self is ModelId.REDUX_DEV else 4


class GenerationSpec(BaseModel):
    """A fully resolved request: what a provider receives and what a job row records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelId
    prompt: str | None = None
    aspect_ratio: AspectRatio
    megapixels: Megapixels
    count: int
    steps: int
    guidance: float | None = None
    seed: int
    output_format: OutputFormat
    quality: int
    safety: bool = True

    @property
    def size(self) -> tuple[int, int]:
        return output_size(self.aspect_ratio, self.megapixels)

    def with_seed(self, seed: int) -> GenerationSpec:
        return self.model_copy(update={"seed": seed})

    def tuned_fields(self) -> frozenset[str]:
        """The tunable fields set away from the model's defaults: a provider must honour these to run the job."""
        fields = set()
        if self.steps != self.model.default_steps:
            fields.add("steps")
        if self.guidance is not None and self.guidance != DEFAULT_GUIDANCE:
            fields.add("guidance")
        return frozenset(fields)


def random_seed() -> int:
    """A seed for a member who gave none; never 0, which some providers read as 'pick one yourself'."""
    return secrets.randbelow(MAX_SEED) + 1


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise InvalidRequestError(f"`{name}` must be one of {', '.join(allowed)} (got {echo(value)}).")
    return text


def _int_in(name: str, value: object, low: int, high: int, context: str = "") -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidRequestError(f"`{name}` must be a whole number (got {echo(value)}).") from None
    if isinstance(value, bool) or not low <= number <= high:
        where = f" {context}" if context else ""
        raise InvalidRequestError(f"`{name}` must be between {low} and {high}{where} (got {echo(value)}).")
    return number


def _float_in(name: str, value: object, low: float, high: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidRequestError(f"`{name}` must be a number (got {echo(value)}).") from None
    if not low <= number <= high:
        raise InvalidRequestError(f"`{name}` must be between {low:g} and {high:g} (got {echo(value)}).")
    return number


class _CommonOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = 1
    megapixels: Megapixels = "1"
    steps: int | None = None
    seed: int | None = None
    output_format: OutputFormat = "webp"
    quality: int = 80
    safety: bool = True


def _common(
    *,
    model: ModelId,
    count: object,
    megapixels: object,
    steps: object,
    seed: object,
    output_format: object,
    quality: object,
    safety: object,
) -> dict[str, object]:
    safety_text = _choice("safety", safety, ("on", "off")) if not isinstance(safety, bool) else None
    return {
        "count": _int_in("count", count, 1, MAX_COUNT),
        "megapixels": _choice("megapixels", megapixels, MEGAPIXELS),
        "steps": None if steps is None else _int_in("steps", steps, 1, model.max_steps, f"for {model.label}"),
        "seed": None if seed is None else _int_in("seed", seed, 0, MAX_SEED),
        "output_format": _choice("format", "jpg" if str(output_format) == "jpeg" else output_format, OUTPUT_FORMATS),
        "quality": _int_in("quality", quality, 0, MAX_QUALITY),
        "safety": safety if isinstance(safety, bool) else safety_text == "on",
    }


class VaryOptions(_CommonOptions):
    """Validated `/vary` options; `aspect_ratio` may still be `auto` until the input image is known."""

    model: Literal[ModelId.REDUX_SCHNELL, ModelId.REDUX_DEV] = ModelId.REDUX_SCHNELL
    aspect_ratio: VaryAspectRatio = "auto"
    guidance: float | None = None

    @classmethod
    def parse(
        cls,
        *,
        model: object = "schnell",
        count: object = 1,
        aspect_ratio: object = "auto",
        megapixels: object = "1",
        steps: object = None,
        guidance: object = None,
        seed: object = None,
        output_format: object = "webp",
        quality: object = 80,
        safety: object = "on",
    ) -> VaryOptions:
        """Check every option and say in one sentence what is wrong with the first bad one."""
        variant = _choice("model", model, ("schnell", "dev"))
        model_id = ModelId.REDUX_DEV if variant == "dev" else ModelId.REDUX_SCHNELL
        if guidance is not None and model_id is not ModelId.REDUX_DEV:
            raise InvalidRequestError("`guidance` only applies to the dev model; leave it out with schnell.")
        values = _common(
            model=model_id,
            count=count,
            megapixels=megapixels,
            steps=steps,
            seed=seed,
            output_format=output_format,
            quality=quality,
            safety=safety,
        )
        return cls.model_validate(
            {
                **values,
                "model": model_id,
                "aspect_ratio": _choice("aspect_ratio", aspect_ratio, ("auto", *ASPECT_RATIOS)),
                "guidance": None if guidance is None else _float_in("guidance", guidance, 0, MAX_GUIDANCE),
            }
        )

    def resolve(self, input_size: tuple[int, int], seed: int | None = None) -> GenerationSpec:
        """The spec for one job: `auto` becomes the ratio nearest the input's, and a seed is chosen."""
        aspect: AspectRatio = nearest_aspect_ratio(*input_size) if self.aspect_ratio == "auto" else self.aspect_ratio
        return GenerationSpec(
            model=self.model,
            aspect_ratio=aspect,
            megapixels=self.megapixels,
            count=self.count,
            steps=self.steps or self.model.default_steps,
            guidance=(DEFAULT_GUIDANCE if self.guidance is None else self.guidance)
            if self.model is ModelId.REDUX_DEV
            else None,
            seed=seed if seed is not None else (self.seed if self.seed is not None else random_seed()),
            output_format=self.output_format,
            quality=self.quality,
            safety=self.safety,
        )


class ImagineOptions(_CommonOptions):
    """Validated `/imagine` options."""

    prompt: str
    aspect_ratio: AspectRatio = "1:1"

    @classmethod
    def parse(
        cls,
        *,
        prompt: object,
        count: object = 1,
        aspect_ratio: object = "1:1",
        megapixels: object = "1",
        steps: object = None,
        seed: object = None,
        output_format: object = "webp",
        quality: object = 80,
        safety: object = "on",
    ) -> ImagineOptions:
        """Check every option and say in one sentence what is wrong with the first bad one."""
        text = str(prompt or "").strip()
        if not text:
            raise InvalidRequestError("`prompt` must not be empty.")
        if len(text) > MAX_PROMPT_CHARS:
            raise InvalidRequestError(f"`prompt` must be at most {MAX_PROMPT_CHARS} characters (it has {len(text)}).")
        values = _common(
            model=ModelId.SCHNELL,
            count=count,
            megapixels=megapixels,
            steps=steps,
            seed=seed,
            output_format=output_format,
            quality=quality,
            safety=safety,
        )
        return cls.model_validate(
            {
                **values,
                "prompt": text,
                "aspect_ratio": _choice("aspect_ratio", aspect_ratio, ASPECT_RATIOS),
            }
        )

    def resolve(self, seed: int | None = None) -> GenerationSpec:
        """The spec for one job, with a seed chosen when none was given."""
        return GenerationSpec(
            model=ModelId.SCHNELL,
            prompt=self.prompt,
            aspect_ratio=self.aspect_ratio,
            megapixels=self.megapixels,
            count=self.count,
            steps=self.steps or ModelId.SCHNELL.default_steps,
            seed=seed if seed is not None else (self.seed if self.seed is not None else random_seed()),
            output_format=self.output_format,
            quality=self.quality,
            safety=self.safety,
        )
