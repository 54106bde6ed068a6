"""Output sizes: aspect ratio × megapixels → W×H, as the FLUX.1 cog computes them."""

from __future__ import annotations

import math
from typing import Literal, get_args

AspectRatio = Literal["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
Megapixels = Literal["1", "0.25"]

ASPECT_RATIOS: tuple[AspectRatio, ...] = get_args(AspectRatio)

# W×H at megapixels="1"; "0.25" halves each side with integer division.
_ONE_MP: dict[AspectRatio, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}


def output_size(aspect_ratio: AspectRatio, megapixels: Megapixels) -> tuple[int, int]:
    """Return (width, height) of each output image."""
    width, height = _ONE_MP[aspect_ratio]
    if megapixels == "0.25":
        return width // 2, height // 2
    return width, height


def nearest_aspect_ratio(width: int, height: int) -> AspectRatio:
    """The listed ratio closest to width:height, compared on a log scale so 2:1 and 1:2 are equally far."""
    if width <= 0 or height <= 0:
        raise ValueError("image dimensions must be positive")
    target = math.log(width / height)

    def distance(ratio: AspectRatio) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(math.log(w / h) - target)

    return min(ASPECT_RATIOS, key=distance)
