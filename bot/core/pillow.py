"""Pillow, held safely: open by header within a pixel limit, decode on demand, convert any mode to RGB(A).

Shared by the input side (`images`) and the output side (`output_images`); synchronous, so callers run it
in worker threads.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageFile, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000

# Pillow's JPEG opener also yields "MPO" for the multi-picture JPEGs many phone cameras write; those are
# JPEGs all the same and are reported as such.
_READABLE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class _DecodeProblem(Exception):
    """Why Pillow could not give us pixels; each caller turns it into its own error type."""


class _Unreadable(_DecodeProblem):
    pass


class _TooManyPixels(_DecodeProblem):
    def __init__(self, size: tuple[int, int] | None) -> None:
        super().__init__(size)
        self.size = size


class _Damaged(_DecodeProblem):
    pass


@contextmanager
def _pillow_warnings_silenced() -> Iterator[None]:
    # Pillow warns about large images (we enforce our own, lower limit) and about odd-but-usable
    # metadata; neither is actionable for a member's file, and under strict warning filters they would
    # turn into crashes. Deprecation warnings are left alone on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    # Pillow's WebP plugin allocates the whole canvas while opening, so the header check has to come first.
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _Damaged
    if width * height > max_pixels:
        raise _TooManyPixels(size)


def _open_header(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Identify the image from its header and enforce the pixel limit; no pixel data is decoded yet."""
    webp_size = _webp_canvas_size(data)
    if webp_size is not None:
        _check_pixels(webp_size, max_pixels)
    try:
        image = Image.open(io.BytesIO(data), formats=_READABLE_FORMATS)
    # The warning is caught too in case another thread's filters escalated it to an error.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _TooManyPixels(None) from exc
    except UnidentifiedImageError as exc:
        raise _Unreadable from exc
    # Pillow raises a wide, undocumented range of exceptions on hostile headers.
    except Exception as exc:
        raise _Damaged from exc
    _check_pixels(image.size, max_pixels)
    return image


def _decode(image: ImageFile.ImageFile) -> None:
    """Decode the current frame fully, so truncated or corrupt data is found now rather than later."""
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _TooManyPixels(None) from exc
    except Exception as exc:
        raise _Damaged from exc


def _flatten_on_white(image: Image.Image) -> Image.Image:
    # Transparent areas become white: on black, Redux would read a dark background that is not there.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    # A plain convert() clips 0..65535 to 0..255 (nearly everything turns white); scale instead, rounding.
    wide = image if image.mode == "I" else image.convert("I")
    return wide.point(lambda value: value / 257 + 0.5).convert("L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB with the colours a viewer would show."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_l(image).convert("RGB")
    if image.has_transparency_data:
        return _flatten_on_white(image)
    if image.mode == "RGB":
        return image
    if image.mode == "F":
        # No accepted format produces float images; Pillow's own F→L convention (0..255, clipped) applies.
        return image.convert("L").convert("RGB")
    return image.convert("RGB")


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT_MODES or not image.has_transparency_data:
        return _to_rgb(image)
    return image if image.mode == "RGBA" else image.convert("RGBA")
