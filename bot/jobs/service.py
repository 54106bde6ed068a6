"""What the front ends ask for, in Discord-free terms: start, re-roll, vary, inspect and cancel jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from bot.core.credits import Balance
from bot.core.errors import InvalidRequestError, JobNotFoundError, UserError
from bot.core.images import NormalizedImage, normalize_input_async
from bot.core.jobs import Job, StoredOutput
from bot.core.limits import OperatorPolicy, Policy, check_admission, check_usage
from bot.core.pricing import PriceList
from bot.core.requests import GenerationSpec, ImagineOptions, VaryOptions, random_seed
from bot.jobs.engine import JobEngine, JobOrder
from storage.guilds import GuildRepo
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo

ACCEPTED_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, where, and under which interaction (the idempotency key)."""

    guild_id: int
    user_id: int
    channel_id: int | None
    request_id: str
    role_ids: frozenset[int] = frozenset()
    channel_nsfw: bool = False
    #: the largest upload the channel accepts (Discord tells it with every interaction)
    upload_limit: int | None = None


@dataclass(frozen=True, slots=True)
class CreditsView:
    """Everything `/credits` shows."""

    balance: Balance
    spent_today: int
    prices: PriceList
    now: datetime


class GenerationService:
    """The one service the cogs and buttons call; it owns no Discord objects."""

    def __init__(
        self,
        *,
        engine: JobEngine,
        jobs: JobRepo,
        ledger: LedgerRepo,
        guilds: GuildRepo,
        operator: OperatorPolicy,
        max_input_bytes: int,
        max_input_pixels: int,
    ) -> None:
        self.engine = engine
        self.jobs = jobs
        self.ledger = ledger
        self.guilds = guilds
        self.operator = operator
        self.max_input_bytes = max_input_bytes
        self.max_input_pixels = max_input_pixels

    def check_attachment(self, *, size: int, content_type: str | None, upload_limit: int | None) -> None:
        """Refuse an attachment by its declared type and size, before downloading it."""
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind and not kind.startswith("image/"):
            raise InvalidRequestError("That attachment is not an image; attach a PNG, JPEG, WebP or GIF.")
        if kind and kind not in ACCEPTED_TYPES:
            raise InvalidRequestError(f"{kind} images are not supported; attach a PNG, JPEG, WebP or GIF.")
        limit = min(self.max_input_bytes, upload_limit or self.max_input_bytes)
        if size > limit:
            raise InvalidRequestError(
                f"That image is {size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.0f} MB."
            )

    async def policy(self, who: Requester) -> Policy:
        """The server's rules as they apply to this member now."""
        settings = await self.guilds.settings(who.guild_id)
        blocked = await self.guilds.is_blocked(who.guild_id, who.user_id)
        return self.operator.resolve(settings, role_ids=who.role_ids, blocked=blocked)

    async def admit(self, who: Requester, spec: GenerationSpec | VaryOptions | ImagineOptions) -> Policy:
        """The cheap checks, before any download: blocked, channel, NSFW policy, rate and queue limits, budget."""
        policy = await self.policy(who)
        check_admission(policy, channel_id=who.channel_id, channel_nsfw=who.channel_nsfw, safety=spec.safety)
        usage = await self.jobs.usage(who.guild_id, who.user_id, self.engine.clock.now())
        check_usage(policy, usage, cost=0, now=self.engine.clock.now())
        return policy

    async def vary(self, who: Requester, options: VaryOptions, image: bytes, policy: Policy | None = None) -> Job:
        """Start a FLUX.1 Redux job on an uploaded image."""
        policy = policy or await self.admit(who, options)
        normalized = await normalize_input_async(
            image, max_bytes=self.max_input_bytes, max_pixels=self.max_input_pixels
        )
        spec = options.resolve(normalized.source_size)
        return await self.engine.submit(self._order(who, spec, input_image=normalized), policy)

    async def imagine(self, who: Requester, options: ImagineOptions) -> Job:
        """Start a FLUX.1 schnell job from a prompt."""
        policy = await self.admit(who, options)
        return await self.engine.submit(self._order(who, options.resolve()), policy)

    async def reroll(self, who: Requester, job_id: str) -> Job:
        """The same input and options with a new seed, paid by whoever asks."""
        source = await self._job(job_id)
        spec = source.spec.with_seed(random_seed())
        policy = await self.admit(who, spec)
        order = self._order(who, spec, input_sha256=source.input_sha256, origin="reroll", parent=source)
        return await self.engine.submit(order, policy)

    async def variation(self, who: Requester, job_id: str, index: int) -> Job:
        """Vary output `index` (1-based) of a finished job with the same options."""
        source = await self._job(job_id)
        outputs = await self.jobs.outputs(job_id)
        if not 1 <= index <= len(outputs):
            raise InvalidRequestError(f"Job `{job_id}` has no image {index}.")
        normalized = await normalize_input_async(
            outputs[index - 1].data, max_bytes=self.max_input_bytes, max_pixels=self.max_input_pixels
        )
        spec = source.spec
        if not spec.model.is_redux:
            spec = VaryOptions.parse(
                count=spec.count,
                aspect_ratio=spec.aspect_ratio,
                megapixels=spec.megapixels,
                output_format=spec.output_format,
                quality=spec.quality,
                safety=spec.safety,
            ).resolve(normalized.source_size)
        spec = spec.model_copy(update={"seed": random_seed(), "prompt": None})
        policy = await self.admit(who, spec)
        order = self._order(who, spec, input_image=normalized, origin="variation", parent=source, index=index)
        return await self.engine.submit(order, policy)

    async def job(self, job_id: str) -> Job:
        return await self._job(job_id)

    async def outputs(self, job_id: str) -> list[StoredOutput]:
        return await self.jobs.outputs(job_id)

    async def cancel(self, who: Requester, job_id: str) -> Job:
        return await self.engine.cancel(job_id.strip(), user_id=who.user_id)

    async def active_jobs(self, guild_id: int, user_id: int) -> list[Job]:
        return await self.jobs.active_for_member(guild_id, user_id)

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        return await self.jobs.recent_for_member(guild_id, user_id, limit=limit)

    async def credits(self, guild_id: int, user_id: int, role_ids: frozenset[int] = frozenset()) -> CreditsView:
        """The member's pots (opening the account and topping up today's allowance if due)."""
        now = self.engine.clock.now()
        policy = self.operator.resolve(await self.guilds.settings(guild_id), role_ids=role_ids)
        async with self.jobs.db.transaction() as conn:
            balance = await self.ledger.open_account(
                conn, guild_id=guild_id, user_id=user_id, daily=policy.daily_allowance, now=now
            )
        midnight = datetime.combine(now.astimezone(UTC).date(), time(0, tzinfo=UTC))
        spent = await self.ledger.spent_since(guild_id, user_id, midnight)
        return CreditsView(balance=balance, spent_today=spent, prices=self.engine.prices, now=now)

    async def _job(self, job_id: str) -> Job:
        job = await self.jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"There is no job `{job_id}`.")
        return job

    def _order(
        self,
        who: Requester,
        spec: GenerationSpec,
        *,
        input_image: NormalizedImage | None = None,
        input_sha256: str | None = None,
        origin: str = "command",
        parent: Job | None = None,
        index: int | None = None,
    ) -> JobOrder:
        if spec.model.is_redux and input_image is None and input_sha256 is None:
            raise UserError("This job has no stored input image to reuse.")
        return JobOrder(
            request_id=who.request_id,
            guild_id=who.guild_id,
            user_id=who.user_id,
            channel_id=who.channel_id,
            spec=spec,
            input_image=input_image,
            input_sha256=input_sha256,
            origin=origin,
            parent_job_id=parent.id if parent else None,
            parent_index=index,
            upload_limit=who.upload_limit,
        )
