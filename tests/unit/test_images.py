"""Image normalization and output checks, against a corpus of bad and awkward images built here."""

from __future__ import annotations

import hashlib
import io
import random
import re
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageFile

from bot.core import images
from bot.core.errors import InvalidRequestError
from bot.core.images import (
    NormalizedImage,
    OutputImage,
    OutputImageError,
    check_output,
    check_output_async,
    fit_output,
    fit_output_async,
    normalize_input,
    normalize_input_async,
    shrink_to_fit,
    shrink_to_fit_async,
)

RGB = tuple[int, int, int]
RED: RGB = (220, 30, 30)
BLUE: RGB = (30, 40, 210)
GREEN: RGB = (30, 200, 60)


# --- building the corpus -------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(size: tuple[int, int], colour: RGB, mode: str = "RGB") -> Image.Image:
    return Image.new("RGB", size, colour).convert(mode)


def noise(size: tuple[int, int], seed: int = 7) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height but carries almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def webp_header_only(width: int, height: int) -> bytes:
    """An extended-format WebP whose VP8X chunk claims a width×height canvas."""
    vp8x = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def red_green_swapped_profile() -> bytes:
    """A minimal RGB matrix/TRC ICC profile whose red and green primaries are sRGB's green and red."""
    d50 = (0.9642, 1.0, 0.8249)
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, 0x0233) + bytes(2)  # gamma 2.2
    tags = [
        (b"wtpt", _xyz_tag(*d50)),
        (b"rXYZ", _xyz_tag(*green)),
        (b"gXYZ", _xyz_tag(*red)),
        (b"bXYZ", _xyz_tag(*blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    first_offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, tag in tags:
        table += signature + struct.pack(">II", first_offset + len(body), len(tag))
        body += tag
    header = (
        struct.pack(">I", first_offset + len(body))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + b"".join(_s15(v) for v in d50)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + body


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pixel(data: bytes, xy: tuple[int, int]) -> RGB:
    value = decoded(data).convert("RGB").getpixel(xy)
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def assert_close(actual: RGB, expected: RGB, tolerance: int = 12) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


def refusal(data: bytes, **options: int) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        normalize_input(data, **options)
    message = caught.value.message
    assert message == str(caught.value)
    assert message.endswith(".")
    assert "\n" not in message
    assert not re.search(r"[.!?]\s+\S", message), f"more than one sentence: {message!r}"
    return message


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel data is decoded."""

    def refuse_load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_load)


# --- refusals ------------------------------------------------------------------------------------


def test_empty_file_is_refused() -> None:
    assert "empty" in refusal(b"")


def test_random_bytes_are_refused_as_unreadable() -> None:
    data = random.Random(1234).randbytes(4096)
    assert "not an image" in refusal(data)


def test_text_file_is_refused_as_unreadable() -> None:
    assert "not an image" in refusal(b"name,prompt\nflux,a cat in a hat\n" * 20)


def test_truncated_png_is_refused_as_damaged() -> None:
    data = encode(noise((128, 128)), "PNG")
    message = refusal(data[: len(data) // 2])
    assert "damaged or incomplete" in message


def test_truncated_jpeg_is_refused_as_damaged() -> None:
    data = encode(noise((128, 128)), "JPEG", quality=90)
    assert "damaged or incomplete" in refusal(data[: len(data) // 3])


def test_png_with_corrupt_pixel_data_is_refused() -> None:
    data = bytearray(encode(noise((64, 64)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 40 : idat + 60] = b"\xff" * 20  # breaks the chunk CRC and the deflate stream
    assert "damaged or incomplete" in refusal(bytes(data))


@pytest.mark.usefixtures("no_decoding")
def test_png_claiming_30000_squared_pixels_is_refused_without_decoding() -> None:
    message = refusal(png_header_only(30000, 30000))
    assert "40 MP" in message


@pytest.mark.usefixtures("no_decoding")
def test_header_just_over_pillows_warning_limit_is_refused_with_its_size() -> None:
    # 100 MP is where Pillow warns; the warning must stay inside and our own check must name the size.
    message = refusal(png_header_only(10000, 10000))
    assert "10000×10000" in message
    assert "40 MP" in message


@pytest.mark.usefixtures("no_decoding")
def test_header_over_our_limit_but_under_pillows_is_refused() -> None:
    message = refusal(png_header_only(8000, 6000))
    assert "8000×6000" in message
    assert "48 MP" in message


def test_webp_canvas_size_is_checked_before_pillow_allocates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow opened the file")

    monkeypatch.setattr(Image, "open", no_open)
    message = refusal(webp_header_only(9000, 9000))
    assert "9000×9000" in message


def test_pixel_limit_is_configurable() -> None:
    data = encode(solid((100, 100), RED), "PNG")
    assert "100×100" in refusal(data, max_pixels=5000)
    assert normalize_input(data, max_pixels=10_000).width == 100


def test_oversized_file_is_refused_naming_the_limit_in_mb() -> None:
    message = refusal(bytes(20 * 1024 * 1024 + 1))
    assert "20 MB limit" in message
    assert "20.1 MB" in message


def test_byte_limit_is_configurable() -> None:
    data = encode(noise((64, 64)), "PNG")
    assert "MB limit" in refusal(data, max_bytes=len(data) - 1)
    assert normalize_input(data, max_bytes=len(data)).width == 64


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("BMP", "BMP"), ("TIFF", "TIFF"), ("ICO", "ICO")],
)
def test_other_formats_are_refused_by_name(fmt: str, name: str) -> None:
    message = refusal(encode(solid((32, 32), RED), fmt))
    assert message.startswith(f"{name} images are not supported")
    assert "PNG, JPEG, WebP or GIF" in message


def test_heic_photo_is_refused_by_name() -> None:
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    assert refusal(data).startswith("HEIC images are not supported")


# --- accepted inputs -----------------------------------------------------------------------------


def test_normalized_image_is_a_metadata_free_jpeg_with_its_hash() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    data = encode(solid((300, 200), GREEN), "JPEG", quality=90, exif=exif.tobytes())
    result = normalize_input(data)
    assert isinstance(result, NormalizedImage)
    assert result.mime == "image/jpeg"
    assert result.source_format == "JPEG"
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    out = decoded(result.data)
    assert out.format == "JPEG"
    assert out.size == (result.width, result.height)
    assert "exif" not in out.info
    assert len(out.getexif()) == 0


def test_small_image_is_not_upscaled() -> None:
    result = normalize_input(encode(solid((300, 200), RED), "PNG"))
    assert (result.width, result.height) == (300, 200)
    assert result.source_size == (300, 200)
    assert result.source_format == "PNG"
    assert_close(pixel(result.data, (150, 100)), RED)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_large_image_is_scaled_to_1024_on_its_longest_side(fmt: str) -> None:
    image = Image.new("RGB", (3000, 1500), RED)
    image.paste(BLUE, (1500, 0, 3000, 1500))
    result = normalize_input(encode(image, fmt))
    assert (result.width, result.height) == (1024, 512)
    assert result.source_size == (3000, 1500)
    assert_close(pixel(result.data, (200, 256)), RED)
    assert_close(pixel(result.data, (800, 256)), BLUE)


def test_max_side_is_configurable() -> None:
    result = normalize_input(encode(solid((400, 1000), RED), "PNG"), max_side=500)
    assert (result.width, result.height) == (200, 500)


def test_exif_orientation_is_applied() -> None:
    # Stored 200×100 with orientation 6 ("rotate 90° clockwise to view"): the stored bottom-left corner is
    # what a viewer shows at the top left.
    stored = Image.new("RGB", (200, 100), BLUE)
    stored.paste(GREEN, (0, 60, 40, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    result = normalize_input(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert (result.width, result.height) == (100, 200)
    assert result.source_size == (100, 200)
    assert_close(pixel(result.data, (10, 10)), GREEN)
    assert_close(pixel(result.data, (90, 190)), BLUE)


def test_exif_orientation_is_applied_before_scaling() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    result = normalize_input(encode(solid((2048, 1024), RED), "JPEG", exif=exif.tobytes()))
    assert (result.width, result.height) == (512, 1024)
    assert result.source_size == (1024, 2048)


def _animation(fmt: str) -> bytes:
    frames = [solid((64, 64), colour) for colour in (RED, BLUE, GREEN)]
    if fmt == "GIF":
        frames = [frame.convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_uses_its_first_frame(fmt: str) -> None:
    data = _animation(fmt)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    result = normalize_input(data)
    assert result.source_format == fmt
    assert_close(pixel(result.data, (32, 32)), RED)


def test_multi_picture_jpeg_is_read_as_jpeg() -> None:
    data = encode(solid((64, 48), RED), "MPO", save_all=True, append_images=[solid((64, 48), BLUE)])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    result = normalize_input(data)
    assert result.source_format == "JPEG"
    assert_close(pixel(result.data, (32, 24)), RED)


def test_cmyk_jpeg_keeps_its_colours() -> None:
    data = encode(solid((64, 64), RED, mode="CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert_close(pixel(normalize_input(data).data, (32, 32)), RED)


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    row = struct.pack("<96H", *([0] * 32 + [32768] * 32 + [65535] * 32))
    stripes = Image.frombytes("I;16", (96, 32), row * 32)
    data = encode(stripes, "PNG")
    assert data[24] == 16  # the IHDR bit depth: a real 16-bit file
    result = normalize_input(data)
    assert_close(pixel(result.data, (16, 16)), (0, 0, 0), tolerance=3)
    assert_close(pixel(result.data, (48, 16)), (128, 128, 128), tolerance=3)
    assert_close(pixel(result.data, (80, 16)), (255, 255, 255), tolerance=3)


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_sixteen_bit_modes_are_scaled(mode: str) -> None:
    assert images._to_rgb(Image.new(mode, (4, 4), 32768)).getpixel((0, 0)) == (128, 128, 128)


def test_transparent_areas_of_rgba_png_become_white() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((*RED, 255), (32, 0, 64, 64))
    result = normalize_input(encode(image, "PNG"))
    assert_close(pixel(result.data, (8, 32)), (255, 255, 255), tolerance=4)
    assert_close(pixel(result.data, (56, 32)), RED)


def test_half_transparent_pixels_are_blended_with_white() -> None:
    result = normalize_input(encode(Image.new("RGBA", (32, 32), (0, 0, 0, 128)), "PNG"))
    assert_close(pixel(result.data, (16, 16)), (127, 127, 127), tolerance=4)


def test_grey_with_alpha_png_becomes_white_where_transparent() -> None:
    image = Image.new("LA", (32, 32), (0, 0))
    assert_close(pixel(normalize_input(encode(image, "PNG")).data, (16, 16)), (255, 255, 255), tolerance=4)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt: str) -> None:
    image = Image.new("P", (64, 64), 0)
    image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    image.paste(1, (32, 0, 64, 64))
    result = normalize_input(encode(image, fmt, transparency=0))
    assert_close(pixel(result.data, (8, 32)), (255, 255, 255), tolerance=4)
    assert_close(pixel(result.data, (56, 32)), RED)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("L", (90, 90, 90)), ("1", (255, 255, 255)), ("P", RED)],
)
def test_other_modes_become_rgb(mode: str, expected: RGB) -> None:
    source = Image.new("L", (32, 32), 90) if mode == "L" else solid((32, 32), RED if mode == "P" else (255,) * 3)
    image = source.convert(mode, palette=Image.Palette.ADAPTIVE) if mode == "P" else source.convert(mode)
    result = normalize_input(encode(image, "PNG"))
    assert decoded(result.data).mode == "RGB"
    assert_close(pixel(result.data, (16, 16)), expected, tolerance=4)


def test_float_mode_becomes_rgb() -> None:
    assert images._to_rgb(Image.new("F", (4, 4), 90.0)).getpixel((0, 0)) == (90, 90, 90)


def test_embedded_srgb_profile_keeps_colours() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(solid((32, 32), RED), "PNG", icc_profile=srgb)
    assert_close(pixel(normalize_input(data).data, (16, 16)), RED)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_embedded_profile_is_honoured_before_it_is_stripped(fmt: str) -> None:
    data = encode(solid((32, 32), RED), fmt, icc_profile=red_green_swapped_profile())
    result = normalize_input(data)
    assert "icc_profile" not in decoded(result.data).info
    assert_close(pixel(result.data, (16, 16)), (RED[1], RED[0], RED[2]), tolerance=15)


def test_broken_embedded_profile_is_ignored() -> None:
    data = encode(solid((32, 32), RED), "PNG", icc_profile=b"not really a colour profile")
    assert_close(pixel(normalize_input(data).data, (16, 16)), RED)


def test_broken_exif_does_not_refuse_a_good_picture() -> None:
    data = encode(solid((40, 20), RED), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    result = normalize_input(data)
    assert (result.width, result.height) == (40, 20)


async def test_async_normalization_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[int, dict[str, int]]] = []
    real = images.normalize_input

    def spy(data: bytes, **options: int) -> NormalizedImage:
        seen.append((threading.get_ident(), options))
        return real(data, **options)

    monkeypatch.setattr(images, "normalize_input", spy)
    result = await normalize_input_async(encode(solid((300, 200), RED), "PNG"), max_side=150)
    assert (result.width, result.height) == (150, 100)
    assert seen[0][0] != loop_thread
    assert seen[0][1] == {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000, "max_side": 150}


async def test_async_normalization_refuses_like_the_sync_one() -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        await normalize_input_async(b"")


_SEEDS = [
    encode(noise((24, 16)), "PNG"),
    encode(noise((24, 16)), "JPEG"),
    encode(noise((24, 16)), "WEBP"),
    _animation("GIF"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    cut=st.integers(min_value=1, max_value=2000),
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=4000), st.integers(0, 255)), max_size=8),
)
def test_mangled_images_are_refused_or_normalized_never_crashing(
    seed: bytes, cut: int, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(seed[: max(1, len(seed) - cut)] if cut < len(seed) else seed)
    for position, value in edits:
        if position < len(data):
            data[position] = value
    try:
        result: NormalizedImage | str = normalize_input(bytes(data))
    except InvalidRequestError as refused:
        result = refused.message
    if isinstance(result, str):
        assert result.endswith(".")
    else:
        assert decoded(result.data).size == (result.width, result.height)


# --- outputs -------------------------------------------------------------------------------------


def test_output_in_the_expected_format_is_kept_byte_for_byte() -> None:
    data = encode(noise((128, 96)), "WEBP", quality=80)
    result = check_output(data, expected_size=(128, 96), expected_format="webp", quality=80)
    assert result == OutputImage(data=data, width=128, height=96, format="webp")


@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize("fmt", ["webp", "png", "jpg"])
def test_output_in_the_expected_format_is_checked_without_decoding_its_pixels(fmt: str) -> None:
    data = encode(noise((96, 64)), {"webp": "WEBP", "png": "PNG", "jpg": "JPEG"}[fmt], quality=80)
    result = check_output(data, expected_size=(96, 64), expected_format=fmt, quality=80)
    assert (result.data, result.width, result.height) == (data, 96, 64)


def _flip_png_pixel_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[data.index(b"IDAT") + 30] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize(
    ("fmt", "damage"),
    [
        ("WEBP", lambda data: data[: len(data) - 10]),
        ("WEBP", lambda data: data[:12] + b"VP8 " + (10**6).to_bytes(4, "little") + data[20:]),
        ("PNG", lambda data: data[: len(data) - 12]),
        ("PNG", _flip_png_pixel_byte),
        ("JPEG", lambda data: data[: len(data) * 2 // 3]),
    ],
    ids=["webp-truncated", "webp-chunk-size", "png-no-iend", "png-bad-crc", "jpeg-truncated"],
)
def test_a_damaged_output_in_the_expected_format_is_refused(fmt: str, damage: Callable[[bytes], bytes]) -> None:
    data = encode(noise((96, 64)), fmt, quality=80)
    wanted = {"WEBP": "webp", "PNG": "png", "JPEG": "jpg"}[fmt]
    with pytest.raises(OutputImageError, match="damaged or incomplete"):
        check_output(damage(data), expected_size=(96, 64), expected_format=wanted, quality=80)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_not_resampled() -> None:
    result = normalize_input(encode(noise((2016, 1512)), "JPEG", quality=90))
    assert (result.width, result.height) == (1008, 756)  # libjpeg's 1/2 scale, longest side still >= 768
    assert result.source_size == (2016, 1512)
    big = normalize_input(encode(noise((4032, 3024)), "JPEG", quality=90))
    assert (big.width, big.height) == (1008, 756)  # 1/4 scale


def test_png_output_is_reencoded_when_webp_was_asked_for() -> None:
    result = check_output(
        encode(solid((64, 48), RED), "PNG"), expected_size=(64, 48), expected_format="webp", quality=90
    )
    assert decoded(result.data).format == "WEBP"
    assert (result.width, result.height, result.format) == (64, 48, "webp")
    assert_close(pixel(result.data, (32, 24)), RED)


def test_jpg_means_jpeg_and_transparency_is_flattened() -> None:
    jpeg = encode(solid((32, 32), RED), "JPEG")
    assert check_output(jpeg, expected_size=(32, 32), expected_format="jpg", quality=80).data == jpeg
    rgba = encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "WEBP", lossless=True)
    result = check_output(rgba, expected_size=(32, 32), expected_format="jpg", quality=90)
    assert decoded(result.data).format == "JPEG"
    assert_close(pixel(result.data, (16, 16)), (255, 255, 255), tolerance=4)


def test_output_reports_its_real_size() -> None:
    data = encode(solid((80, 40), RED), "PNG")
    result = check_output(data, expected_size=(1024, 1024), expected_format="png", quality=80)
    assert (result.width, result.height) == (80, 40)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html><body>502 Bad Gateway</body></html>",
        encode(noise((64, 64)), "PNG")[:300],
        png_header_only(30000, 30000),
        png_header_only(8000, 6000),
    ],
    ids=["empty", "html", "truncated", "bomb", "over-limit"],
)
def test_unusable_output_raises(data: bytes) -> None:
    with pytest.raises(OutputImageError):
        check_output(data, expected_size=(64, 64), expected_format="webp", quality=80)


def test_unknown_output_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="gif"):
        check_output(encode(solid((8, 8), RED), "PNG"), expected_size=(8, 8), expected_format="gif", quality=80)


def test_fit_output_gives_exactly_the_size_asked_for() -> None:
    data = fit_output(encode(noise((1344, 768)), "PNG"), size=(672, 384), output_format="webp", quality=80)
    out = decoded(data)
    assert (out.size, out.format) == ((672, 384), "WEBP")


def test_fit_output_crops_rather_than_stretches() -> None:
    image = Image.new("RGB", (1000, 500), RED)
    image.paste(BLUE, (250, 0, 750, 500))
    data = fit_output(encode(image, "PNG"), size=(300, 300), output_format="png", quality=80)
    assert decoded(data).size == (300, 300)
    assert_close(pixel(data, (2, 150)), BLUE)
    assert_close(pixel(data, (297, 150)), BLUE)


def test_fit_output_leaves_a_matching_image_alone() -> None:
    data = encode(noise((64, 64)), "JPEG")
    assert fit_output(data, size=(64, 64), output_format="jpg", quality=80) is data


def test_fit_output_rejects_garbage() -> None:
    with pytest.raises(OutputImageError):
        fit_output(b"nope", size=(64, 64), output_format="png", quality=80)


def _output(image: Image.Image, fmt: str, **options: Any) -> OutputImage:
    pillow = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}[fmt]
    return OutputImage(encode(image, pillow, **options), image.width, image.height, fmt)


def test_shrink_to_fit_returns_an_image_that_already_fits() -> None:
    image = _output(noise((64, 64)), "webp")
    assert shrink_to_fit(image, len(image.data)) is image


@pytest.mark.parametrize("fmt", ["webp", "jpg"])
def test_shrink_to_fit_lowers_quality_before_size(fmt: str) -> None:
    image = _output(noise((256, 256)), fmt, quality=95)
    limit = int(len(image.data) * 0.9)
    result = shrink_to_fit(image, limit)
    assert len(result.data) <= limit
    assert (result.width, result.height, result.format) == (256, 256, fmt)
    # The first step down that fits wins, so no more quality is lost than needed.
    pillow = {"webp": "WEBP", "jpg": "JPEG"}[fmt]
    assert result.data == encode(decoded(image.data).convert("RGB"), pillow, quality=80)


@pytest.mark.parametrize("fmt", ["webp", "jpg"])
def test_shrink_to_fit_scales_down_when_quality_is_not_enough(fmt: str) -> None:
    image = _output(noise((512, 512)), fmt, quality=95)
    limit = len(image.data) // 8
    result = shrink_to_fit(image, limit)
    assert len(result.data) <= limit
    assert result.format == fmt
    assert result.width < 512
    assert result.width == result.height
    assert decoded(result.data).size == (result.width, result.height)


def test_shrink_to_fit_keeps_png_when_compression_is_enough() -> None:
    gradient = Image.linear_gradient("L").convert("RGB")
    image = _output(gradient, "png", compress_level=0)
    limit = len(image.data) // 4
    result = shrink_to_fit(image, limit)
    assert len(result.data) <= limit
    assert result.format == "png"
    assert decoded(result.data).tobytes() == gradient.tobytes()


def test_shrink_to_fit_turns_png_into_webp_when_it_must() -> None:
    image = _output(noise((256, 256)), "png")
    limit = len(image.data) // 2
    result = shrink_to_fit(image, limit)
    assert len(result.data) <= limit
    assert result.format == "webp"
    assert decoded(result.data).format == "WEBP"


def test_shrink_to_fit_gives_up_when_nothing_fits() -> None:
    with pytest.raises(OutputImageError):
        shrink_to_fit(_output(noise((128, 128)), "jpg"), 100)


async def test_async_output_helpers_match_the_sync_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []

    def track(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            threads.append(threading.get_ident())
            return function(*args, **kwargs)

        return wrapper

    for name in ("check_output", "fit_output", "shrink_to_fit"):
        monkeypatch.setattr(images, name, track(getattr(images, name)))
    png = encode(solid((64, 64), RED), "PNG")

    checked = await check_output_async(png, expected_size=(64, 64), expected_format="webp", quality=80)
    assert checked == check_output(png, expected_size=(64, 64), expected_format="webp", quality=80)
    fitted = await fit_output_async(png, size=(32, 32), output_format="jpg", quality=80)
    assert decoded(fitted).size == (32, 32)
    shrunk = await shrink_to_fit_async(_output(noise((128, 128)), "jpg", quality=95), 8000)
    assert len(shrunk.data) <= 8000
    assert len(threads) == 3
    assert threading.get_ident() not in threads
