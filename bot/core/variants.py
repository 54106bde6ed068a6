"""The variations a result's buttons start, as changes to the spec of the job they come from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from bot.core.requests import ModelId
from bot.core.sizes import AspectRatio

#: the shapes the reframe buttons offer
REFRAME_RATIOS: Final[tuple[AspectRatio, ...]] = ("1:1", "16:9", "9:16")


class Strength(StrEnum):
    """How far Vary (Subtle) and Vary (Strong) move from the image; the plain V buttons use Redux schnell."""

    SUBTLE = "subtle"
    STRONG = "strong"


@dataclass(frozen=True, slots=True)
class Tuning:
    """The Redux dev settings of one strength."""

    model: ModelId
    guidance: float
    steps: int


#: Redux dev follows the image more closely with more guidance and more steps, and strays with less.
#: Starting points, not measurements: both are above and below the model's defaults (guidance 3, 28 steps).
TUNINGS: Final = {
    Strength.SUBTLE: Tuning(ModelId.REDUX_DEV, guidance=4.5, steps=36),
    Strength.STRONG: Tuning(ModelId.REDUX_DEV, guidance=1.5, steps=20),
}
