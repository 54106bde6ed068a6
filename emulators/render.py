"""Deterministic stand-in images for the provider emulators: real pixels, exact sizes, cheap to make."""

from __future__ import annotations

import hashlib
import io
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageOps

FORMATS: dict[str, str] = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
CONTENT_TYPES: dict[str, str] = {"webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}


def _rng(*, width: int, height: int, seed: int, index: int, source: bytes | None, prompt: str | None) -> random.Random:
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(source).digest() if source is not None else b"-")
    digest.update(hashlib.sha256((prompt or "").encode()).digest())
    digest.update(f"{seed}:{index}:{width}x{height}".encode())
    return random.Random(digest.digest())


@lru_cache(maxsize=8)
def _cover(source: bytes, width: int, height: int) -> Image.Image:
    """The source decoded and cover-cropped; cached because every output of a job starts from it."""
    with Image.open(io.BytesIO(source)) as opened:
        # JPEG can decode at a reduced scale, which is most of the cost for big inputs.
        opened.draft("RGB", (width, height))
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = max(width / image.width, height / image.height)
    crop_w, crop_h = width / scale, height / scale
    left, top = (image.width - crop_w) / 2, (image.height - crop_h) / 2
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize((width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _gradient(rng: random.Random, width: int, height: int) -> Image.Image:
    # A tiny random colour grid blown up bicubically looks like a smooth multi-stop gradient.
    grid = Image.new("RGB", (4, 4))
    grid.putdata([_colour(rng) for _ in range(16)])
    return grid.resize((width, height), Image.Resampling.BICUBIC)


def _shift(image: Image.Image, rng: random.Random) -> Image.Image:
    lut: list[int] = []
    for _ in range(3):
        gain = rng.uniform(0.75, 1.25)
        offset = rng.uniform(-40.0, 40.0)
        lut.extend(max(0, min(255, round(value * gain + offset))) for value in range(256))
    return image.point(lut)


def _shapes(image: Image.Image, rng: random.Random, count: int, alpha: int) -> None:
    width, height = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(count):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = min(width, x0 + rng.randrange(width // 8, width // 2))
        y1 = min(height, y0 + rng.randrange(height // 8, height // 2))
        fill = (*_colour(rng), alpha)
        kind = rng.randrange(3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fill)


def _blotches(image: Image.Image, rng: random.Random) -> Image.Image:
    # Low-resolution noise scaled up: visible texture without the encoding cost of per-pixel grain.
    width, height = image.size
    small = (max(1, width // 32), max(1, height // 32))
    noise = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    return Image.blend(image, noise.resize((width, height), Image.Resampling.BILINEAR), 0.12)


def render_image(
    *,
    width: int,
    height: int,
    seed: int,
    index: int,
    output_format: str,
    quality: int,
    source: bytes | None = None,
    prompt: str | None = None,
) -> bytes:
    """Encode one width×height image derived from `source` (Redux) or `prompt` (text-to-image).

    The same arguments always give the same bytes; `seed` and `index` each change the picture.
    """
    if output_format not in FORMATS:
        raise ValueError(f"unsupported output format {output_format!r}")
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    rng = _rng(width=width, height=height, seed=seed, index=index, source=source, prompt=prompt)
    if source is not None:
        image = _shift(_cover(source, width, height), rng)
        _shapes(image, rng, rng.randint(2, 4), alpha=70)
    else:
        image = _gradient(rng, width, height)
        _shapes(image, rng, rng.randint(3, 6), alpha=150)
    # Fewer distinct levels roughly halves PNG encoding time; the banding is invisible at a glance.
    image = ImageOps.posterize(_blotches(image, rng), 5)

    out = io.BytesIO()
    if output_format == "png":
        # Fast compression: the emulator cares about latency, not file size.
        image.save(out, "PNG", compress_level=1)
    elif output_format == "webp":
        image.save(out, "WEBP", quality=quality, method=0)
    else:
        image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
