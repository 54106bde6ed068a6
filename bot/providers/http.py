"""HTTP plumbing shared by the adapters: one request with error mapping, and capped downloads."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.core.errors import ProviderPermanentError, ProviderTransientError


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Status, headers and parsed JSON body (None when the body was not JSON)."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str


class HttpClient:
    """Sends requests for one provider and turns transport failures into transient provider errors."""

    def __init__(self, session: aiohttp.ClientSession, *, provider: str, timeout: float) -> None:
        self.session = session
        self.provider = provider
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        #: awaited before every API request (not output downloads): the engine's request budget
        self.before_request: Callable[[], Awaitable[None]] | None = None
        self.sent = 0

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpAnswer:
        if self.before_request is not None:
            await self.before_request()
        self.sent += 1
        try:
            async with self.session.request(method, url, timeout=self.timeout, **kwargs) as response:
                raw = await response.read()
                headers = {key.lower(): value for key, value in response.headers.items()}
                status = response.status
        except TimeoutError:
            raise ProviderTransientError(
                f"{self.provider} did not answer within {self.timeout.total:g}s", provider=self.provider
            ) from None
        except aiohttp.ClientError as exc:
            raise ProviderTransientError(
                f"could not reach {self.provider} ({type(exc).__name__})", provider=self.provider
            ) from exc
        text = raw.decode("utf-8", errors="replace")
        body: Any = None
        if raw:
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        return HttpAnswer(status=status, headers=headers, body=body, text=text)

    async def download(self, url: str, *, max_bytes: int, headers: dict[str, str] | None = None) -> bytes:
        """Fetch an output file (or decode a data URI), refusing anything larger than `max_bytes`."""
        if url.startswith("data:"):
            try:
                data = base64.b64decode(url.partition(",")[2], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProviderPermanentError("an output data URI is malformed", provider=self.provider) from exc
            if len(data) > max_bytes:
                raise ProviderPermanentError("an output is larger than the size cap", provider=self.provider)
            return data
        try:
            async with self.session.get(url, timeout=self.timeout, headers=headers) as response:
                if response.status >= 500 or response.status == 429:
                    raise ProviderTransientError(
                        f"downloading an output failed with HTTP {response.status}",
                        provider=self.provider,
                        status=response.status,
                    )
                if response.status >= 400:
                    raise ProviderPermanentError(
                        f"downloading an output failed with HTTP {response.status}",
                        provider=self.provider,
                        status=response.status,
                    )
                if (response.content_length or 0) > max_bytes:
                    raise ProviderPermanentError("an output is larger than the size cap", provider=self.provider)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ProviderPermanentError("an output is larger than the size cap", provider=self.provider)
                    chunks.append(chunk)
                return b"".join(chunks)
        except TimeoutError:
            raise ProviderTransientError("downloading an output timed out", provider=self.provider) from None
        except aiohttp.ClientError as exc:
            raise ProviderTransientError(
                f"downloading an output failed ({type(exc).__name__})", provider=self.provider
            ) from exc

    async def download_all(
        self, urls: list[str], *, max_bytes: int, headers: dict[str, str] | None = None
    ) -> list[bytes]:
        return list(await asyncio.gather(*(self.download(u, max_bytes=max_bytes, headers=headers) for u in urls)))


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: a delay in seconds or an HTTP date; None if absent or bad."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def error_text(answer: HttpAnswer) -> str:
    """The vendor's own words about an error, kept short."""
    if isinstance(answer.body, dict):
        for key in ("error", "detail", "message", "error_description"):
            value = answer.body.get(key)
            if isinstance(value, str) and value:
                return value[:300]
    return (
        (answer.text.strip() or f"HTTP {answer.status}")[:300]
        if "<html" not in answer.text.lower()
        else (f"HTTP {answer.status}")
    )
