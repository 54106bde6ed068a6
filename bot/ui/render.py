"""Text and embeds members see; pure functions of jobs and balances."""

from __future__ import annotations

import re

import discord

from bot.core.credits import next_refill, plural, relative_time
from bot.core.jobs import Job, JobState, StoredOutput
from bot.core.requests import ModelId
from bot.core.text import truncate
from bot.jobs.notifier import Progress
from bot.jobs.service import CreditsView

COLOURS = {
    JobState.SUCCEEDED: discord.Colour.green(),
    JobState.FAILED: discord.Colour.red(),
    JobState.CANCELLED: discord.Colour.light_grey(),
    JobState.EXPIRED: discord.Colour.orange(),
}
STATE_ICONS = {
    JobState.QUEUED: "⏳",
    JobState.SUBMITTED: "⏳",
    JobState.RUNNING: "🎨",
    JobState.SUCCEEDED: "✅",
    JobState.FAILED: "❌",
    JobState.CANCELLED: "🚫",
    JobState.EXPIRED: "⌛",
}


_JOB_NAMED = re.compile(r"· job `([a-z0-9]{4,20})`$")
_OUTCOME_ICONS = tuple(icon for state, icon in STATE_ICONS.items() if state.terminal)


def what(job: Job) -> str:
    """`4 variations with FLUX.1 Redux schnell` or `2 images of “a fox” with FLUX.1 schnell`."""
    spec = job.spec
    if spec.prompt is not None:
        return f"{plural(spec.count, 'image')} of “{truncate(spec.prompt, 120)}” with {spec.model.label}"
    kind = _KINDS.get(job.origin, "variation")
    base = f"{plural(spec.count, kind)} with {spec.model.label}"
    if job.origin == "reframe":
        base += f" at {spec.aspect_ratio}"
    if job.origin == "hd" and job.parent_job_id:
        base += f" of `{job.parent_job_id}`"
    if job.origin in _OF_IMAGE and job.parent_index:
        base += f" of image {job.parent_index} of `{job.parent_job_id}`"
    return base


_KINDS = {
    "reroll": "re-roll",
    "variation": "variation",
    "subtle": "subtle variation",
    "strong": "strong variation",
    "reframe": "reframe",
    "hd": "HD re-render",
}
_OF_IMAGE = frozenset({"variation", "subtle", "strong", "reframe"})


def header(job: Job) -> str:
    return f"<@{job.user_id}> asked for {what(job)} · {plural(job.cost, 'credit')} · job `{job.id}`"


def status_content(job: Job, progress: Progress) -> str:
    return f"{header(job)}\n{STATE_ICONS.get(progress.state, '⏳')} {progress.line()}"


def job_named(content: str) -> str | None:
    """The id of the job a status or result message shows, if it is one.

    Read from the end of the header (the line before the last), which a prompt quoted earlier cannot reach.
    """
    found = _JOB_NAMED.search(content.rpartition("\n")[0])
    return found[1] if found else None


def shows_outcome(content: str) -> bool:
    """True for a result or failure message, False for a status line still waiting for one."""
    return content.rpartition("\n")[2].startswith(_OUTCOME_ICONS)


def size_text(job: Job, output: StoredOutput | None = None) -> str:
    width, height = (output.width, output.height) if output else job.spec.size
    return f"{width}×{height} {(output.format if output else job.spec.output_format).upper()}"


def seconds(job: Job) -> str:
    parts = []
    if job.submitted_at and job.finished_at:
        parts.append(f"{(job.finished_at - job.created_at).total_seconds():.1f} s total")
    if job.inference_ms is not None:
        parts.append(f"{job.inference_ms / 1000:.1f} s inference")
    return ", ".join(parts) or "—"


