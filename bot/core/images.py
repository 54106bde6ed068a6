"""Image handling: members' inputs normalized for the providers, provider outputs checked for Discord.

Everything here is synchronous Pillow code that can take a noticeable fraction of a second on large
images, so each entry point has an `*_async` twin that runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from bot.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from PIL.ImageCms import ImageCmsProfile

DEFAULT_MAX_INPUT_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 1024
INPUT_JPEG_QUALITY = 95
#: a JPEG is decoded at a reduced scale as long as its longest side stays at least this long (Redux reads 384)
MIN_DECODED_SIDE = 768

_MIB = 1024 * 1024
_ACCEPTED = "PNG, JPEG, WebP or GIF"
# Pillow's JPEG opener also yields "MPO" for the multi-picture JPEGs many phone cameras write; those are
# JPEGs all the same and are reported as such.
_READABLE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_PILLOW_FORMAT = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_SHRINK_QUALITIES = (80, 70, 60, 50)
_SHRINK_SCALE_STEP = 0.85
_SHRINK_MIN_SIDE = 64

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


@dataclass(frozen=True, slots=True)
class OutputImage:
    """A provider's image, verified and in the format the member asked for."""

    data: bytes
    width: int
    height: int
    format: str


class OutputImageError(ValueError):
    """A provider returned something that is not a usable image."""


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


async def fit_output_async(data: bytes, *, size: tuple[int, int], output_format: str, quality: int) -> bytes:
    """`fit_output` in a worker thread."""
    return await asyncio.to_thread(fit_output, data, size=size, output_format=output_format, quality=quality)


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


async def shrink_to_fit_async(image: OutputImage, max_bytes: int) -> OutputImage:
    """`shrink_to_fit` in a worker thread."""
    return await asyncio.to_thread(shrink_to_fit, image, max_bytes)
