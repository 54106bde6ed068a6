"""Provider outputs: checked without decoding when already in the asked format, re-encoded (once) when not,
fitted to a size, or shrunk to fit an upload limit. Synchronous; `images` has the `*_async` twins.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

from bot.core.pillow import (
    DEFAULT_MAX_PIXELS,
    _decode,
    _DecodeProblem,
    _open_header,
    _pillow_warnings_silenced,
    _to_rgb,
    _to_rgb_or_rgba,
    _TooManyPixels,
    _Unreadable,
)

_PILLOW_FORMAT = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}

_SHRINK_QUALITIES = (80, 70, 60, 50)

_SHRINK_SCALE_STEP = 0.85

_SHRINK_MIN_SIDE = 64


@dataclass(frozen=True, slots=True)
class OutputImage:
    """A provider's image, verified and in the format the member asked for."""

    data: bytes
    width: int
    height: int
    format: str


class OutputImageError(ValueError):
    """A provider returned something that is not a usable image."""


def _pillow_format(output_format: str) -> str:
    try:
        return _PILLOW_FORMAT[output_format]
    except KeyError:
        raise ValueError(f"unknown output format {output_format!r}") from None


def _webp_intact(data: bytes) -> bool:
    # RIFF says how long the file is, and every chunk how long it is: all must add up to the last byte.
    if len(data) < 20 or int.from_bytes(data[4:8], "little") + 8 != len(data):
        return False
    offset = 12
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 8 + size + (size & 1)
    return offset == len(data)


def _png_intact(data: bytes) -> bool:
    # Every chunk's CRC, through IEND: truncation and damage both break one (zlib's CRC runs at memory speed).
    offset = 8
    while offset + 12 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        end = offset + 8 + size
        if end + 4 > len(data):
            return False
        if zlib.crc32(data[offset + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return False
        if data[offset + 4 : offset + 8] == b"IEND":
            return True
        offset = end + 4
    return False


def _jpeg_intact(data: bytes) -> bool:
    # A JPEG ends with EOI; a truncated download does not (trailing padding some encoders add is allowed).
    return data.rstrip(b"\x00\r\n").endswith(b"\xff\xd9")


_INTACT = {"WEBP": _webp_intact, "PNG": _png_intact, "JPEG": _jpeg_intact}


def _open_output(data: bytes, max_pixels: int, *, decode: bool) -> tuple[ImageFile.ImageFile, str]:
    """The output's first frame (decoded if asked) and its Pillow format ("MPO" reported as "JPEG")."""
    if not data:
        raise OutputImageError("the provider returned an empty file")
    try:
        with _pillow_warnings_silenced():
            # The source is in memory, so the image can outlive this block without holding a file open.
            image = _open_header(data, max_pixels)
            if decode:
                _decode(image)
    except _Unreadable as exc:
        raise OutputImageError("the provider returned a file that is not a supported image") from exc
    except _TooManyPixels as exc:
        raise OutputImageError("the provider returned an image with too many pixels") from exc
    except _DecodeProblem as exc:
        raise OutputImageError("the provider returned a damaged or incomplete image") from exc
    return image, "JPEG" if image.format == "MPO" else str(image.format)


def _decode_output(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Fully decoded first frame and its Pillow format."""
    return _open_output(data, max_pixels, decode=True)


def _encode(image: Image.Image, output_format: str, quality: int, *, optimize: bool = False) -> bytes:
    pillow_format = _pillow_format(output_format)
    buffer = io.BytesIO()
    if pillow_format == "JPEG":
        _to_rgb(image).save(buffer, "JPEG", quality=quality, optimize=optimize)
    elif pillow_format == "WEBP":
        _to_rgb_or_rgba(image).save(buffer, "WEBP", quality=quality)
    else:
        _to_rgb_or_rgba(image).save(buffer, "PNG", optimize=optimize)
    return buffer.getvalue()


def check_output(
    data: bytes,
    *,
    expected_size: tuple[int, int],
    expected_format: str,
    quality: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> OutputImage:
    """Verify a provider's output, re-encoding it only if it is not in `expected_format`.

    An output already in the wanted format is passed on as it is, so its pixels are not decoded: its header
    is read (size, pixel limit) and its own framing checked end to end (RIFF sizes, PNG chunk CRCs through
    IEND, JPEG's end marker), which is what a truncated or garbled download breaks. One in another format is
    decoded once and re-encoded. The returned width and height are the image's own; comparing them with
    `expected_size` is left to the caller, which decides whether a mismatch is worth `fit_output`.
    """
    wanted = _pillow_format(expected_format)
    image, actual = _open_output(data, max_pixels, decode=False)
    if actual == wanted:
        if not _INTACT[actual](data):
            raise OutputImageError("the provider returned a damaged or incomplete image")
        return OutputImage(data=data, width=image.width, height=image.height, format=expected_format)
    try:
        with _pillow_warnings_silenced():
            _decode(image)
    except _DecodeProblem as exc:
        raise OutputImageError("the provider returned a damaged or incomplete image") from exc
    data = _encode(image, expected_format, quality)
    return OutputImage(data=data, width=image.width, height=image.height, format=expected_format)


def fit_output(data: bytes, *, size: tuple[int, int], output_format: str, quality: int) -> bytes:
    """Resize an image to exactly `size` and encode it as `output_format`.

    Meant for providers that can only render a larger size of the same aspect ratio; should the ratio be
    slightly off, the edges are cropped evenly rather than the picture being stretched.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ValueError("size must be positive")
    wanted = _pillow_format(output_format)
    image, actual = _decode_output(data, DEFAULT_MAX_PIXELS)
    if image.size == size and actual == wanted:
        return data
    # Resampling palette or 16-bit images directly would fall back to nearest-neighbour or clip.
    fitted = ImageOps.fit(_to_rgb_or_rgba(image), size, method=Image.Resampling.LANCZOS)
    return _encode(fitted, output_format, quality)


def _shrink_candidates(image: Image.Image, output_format: str) -> Iterator[tuple[Image.Image, str, bytes]]:
    if output_format == "png":
        yield image, "png", _encode(image, "png", 0, optimize=True)
        lossy_format = "webp"
    else:
        lossy_format = output_format
    for quality in _SHRINK_QUALITIES:
        yield image, lossy_format, _encode(image, lossy_format, quality)
    factor = _SHRINK_SCALE_STEP
    while True:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        if min(size) < _SHRINK_MIN_SIDE:
            return
        # Always resample from the original so quality does not degrade step after step.
        smaller = image.resize(size, Image.Resampling.LANCZOS)
        yield smaller, lossy_format, _encode(smaller, lossy_format, _SHRINK_QUALITIES[-1])
        factor *= _SHRINK_SCALE_STEP


def shrink_to_fit(image: OutputImage, max_bytes: int) -> OutputImage:
    """Return `image` if it fits in `max_bytes`, else a smaller encoding of it.

    Lower quality is tried first, then WebP instead of PNG, then smaller sizes in 15% steps; raises
    `OutputImageError` if even the smallest reasonable version does not fit.
    """
    if len(image.data) <= max_bytes:
        return image
    decoded, _ = _decode_output(image.data, DEFAULT_MAX_PIXELS)
    rgb_or_rgba = _to_rgb_or_rgba(decoded)
    for candidate, output_format, data in _shrink_candidates(rgb_or_rgba, image.format):
        if len(data) <= max_bytes:
            return OutputImage(data=data, width=candidate.width, height=candidate.height, format=output_format)
    raise OutputImageError(f"the image cannot be made smaller than {max_bytes} bytes")
