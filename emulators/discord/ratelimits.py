"""Discord's REST rate limits as the fake enforces them: per-route buckets keyed by major parameters, and a global cap.

Discord does not document its numbers; it announces them in `X-RateLimit-*` headers. The defaults are the ones
bots observe on the message routes (5 per 5 s per channel) and the documented global limit (50 requests a
second, which interaction and webhook-token routes are exempt from). Every answer on a limited route carries
the complete header set discord.py reads; a refusal is a 429 with a `Via` header and a JSON `retry_after`, as
Discord's are, so the real client waits and retries instead of failing.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from emulators.discord.models import Json

#: the path parameters that split one route into separate buckets (channel, guild, webhook id + token)
MAJOR_PARAMETERS: Final = ("channel", "guild", "app", "token")
VIA: Final = "1.1 google"


@dataclass(frozen=True, slots=True)
class Limit:
    """`requests` per `per` seconds."""

    requests: int
    per: float


DISCORD_ROUTE_LIMITS: Final[Mapping[str, Limit]] = {
    "POST /channels/{channel}/messages": Limit(5, 5.0),
    "PATCH /channels/{channel}/messages/{message}": Limit(5, 5.0),
    "DELETE /channels/{channel}/messages/{message}": Limit(5, 5.0),
    "GET /channels/{channel}/messages": Limit(5, 5.0),
    "GET /channels/{channel}/messages/{message}": Limit(5, 5.0),
}


@dataclass(slots=True)
class RateLimits:
    """The switchboard: `enabled=False` turns every limit off (no headers, no 429s).

    `time_scale` multiplies every window, so a benchmark can run Discord's limits ten times faster and the
    client, which only follows the headers, adapts.
    """

    enabled: bool = True
    routes: Mapping[str, Limit] = field(default_factory=lambda: dict(DISCORD_ROUTE_LIMITS))
    global_limit: Limit | None = field(default_factory=lambda: Limit(50, 1.0))
    time_scale: float = 1.0


@dataclass(slots=True)
class _Window:
    """A fixed window: opens on the first request, closes `per` seconds later."""

    limit: Limit
    bucket: str
    started: float = 0.0
    used: int = 0

    def ends(self, per: float) -> float:
        return self.started + per


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the limiter says about one request: refused (a 429 body) or allowed, and the headers either way."""

    headers: dict[str, str]
    refusal: Json | None = None


class RateLimiter:
    """Counts requests per (route bucket, major parameters) and globally; answers like Discord."""

    def __init__(self, config: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or RateLimits()
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._global: _Window | None = None

    @staticmethod
    def bucket_hash(route: str) -> str:
        """A stable, opaque per-route hash, as Discord's `X-RateLimit-Bucket` is."""
        return hashlib.sha1(route.encode()).hexdigest()[:32]

    def check(self, route: str, params: Mapping[str, str], *, token_route: bool) -> Verdict | None:
        """Count the request; None when the route is not limited (no headers, as on unlimited routes)."""
        config = self.config
        if not config.enabled:
            return None
        now = self._clock()
        if config.global_limit is not None and not token_route:
            refusal = self._take_global(config.global_limit, now)
            if refusal is not None:
                return refusal
        limit = config.routes.get(route)
        if limit is None:
            return None
        major = "+".join(params[name] for name in MAJOR_PARAMETERS if name in params)
        per = limit.per * config.time_scale
        window = self._windows.get((route, major))
        if window is None or now >= window.ends(per):
            window = _Window(limit, self.bucket_hash(route), started=now)
            self._windows[(route, major)] = window
            self._prune(now)
        reset_after = _ceil_ms(window.ends(per) - now)
        if window.used >= limit.requests:
            headers = self._headers(limit, 0, reset_after, window.bucket) | {
                "Via": VIA,
                "Retry-After": str(math.ceil(reset_after)),
                "X-RateLimit-Scope": "user",
            }
            return Verdict(headers, _body(reset_after, global_=False))
        window.used += 1
        return Verdict(self._headers(limit, limit.requests - window.used, reset_after, window.bucket))

    def _take_global(self, limit: Limit, now: float) -> Verdict | None:
        per = limit.per * self.config.time_scale
        if self._global is None or now >= self._global.ends(per):
            self._global = _Window(limit, "global", started=now)
        if self._global.used >= limit.requests:
            retry_after = _ceil_ms(self._global.ends(per) - now)
            headers = {
                "Via": VIA,
                "Retry-After": str(math.ceil(retry_after)),
                "X-RateLimit-Global": "true",
                "X-RateLimit-Scope": "global",
            }
            return Verdict(headers, _body(retry_after, global_=True))
        self._global.used += 1
        return None

    @staticmethod
    def _headers(limit: Limit, remaining: int, reset_after: float, bucket: str) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit.requests),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _prune(self, now: float) -> None:
        # Closed windows carry no information; dropping them keeps a long run's memory flat.
        if len(self._windows) < 4096:
            return
        scale = self.config.time_scale
        for key, window in list(self._windows.items()):
            if now >= window.ends(window.limit.per * scale):
                del self._windows[key]


def _ceil_ms(seconds: float) -> float:
    # Rounded up, so a client that sleeps exactly this long arrives after the window closed, never just before.
    return max(0.0, math.ceil(seconds * 1000) / 1000)


def _body(retry_after: float, *, global_: bool) -> Json:
    return {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_, "code": 0}
