"""`/fluxadmin`: a server's credits, limits, channels, NSFW policy, provider, blocks, ledger and usage.

The command tree has acknowledged each command and checked its declared ranges before it runs; AdminService
checks every value again.
"""

from __future__ import annotations

import io
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.blocklist import MAX_PATTERN_CHARS
from bot.core.credits import plural, relative_time
from bot.core.errors import UserError
from bot.core.preferences import MAX_PRESET_NAME, MAX_TEMPLATE_CHARS
from bot.core.requests import MAX_COUNT, OutputFormat, VaryAspectRatio, VaryModel
from bot.core.sizes import Megapixels
from bot.jobs.access import Action, authorize
from bot.jobs.admin import MAX_GRANT, MAX_REASON_CHARS, MAX_USAGE_DAYS, AdminService, GuildOverview
from bot.jobs.balances import ProviderBalance
from bot.jobs.gallery import MAX_STARS
from bot.services import Services
from bot.ui import pages
from bot.ui.charts import usage_chart_async
from bot.ui.fit import fit_choices
from bot.ui.replies import reply
from cogs.context import requester

Reason = app_commands.Range[str, 1, MAX_REASON_CHARS]
TEXT = {
    "name_entry": "Name the word or pattern to add or remove.",
    "name_channel": "Name the showcase channel.",
    "name_preset": "Name the preset to add or remove.",
    "name_modlog": "Name the mod-log channel.",
}


def overview_text(overview: GuildOverview) -> str:
    settings, policy = overview.settings, overview.effective
    limits = policy.limits
    channels = ", ".join(f"<#{c}>" for c in sorted(settings.channels)) or "all channels"
    bonuses = ", ".join(f"<@&{role}> +{amount}" for role, amount in settings.role_bonuses) or "none"
    nsfw = "allowed in age-restricted channels" if settings.nsfw_allowed else "not allowed"
    return (
        f"Daily allowance: **{policy.daily_allowance}** per member · role bonuses: {bonuses}\n"
        f"Server budget: **{settings.budget if settings.budget is not None else 'no cap'}** credits a day\n"
        f"Limits: {limits.jobs_per_minute} jobs a minute, {limits.max_active} running and {limits.max_queued} "
        f"waiting per member, {limits.server_concurrency} running for the server\n"
        f"Channels: {channels} · `safety:off`: {nsfw} · provider: {settings.provider or 'the operator’s order'}"
        + "".join(balance_line(b) for b in overview.balances)
    )


def balance_line(balance: ProviderBalance) -> str:
    warning = " ⚠️ below the operator's warning level; tell the bot's operator" if balance.low else ""
    return f"\n{balance.provider} account balance: {balance.remaining:g} credits ({relative_time(balance.at)}){warning}"


