"""The Redux input image made small: the encoder sees it at 384×384, so 768 px on the long side loses nothing."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

REDUX_SIDE = 768
_QUALITIES = (92, 85, 75, 60)


def compact_jpeg(data: bytes, *, max_bytes: int, max_side: int = REDUX_SIDE) -> bytes:
    """A JPEG of at most `max_side` px a side, at the best quality that fits `max_bytes` (or the smallest)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG" and max(image.size) <= max_side and len(data) <= max_bytes:
            return data
        image.draft("RGB", (max_side, max_side))
        rgb = image.convert("RGB")
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    smallest = b""
    for quality in _QUALITIES:
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=quality)
        smallest = buffer.getvalue()
        if len(smallest) <= max_bytes:
            break
    return smallest


async def compact_jpeg_async(data: bytes, *, max_bytes: int, max_side: int = REDUX_SIDE) -> bytes:
    return await asyncio.to_thread(compact_jpeg, data, max_bytes=max_bytes, max_side=max_side)
