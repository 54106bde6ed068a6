"""Server administration and operator bookkeeping, without Discord: credits, settings, blocks, usage."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.credits import Balance
from bot.core.errors import UserError
from bot.core.jobs import Clock
from bot.core.limits import GuildSettings, OperatorPolicy, Policy
from bot.jobs.balances import BalanceBook, ProviderBalance
from storage.guilds import DayUsage, GuildRepo
from storage.ledger import LedgerEntry, LedgerRepo

MAX_GRANT = 1_000_000
MAX_USAGE_DAYS = 90
MAX_REASON_CHARS = 200


def check_range(name: str, value: object, low: int, high: int | None = None) -> int:
    """One sentence when an admin's number is out of range; Discord's client checks too, but not every client."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"The {name} must be a whole number.")
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UserError(f"The {name} must be {span} (got {value}).")
    return value


@dataclass(frozen=True, slots=True)
class GuildOverview:
    """The settings as stored and as they apply to a member without role bonuses."""

    settings: GuildSettings
    effective: Policy
    #: what the operator's provider accounts have left, where the providers report it
    balances: tuple[ProviderBalance, ...] = field(default=())


class AdminService:
    """What `/fluxadmin` and the `credits` CLI do; every credit movement goes through the ledger."""

    def __init__(
        self,
        *,
        ledger: LedgerRepo,
        guilds: GuildRepo,
        operator: OperatorPolicy,
        clock: Clock,
        providers: tuple[str, ...],
        balances: BalanceBook | None = None,
    ) -> None:
        self.balances = balances
        self.ledger = ledger
        self.guilds = guilds
        self.operator = operator
        self.clock = clock
        self.providers = providers

    async def _daily(self, guild_id: int, role_ids: frozenset[int]) -> int:
        return self.operator.resolve(await self.guilds.settings(guild_id), role_ids=role_ids).daily_allowance

    async def grant(
        self,
        guild_id: int,
        user_id: int,
        amount: int,
        *,
        actor_id: int | None,
        reason: str | None,
        key: str,
        role_ids: frozenset[int] = frozenset(),
    ) -> Balance:
        """Add (or, negative, take back) granted credits, once per `key`; the operator's command line uses it."""
        if amount == 0 or abs(amount) > MAX_GRANT:
            raise UserError(f"The amount must be between 1 and {MAX_GRANT}.")
        return await self.ledger.grant(
            guild_id=guild_id,
            user_id=user_id,
            amount=amount,
            daily=await self._daily(guild_id, role_ids),
            now=self.clock.now(),
            key=key,
            actor_id=actor_id,
            reason=reason,
        )

    async def give(
        self,
        guild_id: int,
        user_id: int,
        amount: int,
        *,
        actor_id: int,
        reason: str | None,
        key: str,
        role_ids: frozenset[int] = frozenset(),
    ) -> Balance:
        """An admin's grant: a positive amount only."""
        check_range("amount", amount, 1, MAX_GRANT)
        return await self.grant(
            guild_id, user_id, amount, actor_id=actor_id, reason=_reason(reason), key=key, role_ids=role_ids
        )

    async def take_back(
        self, guild_id: int, user_id: int, amount: int, *, actor_id: int, reason: str | None, key: str
    ) -> tuple[int, Balance]:
        """An admin's revoke of up to `amount` granted credits (a positive amount); returns what was taken."""
        check_range("amount", amount, 1, MAX_GRANT)
        before = await self.balance(guild_id, user_id)
        after = await self.grant(guild_id, user_id, -amount, actor_id=actor_id, reason=_reason(reason), key=key)
        return before.granted - after.granted, after

    async def balance(self, guild_id: int, user_id: int) -> Balance:
        async with self.ledger.db.transaction() as conn:
            return await self.ledger.open_account(
                conn,
                guild_id=guild_id,
                user_id=user_id,
                daily=await self._daily(guild_id, frozenset()),
                now=self.clock.now(),
            )

    async def ledger_entries(self, guild_id: int, user_id: int, limit: int = 20) -> list[LedgerEntry]:
        return await self.ledger.entries(guild_id, user_id, limit=limit)

    async def overview(self, guild_id: int) -> GuildOverview:
        settings = await self.guilds.settings(guild_id)
        balances = await self.balances.latest() if self.balances is not None else []
        served = [b for b in balances if b.provider in self.providers]
        return GuildOverview(settings, self.operator.resolve(settings), tuple(served))

    async def configure(self, guild_id: int, **fields: object) -> GuildOverview:
        """Change settings; values are checked against the operator's maxima here, with one clear sentence."""
        maxima = self.operator.maxima
        bounds: dict[str, tuple[str, int, int | None]] = {
            "allowance": ("allowance", 0, self.operator.max_daily_allowance),
            "budget": ("budget", 0, None),
            "jobs_per_minute": ("jobs per minute", 1, maxima.jobs_per_minute),
            "max_active": ("running jobs per member", 1, maxima.max_active),
            "max_queued": ("waiting jobs per member", 0, maxima.max_queued),
        }
        for name, value in fields.items():
            if name not in bounds or value is None:
                continue
            label, low, high = bounds[name]
            if high is not None and check_range(label, value, low) > high:
                raise UserError(f"The most this server may set for {label} is {high}.")
            check_range(label, value, low)
        if "provider" in fields and fields["provider"] is not None and fields["provider"] not in self.providers:
            raise UserError(f"Choose one of the configured providers: {', '.join(self.providers)}.")
        await self.guilds.update(guild_id, now=self.clock.now(), **fields)
        return await self.overview(guild_id)

    async def set_channel(self, guild_id: int, channel_id: int, *, allowed: bool) -> GuildOverview:
        await self.guilds.set_channel(guild_id, channel_id, allowed=allowed)
        return await self.overview(guild_id)

    async def clear_channels(self, guild_id: int) -> GuildOverview:
        await self.guilds.clear_channels(guild_id)
        return await self.overview(guild_id)

    async def role_bonus(self, guild_id: int, role_id: int, amount: int) -> GuildOverview:
        check_range("role bonus", amount, 0, MAX_GRANT)
        await self.guilds.set_role_bonus(guild_id, role_id, amount)
        return await self.overview(guild_id)

    async def block(self, guild_id: int, user_id: int, *, actor_id: int, reason: str | None) -> None:
        await self.guilds.block(guild_id, user_id, actor_id=actor_id, reason=_reason(reason), now=self.clock.now())

    async def unblock(self, guild_id: int, user_id: int) -> bool:
        return await self.guilds.unblock(guild_id, user_id)

    async def usage(self, guild_id: int, days: int) -> list[DayUsage]:
        check_range("number of days", days, 1, MAX_USAGE_DAYS)
        return await self.guilds.usage(guild_id, days=days, now=self.clock.now())


def _reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if len(reason) > MAX_REASON_CHARS:
        raise UserError(f"The reason must be at most {MAX_REASON_CHARS} characters (it has {len(reason)}).")
    return reason.strip() or None
