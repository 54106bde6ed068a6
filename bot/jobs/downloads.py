"""Members' input images, fetched only from the hosts that serve Discord attachments, and never past a cap."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp

from bot.core.errors import InvalidRequestError

log = logging.getLogger(__name__)

#: where Discord serves attachments (`url` and `proxy_url`)
DISCORD_CDN_ORIGINS = ("https://cdn.discordapp.com", "https://media.discordapp.net")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 64 * 1024
NOT_ON_DISCORD = "That attachment is not stored on Discord; attach the image itself."


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, or None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def too_large(limit: int) -> InvalidRequestError:
    return InvalidRequestError(f"That image is larger than the {limit / 1_048_576:.0f} MB limit.")


class AttachmentFetcher:
    """Downloads an attachment from an allowed origin, reading at most `limit` bytes (a lying size is no help)."""

    def __init__(self, http: aiohttp.ClientSession, *, origins: Iterable[str], timeout: float) -> None:
        self.http = http
        self.origins = frozenset(found for found in map(origin, origins) if found is not None)
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def allows(self, url: str) -> bool:
        return origin(url) in self.origins

    async def fetch(self, url: str, *, limit: int) -> bytes:
        """The attachment's bytes; InvalidRequestError if it is elsewhere, unreachable or over `limit`."""
        if not self.allows(url):
            raise InvalidRequestError(NOT_ON_DISCORD)
        unreachable = InvalidRequestError("The attachment could not be downloaded; please attach it again.")
        try:
            # Redirects stay off: the next hop would be a host nobody checked.
            async with self.http.get(url, timeout=self.timeout, allow_redirects=False) as response:
                if response.status != 200:
                    log.info("attachment download answered %d", response.status)
                    raise unreachable
                if response.content_length is not None and response.content_length > limit:
                    raise too_large(limit)
                data = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise too_large(limit)
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("attachment download failed: %s", type(exc).__name__)
            raise unreachable from None
