"""The vendors' output sizes, written out from the FLUX.1 cog's `ASPECT_RATIOS` on their own.

The emulators keep their own copy instead of importing the product's: an emulator that shared the bot's
size table could never catch a mistake in it.
"""

from __future__ import annotations

from typing import Literal, get_args

AspectRatio = Literal["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
Megapixels = Literal["1", "0.25"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = get_args(AspectRatio)

# cog-flux `ASPECT_RATIOS` (W, H) at 1 MP; `size_from_aspect_megapixels` halves both with // at 0.25 MP.
_COG_SIZES: dict[str, tuple[int, int]] = {
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


def output_size(aspect_ratio: str, megapixels: str) -> tuple[int, int]:
    """(width, height) the cog renders for one aspect ratio and megapixel setting."""
    width, height = _COG_SIZES[aspect_ratio]
    return (width // 2, height // 2) if megapixels == "0.25" else (width, height)