def result_embed(job: Job, outputs: list[StoredOutput]) -> discord.Embed:
    spec = job.spec
    embed = discord.Embed(title=spec.model.label, colour=COLOURS[JobState.SUCCEEDED])
    if spec.prompt:
        embed.description = truncate(spec.prompt, 1000)
    embed.add_field(name="Seed", value=f"`{spec.seed}`")
    embed.add_field(name="Size", value=size_text(job, outputs[0] if outputs else None))
    embed.add_field(name="Steps", value=str(spec.steps))
    if spec.guidance is not None:
        embed.add_field(name="Guidance", value=f"{spec.guidance:g}")
    embed.add_field(name="Time", value=seconds(job))
    embed.add_field(name="Cost", value=plural(job.charged or 0, "credit"))
    if len(outputs) < spec.count:
        embed.set_footer(
            text=f"{spec.count - len(outputs)} of {spec.count} images were removed by the safety "
            "filter and not charged."
        )
    return embed


def result_content(job: Job, outputs: list[StoredOutput]) -> str:
    return f"{header(job)}\n✅ Done: {plural(len(outputs), 'image')}."


def failure_content(job: Job) -> str:
    icon = STATE_ICONS.get(job.state, "❌")
    refund = f" Your {plural(job.cost, 'credit')} were refunded." if job.cost else ""
    reason = truncate(job.error or "No reason was given.", 1000)
    return f"{header(job)}\n{icon} {job.state.value.capitalize()}: {reason}{refund}"


def info_embed(job: Job) -> discord.Embed:
    spec = job.spec
    embed = discord.Embed(title=f"Job {job.id}", colour=COLOURS.get(job.state, discord.Colour.blurple()))
    embed.add_field(name="Model", value=spec.model.label)
    embed.add_field(name="State", value=job.state.value)
    embed.add_field(name="Seed", value=f"`{spec.seed}`")
    embed.add_field(name="Steps", value=str(spec.steps))
    embed.add_field(name="Size", value=f"{spec.size[0]}×{spec.size[1]} ({spec.aspect_ratio}, {spec.megapixels} MP)")
    embed.add_field(name="Format", value=f"{spec.output_format} q{spec.quality}")
    embed.add_field(name="Provider", value=(job.provider or "—").capitalize())
    embed.add_field(name="Cost", value=f"{job.charged if job.charged is not None else job.cost} credits")
    queue = (job.submitted_at - job.created_at).total_seconds() if job.submitted_at else None
    embed.add_field(name="Queue", value=f"{queue:.1f} s" if queue is not None else "—")
    embed.add_field(name="Inference", value=f"{job.inference_ms / 1000:.1f} s" if job.inference_ms else "—")
    if spec.guidance is not None:
        embed.add_field(name="Guidance", value=f"{spec.guidance:g}")
    if spec.prompt:
        embed.description = truncate(spec.prompt, 1000)
    return embed


def credits_embed(view: CreditsView, member_name: str) -> discord.Embed:
    balance = view.balance
    prices = view.prices
    embed = discord.Embed(title=f"Credits of {member_name}", colour=discord.Colour.blurple())
    embed.add_field(
        name="Spendable",
        value=f"**{balance.spendable}** ({balance.allowance} allowance + {balance.granted} granted)",
        inline=False,
    )
    embed.add_field(name="Held by running jobs", value=str(balance.held))
    embed.add_field(name="Spent today", value=str(view.spent_today))
    embed.add_field(name="Allowance refills", value=relative_time(next_refill(view.now)))
    embed.add_field(
        name="Prices per image (1 MP / 0.25 MP)",
        value="\n".join(
            f"{model.label}: {prices.base(model)} / {max(1, -(-prices.base(model) // 4))}" for model in ModelId
        ),
        inline=False,
    )
    return embed


def jobs_text(jobs: list[Job], guild_id: int) -> str:
    if not jobs:
        return "You have no jobs yet. Try `/imagine` or `/vary`."
    lines = []
    for job in jobs:
        link = (
            f" · [result](https://discord.com/channels/{guild_id}/{job.channel_id}/{job.message_id})"
            if job.channel_id and job.message_id
            else ""
        )
        cost = job.charged if job.charged is not None else job.cost
        lines.append(
            f"{STATE_ICONS.get(job.state, '')} `{job.id}` {job.state.value} · {job.spec.model.label} · "
            f"×{job.spec.count} · {plural(cost, 'credit')} · {relative_time(job.created_at)}{link}"
        )
    return "\n".join(lines)
