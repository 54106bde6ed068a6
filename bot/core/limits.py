"""Who may start a job, where, and how many: pure policy over counts the database provides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.core.credits import next_refill, plural, relative_time
from bot.core.errors import UserError

WINDOW = timedelta(minutes=1)
#: the server id of jobs the operator runs from the command line; no server rule applies to them
OPERATOR_GUILD = 0
NOT_SERVED = "Fluxcord does not serve this server; its operator has limited it to other servers."


class LimitExceededError(UserError):
    """A limit refused the job; `frees_at` says when it would be accepted, where that is known."""

    def __init__(self, message: str, *, frees_at: datetime | None = None) -> None:
        super().__init__(message)
        self.frees_at = frees_at


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-member and per-server job limits."""

    jobs_per_minute: int = 5
    max_active: int = 2
    max_queued: int = 5
    server_concurrency: int = 8


#: no limits at all: operator jobs from the command line
UNLIMITED = Limits(jobs_per_minute=10**9, max_active=10**9, max_queued=10**9, server_concurrency=10**9)


@dataclass(frozen=True, slots=True)
class Policy:
    """A server's rules as they apply to one member right now."""

    daily_allowance: int
    limits: Limits = field(default_factory=Limits)
    budget: int | None = None
    allowed_channels: frozenset[int] = frozenset()
    nsfw_allowed: bool = False
    provider: str | None = None
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """What the member and the server have going, read in the same transaction as the hold."""

    recent: tuple[datetime, ...]  # creation times of the member's jobs in the last minute, oldest first
    queued: int
    server_spent_today: int  # captured plus still held, for jobs created since 00:00 UTC


def check_admission(policy: Policy, *, channel_id: int | None, channel_nsfw: bool, safety: bool) -> None:
    """Refusals that need no counting: blocked members, channels, the NSFW policy."""
    if policy.blocked:
        raise UserError("You are blocked from using Fluxcord on this server; ask a server admin.")
    if policy.allowed_channels and channel_id not in policy.allowed_channels:
        channels = ", ".join(f"<#{channel}>" for channel in sorted(policy.allowed_channels))
        raise UserError(f"Fluxcord is not enabled in this channel; use {channels}.")
    if not safety:
        if not policy.nsfw_allowed:
            raise UserError("`safety:off` is not allowed on this server; leave it on.")
        if not channel_nsfw:
            raise UserError("`safety:off` only works in age-restricted channels; leave it on here.")


def check_usage(policy: Policy, usage: Usage, *, cost: int, now: datetime) -> None:
    """Refusals that depend on counts; each names the limit and when it frees up."""
    limits = policy.limits
    if len(usage.recent) >= limits.jobs_per_minute:
        frees_at = usage.recent[len(usage.recent) - limits.jobs_per_minute] + WINDOW
        raise LimitExceededError(
            f"You can start {plural(limits.jobs_per_minute, 'job')} a minute; try again {relative_time(frees_at)}.",
            frees_at=frees_at,
        )
    if usage.queued >= limits.max_queued:
        raise LimitExceededError(
            f"You already have {plural(usage.queued, 'job')} waiting (the limit is {limits.max_queued}); "
            "try again when one of them starts."
        )
    if policy.budget is not None and usage.server_spent_today + cost > policy.budget:
        frees_at = next_refill(now)
        left = max(0, policy.budget - usage.server_spent_today)
        raise LimitExceededError(
            f"This server's daily budget of {policy.budget} credits has {left} left and this job costs {cost}; "
            f"it resets {relative_time(frees_at)}.",
            frees_at=frees_at,
        )


@dataclass(frozen=True, slots=True)
class OperatorGuard:
    """The operator's rules over all servers at once: which ones are served, and what all may spend a day."""

    #: the servers served; empty means every server the bot is in
    allowed_guilds: frozenset[int] = frozenset()
    daily_cap: int | None = None

    def serves(self, guild_id: int | None) -> bool:
        return guild_id == OPERATOR_GUILD or not self.allowed_guilds or guild_id in self.allowed_guilds


def check_operator(guard: OperatorGuard, *, guild_id: int, spent_everywhere: int, cost: int, now: datetime) -> None:
    """Refusals that protect the operator's bill, checked with the hold: unserved servers, the daily cap."""
    if not guard.serves(guild_id):
        raise UserError(NOT_SERVED)
    if guard.daily_cap is not None and cost > 0 and spent_everywhere + cost > guard.daily_cap:
        frees_at = next_refill(now)
        raise LimitExceededError(
            f"Fluxcord has used what its operator allows for today across all servers ({guard.daily_cap} credits); "
            f"nothing was charged, and it resets {relative_time(frees_at)}.",
            frees_at=frees_at,
        )


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """What a server's admins set; None means the operator's default."""

    allowance: int | None = None
    budget: int | None = None
    jobs_per_minute: int | None = None
    max_active: int | None = None
    max_queued: int | None = None
    nsfw_allowed: bool = False
    provider: str | None = None
    channels: frozenset[int] = frozenset()
    role_bonuses: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class OperatorPolicy:
    """The operator's defaults and the maxima server admins may set."""

    daily_allowance: int = 20
    max_daily_allowance: int = 1000
    defaults: Limits = field(default_factory=Limits)
    maxima: Limits = field(
        default_factory=lambda: Limits(jobs_per_minute=30, max_active=4, max_queued=20, server_concurrency=32)
    )

    def resolve(
        self, settings: GuildSettings, *, role_ids: frozenset[int] = frozenset(), blocked: bool = False
    ) -> Policy:
        """The policy for one member: server settings clamped to the operator's maxima, role bonuses added."""

        def pick(value: int | None, default: int, maximum: int) -> int:
            return default if value is None else max(1, min(value, maximum))

        bonus = sum(amount for role, amount in settings.role_bonuses if role in role_ids)
        allowance = self.daily_allowance if settings.allowance is None else settings.allowance
        return Policy(
            daily_allowance=min(allowance, self.max_daily_allowance) + bonus,
            limits=Limits(
                jobs_per_minute=pick(
                    settings.jobs_per_minute, self.defaults.jobs_per_minute, self.maxima.jobs_per_minute
                ),
                max_active=pick(settings.max_active, self.defaults.max_active, self.maxima.max_active),
                max_queued=pick(settings.max_queued, self.defaults.max_queued, self.maxima.max_queued),
                server_concurrency=min(self.defaults.server_concurrency, self.maxima.server_concurrency),
            ),
            budget=settings.budget,
            allowed_channels=settings.channels,
            nsfw_allowed=settings.nsfw_allowed,
            provider=settings.provider,
            blocked=blocked,
        )
