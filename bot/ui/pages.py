"""Text members and admins read for history, re-posts, the showcase, settings, presets, the blocklist, spoilers and
the mod-log.

Every sentence is a whole template with named fields, so a translation can reorder it.
"""

from __future__ import annotations

from typing import Final

from bot.core.blocklist import BlockEntry
from bot.core.credits import relative_time
from bot.core.jobs import Job
from bot.core.preferences import OptionSet, Preset
from bot.core.spoilers import SpoilerPolicy
from bot.core.text import truncate
from bot.jobs.gallery import HistoryPage
from bot.ui.render import what
from storage.gallery import Showcase

TEXT: Final = {
    "history_empty": "You have no results on this server yet. Try `/imagine` or `/vary`.",
    "history_title": "Your results, page {page} of {pages} ({total} in all):",
    "history_line": "`{job}` · {what} · {when}{link}",
    "link": " · [result]({url})",
    "shown": "<@{author}>’s job `{job}`, shown again by <@{actor}>: {what}.",
    "showcased": "⭐ <@{author}>’s {what} · job `{job}`",
    "showcase_done": "Job `{job}` is in the showcase: {url}",
    "showcase_pending": "Job `{job}` is being put in the showcase.",
    "showcase_already": "Job `{job}` is already in the showcase: {url}",
    "showcase_set": "Results go to <#{channel}> with ⭐ (by their author or a moderator){stars}.",
    "showcase_stars": " and when {stars} members react with ⭐",
    "showcase_off": "The showcase is off.",
    "showcase_none": "This server has no showcase channel; name one with `/fluxadmin showcase action:set`.",
    "settings_title": "Your defaults on this server (used when you leave an option out):",
    "settings_line": "{name}: **{value}**",
    "unset": "the command's default",
    "settings_hint": "Change one with `/settings <option>:<value>`; `reset:True` clears them.",
    "preset_line": "{name} · {summary}",
    "preset_saved": "Preset **{name}** saved: {summary}.",
    "preset_removed": "Preset **{name}** removed.",
    "preset_missing": "There is no preset **{name}**.",
    "presets_none": "This server has no presets yet; add one with `/fluxadmin preset action:add`.",
    "presets_title": "This server's presets:",
    "template": "template “{template}”",
    "no_options": "no options",
    "blocklist_added": "Prompts with {entry} are now refused here.",
    "blocklist_present": "{entry} was already on the blocklist.",
    "blocklist_removed": "{entry} is off the blocklist.",
    "blocklist_missing": "{entry} was not on the blocklist.",
    "blocklist_none": "The blocklist is empty. Add a word, or a regular expression as `re:pattern`.",
    "blocklist_title": "Prompts matching these are refused before anything is charged (case-insensitive):",
    "spoilers_none": "No results are posted as spoilers; add a channel or a role with `/fluxadmin spoilers`.",
    "spoilers_title": "Results are posted as spoilers when made in {channels}, or asked for by members with {roles}.",
    "spoilers_no_channels": "no listed channel",
    "spoilers_no_roles": "no listed role",
    "modlog_set": "Every job is logged in <#{channel}>, with 🗑️ Delete and refund for moderators.",
    "modlog_off": "The mod-log is off; name a channel with `/fluxadmin modlog action:set`.",
}
OPTION_LABELS: Final = {
    "model": "Model",
    "count": "Images",
    "aspect_ratio": "Aspect ratio",
    "output_format": "Format",
    "megapixels": "Megapixels",
}


def message_url(guild_id: int, channel_id: int | None, message_id: int | None) -> str | None:
    if channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def history_text(page: HistoryPage, guild_id: int) -> str:
    if not page.jobs:
        return TEXT["history_empty"]
    lines = [TEXT["history_title"].format(page=page.page, pages=page.pages, total=page.total)]
    for job in page.jobs:
        url = message_url(guild_id, job.channel_id, job.message_id)
        lines.append(
            TEXT["history_line"].format(
                job=job.id,
                what=what(job),
                when=relative_time(job.created_at),
                link=TEXT["link"].format(url=url) if url else "",
            )
        )
    return "\n".join(lines)


def shown_content(job: Job, actor_id: int) -> str:
    return TEXT["shown"].format(author=job.user_id, job=job.id, actor=actor_id, what=what(job))


def showcased_content(job: Job) -> str:
    return TEXT["showcased"].format(author=job.user_id, what=what(job), job=job.id)


def showcase_text(showcase: Showcase | None) -> str:
    if showcase is None:
        return TEXT["showcase_off"]
    stars = TEXT["showcase_stars"].format(stars=showcase.stars) if showcase.stars else ""
    return TEXT["showcase_set"].format(channel=showcase.channel_id, stars=stars)


def options_summary(options: OptionSet) -> str:
    values = options.as_dict()
    return ", ".join(f"{OPTION_LABELS[name]} {value}" for name, value in values.items()) or TEXT["no_options"]


def settings_text(options: OptionSet) -> str:
    values = options.as_dict()
    lines = [TEXT["settings_title"]]
    for name, label in OPTION_LABELS.items():
        lines.append(TEXT["settings_line"].format(name=label, value=values.get(name, TEXT["unset"])))
    lines.append(TEXT["settings_hint"])
    return "\n".join(lines)


def preset_summary(preset: Preset) -> str:
    parts = [TEXT["template"].format(template=truncate(preset.template, 60))] if preset.template else []
    if preset.options.as_dict() or not parts:
        parts.append(options_summary(preset.options))
    return "; ".join(parts)


def preset_line(preset: Preset) -> str:
    """An autocomplete choice: the name and what the preset sets."""
    return TEXT["preset_line"].format(name=preset.name, summary=preset_summary(preset))


def presets_text(presets: list[Preset]) -> str:
    if not presets:
        return TEXT["presets_none"]
    return "\n".join([TEXT["presets_title"], *(f"• **{p.name}** · {preset_summary(p)}" for p in presets)])


def blocklist_text(entries: list[BlockEntry]) -> str:
    if not entries:
        return TEXT["blocklist_none"]
    return "\n".join([TEXT["blocklist_title"], *(f"• `{truncate(e.shown, 200)}`" for e in entries)])


def spoilers_text(policy: SpoilerPolicy) -> str:
    if not policy:
        return TEXT["spoilers_none"]
    channels = ", ".join(f"<#{c}>" for c in sorted(policy.channels)) or TEXT["spoilers_no_channels"]
    roles = ", ".join(f"<@&{r}>" for r in sorted(policy.roles)) or TEXT["spoilers_no_roles"]
    return TEXT["spoilers_title"].format(channels=channels, roles=roles)


def modlog_text(channel_id: int | None) -> str:
    return TEXT["modlog_off"] if channel_id is None else TEXT["modlog_set"].format(channel=channel_id)
