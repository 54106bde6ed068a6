"""One cheap authenticated call per provider key, for `python -m bot check --online`."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp

from bot.core.errors import ProviderTransientError
from bot.providers.http import HttpClient


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What the provider said about the key: it works, it was refused, or the provider could not be asked."""

    provider: str
    ok: bool
    #: neutral words for the operator, e.g. "the key works" or "could not reach http://… (connection refused)"
    detail: str
    reachable: bool = True


@runtime_checkable
class KeyChecker(Protocol):
    """An adapter that can prove its key with a call that costs nothing."""

    name: str

    async def check_key(self) -> KeyCheck: ...


def origin(url: str) -> str:
    """Scheme, host and port of `url`: what to name when it cannot be reached (never a path or query)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def connection_failure(error: BaseException | None) -> str:
    """Why a request never got an answer, in a few words ("connection refused", "no answer in time", …)."""
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, TimeoutError) or error is None:
        return "no answer in time"
    if isinstance(error, OSError):
        # asyncio words a refused connection as "Connect call failed (...)"; the errno says it plainly.
        known = error.errno is not None and error.errno > 0 and not isinstance(error, socket.gaierror)
        text = os.strerror(error.errno) if known and error.errno is not None else (error.strerror or str(error))
        return text[0].lower() + text[1:] if text else "the connection failed"
    return type(error).__name__


def unreachable_reason(exc: BaseException) -> str:
    """`connection_failure` for a provider error raised from the transport error (or from a timeout)."""
    return connection_failure(exc.__cause__)


async def check_with(
    http: HttpClient, *, base_url: str, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> KeyCheck:
    """Send one request that needs the key but starts no work; read the answer's status only.

    401/403 mean the key was refused; any other answer below 500 means the key got past authentication
    (an unknown id answers 404 with a good key), 402 adding that the account is out of credit.
    """
    name = http.provider
    try:
        answer = await http.request(method, url, headers=headers, **kwargs)
    except ProviderTransientError as exc:
        return KeyCheck(name, False, f"could not reach {origin(base_url)} ({unreachable_reason(exc)})", False)
    status = answer.status
    if status in (401, 403):
        return KeyCheck(name, False, f"the key was refused (HTTP {status})")
    if status == 429:
        return KeyCheck(name, False, "rate limited (HTTP 429), so the key was not checked; try again in a minute")
    if status >= 500:
        return KeyCheck(name, False, f"{origin(base_url)} answered HTTP {status}; try again later")
    if status == 402:
        return KeyCheck(name, True, "the key works, but the account is out of credit (HTTP 402)")
    return KeyCheck(name, True, "the key works")
