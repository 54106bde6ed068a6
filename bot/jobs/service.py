"""What the front ends ask for, in Discord-free terms: start, re-roll, vary, inspect and cancel jobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time

from bot.core.credits import Balance
from bot.core.errors import InvalidRequestError, JobNotFoundError, UserError
from bot.core.images import NormalizedImage, normalize_input_async
from bot.core.jobs import Job, StoredOutput
from bot.core.limits import OperatorPolicy, Policy, check_admission, check_usage
from bot.core.pricing import PriceList
from bot.core.requests import GenerationSpec, ImagineOptions, VaryOptions, random_seed
from bot.core.sizes import AspectRatio
from bot.core.text import truncate
from bot.core.variants import TUNINGS, Strength
from bot.jobs.access import Action, authorize, authorize_job
from bot.jobs.downloads import NOT_ON_DISCORD, AttachmentFetcher
from bot.jobs.engine import JobEngine, JobOrder
from bot.jobs.moderation import ModerationService
from storage.gallery import GalleryRepo
from storage.guilds import GuildRepo
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo

ACCEPTED_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")

TEXT = {
    "already_hd": "Job `{job}` is already at 1 MP; HD re-renders results made at 0.25 MP.",
    "no_image": "Job `{job}` has no image {index}.",
    "not_imagine": "Remix changes the prompt of an `/imagine` result; job `{job}` has none.",
    "no_provider": "No provider configured here takes {fields} for {model}; the operator can add one that does.",
    "cancelled": "Cancelled.",
    "cancelled_by_moderator": "Cancelled by a moderator.",
}


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, where, with which permissions, and under which interaction (the idempotency key)."""

    guild_id: int
    user_id: int
    channel_id: int | None
    request_id: str
    role_ids: frozenset[int] = frozenset()
    channel_nsfw: bool = False
    #: Manage Messages: may delete other members' results
    moderator: bool = False
    #: Manage Server: may administer the server's settings and look at anyone's credits
    manager: bool = False
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
        fetcher: AttachmentFetcher,
        max_input_bytes: int,
        max_input_pixels: int,
        moderation: ModerationService | None = None,
        gallery: GalleryRepo | None = None,
    ) -> None:
        self.moderation = moderation
        self.gallery = gallery
        self.engine = engine
        self.jobs = jobs
        self.ledger = ledger
        self.guilds = guilds
        self.operator = operator
        self.fetcher = fetcher
        self.max_input_bytes = max_input_bytes
        self.max_input_pixels = max_input_pixels

    def check_attachment(self, *, size: int, content_type: str | None, upload_limit: int | None) -> None:
        """Refuse an attachment by its declared type and size, before downloading it."""
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind and not kind.startswith("image/"):
            raise InvalidRequestError("That attachment is not an image; attach a PNG, JPEG, WebP or GIF.")
        if kind and kind not in ACCEPTED_TYPES:
            raise InvalidRequestError(f"{kind} images are not supported; attach a PNG, JPEG, WebP or GIF.")
        limit = self._input_limit(upload_limit)
        if size > limit:
            raise InvalidRequestError(
                f"That image is {size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.0f} MB."
            )

    def _input_limit(self, upload_limit: int | None) -> int:
        return min(self.max_input_bytes, upload_limit or self.max_input_bytes)

    def check_input(self, url: str, *, size: int, content_type: str | None, upload_limit: int | None) -> None:
        """Every check `fetch_input` makes before downloading, for a form that opens before the download."""
        self.check_attachment(size=size, content_type=content_type, upload_limit=upload_limit)
        if not self.fetcher.allows(url):
            raise InvalidRequestError(NOT_ON_DISCORD)

    async def fetch_input(self, url: str, *, size: int, content_type: str | None, upload_limit: int | None) -> bytes:
        """Check an attachment by what it declares, then download it from Discord, reading no more than the limit."""
        self.check_attachment(size=size, content_type=content_type, upload_limit=upload_limit)
        return await self.fetcher.fetch(url, limit=self._input_limit(upload_limit))

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
        return await self._submit(who, self._order(who, spec, input_image=normalized), policy)

    async def imagine(self, who: Requester, options: ImagineOptions) -> Job:
        """Start a FLUX.1 schnell job from a prompt (refused first if the server's blocklist matches it)."""
        await self.check_prompt(who, options.prompt)
        policy = await self.admit(who, options)
        return await self._submit(who, self._order(who, options.resolve()), policy)

    async def check_prompt(self, who: Requester, prompt: str) -> None:
        if self.moderation is not None:
            await self.moderation.check_prompt(who.guild_id, who.user_id, prompt)

    async def remix_source(self, who: Requester, job_id: str) -> Job:
        """The `/imagine` job a Remix starts from, if `who` may remix it."""
        source = await self.job_for(who, Action.REMIX, job_id)
        if source.spec.prompt is None:
            raise InvalidRequestError(TEXT["not_imagine"].format(job=source.id))
        return source

    async def remix(self, who: Requester, job_id: str, changes: Mapping[str, object]) -> Job:
        """An `/imagine` result's prompt and options as the member edited them, paid by whoever asks.

        What the form does not offer (steps, format, quality, safety) stays as the job had it.
        """
        source = await self.remix_source(who, job_id)
        spec = source.spec
        kept = {
            "prompt": spec.prompt,
            "aspect_ratio": spec.aspect_ratio,
            "count": spec.count,
            "megapixels": spec.megapixels,
            "steps": spec.steps,
            "output_format": spec.output_format,
            "quality": spec.quality,
            "safety": spec.safety,
        }
        given = {name: value for name, value in changes.items() if name in kept or name == "seed"}
        options = ImagineOptions.parse(**{**kept, **{k: v for k, v in given.items() if v is not None}})
        await self.check_prompt(who, options.prompt)
        policy = await self.admit(who, options)
        return await self._submit(who, self._order(who, options.resolve(), origin="remix", parent=source), policy)

    async def hd(self, who: Requester, job_id: str) -> Job:
        """A 0.25 MP job rendered again at 1 MP: same input, seed and options; charged at the 1 MP price."""
        source = await self.job_for(who, Action.HD, job_id)
        if source.spec.megapixels != "0.25":
            raise InvalidRequestError(TEXT["already_hd"].format(job=source.id))
        spec = source.spec.model_copy(update={"megapixels": "1"})
        policy = await self.admit(who, spec)
        order = self._order(who, spec, input_sha256=source.input_sha256, origin="hd", parent=source)
        return await self._submit(who, order, policy)

    async def reroll(self, who: Requester, job_id: str) -> Job:
        """The same input and options with a new seed, paid by whoever asks."""
        source = await self.job_for(who, Action.REROLL, job_id)
        spec = source.spec.with_seed(random_seed())
        policy = await self.admit(who, spec)
        order = self._order(who, spec, input_sha256=source.input_sha256, origin="reroll", parent=source)
        return await self._submit(who, order, policy)

    async def variation(
        self,
        who: Requester,
        job_id: str,
        index: int,
        *,
        strength: Strength | None = None,
        aspect_ratio: AspectRatio | None = None,
    ) -> Job:
        """Vary output `index` (1-based) of a finished job with the same options.

        `strength` runs Vary (Subtle) or Vary (Strong) (Redux dev, tuned); `aspect_ratio` reframes the image.
        """
        source = await self.job_for(who, Action.REFRAME if aspect_ratio else Action.VARY, job_id)
        outputs = await self.jobs.outputs(source.id)
        if not 1 <= index <= len(outputs):
            raise InvalidRequestError(TEXT["no_image"].format(job=source.id, index=index))
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
        update: dict[str, object] = {"seed": random_seed(), "prompt": None}
        if aspect_ratio is not None:
            update["aspect_ratio"] = aspect_ratio
        if strength is not None:
            tuning = TUNINGS[strength]
            update |= {"model": tuning.model, "guidance": tuning.guidance, "steps": tuning.steps}
        spec = spec.model_copy(update=update)
        self._runnable(spec)
        policy = await self.admit(who, spec)
        origin = strength.value if strength else "reframe" if aspect_ratio else "variation"
        order = self._order(who, spec, input_image=normalized, origin=origin, parent=source, index=index)
        return await self._submit(who, order, policy)

    def _runnable(self, spec: GenerationSpec) -> None:
        """One sentence, before anything is held, when no configured provider takes what the spec tunes."""
        if not self.engine.pool.runs(spec):
            fields = " and ".join(sorted(spec.tuned_fields())) or "the model"
            raise UserError(TEXT["no_provider"].format(fields=fields, model=spec.model.label))

    async def job_for(self, who: Requester, action: Action, job_id: str, *, message_id: int | None = None) -> Job:
        """The job if `who` may do `action` to it from here (a delete: on `message_id`); one sentence otherwise."""
        job = await self.jobs.get(job_id.strip())
        reposted = (
            job is not None
            and message_id is not None
            and self.gallery is not None
            and await self.gallery.shows(job.id, message_id)
        )
        return authorize_job(who, action, job, job_id, message_id=message_id, reposted=reposted)

    async def job(self, job_id: str) -> Job:
        """Any job by id, for the operator; members go through `job_for`."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"There is no job `{truncate(job_id, 24)}`.")
        return job

    async def outputs(self, job_id: str) -> list[StoredOutput]:
        return await self.jobs.outputs(job_id)

    async def cancel(self, who: Requester, job_id: str, *, from_status: bool = False) -> Job:
        """`/cancel` (the member who asked) or the status message's Cancel button (a moderator too)."""
        job = await self.job_for(who, Action.STOP if from_status else Action.CANCEL, job_id)
        reason = TEXT["cancelled"] if job.user_id == who.user_id else TEXT["cancelled_by_moderator"]
        return await self.engine.cancel(job.id, reason=reason)

    async def active_jobs(self, guild_id: int, user_id: int, limit: int = 25) -> list[Job]:
        return await self.jobs.active_for_member(guild_id, user_id, limit=limit)

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        return await self.jobs.recent_for_member(guild_id, user_id, limit=limit)

    async def member_credits(self, who: Requester, user_id: int, role_ids: frozenset[int]) -> CreditsView:
        """What `/credits` shows: the member's own, or (for a manager) another member's."""
        if user_id != who.user_id:
            authorize(who, Action.VIEW_CREDITS)
        return await self.credits(who.guild_id, user_id, role_ids)

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

    async def _submit(self, who: Requester, order: JobOrder, policy: Policy) -> Job:
        """Submit with the server's spoiler policy applied: by the channel, or by the roles of whoever asks."""
        if self.moderation is not None:
            spoiler = await self.moderation.spoiler_for(who.guild_id, who.channel_id, who.role_ids)
            order = replace(order, spoiler=spoiler)
        return await self.engine.submit(order, policy)

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
