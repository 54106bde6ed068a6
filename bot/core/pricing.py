"""Prices in integer credits: ceil(base × megapixels) per image, at least 1, times the count."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from bot.core.requests import GenerationSpec, ModelId


@dataclass(frozen=True, slots=True)
class PriceList:
    """Base price per 1-megapixel image of each model."""

    redux_schnell: int = 1
    redux_dev: int = 8
    schnell: int = 2

    def base(self, model: ModelId) -> int:
        return {
            ModelId.REDUX_SCHNELL: self.redux_schnell,
            ModelId.REDUX_DEV: self.redux_dev,
            ModelId.SCHNELL: self.schnell,
        }[model]

    def per_image(self, spec: GenerationSpec) -> int:
        return max(1, math.ceil(self.base(spec.model) * Fraction(spec.megapixels)))

    def price(self, spec: GenerationSpec) -> int:
        """What the whole job costs if every image is delivered."""
        return self.per_image(spec) * spec.count
