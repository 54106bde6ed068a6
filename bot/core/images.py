"""Image handling: members' inputs normalized for the providers (here), provider outputs checked for Discord
(`output_images`), both on Pillow held safely (`pillow`).

All of it is synchronous Pillow code that can take a noticeable fraction of a second on large images, so
each entry point has an `*_async` twin here that runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from PIL import Image, ImageFile, ImageOps

from bot.core.errors import InvalidRequestError
from bot.core.output_images import (
    OutputImage,
    OutputImageError,
    check_output,
    fit_output,
    shrink_to_fit,
)
from bot.core.pillow import (
    DEFAULT_MAX_PIXELS,
    _decode,
    _DecodeProblem,
    _open_header,
    _pillow_warnings_silenced,
    _to_rgb,
    _TooManyPixels,
    _Unreadable,
)

if TYPE_CHECKING:
    from PIL.ImageCms import ImageCmsProfile

DEFAULT_MAX_INPUT_BYTES = 20 * 1024 * 1024

DEFAULT_MAX_SIDE = 1024

INPUT_JPEG_QUALITY = 95

#: a JPEG is decoded at a reduced scale as long as its longest side stays at least this long (Redux reads 384)
MIN_DECODED_SIDE = 768

_MIB = 1024 * 1024

_ACCEPTED = "PNG, JPEG, WebP or GIF"

# Formats people commonly try to attach, recognised by their magic bytes only: naming them in the refusal
# is kinder than "not an image", and sniffing avoids running Pillow's other (less hardened) parsers.
_KNOWN_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"%PDF", "PDF"),
)

_FTYP_BRANDS = {
    b"avif": "AVIF",
    b"avis": "AVIF",
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIC",
    b"msf1": "HEIC",
}


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    """A member's image, ready to send to a provider."""

    data: bytes
    width: int
    height: int
    mime: str
    source_format: str
    source_size: tuple[int, int]
    sha256: str


def _sniff_other_format(data: bytes) -> str | None:
    for magic, name in _KNOWN_OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    head = data[:1024].lstrip()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def _format_amount(value: float, *, limit: bool) -> str:
    # One decimal at most; amounts round up and limits down, so a file just over the limit never reads
    # as "20 MB, over the 20 MB limit".
    tenths = math.floor(value * 10) if limit else math.ceil(value * 10)
    return f"{tenths / 10:.1f}".removesuffix(".0")


def _input_refusal(problem: _DecodeProblem, data: bytes, max_pixels: int) -> InvalidRequestError:
    if isinstance(problem, _Unreadable):
        name = _sniff_other_format(data)
        if name is not None:
            return InvalidRequestError(f"{name} images are not supported; attach a {_ACCEPTED} image instead.")
        return InvalidRequestError(f"That file is not an image Fluxcord can read; attach a {_ACCEPTED}.")
    if isinstance(problem, _TooManyPixels):
        limit = _format_amount(max_pixels / 1_000_000, limit=True)
        if problem.size is None:
            return InvalidRequestError(
                f"That image has more pixels than Fluxcord accepts (the limit is {limit} MP); attach a smaller image."
            )
        width, height = problem.size
        megapixels = _format_amount(width * height / 1_000_000, limit=False)
        return InvalidRequestError(
            f"That image is {width}×{height} pixels ({megapixels} MP), over the {limit} MP limit; "
            "attach a smaller image."
        )
    return InvalidRequestError("The image is damaged or incomplete; save or export it again and attach the new file.")


@cache
def _srgb_profile() -> ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    """Map through the embedded profile, or None if it is unusable (the pixels are then read as sRGB)."""
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without Little CMS
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, _srgb_profile(), outputMode="RGB")
    # A broken or mismatched profile (a grey profile on colour pixels, say) is common and harmless.
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _to_srgb(image: Image.Image) -> Image.Image:
    # The profile is about to be stripped with the rest of the metadata, so the pixels must be converted
    # through it now; that matters most for CMYK, where the naive formula is far off for print profiles.
    icc = image.info.get("icc_profile")
    if not isinstance(icc, bytes) or not icc:
        return _to_rgb(image)
    source = image if image.mode == "CMYK" else _to_rgb(image)
    converted = _icc_to_srgb(source, icc)
    if converted is not None:
        return converted
    return _to_rgb(source)


