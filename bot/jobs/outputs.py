"""What a provider sent back, checked: decodable images in the asked format; at least one, or an error."""

from __future__ import annotations

import asyncio
import logging

from bot.core.errors import ProviderBlockedError, ProviderPermanentError
from bot.core.images import OutputImageError, check_output
from bot.core.jobs import Job, StoredOutput
from bot.providers.base import ProviderResult

log = logging.getLogger(__name__)


async def usable_outputs(job: Job, result: ProviderResult, *, max_pixels: int) -> list[StoredOutput]:
    """The outputs worth delivering (and charging for); raises when there is none. One worker-thread hop per job."""
    outputs = await asyncio.to_thread(_checked, job, result.images, max_pixels)
    if not outputs:
        if not result.images:
            raise ProviderBlockedError("every image was removed by the safety filter", provider=job.provider or "")
        raise ProviderPermanentError("the provider returned no usable image", provider=job.provider or "")
    return outputs


def _checked(job: Job, images: list[bytes], max_pixels: int) -> list[StoredOutput]:
    spec = job.spec
    outputs: list[StoredOutput] = []
    for data in images[: spec.count]:
        try:
            image = check_output(
                data,
                expected_size=spec.size,
                expected_format=spec.output_format,
                quality=spec.quality,
                max_pixels=max_pixels,
            )
        except OutputImageError as exc:
            log.warning("job=%s provider=%s dropped an output that is not an image: %s", job.id, job.provider, exc)
            continue
        if (image.width, image.height) != spec.size:
            log.warning("job=%s output is %dx%d, expected %dx%d", job.id, image.width, image.height, *spec.size)
        outputs.append(StoredOutput(len(outputs), image.data, image.format, image.width, image.height))
    return outputs


def timings_ms(result: ProviderResult) -> tuple[int | None, int | None]:
    """(inference, inference + queue) in milliseconds, as the provider reported them."""
    if result.inference_seconds is None:
        return None, None
    inference = round(result.inference_seconds * 1000)
    return inference, round((result.inference_seconds + (result.queue_seconds or 0.0)) * 1000)
