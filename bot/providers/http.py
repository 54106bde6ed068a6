"""HTTP plumbing shared by the adapters: one request with error mapping, and capped downloads."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.core.errors import ProviderOutcomeUnknownError, ProviderPermanentError, ProviderTransientError
from bot.redact import MASK


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Status, headers and parsed JSON body (None when the body was not JSON)."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str
    #: when the request left, after waiting for the request budget
    sent_at: datetime | None = None


class HttpClient:
    """Sends requests for one provider and maps transport failures onto the error tree.

    A failure before the request left (refused connection, DNS, connect timeout) is transient. After it
    left, a timeout or a reset leaves the outcome unknown: harmless for a read, but a `billable` request
    (one that may start paid work) must then not be sent again, so it raises ProviderOutcomeUnknownError.
    Every `secrets` value is masked in answer bodies before anything reads them.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        provider: str,
        timeout: float,
        secrets: Sequence[str] = (),
    ) -> None:
        self.session = session
        self.provider = provider
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.secrets = tuple(secret for secret in secrets if secret)
        #: awaited before every API request (not output downloads): the engine's request budget
        self.before_request: Callable[[], Awaitable[None]] | None = None

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    async def request(self, method: str, url: str, *, billable: bool = False, **kwargs: Any) -> HttpAnswer:
        if self.before_request is not None:
            await self.before_request()
        sent_at = datetime.now(UTC)
        try:
            async with self.session.request(method, url, timeout=self.timeout, **kwargs) as response:
                raw = await response.read()
                headers = {key.lower(): value for key, value in response.headers.items()}
                status = response.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing reached the provider.
            raise ProviderTransientError(
                f"could not connect to {self.provider} ({type(exc).__name__})", provider=self.provider
            ) from exc
        except TimeoutError:
            if billable:
                raise ProviderOutcomeUnknownError(
                    f"{self.provider} did not answer a billable request within {self.timeout.total:g}s",
                    provider=self.provider,
                ) from None
            raise ProviderTransientError(
                f"{self.provider} did not answer within {self.timeout.total:g}s", provider=self.provider
            ) from None
        except aiohttp.ClientError as exc:
            if billable:
                raise ProviderOutcomeUnknownError(
                    f"the connection to {self.provider} broke during a billable request ({type(exc).__name__})",
                    provider=self.provider,
                ) from None
            raise ProviderTransientError(
                f"the connection to {self.provider} broke ({type(exc).__name__})", provider=self.provider
            ) from None
        text = self.mask(raw.decode("utf-8", errors="replace"))
        body: Any = None
        if raw:
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        return HttpAnswer(status=status, headers=headers, body=body, text=text, sent_at=sent_at)

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


_URL_KEYS = ("url", "uri", "image", "images", "output", "file", "files")
# The FLUX cog prints the seed it used, which reaches a prediction's logs (cog-flux bfl_predictor.py).
_SEED_LOG = re.compile(r"Using seed:\s*(\d+)")


def seed_from_logs(logs: object) -> int | None:
    """The seed the model printed (`Using seed: N`) into a prediction's logs, if it did."""
    match = _SEED_LOG.search(logs) if isinstance(logs, str) else None
    return int(match.group(1)) if match else None


def output_urls(value: object) -> list[str]:
    """Output URLs from whatever shape a vendor used: a URL, a JSON-encoded string, a list, or an object."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{", '"'):
            try:
                return output_urls(json.loads(text))
            except ValueError:
                return []
        return [text] if text else []
    if isinstance(value, list):
        return [url for item in value for url in output_urls(item)]
    if isinstance(value, dict):
        for key in _URL_KEYS:
            if key in value:
                found = output_urls(value[key])
                if found:
                    return found
        return [
            item.strip()
            for item in value.values()
            if isinstance(item, str) and item.strip().startswith(("https://", "http://", "data:"))
        ]
    return []