def _scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return size
    factor = max_side / longest
    return max(1, round(width * factor)), max(1, round(height * factor))


def _apply_exif_orientation(image: ImageFile.ImageFile) -> None:
    try:
        ImageOps.exif_transpose(image, in_place=True)
    # Broken EXIF is no reason to refuse a picture that decoded fine; it is just left as stored.
    except Exception:
        return


def normalize_input(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> NormalizedImage:
    """Validate a member's image and re-encode it as an sRGB JPEG no larger than `max_side`.

    Raises `InvalidRequestError` with one sentence for the member when the file is not acceptable.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    if not data:
        raise InvalidRequestError(f"The attached file is empty; attach a {_ACCEPTED} image.")
    if len(data) > max_bytes:
        raise InvalidRequestError(
            f"That file is {_format_amount(len(data) / _MIB, limit=False)} MB, over the "
            f"{_format_amount(max_bytes / _MIB, limit=True)} MB limit for images; attach a smaller one."
        )
    try:
        with _pillow_warnings_silenced():
            image = _open_header(data, max_pixels)
            with image:
                return _normalize_opened(image, max_side)
    except _DecodeProblem as problem:
        raise _input_refusal(problem, data, max_pixels) from problem


def _normalize_opened(image: ImageFile.ImageFile, max_side: int) -> NormalizedImage:
    source_format = "JPEG" if image.format == "MPO" else str(image.format)
    header_size = image.size
    if image.format in ("JPEG", "MPO") and max(header_size) > max_side:
        # libjpeg decodes straight at 1/2, 1/4 or 1/8 scale, much faster and lighter than decoding a 40 MP
        # photo in full only to shrink it. The scale keeps the longest side at MIN_DECODED_SIDE or more, so a
        # 2016×1512 photo becomes 1008×756 with no resampling at all.
        image.draft(None, _scaled_size(header_size, min(max_side, MIN_DECODED_SIDE)))
    # Animated GIF, APNG and WebP open on their first frame, which is the one used.
    _decode(image)
    decoded_size = image.size
    target_size = _scaled_size(decoded_size, max_side)
    _apply_exif_orientation(image)
    swapped = image.size != decoded_size
    source_size = (header_size[1], header_size[0]) if swapped else header_size
    if swapped:
        target_size = (target_size[1], target_size[0])

    rgb = _to_srgb(image)
    if rgb.size != target_size:
        # Redux reads the image at 384×384, so a sharper filter here is invisible to it and only costs time
        # (bilinear takes under half of LANCZOS); big reductions go by whole factors first.
        rgb = rgb.resize(target_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=INPUT_JPEG_QUALITY)
    encoded = buffer.getvalue()
    return NormalizedImage(
        data=encoded,
        width=rgb.width,
        height=rgb.height,
        mime="image/jpeg",
        source_format=source_format,
        source_size=source_size,
        sha256=hashlib.sha256(encoded).hexdigest(),
    )


async def normalize_input_async(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> NormalizedImage:
    """`normalize_input` in a worker thread, keeping the event loop free."""
    return await asyncio.to_thread(normalize_input, data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side)


async def check_output_async(
    data: bytes,
    *,
    expected_size: tuple[int, int],
    expected_format: str,
    quality: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> OutputImage:
    """`check_output` in a worker thread."""
    return await asyncio.to_thread(
        check_output,
        data,
        expected_size=expected_size,
        expected_format=expected_format,
        quality=quality,
        max_pixels=max_pixels,
    )


async def fit_output_async(data: bytes, *, size: tuple[int, int], output_format: str, quality: int) -> bytes:
    """`fit_output` in a worker thread."""
    return await asyncio.to_thread(fit_output, data, size=size, output_format=output_format, quality=quality)


async def shrink_to_fit_async(image: OutputImage, max_bytes: int) -> OutputImage:
    """`shrink_to_fit` in a worker thread."""
    return await asyncio.to_thread(shrink_to_fit, image, max_bytes)


__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SIDE",
    "NormalizedImage",
    "OutputImage",
    "OutputImageError",
    "check_output",
    "check_output_async",
    "fit_output",
    "fit_output_async",
    "normalize_input",
    "normalize_input_async",
    "shrink_to_fit",
    "shrink_to_fit_async",
]