def guild_id(interaction: discord.Interaction[Any]) -> int:
    if interaction.guild_id is None:
        raise UserError("`/fluxadmin` works in servers only.")
    return interaction.guild_id


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class AdminCog(commands.GroupCog, name="fluxadmin", description="Fluxcord settings for this server"):
    """Server administration; Discord hides it from members without Manage Server, and it checks again here."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.admin: AdminService = services.admin
        self.services = services
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        # Server admins can re-grant commands to anyone in Discord's settings; the permission is checked here too.
        try:
            authorize(requester(interaction), Action.ADMINISTER)
        except UserError as refusal:
            raise app_commands.CheckFailure(refusal.message) from refusal
        return True

    @app_commands.command(name="grant", description="Give a member credits (they persist)")
    async def grant(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        amount: app_commands.Range[int, 1, MAX_GRANT],
        reason: Reason | None = None,
    ) -> None:
        balance = await self.admin.give(
            guild_id(interaction),
            member.id,
            amount,
            actor_id=interaction.user.id,
            reason=reason,
            key=f"grant:{interaction.id}",
            role_ids=frozenset(r.id for r in member.roles),
        )
        await reply(
            interaction,
            f"Granted {plural(amount, 'credit')} to {member.mention}; they can now spend {balance.spendable}.",
        )

    @app_commands.command(name="revoke", description="Take back granted credits")
    async def revoke(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        amount: app_commands.Range[int, 1, MAX_GRANT],
        reason: Reason | None = None,
    ) -> None:
        taken, balance = await self.admin.take_back(
            guild_id(interaction),
            member.id,
            amount,
            actor_id=interaction.user.id,
            reason=reason,
            key=f"revoke:{interaction.id}",
        )
        await reply(
            interaction,
            f"Took back {plural(taken, 'credit')} from {member.mention}; they can now spend {balance.spendable}.",
        )

    @app_commands.command(name="allowance", description="Credits every member gets each day")
    async def allowance(self, interaction: discord.Interaction[Any], amount: app_commands.Range[int, 0]) -> None:
        overview = await self.admin.configure(guild_id(interaction), allowance=amount)
        await reply(interaction, f"Daily allowance set to {amount} (from the next refill).\n{overview_text(overview)}")

    @app_commands.command(name="role-bonus", description="Extra daily credits for members with a role (0 removes)")
    async def role_bonus(
        self, interaction: discord.Interaction[Any], role: discord.Role, amount: app_commands.Range[int, 0, MAX_GRANT]
    ) -> None:
        overview = await self.admin.role_bonus(guild_id(interaction), role.id, amount)
        await reply(interaction, f"Role bonus for {role.mention}: {amount}.\n{overview_text(overview)}")

    @app_commands.command(name="budget", description="The most credits the whole server may spend a day")
    @app_commands.describe(amount="Leave out to remove the cap")
    async def budget(
        self, interaction: discord.Interaction[Any], amount: app_commands.Range[int, 0] | None = None
    ) -> None:
        overview = await self.admin.configure(guild_id(interaction), budget=amount)
        await reply(interaction, overview_text(overview))

    @app_commands.command(name="limits", description="Per-member job limits (leave all out to show them)")
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        jobs_per_minute: app_commands.Range[int, 1] | None = None,
        active: app_commands.Range[int, 1] | None = None,
        queued: app_commands.Range[int, 0] | None = None,
    ) -> None:
        changes = {
            name: value
            for name, value in (("jobs_per_minute", jobs_per_minute), ("max_active", active), ("max_queued", queued))
            if value is not None
        }
        overview = await (
            self.admin.configure(guild_id(interaction), **changes)
            if changes
            else self.admin.overview(guild_id(interaction))
        )
        await reply(interaction, overview_text(overview))

    @app_commands.command(name="channels", description="Channels where Fluxcord works (empty list = everywhere)")
    async def channels(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["add", "remove", "clear", "list"],
        channel: discord.TextChannel | None = None,
    ) -> None:
        if action in ("add", "remove"):
            if channel is None:
                raise UserError(f"Name the channel to {action}.")
            overview = await self.admin.set_channel(guild_id(interaction), channel.id, allowed=action == "add")
        elif action == "clear":
            overview = await self.admin.clear_channels(guild_id(interaction))
        else:
            overview = await self.admin.overview(guild_id(interaction))
        await reply(interaction, overview_text(overview))

    @app_commands.command(name="nsfw", description="Whether `safety:off` is allowed in age-restricted channels")
    async def nsfw(self, interaction: discord.Interaction[Any], policy: Literal["allow", "deny"]) -> None:
        overview = await self.admin.configure(guild_id(interaction), nsfw_allowed=policy == "allow")
        await reply(interaction, overview_text(overview))

    @app_commands.command(name="provider", description="The image provider this server uses")
    async def provider(self, interaction: discord.Interaction[Any], name: str) -> None:
        overview = await self.admin.configure(guild_id(interaction), provider=name.strip().lower() or None)
        await reply(interaction, overview_text(overview))

    @provider.autocomplete("name")
    async def provider_names(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return fit_choices(app_commands.Choice(name=n, value=n) for n in self.admin.providers if current.lower() in n)

    @app_commands.command(name="block", description="Stop a member from using Fluxcord here")
    async def block(
        self, interaction: discord.Interaction[Any], member: discord.Member, reason: Reason | None = None
    ) -> None:
        await self.admin.block(guild_id(interaction), member.id, actor_id=interaction.user.id, reason=reason)
        await reply(interaction, f"{member.mention} is blocked from Fluxcord on this server.")

    @app_commands.command(name="unblock", description="Let a blocked member use Fluxcord again")
    async def unblock(self, interaction: discord.Interaction[Any], member: discord.Member) -> None:
        was = await self.admin.unblock(guild_id(interaction), member.id)
        await reply(interaction, f"{member.mention} is unblocked." if was else f"{member.mention} was not blocked.")

    @app_commands.command(name="ledger", description="A member's last 20 credit movements")
    async def ledger(self, interaction: discord.Interaction[Any], member: discord.Member) -> None:
        entries = await self.admin.ledger_entries(guild_id(interaction), member.id)
        if not entries:
            await reply(interaction, f"{member.mention} has no credit movements yet.")
            return
        lines = [f"Last {len(entries)} movements of {member.mention} (allowance / granted / held):"]
        for e in entries:
            detail = " · ".join(
                part
                for part in (
                    f"job `{e.job_id}`" if e.job_id else "",
                    f"by <@{e.actor_id}>" if e.actor_id else "",
                    e.reason or "",
                )
                if part
            )
            lines.append(
                f"`{e.created_at[:16].replace('T', ' ')}` **{e.kind}** {e.amount} "
                f"({e.d_allowance:+} / {e.d_granted:+} / {e.d_held:+}){' · ' + detail if detail else ''}"
            )
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="usage", description="Credits spent and jobs per day, as a chart")
    async def usage(
        self, interaction: discord.Interaction[Any], days: app_commands.Range[int, 1, MAX_USAGE_DAYS] = 14
    ) -> None:
        rows = await self.admin.usage(guild_id(interaction), days)
        guild_name = interaction.guild.name if interaction.guild else "this server"
        picture = await usage_chart_async(rows, f"{guild_name} · last {plural(days, 'day')}")
        spent, jobs = sum(r.spent for r in rows), sum(r.jobs for r in rows)
        await reply(
            interaction,
            f"Last {plural(days, 'day')}: {plural(spent, 'credit')} spent on {plural(jobs, 'job')}.",
            file=discord.File(io.BytesIO(picture), "usage.png"),
        )

    @app_commands.command(name="blocklist", description="Words or re:patterns refused in prompts")
    @app_commands.describe(entry="A word or phrase, or a regular expression written as re:pattern")
    async def blocklist(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["add", "remove", "list"],
        entry: app_commands.Range[str, 1, MAX_PATTERN_CHARS + 3] | None = None,
    ) -> None:
        moderation = self.services.moderation
        if action == "list":
            await reply(interaction, pages.blocklist_text(await moderation.entries(guild_id(interaction))))
            return
        if entry is None:
            raise UserError(TEXT["name_entry"])
        if action == "add":
            added, new = await moderation.add(guild_id(interaction), entry, actor_id=interaction.user.id)
            key = "blocklist_added" if new else "blocklist_present"
        else:
            added, removed = await moderation.remove(guild_id(interaction), entry)
            key = "blocklist_removed" if removed else "blocklist_missing"
        await reply(interaction, pages.TEXT[key].format(entry=f"`{added.shown}`"))

    @app_commands.command(name="showcase", description="The channel results are showcased in, by ⭐")
    @app_commands.describe(
        channel="Where showcased results go (for set)",
        stars="Also showcase a result once this many members react with ⭐ (leave out for the button only)",
    )
    async def showcase(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["set", "off", "show"],
        channel: discord.TextChannel | None = None,
        stars: app_commands.Range[int, 1, MAX_STARS] | None = None,
    ) -> None:
        gallery = self.services.gallery
        where = guild_id(interaction)
        if action == "set":
            if channel is None:
                raise UserError(TEXT["name_channel"])
            current = await gallery.set_showcase(where, channel.id, stars)
        elif action == "off":
            current = await gallery.set_showcase(where, None, None)
        else:
            current = await gallery.showcase(where)
        await reply(interaction, pages.showcase_text(current))

    @app_commands.command(name="spoilers", description="Channels and roles whose results are posted as spoilers")
    @app_commands.describe(
        channel="Results made in this channel are spoilers (for add and remove)",
        role="Results asked for by members with this role are spoilers (for add and remove)",
    )
    async def spoilers(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["add", "remove", "clear", "list"],
        channel: discord.TextChannel | None = None,
        role: discord.Role | None = None,
    ) -> None:
        moderation = self.services.moderation
        where = guild_id(interaction)
        if action in ("add", "remove"):
            policy = await moderation.set_spoilers(
                where,
                channel_id=channel.id if channel else None,
                role_id=role.id if role else None,
                on=action == "add",
            )
        elif action == "clear":
            policy = await moderation.clear_spoilers(where)
        else:
            policy = await moderation.spoiler_policy(where)
        await reply(interaction, pages.spoilers_text(policy))

    @app_commands.command(name="modlog", description="The channel every job is logged in, for moderators")
    @app_commands.describe(channel="Where jobs are logged (for set)")
    async def modlog(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["set", "off", "show"],
        channel: discord.TextChannel | None = None,
    ) -> None:
        modlog = self.services.modlog
        where = guild_id(interaction)
        if action == "set":
            if channel is None:
                raise UserError(TEXT["name_modlog"])
            current = await modlog.set_channel(where, channel.id)
        elif action == "off":
            current = await modlog.set_channel(where, None)
        else:
            current = await modlog.channel(where)
        await reply(interaction, pages.modlog_text(current))

    @app_commands.command(name="preset", description="Named option sets and prompt templates members can choose")
    @app_commands.rename(output_format="format")
    @app_commands.describe(
        name="The preset's name",
        template="For /imagine: the prompt with {prompt} where the member's goes, e.g. {prompt}, studio lighting",
    )
    async def preset(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["add", "remove", "list"],
        name: app_commands.Range[str, 1, MAX_PRESET_NAME] | None = None,
        template: app_commands.Range[str, 1, MAX_TEMPLATE_CHARS] | None = None,
        model: VaryModel | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        aspect_ratio: VaryAspectRatio | None = None,
        megapixels: Megapixels | None = None,
        output_format: OutputFormat | None = None,
    ) -> None:
        preferences = self.services.preferences
        where = guild_id(interaction)
        if action == "list":
            await reply(interaction, pages.presets_text(await preferences.presets(where)))
            return
        if name is None:
            raise UserError(TEXT["name_preset"])
        if action == "remove":
            removed = await preferences.remove_preset(where, name)
            await reply(interaction, pages.TEXT["preset_removed" if removed else "preset_missing"].format(name=name))
            return
        options = {
            "model": model,
            "count": count,
            "aspect_ratio": aspect_ratio,
            "megapixels": megapixels,
            "output_format": output_format,
        }
        saved = await preferences.save_preset(
            where, name, template=template, options=options, actor_id=interaction.user.id
        )
        await reply(
            interaction, pages.TEXT["preset_saved"].format(name=saved.name, summary=pages.preset_summary(saved))
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AdminCog(bot, Services.of(bot)))
