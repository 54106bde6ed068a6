"""What each provider account has left, where the provider's answers say: kept, logged, warned about when low."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.core.jobs import Clock
from storage.meta import MetaRepo

log = logging.getLogger(__name__)

_KEY = "balance:"
#: a new INFO line once the balance has fallen this fraction below the last one logged
_LOG_STEP = 0.1


@dataclass(frozen=True, slots=True)
class ProviderBalance:
    """A provider's remaining balance in its own credits, as last reported, and the operator's warning level."""

    provider: str
    remaining: float
    at: datetime
    threshold: float = 0.0

    @property
    def low(self) -> bool:
        return self.threshold > 0 and self.remaining < self.threshold


class BalanceBook:
    """Records balances the adapters read out of job answers (Segmind, 1min.ai; the others report none)."""

    def __init__(self, meta: MetaRepo, *, thresholds: Mapping[str, float], clock: Clock) -> None:
        self.meta = meta
        self.thresholds = dict(thresholds)
        self.clock = clock
        self._logged: dict[str, ProviderBalance] = {}

    async def record(self, provider: str, remaining: float) -> ProviderBalance:
        """Keep the latest balance; log the first one, notable drops, and a warning on falling below the threshold."""
        balance = ProviderBalance(provider, remaining, self.clock.now(), self.thresholds.get(provider, 0.0))
        previous = self._logged.get(provider)
        await self.meta.set(_KEY + provider, json.dumps({"remaining": remaining, "at": balance.at.isoformat()}))
        if balance.low and (previous is None or not previous.low):
            log.warning(
                "provider=%s balance=%g is below the warning level %g: top up the account with the provider",
                provider,
                remaining,
                balance.threshold,
            )
        elif previous is None or remaining < previous.remaining * (1 - _LOG_STEP) or remaining > previous.remaining:
            log.info("provider=%s balance=%g", provider, remaining)
        else:
            return balance
        self._logged[provider] = balance
        return balance

    async def latest(self) -> list[ProviderBalance]:
        """The last balance each provider reported, also from before this process started."""
        found = []
        for key, value in (await self.meta.with_prefix(_KEY)).items():
            provider = key[len(_KEY) :]
            try:
                data = json.loads(value)
                remaining, at = float(data["remaining"]), datetime.fromisoformat(data["at"])
            except (ValueError, KeyError, TypeError):
                continue
            found.append(ProviderBalance(provider, remaining, at, self.thresholds.get(provider, 0.0)))
        return found
